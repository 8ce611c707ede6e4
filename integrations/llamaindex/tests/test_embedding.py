"""LichenEmbedding: Lichen's built-in model behind LlamaIndex's BaseEmbedding."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from lichen import DocumentInfo, ModelUnavailableError, SessionIndex, get_embedder
from llama_index.embeddings.lichen import LichenEmbedding

TEXTS = ["Refunds take three to five business days.", "Express shipping arrives in two days.", "Tents have a lifetime warranty."]


def test_defaults(embed_model):
    assert embed_model.model_name == "lichen-minilm"
    assert embed_model.dimension == 384
    assert LichenEmbedding.class_name() == "LichenEmbedding"


def test_sync_matches_lichens_own_vectors(embed_model):
    reference = get_embedder("lichen-minilm").embed(TEXTS)
    query = embed_model.get_query_embedding(TEXTS[0])
    text = embed_model.get_text_embedding(TEXTS[0])
    batch = embed_model.get_text_embedding_batch(TEXTS)
    assert len(query) == 384 and all(isinstance(x, float) for x in query)
    # Queries through the model's query encoder (int8 for the built-in model), texts
    # through the float model, as a Lichen index embeds them.
    np.testing.assert_allclose(query, get_embedder("lichen-minilm").embed_queries(TEXTS[:1])[0], atol=1e-6)
    np.testing.assert_allclose(text, reference[0], atol=1e-6)
    np.testing.assert_allclose(batch, reference, atol=1e-5)
    assert np.linalg.norm(batch, axis=1) == pytest.approx([1.0] * 3, abs=1e-5)


def test_batches_by_embed_batch_size():
    small = LichenEmbedding(embed_batch_size=2)
    np.testing.assert_allclose(small.get_text_embedding_batch(TEXTS), get_embedder().embed(TEXTS), atol=1e-5)


def test_same_vectors_as_a_session_embedding_the_text_itself(embed_model):
    session = SessionIndex()
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(TEXTS)])
    stored = [d.embedding for d in session.get_docs_sync(include_embeddings=True)]
    np.testing.assert_allclose(stored, embed_model.get_text_embedding_batch(TEXTS), atol=1e-5)


async def test_async_matches_sync_and_leaves_the_loop_free(embed_model, monkeypatch):
    from lichen.models._onnx import OnnxEmbedder

    threads: list[int] = []
    original = OnnxEmbedder.embed
    monkeypatch.setattr(OnnxEmbedder, "embed", lambda self, texts, *a, **kw: threads.append(threading.get_ident()) or original(self, texts, *a, **kw))
    long_texts = [t * 12 for t in TEXTS] * 3
    batch = await embed_model.aget_text_embedding_batch(long_texts)
    assert threads and threading.get_ident() not in threads  # the model ran on a worker thread
    np.testing.assert_allclose(batch, embed_model.get_text_embedding_batch(long_texts), atol=1e-5)
    np.testing.assert_allclose(await embed_model.aget_query_embedding(TEXTS[1]), embed_model.get_query_embedding(TEXTS[1]), atol=1e-6)
    np.testing.assert_allclose(await embed_model.aget_text_embedding(TEXTS[2]), embed_model.get_text_embedding(TEXTS[2]), atol=1e-6)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ModelUnavailableError, match="available"):
        LichenEmbedding(model_name="no-such-model")
