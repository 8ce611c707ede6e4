"""The shipped ONNX model reproduces sentence-transformers (golden vectors made on torch
by ``scripts/make_golden_vectors.py``), one text at a time and in mixed batches."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from lichen import ModelUnavailableError, get_embedder
from lichen.models import model_dir

GOLDEN = np.load(Path(__file__).parent / "fixtures" / "golden_minilm.npz")
SENTENCES = [str(s) for s in GOLDEN["sentences"]]
REFERENCE = GOLDEN["vectors"] / np.linalg.norm(GOLDEN["vectors"], axis=1, keepdims=True)


def cosines(vectors: np.ndarray) -> np.ndarray:
    return (vectors * REFERENCE).sum(axis=1)


def test_fixture_covers_the_hard_cases():
    embedder = get_embedder()
    token_counts = [len(embedder._tokenizer.encode(s).ids) for s in SENTENCES]
    assert len(SENTENCES) >= 50
    assert "" in SENTENCES
    assert max(token_counts) == 256  # some inputs were truncated by the 256-token limit
    assert any(any(ord(ch) > 0x1F000 for ch in s) for s in SENTENCES)  # emoji


def test_batched_embeddings_match_reference():
    vectors = get_embedder().embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    assert cosines(vectors).min() >= 0.9999


def test_one_at_a_time_matches_reference():
    embedder = get_embedder()
    vectors = np.stack([embedder.embed([s])[0] for s in SENTENCES])
    assert cosines(vectors).min() >= 0.9999


def test_queries_run_through_the_shipped_int8_query_encoder_close_to_the_reference():
    """The built-in model embeds queries with its int8 encoder (faster; judged by
    retrieval in benchmarks/eval_query_encoder.py: nDCG@10 within 0.003 of float) and
    documents with the float model. Held here to the torch reference, one query at a
    time as queries are asked: close, but not the float model's vectors."""
    embedder = get_embedder()
    manifest = json.loads((model_dir("lichen-minilm") / "model.json").read_text())
    assert embedder.query_model == manifest["query_model"] == "query-int8.onnx"
    queries = np.stack([embedder.embed_queries([s])[0] for s in SENTENCES])
    assert np.linalg.norm(queries, axis=1) == pytest.approx(1.0, abs=1e-5)
    # Measured: min 0.972 (the empty string and emoji among the golden inputs), median > 0.99.
    assert cosines(queries).min() >= 0.96 and np.median(cosines(queries)) >= 0.99
    assert cosines(queries).min() < 0.9999  # really the int8 graph, not model.onnx
    # Each query's nearest golden sentence by the reference vectors is still itself (or
    # one with the same reference vector: "" and " ").
    nearest = (queries @ REFERENCE.T).argmax(axis=1)
    assert (REFERENCE[nearest] * REFERENCE).sum(axis=1).min() > 0.9999


def test_output_is_unit_length_and_padding_independent():
    embedder = get_embedder()
    alone = embedder.embed(["short text"])[0]
    with_long_neighbour = embedder.embed(["short text", "a much longer text " * 30])[0]
    assert abs(np.linalg.norm(alone) - 1.0) < 1e-5
    assert float(alone @ with_long_neighbour) > 0.99999


def test_concurrent_embedding_is_consistent():
    embedder = get_embedder()
    expected = embedder.embed(SENTENCES[:16])
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(embedder.embed(SENTENCES[:16]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_model_is_shared_and_shipped_small():
    assert get_embedder() is get_embedder("lichen-minilm")
    assert (model_dir("lichen-minilm") / "model.onnx").stat().st_size < 50_000_000
    assert (model_dir("lichen-minilm") / "LICENSE").is_file()


def test_shipped_model_has_attention_fused():
    # What `lichen models build` now writes (models/_fuse.py); the tests above hold it to
    # the torch reference. onnx is a test dependency, not a runtime one.
    onnx = pytest.importorskip("onnx")
    manifest = json.loads((model_dir("lichen-minilm") / "model.json").read_text())
    operators = [node.op_type for node in onnx.load(str(model_dir("lichen-minilm") / "model.onnx")).graph.node]
    assert manifest["fused_attention"] is True
    assert operators.count("Attention") == 6 and "Softmax" not in operators


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ModelUnavailableError, match="unknown or missing model 'nope'"):
        get_embedder("nope")
