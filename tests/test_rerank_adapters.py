"""Re-ranking through the framework adapters (issue 28: "off by default; adapters expose
it"): LangChain's vector store (``similarity_search(..., rerank=...)`` and a retriever's
``search_kwargs``), its two retrievers, LlamaIndex's vector store
(``vector_store_kwargs``) and its context retriever (a ``QueryOptions`` template) return
what ``SessionIndex.query`` with ``QueryOptions(rerank=...)`` returns, scored by the
cross-encoder. The cross-encoder is a tiny random one built here by Lichen's own builder
(``tests/tiny_models.py``), so the order it gives differs from the vector order."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("onnx")
pytest.importorskip("safetensors")
pytest.importorskip("langchain_lichen")
pytest.importorskip("llama_index.vector_stores.lichen")

from langchain_lichen import LichenContextRetriever, LichenRetriever, LichenVectorStore  # noqa: E402
from llama_index.core import StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.embeddings.lichen import LichenEmbedding  # noqa: E402
from llama_index.retrievers.lichen import LichenContextRetriever as LlamaContextRetriever  # noqa: E402
from llama_index.vector_stores.lichen import SCORE_KEYS, LichenVectorStore as LlamaVectorStore  # noqa: E402
from tiny_models import cross_encoder_files, write_files  # noqa: E402

from lichen import Client, DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex  # noqa: E402
from lichen.models.build import build_user_model  # noqa: E402
from lichen.scores import relevance  # noqa: E402

TOPICS = ["refund", "password", "shipping", "invoice", "account", "delivery", "order", "payment"]
PASSAGES = [f"{TOPICS[i % 8]} question number {i}: " + "details " * (i % 7) for i in range(40)]
QUESTION = "refund for my order"


@pytest.fixture
def reranker(tmp_path, isolated_home) -> str:
    build_user_model(write_files(tmp_path / "ce", cross_encoder_files(seed=1)), "tiny-ce", fp32=True)
    return "tiny-ce"


@pytest.fixture
def session() -> SessionIndex:
    index = SessionIndex("rerank-adapters")
    index.add_docs_sync([DocumentInfo(id=str(i), text=t, metadata={"n": i}) for i, t in enumerate(PASSAGES)])
    return index


def reranked(session: SessionIndex, reranker: str, k: int, candidates: int = 12) -> list[tuple[str, float]]:
    """What the engine itself answers: the reference the adapters must match."""
    hits = session.query_sync(QUESTION, QueryOptions(top_k=k, rerank=reranker, rerank_candidates=candidates)).docs
    return [(hit.id, hit.score) for hit in hits]


def assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in want]
    assert [score for _, score in got] == pytest.approx([score for _, score in want], abs=1e-6)


def test_the_reference_differs_from_the_vector_order(session, reranker):
    """Otherwise the adapter tests below could pass by ignoring ``rerank``."""
    plain = [hit.id for hit in session.query_sync(QUESTION, QueryOptions(top_k=4)).docs]
    assert [doc_id for doc_id, _ in reranked(session, reranker, 4)] != plain


def test_relevance_of_a_reranked_hit_is_the_cross_encoders(session, reranker):
    hits = session.query_sync(QUESTION, QueryOptions(top_k=4, rerank=reranker)).docs
    assert [relevance(hit) for hit in hits] == [hit.rerank_score for hit in hits]
    assert all(0.0 <= hit.rerank_score <= 1.0 for hit in hits)


def test_langchain_vector_store_reranks_by_keyword_and_through_a_retriever(session, reranker):
    want = reranked(session, reranker, 4)
    store = LichenVectorStore(index=session)
    pairs = store.similarity_search_with_score(QUESTION, k=4, rerank=reranker, rerank_candidates=12)
    assert_same([(doc.id, score) for doc, score in pairs], want)
    scored = store.similarity_search_with_relevance_scores(QUESTION, k=4, rerank=reranker, rerank_candidates=12)
    assert [score for _, score in scored] == pytest.approx([score for _, score in want])  # already in [0, 1]
    found = asyncio.run(store.asimilarity_search(QUESTION, k=4, rerank=reranker, rerank_candidates=12))
    assert [doc.id for doc in found] == [doc_id for doc_id, _ in want]

    retriever = store.as_retriever(search_kwargs={"k": 4, "rerank": reranker, "rerank_candidates": 12})
    assert [doc.id for doc in retriever.invoke(QUESTION)] == [doc_id for doc_id, _ in want]
    threshold = store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 4, "rerank": reranker, "rerank_candidates": 12, "score_threshold": want[1][1]},
    )
    assert [doc.id for doc in threshold.invoke(QUESTION)] == [doc_id for doc_id, score in want if score >= want[1][1]]


def test_langchain_refuses_rerank_where_it_cannot_apply(session, reranker):
    store = LichenVectorStore(index=session)
    vector = session.embed_query(QUESTION).tolist()
    with pytest.raises(InvalidArgumentError, match="query text"):
        store.similarity_search_by_vector(vector, k=2, rerank=reranker)
    with pytest.raises(InvalidArgumentError, match="rerank_candidates needs rerank"):
        store.similarity_search(QUESTION, k=2, rerank_candidates=5)
    with pytest.raises(InvalidArgumentError, match="rerank"):
        store.max_marginal_relevance_search(QUESTION, k=2, rerank=reranker)
    with pytest.raises(ValueError, match="rerank_candidates needs rerank"):  # pydantic wraps it at construction
        LichenRetriever(index=session, rerank_candidates=5)


def test_langchain_retrievers_rerank(session, reranker):
    want = [doc_id for doc_id, _ in reranked(session, reranker, 3)]
    retriever = LichenRetriever(index=session, k=3, rerank=reranker, rerank_candidates=12)
    assert [doc.id for doc in retriever.invoke(QUESTION)] == want
    assert [doc.id for doc in asyncio.run(retriever.ainvoke(QUESTION))] == want

    # One source: the merge keeps the source's (re-ranked) order.
    context = LichenContextRetriever(session=session, k=3, rerank=reranker, rerank_candidates=12)
    assert [doc.id for doc in context.invoke(QUESTION)] == want
    plain = LichenContextRetriever(session=session, k=3)
    assert [doc.id for doc in plain.invoke(QUESTION)] != want  # off by default


def test_llamaindex_store_reranks_through_vector_store_kwargs(session, reranker):
    want = reranked(session, reranker, 4)
    store = LlamaVectorStore(index=session)
    index = VectorStoreIndex.from_vector_store(store, embed_model=LichenEmbedding())
    retriever = index.as_retriever(
        similarity_top_k=4, vector_store_kwargs={"rerank": reranker, "rerank_candidates": 12}
    )
    nodes = retriever.retrieve(QUESTION)
    assert_same([(node.node.id_, node.score) for node in nodes], want)
    assert [node.node.metadata[SCORE_KEYS["rerank"]] for node in nodes] == pytest.approx([s for _, s in want])

    mmr = index.as_retriever(vector_store_query_mode="mmr", vector_store_kwargs={"rerank": reranker})
    with pytest.raises(InvalidArgumentError, match="MMR"):
        mmr.retrieve(QUESTION)


def test_llamaindex_context_retriever_reranks_each_source_before_the_merge(session, reranker, tmp_path):
    client = Client()
    client.create_index_sync("rerank-faqs", [DocumentInfo(id=f"faq-{i}", text=t) for i, t in enumerate(PASSAGES[:16])])
    client.load_index_sync("rerank-faqs")
    options = QueryOptions(rerank=reranker, rerank_candidates=8)
    retriever = LlamaContextRetriever(session=session, client=client, indexes=["rerank-faqs"], k=6, options=options)
    nodes = retriever.retrieve(QUESTION)

    faqs = client.loaded_index("rerank-faqs")
    by_source = {
        "session": [h.id for h in session.query_sync(QUESTION, QueryOptions(top_k=6, rerank=reranker, rerank_candidates=8)).docs],
        "rerank-faqs": [h.id for h in faqs.query_sync(QUESTION, QueryOptions(top_k=6, rerank=reranker, rerank_candidates=8)).docs],
    }
    for source, ids in by_source.items():  # each source's hits keep its re-ranked order in the merge
        merged = [n.node.id_ for n in nodes if n.node.metadata["lichen_source"] == source]
        assert merged == [doc_id for doc_id in ids if doc_id in merged]
        assert merged and merged[0] == ids[0]
