"""Re-ranking with a cross-encoder (issue 28, item 3): a tiny random
``BertForSequenceClassification`` built here by the same builder scores (query, passage)
pairs as an independent float64 numpy forward pass does, batched and padded; a query with
``QueryOptions(rerank=...)`` returns the vector search's best candidates re-ordered by those
scores."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from tiny_models import cross_encoder_files, embedder_files, reference_logits, write_files  # noqa: E402

from lichen import DocumentInfo, InvalidArgumentError, ModelUnavailableError, QueryOptions, SessionIndex  # noqa: E402
from lichen.models import get_reranker  # noqa: E402
from lichen.models.build import build_user_model  # noqa: E402
from lichen.models.rerank import RERANK_BATCH  # noqa: E402

TOPICS = ["refund", "password", "shipping", "invoice", "account", "delivery", "order", "payment"]
PASSAGES = [f"{TOPICS[i % 8]} question number {i}: " + "details " * (i % 7) for i in range(40)]


@pytest.fixture
def reranker(tmp_path, isolated_home) -> str:
    build_user_model(write_files(tmp_path / "ce", cross_encoder_files(seed=1)), "tiny-ce", fp32=True)
    return "tiny-ce"


def test_cross_encoder_scores_match_a_numpy_forward_pass(reranker: str) -> None:
    passages = PASSAGES[: RERANK_BATCH + 8]  # two batches, lengths sorted and padded
    got = get_reranker(reranker).logits("when will my refund arrive", passages)
    want = reference_logits("when will my refund arrive", passages)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.argsort(-got).tolist() == np.argsort(-want).tolist()
    relevance = get_reranker(reranker).score("q", passages[:3])
    np.testing.assert_allclose(relevance, 1 / (1 + np.exp(-reference_logits("q", passages[:3]))), atol=1e-5)


def test_query_reranks_the_vector_candidates(reranker: str) -> None:
    session = SessionIndex("calls")  # the shipped embedder
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(PASSAGES)])
    question = "refund for my order"
    candidates = session.query_sync(question, QueryOptions(top_k=12)).docs
    got = session.query_sync(question, QueryOptions(top_k=5, rerank=reranker, rerank_candidates=12)).docs

    logits = reference_logits(question, [c.text for c in candidates])
    order = np.argsort(-logits, kind="stable")[:5]
    assert [d.id for d in got] == [candidates[i].id for i in order]
    assert [d.score for d in got] == pytest.approx((1 / (1 + np.exp(-logits[order]))).tolist(), abs=1e-5)
    assert all(d.rerank_score == d.score for d in got)
    by_id = {c.id: c.score for c in candidates}
    assert [d.vector_score for d in got] == pytest.approx([by_id[d.id] for d in got])  # the cosine is kept
    assert got != candidates[:5]  # the cross-encoder changed the order (random weights, fixed seed)

    # The floor compares with the re-ranker's relevance; texts are dropped after re-ranking.
    floor = got[2].score
    shaped = session.query_sync(
        question, QueryOptions(top_k=5, rerank=reranker, rerank_candidates=12, min_score=floor, include_text=False)
    ).docs
    assert [d.id for d in shaped] == [d.id for d in got[:3]] and all(d.text == "" for d in shaped)
    # Default candidates (20), hybrid candidates, and top_k above the candidates.
    assert len(session.query_sync(question, QueryOptions(top_k=3, rerank=reranker)).docs) == 3
    assert len(session.query_sync(question, QueryOptions(top_k=3, alpha=0.5, rerank=reranker)).docs) == 3
    assert len(session.query_sync(question, QueryOptions(top_k=8, rerank=reranker, rerank_candidates=4)).docs) == 8


def test_rerank_refusals(reranker: str, tmp_path) -> None:
    session = SessionIndex("s")
    session.add_docs_sync([DocumentInfo(id="a", text="alpha")])
    with pytest.raises(ModelUnavailableError, match="lichen models pull ms-marco-MiniLM-L-6-v2"):
        session.query_sync("a", QueryOptions(rerank="ms-marco-MiniLM-L-6-v2"))
    build_user_model(write_files(tmp_path / "emb", embedder_files(seed=2)), "tiny-emb")
    with pytest.raises(ModelUnavailableError, match="not a cross-encoder"):
        session.query_sync("a", QueryOptions(rerank="tiny-emb"))
    for bad in (0, -1, 1001, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="rerank_candidates"):
            session.query_sync("a", QueryOptions(rerank=reranker, rerank_candidates=bad))
    with pytest.raises(InvalidArgumentError, match="rerank"):
        session.query_sync("a", QueryOptions(rerank=""))
    # Asked without rerank, rerank_candidates would be ignored; a cross-encoder reads the
    # query text, so a query without one (a search by vector) cannot be re-ranked.
    with pytest.raises(InvalidArgumentError, match="rerank_candidates needs rerank"):
        session.query_sync("a", QueryOptions(rerank_candidates=5))
    vector = session.embed_query("alpha").tolist()
    for text in ("", "   "):
        with pytest.raises(InvalidArgumentError, match="needs the query text"):
            session.query_sync(text, QueryOptions(rerank=reranker, embedding=vector))
    assert session.get_docs_sync(["a"])[0].text == "alpha"  # nothing refused touched the index
