"""LichenEmbeddings: plain floats, the same vectors the index computes, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_lichen import LichenEmbeddings
from lichen import ModelUnavailableError, SessionIndex


def test_plain_python_floats_of_unit_length():
    embeddings = LichenEmbeddings()
    vector = embeddings.embed_query("refunds take five days")
    assert len(vector) == embeddings.dimension == 384
    assert all(type(x) is float for x in vector)
    assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-4)
    documents = embeddings.embed_documents(["a", "b"])
    assert all(type(x) is float for row in documents for x in row)
    assert embeddings.embed_documents([]) == []


def test_same_vectors_as_a_lichen_index():
    text = "the customer was billed twice"
    session = SessionIndex("s")
    embeddings = LichenEmbeddings()
    # Queries through the model's query encoder, documents through the float model, as a
    # Lichen index embeds them.
    assert embeddings.embed_query(text) == pytest.approx(session.embed_query(text).tolist(), abs=1e-6)
    assert embeddings.embed_documents([text])[0] == pytest.approx(session.embed_texts([text])[0].tolist(), abs=1e-6)


async def test_async_matches_sync_for_small_and_large_batches():
    embeddings = LichenEmbeddings()
    texts = [f"sentence number {i}" for i in range(20)]  # above the inline limit: runs in a thread
    assert np.allclose(await embeddings.aembed_documents(texts), embeddings.embed_documents(texts), atol=1e-6)
    assert np.allclose(await embeddings.aembed_documents(texts[:2]), embeddings.embed_documents(texts[:2]), atol=1e-6)
    assert await embeddings.aembed_query("x") == pytest.approx(embeddings.embed_query("x"), abs=1e-6)


def test_unknown_model_fails_at_construction():
    with pytest.raises(ModelUnavailableError, match="no-such-model"):
        LichenEmbeddings(model_id="no-such-model")
    with pytest.raises(ValueError):
        LichenEmbeddings(unknown_option=1)
