"""LichenRetriever and LichenContextRetriever: the combined short + long-term retriever
with empty sources, unloaded indexes, duplicate ids and running event loops."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_lichen import (
    SOURCE_METADATA_KEY,
    LichenContextRetriever,
    LichenEmbeddings,
    LichenRetriever,
    LichenVectorStore,
)
from lichen import DocumentInfo, IndexNotLoadedError, InvalidArgumentError, SessionIndex

QUESTION = "how do I get a refund for a double charge?"


# ====================================================================== LichenRetriever
async def test_retriever_k_filter_and_alpha(call_session):
    retriever = LichenRetriever(index=call_session, k=2)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 2 and docs[0].id == "turn-1"
    assert docs[0].metadata == {"speaker": "customer", "turn": 1}  # unchanged, nothing added
    assert [doc.id for doc in retriever.invoke(QUESTION, k=1)] == ["turn-1"]
    agent = retriever.invoke(QUESTION, filter={"speaker": "agent"})
    assert [doc.id for doc in agent] == ["turn-2"]
    late = retriever.invoke(QUESTION, k=3, filter=lambda doc: doc.metadata["turn"] >= 2)
    assert {doc.id for doc in late} == {"turn-2", "turn-3"}
    assert retriever.invoke("4242", k=1, alpha=0.0)[0].id == "turn-3"
    assert [doc.id for doc in await retriever.ainvoke(QUESTION, k=1)] == ["turn-1"]
    fixed = LichenRetriever(index=call_session, k=3, filter={"speaker": "customer"})
    assert {doc.id for doc in await fixed.ainvoke(QUESTION)} == {"turn-1", "turn-3"}


def test_retriever_over_a_custom_model_index():
    embedding = DeterministicFakeEmbedding(size=12)
    store = LichenVectorStore(embedding)
    store.add_texts(["alpha", "beta", "gamma"], ids=["a", "b", "c"])
    retriever = LichenRetriever(index=store.index, embedding=embedding, k=1)
    assert [doc.id for doc in retriever.invoke("beta")] == ["b"]
    with pytest.raises(ValueError, match="custom"):
        LichenRetriever(index=store.index)
    with pytest.raises(ValueError, match="built-in model"):
        LichenRetriever(index=SessionIndex("builtin"), embedding=embedding)


# ====================================================================== LichenContextRetriever
def _sources(docs: list[Document]) -> dict[str, str]:
    return {doc.id: doc.metadata[SOURCE_METADATA_KEY] for doc in docs}


def test_merges_session_and_long_term_index_and_tags_sources(call_session, faq_client):
    retriever = LichenContextRetriever(session=call_session, client=faq_client, indexes=["support-faqs"], k=4)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 4
    sources = _sources(docs)
    assert set(sources.values()) == {"session", "support-faqs"}
    assert sources["turn-1"] == "session" and sources["faq-refund"] == "support-faqs"
    faq = next(doc for doc in docs if doc.id == "faq-refund")
    assert faq.metadata == {"topic": "billing", SOURCE_METADATA_KEY: "support-faqs"}
    assert faq.page_content.startswith("Duplicate charges")
    assert len(retriever.invoke(QUESTION, k=2)) == 2


def test_source_tag_leaves_a_users_source_key_alone(client, faq_client):
    session = client.session_sync("call-src")
    session.add_docs_sync([DocumentInfo(id="t", text="refund please", metadata={"source": "zendesk"})])
    retriever = LichenContextRetriever(session=session, client=faq_client, indexes=["support-faqs"], k=1)
    assert retriever.invoke("refund please")[0].metadata == {"source": "zendesk", "lichen_source": "session"}
    custom_key = LichenContextRetriever(session=session, k=1, source_metadata_key="origin")
    assert custom_key.invoke("refund please")[0].metadata == {"source": "zendesk", "origin": "session"}


def test_duplicate_ids_across_sources_appear_once(client, faq_client):
    session = client.session_sync("call-dup")
    # The agent pasted the FAQ into the call: same id in both sources.
    session.add_docs_sync([
        DocumentInfo(id="faq-refund", text="Duplicate charges are refunded to the original card within 5 business days."),
        DocumentInfo(id="turn-1", text="Customer: I was charged twice."),
    ])
    for method in ("rrf", "score"):
        retriever = LichenContextRetriever(
            session=session, client=faq_client, indexes=["support-faqs"], k=10, method=method
        )
        docs = retriever.invoke(QUESTION)
        ids = [doc.id for doc in docs]
        assert len(ids) == len(set(ids)) == 5  # 2 + 4 documents, one shared id
        assert ids.count("faq-refund") == 1


def test_empty_session(client, faq_client):
    session = client.session_sync("call-empty")
    retriever = LichenContextRetriever(session=session, client=faq_client, indexes=["support-faqs"], k=2)
    docs = retriever.invoke(QUESTION)
    assert [doc.id for doc in docs][0] == "faq-refund"
    assert set(_sources(docs).values()) == {"support-faqs"}


async def test_empty_session_alone_returns_nothing(client):
    retriever = LichenContextRetriever(session=client.session_sync("nothing-yet"))
    assert retriever.invoke(QUESTION) == []
    assert await retriever.ainvoke(QUESTION) == []


async def test_unloaded_long_term_index_raises_a_clear_error(call_session, faq_client):
    retriever = LichenContextRetriever(session=call_session, client=faq_client, indexes=["support-faqs", "past-calls"])
    with pytest.raises(IndexNotLoadedError, match="past-calls.*load_index"):
        retriever.invoke(QUESTION)
    with pytest.raises(IndexNotLoadedError, match="past-calls"):
        await retriever.ainvoke(QUESTION)
    # Unloading after construction is caught at the next query too.
    ok = LichenContextRetriever(session=call_session, client=faq_client, indexes=["support-faqs"])
    assert ok.invoke(QUESTION)
    faq_client.unload_index_sync("support-faqs")
    with pytest.raises(IndexNotLoadedError, match="support-faqs"):
        ok.invoke(QUESTION)


async def test_works_inside_a_running_event_loop(call_session, faq_client, monkeypatch):
    """A notebook cell or an async web handler: an event loop is already running, so
    ``asyncio.run`` would fail. Both faces must work there."""
    asyncio.get_running_loop()  # we are inside one

    def no_asyncio_run(*args, **kwargs):
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")

    monkeypatch.setattr(asyncio, "run", no_asyncio_run)
    retriever = LichenContextRetriever(session=call_session, client=faq_client, indexes=["support-faqs"], k=3)
    sync_docs = retriever.invoke(QUESTION)
    async_docs = await retriever.ainvoke(QUESTION)
    assert [doc.id for doc in sync_docs] == [doc.id for doc in async_docs]
    assert set(_sources(sync_docs).values()) == {"session", "support-faqs"}
    # Many concurrent queries on the loop, plus sync calls from worker threads.
    many = await asyncio.gather(*(retriever.ainvoke(QUESTION) for _ in range(10)))
    threaded = await asyncio.gather(*(asyncio.to_thread(retriever.invoke, QUESTION) for _ in range(4)))
    assert all([doc.id for doc in docs] == [doc.id for doc in sync_docs] for docs in many + threaded)
    # LCEL batching runs the sync path in a thread pool.
    batched = await retriever.abatch([QUESTION, "password reset"])
    assert batched[0][0].id == sync_docs[0].id


def test_per_source_k_weights_and_score_merge(call_session, faq_client):
    common = {"session": call_session, "client": faq_client, "indexes": ["support-faqs"]}
    only_one_faq = LichenContextRetriever(**common, k=4, source_k=3, per_source_k={"support-faqs": 1})
    assert list(_sources(only_one_faq.invoke(QUESTION)).values()).count("support-faqs") == 1
    session_first = LichenContextRetriever(**common, k=3, weights={"session": 10.0})
    assert set(_sources(session_first.invoke(QUESTION)).values()) == {"session"}
    by_score = LichenContextRetriever(**common, k=7, method="score")
    docs = by_score.invoke(QUESTION)
    assert len(docs) == 7 and docs[0].id in {"turn-1", "faq-refund"}


async def test_filters_and_alpha(call_session, faq_client):
    retriever = LichenContextRetriever(
        session=call_session, client=faq_client, indexes=["support-faqs"], k=5, filter={"topic": "billing"}
    )
    docs = retriever.invoke(QUESTION)
    assert {doc.id for doc in docs} == {"faq-refund", "faq-invoice"}  # session turns have no "topic"
    customer = await retriever.ainvoke(QUESTION, filter={"speaker": "customer"})
    assert {doc.id for doc in customer} == {"turn-1", "turn-3"}
    keyword = retriever.invoke("4242", k=1, filter={"turn": {"$exists": True}}, alpha=0.0)
    assert [doc.id for doc in keyword] == ["turn-3"]
    with pytest.raises(InvalidArgumentError, match="dict filters"):
        retriever.invoke(QUESTION, filter=lambda doc: True)
    with pytest.raises(InvalidArgumentError):
        retriever.invoke(QUESTION, filter={"topic": {"$bogus": 1}})


async def test_custom_model_sources_share_one_query_embedding(client):
    embedding = DeterministicFakeEmbedding(size=10)
    faqs = LichenVectorStore(embedding, index=client.session_sync("faq-custom", model_id="custom"))
    faqs.add_texts(["refund policy", "password reset"], ids=["f1", "f2"])
    faqs.index.push_index_sync()
    client.load_index_sync("faq-custom")
    live = LichenVectorStore(embedding, index=SessionIndex("live", "custom"))
    live.add_texts(["refund policy", "my card was charged"], ids=["t1", "t2"])
    retriever = LichenContextRetriever(session=live.index, client=client, indexes=["faq-custom"], embedding=embedding, k=2)
    docs = retriever.invoke("refund policy")
    assert {doc.id for doc in docs} == {"t1", "f1"}
    assert {doc.id for doc in await retriever.ainvoke("refund policy")} == {"t1", "f1"}


def test_query_embedding_must_match_builtin_sources(call_session, faq_client):
    common = {"session": call_session, "client": faq_client, "indexes": ["support-faqs"], "k": 2}
    once = LichenContextRetriever(**common, embedding=LichenEmbeddings())
    assert [doc.id for doc in once.invoke(QUESTION)] == [doc.id for doc in LichenContextRetriever(**common).invoke(QUESTION)]
    foreign = LichenContextRetriever(**common, embedding=DeterministicFakeEmbedding(size=384))
    with pytest.raises(InvalidArgumentError, match="built-in model"):
        foreign.invoke(QUESTION)


def test_several_long_term_indexes(call_session, faq_client):
    faq_client.create_index_sync("past-calls", [DocumentInfo(id="past-1", text="Last year we refunded a double charge in 3 days.")])
    faq_client.load_index_sync("past-calls")
    retriever = LichenContextRetriever(
        session=call_session, client=faq_client, indexes=["support-faqs", "past-calls"], k=6
    )
    assert set(_sources(retriever.invoke(QUESTION)).values()) == {"session", "support-faqs", "past-calls"}
    index_only = LichenContextRetriever(client=faq_client, indexes=["past-calls"], k=1)
    assert _sources(index_only.invoke(QUESTION)) == {"past-1": "past-calls"}


def test_construction_errors(call_session):
    with pytest.raises(ValueError, match="session, long-term indexes, or both"):
        LichenContextRetriever()
    with pytest.raises(ValueError, match="client"):
        LichenContextRetriever(session=call_session, indexes=["support-faqs"])
    with pytest.raises(ValueError):
        LichenContextRetriever(session=call_session, method="max")
