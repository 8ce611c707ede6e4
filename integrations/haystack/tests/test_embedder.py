"""LichenTextEmbedder: the index's own query vector, as a Haystack component."""

from __future__ import annotations

import numpy as np
import pytest
from haystack_integrations.components.embedders.lichen import LichenTextEmbedder
from lichen import InvalidArgumentError, ModelUnavailableError, SessionIndex


def test_the_vector_is_the_one_a_lichen_session_computes():
    result = LichenTextEmbedder().run("refund policy")
    assert result["meta"] == {"model": "lichen-minilm"}
    assert len(result["embedding"]) == 384 and all(isinstance(x, float) for x in result["embedding"])
    np.testing.assert_allclose(result["embedding"], SessionIndex("s").embed_query("refund policy"), atol=1e-6)
    assert np.linalg.norm(result["embedding"]) == pytest.approx(1.0, abs=1e-5)


def test_prefix_and_suffix_wrap_the_text():
    wrapped = LichenTextEmbedder(prefix="query: ", suffix=" ?").run("refund")["embedding"]
    assert wrapped == LichenTextEmbedder().run("query: refund ?")["embedding"]


def test_one_string_only():
    with pytest.raises(TypeError, match="one string"):
        LichenTextEmbedder().run(["a", "b"])


def test_an_unknown_model_is_named():
    embedder = LichenTextEmbedder(model_id="no-such-model")
    with pytest.raises((ModelUnavailableError, InvalidArgumentError), match="no-such-model"):
        embedder.warm_up()


async def test_run_async_matches_run():
    embedder = LichenTextEmbedder()
    assert (await embedder.run_async("refund"))["embedding"] == embedder.run("refund")["embedding"]


def test_serialisation_round_trip():
    embedder = LichenTextEmbedder(prefix="q: ")
    data = embedder.to_dict()
    assert data == {
        "type": "haystack_integrations.components.embedders.lichen.text_embedder.LichenTextEmbedder",
        "init_parameters": {"model_id": "lichen-minilm", "prefix": "q: ", "suffix": ""},
    }
    assert LichenTextEmbedder.from_dict(data).prefix == "q: "
