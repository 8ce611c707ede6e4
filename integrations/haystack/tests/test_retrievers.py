"""The retrievers: what they return, how scores are defined, filters and their policy,
async runs and serialisation."""

from __future__ import annotations

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import FilterPolicy
from haystack_integrations.components.embedders.lichen import LichenTextEmbedder
from haystack_integrations.components.retrievers.lichen import LichenBM25Retriever, LichenEmbeddingRetriever
from haystack_integrations.document_stores.lichen import LichenDocumentStore
from lichen import QueryOptions

DOCS = [
    Document(id="refund", content="Refunds go back to the original card within 5 business days.", meta={"topic": "billing"}),
    Document(id="invoice", content="Invoices are emailed on the first day of each month.", meta={"topic": "billing"}),
    Document(id="password", content="Reset a forgotten password from the sign-in page.", meta={"topic": "account"}),
]


@pytest.fixture
def filled(store) -> LichenDocumentStore:
    store.write_documents(DOCS)
    return store


def embed(text: str) -> list[float]:
    return LichenTextEmbedder().run(text)["embedding"]


def test_embedding_retriever_ranks_by_cosine_like_a_lichen_query(filled):
    documents = LichenEmbeddingRetriever(filled, top_k=3).run(query_embedding=embed("money back"))["documents"]
    lichen = filled.session.query_sync("money back", QueryOptions(top_k=3))
    assert [(d.id, pytest.approx(d.score, abs=1e-6)) for d in documents] == [(d.id, d.score) for d in lichen.docs]
    assert documents[0].id == "refund" and documents[0].embedding is None
    assert [d.score for d in documents] == sorted((d.score for d in documents), reverse=True)


def test_bm25_retriever_scores_are_bm25_and_skip_documents_without_the_words(filled):
    documents = LichenBM25Retriever(filled).run(query="refunds card")["documents"]
    assert [d.id for d in documents] == ["refund"]
    lichen = filled.session.query_sync("refunds card", QueryOptions(alpha=0.0))
    assert documents[0].score == lichen.docs[0].keyword_score > 1.0  # BM25, not a rank-fusion score


@pytest.mark.parametrize("retriever_class", [LichenEmbeddingRetriever, LichenBM25Retriever])
def test_filter_policies(filled, retriever_class):
    if retriever_class is LichenEmbeddingRetriever:
        query = {"query_embedding": embed("billing")}
    else:
        query = {"query": "invoices refunds password"}  # one word of each document
    billing = {"field": "meta.topic", "operator": "==", "value": "billing"}
    not_refund = {"field": "content", "operator": "!=", "value": DOCS[0].content}

    replace = retriever_class(filled, filters=billing)
    assert {d.id for d in replace.run(**query)["documents"]} == {"refund", "invoice"}
    assert {d.id for d in replace.run(**query, filters=not_refund)["documents"]} == {"invoice", "password"}

    merge = retriever_class(filled, filters=billing, filter_policy="merge")
    assert merge.filter_policy is FilterPolicy.MERGE
    assert {d.id for d in merge.run(**query, filters=not_refund)["documents"]} == {"invoice"}


def test_top_k_at_init_and_at_run(filled):
    retriever = LichenEmbeddingRetriever(filled, top_k=2)
    assert len(retriever.run(query_embedding=embed("x"))["documents"]) == 2
    assert len(retriever.run(query_embedding=embed("x"), top_k=1)["documents"]) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_k"):
            LichenBM25Retriever(filled, top_k=bad)
    assert retriever.run(query_embedding=embed("x"), top_k=0)["documents"] == []
    with pytest.raises(ValueError, match="top_k"):
        retriever.run(query_embedding=embed("x"), top_k=-1)


def test_return_embedding(filled):
    (document,) = LichenEmbeddingRetriever(filled, top_k=1, return_embedding=True).run(query_embedding=embed("x"))[
        "documents"
    ]
    assert len(document.embedding) == 384


def test_only_a_lichen_store_is_accepted():
    with pytest.raises(TypeError, match="LichenDocumentStore"):
        LichenBM25Retriever(InMemoryDocumentStore())


async def test_run_async_matches_run(filled):
    for retriever, query in [
        (LichenEmbeddingRetriever(filled, top_k=2), {"query_embedding": embed("password")}),
        (LichenBM25Retriever(filled, top_k=2), {"query": "password"}),
    ]:
        assert (await retriever.run_async(**query))["documents"] == retriever.run(**query)["documents"]


@pytest.mark.parametrize("retriever_class", [LichenEmbeddingRetriever, LichenBM25Retriever])
def test_serialisation_round_trip(store, retriever_class):
    retriever = retriever_class(
        store, filters={"field": "meta.topic", "operator": "==", "value": "x"}, top_k=4, filter_policy="merge"
    )
    data = retriever.to_dict()
    assert data["init_parameters"] == {
        "document_store": store.to_dict(),
        "filters": {"field": "meta.topic", "operator": "==", "value": "x"},
        "top_k": 4,
        "filter_policy": "merge",
        "return_embedding": False,
    }
    restored = retriever_class.from_dict(data)
    assert isinstance(restored.document_store, LichenDocumentStore)
    assert restored.document_store.index_name == store.index_name
    assert (restored.top_k, restored.filter_policy, restored.filters) == (4, FilterPolicy.MERGE, retriever.filters)
