"""An int8 query encoder next to a float model (queries through one, documents through the
other), and ``session.keep_warm()`` (issue 23, item 3), on a tiny random BERT built here."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from tiny_models import embedder_files, write_files  # noqa: E402

from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex  # noqa: E402
from lichen.models import get_embedder  # noqa: E402
from lichen.models._onnx import OnnxEmbedder  # noqa: E402
from lichen.models.build import QUERY_INT8_FILE, add_query_encoder, build_user_model  # noqa: E402
from lichen.models.warm import KeepWarm  # noqa: E402

TEXTS = ["refunds arrive within five business days", "reset your password", "where is my parcel"]


@pytest.fixture
def quantised(tmp_path, isolated_home) -> str:
    path, _ = build_user_model(write_files(tmp_path / "src", embedder_files(seed=21, prompts={"query": "q: "})), "tiny-q8")
    manifest = add_query_encoder(path)
    assert manifest["query_model"] == QUERY_INT8_FILE and (path / QUERY_INT8_FILE).is_file()
    assert json.loads((path / "model.json").read_text())["query_model"] == QUERY_INT8_FILE
    return "tiny-q8"


def test_queries_run_through_the_query_encoder_documents_through_the_float_model(quantised: str, isolated_home) -> None:
    directory = isolated_home / "models" / quantised
    int8 = OnnxEmbedder(directory, model_id="x", onnx_file=QUERY_INT8_FILE, query_model=False)
    float_model = OnnxEmbedder(directory, model_id="y", query_model=False)
    session = SessionIndex("s", model_id=quantised)
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(TEXTS)])
    stored = np.array([d.embedding for d in session.get_docs_sync(include_embeddings=True)], np.float32)
    np.testing.assert_allclose(stored, float_model.embed(TEXTS), atol=1e-6)  # documents: float
    query = session.embed_query("parcel")
    np.testing.assert_allclose(query, int8.embed(["q: parcel"])[0], atol=1e-6)  # queries: int8, prompted
    assert 0.9 < float(query @ float_model.embed(["q: parcel"])[0]) < 1.0 - 1e-6  # close, not the same
    hits = session.query_sync("parcel", QueryOptions(top_k=3)).docs
    assert [h.score for h in hits] == pytest.approx(sorted((stored @ query).tolist(), reverse=True), abs=1e-5)
    # The embedding tables are kept in float16 behind a Cast, so the file stays smaller.
    assert (directory / QUERY_INT8_FILE).stat().st_size < (directory / "model.onnx").stat().st_size * 2
    assert get_embedder(quantised).query_model == QUERY_INT8_FILE


def test_keep_warm_runs_stand_in_queries_until_stopped(quantised: str) -> None:
    session = SessionIndex("w", model_id=quantised)
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(TEXTS)])
    with session.keep_warm(period=0.005) as warm:
        deadline = time.monotonic() + 5
        while warm.ticks < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert warm.running and warm.ticks >= 3
        assert session.query_sync("parcel", QueryOptions(top_k=1)).docs  # queries go on meanwhile
    ticks = warm.ticks
    time.sleep(0.05)
    assert not warm.running and warm.ticks == ticks and warm.error is None
    assert not any(t.name == "lichen-keep-warm" for t in threading.enumerate())


async def test_keep_warm_async_and_refusals(quantised: str) -> None:
    session = SessionIndex("a", model_id=quantised)
    async with session.keep_warm(period=0.005, search=False) as warm:
        assert warm.running
    assert not warm.running
    with pytest.raises(InvalidArgumentError, match="period"):
        session.keep_warm(period=0)
    with pytest.raises(InvalidArgumentError, match="custom"):
        SessionIndex("c", model_id="custom", dimension=2).keep_warm()
    failing = KeepWarm(lambda: 1 / 0, period=0.001).start()  # a failing tick ends warming, quietly
    deadline = time.monotonic() + 5
    while failing.running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert isinstance(failing.error, ZeroDivisionError) and not failing.running
    failing.stop()
