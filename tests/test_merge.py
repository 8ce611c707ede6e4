"""Short-term + long-term merging (``lichen.merge``), the code both framework retrievers use."""

from __future__ import annotations

import pytest

from lichen import (
    Client,
    ContextSearch,
    DocumentInfo,
    IndexNotLoadedError,
    InvalidArgumentError,
    QueryResultDocument,
    merge_ranked,
)


def hit(doc_id: str, score: float) -> QueryResultDocument:
    return QueryResultDocument(id=doc_id, text=doc_id, score=score)


def test_rrf_interleaves_sources_and_deduplicates_by_id():
    merged = merge_ranked(
        {"session": [hit("a", 0.9), hit("b", 0.5)], "faqs": [hit("b", 0.99), hit("c", 0.2)]}, k=10
    )
    # a and b tie (both rank 1 somewhere); ties go to the session, the fresher context.
    assert [h.doc.id for h in merged] == ["a", "b", "c"]
    by_id = {h.doc.id: h for h in merged}
    assert by_id["b"].source == "faqs"  # its better (rank 1) occurrence wins over rank 2 in the session


def test_score_merge_and_weights():
    ranked = {"session": [hit("a", 0.9)], "faqs": [hit("b", 0.8)]}
    assert [h.doc.id for h in merge_ranked(ranked, k=2, method="score")] == ["a", "b"]
    weighted = merge_ranked(ranked, k=2, method="score", weights={"faqs": 2.0})
    assert [h.doc.id for h in weighted] == ["b", "a"]
    with pytest.raises(InvalidArgumentError, match="unknown merge method"):
        merge_ranked(ranked, k=2, method="borda")


@pytest.fixture
def client_with_faqs() -> Client:
    client = Client()
    client.create_index_sync("faqs", [
        DocumentInfo(id="faq-refund", text="Refunds take 3-5 business days."),
        DocumentInfo(id="shared", text="The duplicate charge is refunded automatically."),
    ])
    client.load_index_sync("faqs")
    return client


def test_context_search_merges_tags_and_deduplicates(client_with_faqs):
    session = client_with_faqs.session_sync("call")
    session.add_docs_sync([
        DocumentInfo(id="turn-1", text="I was charged twice for my renewal."),
        DocumentInfo(id="shared", text="The duplicate charge is refunded automatically."),
    ])
    hits = ContextSearch(session, client_with_faqs, ["faqs"], k=4).search("when do I get my refund")
    assert len(hits) == 3 and len({h.doc.id for h in hits}) == 3
    assert {h.source for h in hits} == {"session", "faqs"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_async_search_matches_sync(client_with_faqs):
    session = client_with_faqs.session_sync("call")
    session.add_docs_sync([DocumentInfo(id="turn-1", text="I was charged twice for my renewal.")])
    search = ContextSearch(session, client_with_faqs, ["faqs"], k=3)
    sync_ids = [(h.doc.id, h.source) for h in search.search("charged twice")]
    async_ids = [(h.doc.id, h.source) for h in await search.asearch("charged twice")]
    assert sync_ids == async_ids


def test_query_is_embedded_once_for_all_sources(client_with_faqs, monkeypatch):
    session = client_with_faqs.session_sync("call")
    session.add_docs_sync([DocumentInfo(id="turn-1", text="I was charged twice.")])
    embedder = session._embedder
    calls = []
    original = embedder.embed_queries
    monkeypatch.setattr(embedder, "embed_queries", lambda texts: calls.append(list(texts)) or original(texts))
    ContextSearch(session, client_with_faqs, ["faqs"], k=3).search("charged twice")
    assert calls == [["charged twice"]]


def test_context_search_errors(client_with_faqs):
    session = client_with_faqs.session_sync("call")
    with pytest.raises(IndexNotLoadedError, match="client.load_index\\('kb'\\)"):
        ContextSearch(session, client_with_faqs, ["kb"]).search("x")
    client_with_faqs.create_index_sync("session", [DocumentInfo(id="x", text="x")])
    with pytest.raises(InvalidArgumentError, match="indistinguishable from the session"):
        ContextSearch(session, client_with_faqs, ["session"])
    with pytest.raises(InvalidArgumentError, match="twice"):
        ContextSearch(session, client_with_faqs, ["faqs", "faqs"])


def test_clear_respects_read_only(client_with_faqs):
    loaded = client_with_faqs.loaded_index("faqs")
    with pytest.raises(InvalidArgumentError, match="read-only"):
        loaded.clear_sync()
    assert loaded.doc_count == 2
    session = client_with_faqs.session_sync("faqs")
    assert session.clear_sync() == 2 and session.doc_count == 0
