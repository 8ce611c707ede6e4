"""LichenContextRetriever: a live session plus long-term indexes, merged by lichen.ContextSearch."""

from __future__ import annotations

import asyncio

import pytest
from lichen import (
    Client,
    ContextSearch,
    DocumentInfo,
    IndexNotLoadedError,
    InvalidArgumentError,
    QueryOptions,
)
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.retrievers.lichen import SOURCE_KEY, LichenContextRetriever
from llama_index.vector_stores.lichen import LichenVectorStore

CALL = [
    DocumentInfo(id="turn-1", text="Customer: I was charged twice for my tent order.", metadata={"speaker": "customer"}),
    DocumentInfo(id="turn-2", text="Agent: I can see a duplicate charge on the card.", metadata={"speaker": "agent"}),
    DocumentInfo(id="turn-3", text="Customer: when will the refund arrive?", metadata={"speaker": "customer"}),
    # also in the long-term index: kept once
    DocumentInfo(id="policy-refund", text="Refunds reach the card in three to five business days."),
]
POLICIES = [
    DocumentInfo(id="policy-refund", text="Refunds reach the card in three to five business days."),
    DocumentInfo(id="policy-duplicate", text="Duplicate captures are reversed by payments within two business days."),
    DocumentInfo(id="policy-shipping", text="Standard shipping is free on orders over fifty dollars."),
]
WARRANTY = [
    DocumentInfo(id="warranty-tents", text="Tents carry a lifetime warranty; zippers are repaired for free."),
    DocumentInfo(id="warranty-boots", text="Footwear is covered for one year from purchase."),
]


@pytest.fixture
def client() -> Client:
    client = Client()
    client.create_index_sync("policies", POLICIES)
    client.create_index_sync("warranty", WARRANTY)
    client.load_index_sync("policies")
    client.load_index_sync("warranty")
    return client


@pytest.fixture
def session(client):
    session = client.session_sync("call-123")
    session.add_docs_sync(CALL)
    return session


@pytest.fixture
def retriever(session, client) -> LichenContextRetriever:
    return LichenContextRetriever(session=session, client=client, indexes=["policies", "warranty"], k=4)


QUESTION = "customer asks when the refund for the duplicate charge arrives"


def summary(nodes):
    return [(n.node.node_id, n.node.metadata[SOURCE_KEY], n.score) for n in nodes]


def test_merges_dedupes_and_tags_like_context_search(retriever, session, client):
    nodes = retriever.retrieve(QUESTION)
    hits = ContextSearch(session, client, ["policies", "warranty"], k=4).search(QUESTION)
    assert summary(nodes) == [(h.doc.id, h.source, h.score) for h in hits]
    assert len(nodes) == 4
    ids = [n.node.node_id for n in nodes]
    assert len(ids) == len(set(ids))
    assert {n.node.metadata[SOURCE_KEY] for n in nodes} <= {"session", "policies", "warranty"}
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    by_id = {n.node.node_id: n.node for n in nodes}
    assert by_id["turn-3"].get_content() == "Customer: when will the refund arrive?"
    assert by_id["turn-3"].metadata == {"speaker": "customer", SOURCE_KEY: "session"}
    # the tag informs the LLM, not a re-embedding
    assert SOURCE_KEY not in by_id["turn-3"].get_content(metadata_mode=MetadataMode.EMBED)


def test_a_document_in_both_sources_is_kept_once(session, client):
    retriever = LichenContextRetriever(session=session, client=client, indexes=["policies"], k=10)
    ids = [n.node.node_id for n in retriever.retrieve("refund card business days")]
    assert ids.count("policy-refund") == 1
    assert len(ids) == len(set(ids)) == 6  # 4 session + 3 policies - 1 shared


def test_options_reach_context_search(session, client):
    retriever = LichenContextRetriever(
        session=session, client=client, indexes=["policies"], k=3,
        method="score", options=QueryOptions(filter={"speaker": {"$ne": "agent"}}),
    )
    assert retriever.search.method == "score"
    ids = [n.node.node_id for n in retriever.retrieve("duplicate charge")]
    assert "turn-2" not in ids and len(ids) == 3


async def test_async_matches_sync(retriever):
    assert summary(await retriever.aretrieve(QUESTION)) == summary(retriever.retrieve(QUESTION))


async def test_sync_call_inside_a_running_event_loop(retriever):
    asyncio.get_running_loop()  # we are inside one
    nodes = retriever.retrieve(QUESTION)
    assert summary(nodes) == summary(await retriever.aretrieve(QUESTION))


def test_sync_and_async_from_plain_code(retriever):
    nodes = retriever.retrieve(QUESTION)
    assert summary(asyncio.run(retriever.aretrieve(QUESTION))) == summary(nodes)


async def test_concurrent_async_retrievals(retriever):
    results = await asyncio.gather(*(retriever.aretrieve(q) for q in (QUESTION, "tent zipper repair", "free shipping")))
    def best_from(nodes, source):
        return next(n.node.node_id for n in nodes if n.node.metadata[SOURCE_KEY] == source)

    assert best_from(results[1], "warranty") == "warranty-tents"
    assert best_from(results[2], "policies") == "policy-shipping"
    assert [summary(r) for r in results] == [summary(await retriever.aretrieve(q)) for q in (QUESTION, "tent zipper repair", "free shipping")]


def test_session_only_and_long_term_only(session, client):
    only_session = LichenContextRetriever(session=session, k=2).retrieve("refund")
    assert {n.node.metadata[SOURCE_KEY] for n in only_session} == {"session"}
    only_long = LichenContextRetriever(client=client, indexes=["warranty"], k=1).retrieve("boots")
    assert [(n.node.node_id, n.node.metadata[SOURCE_KEY]) for n in only_long] == [("warranty-boots", "warranty")]


def test_errors(session, client):
    with pytest.raises(InvalidArgumentError):
        LichenContextRetriever()
    with pytest.raises(InvalidArgumentError):
        LichenContextRetriever(indexes=["policies"])
    client.unload_index_sync("warranty")
    with pytest.raises(IndexNotLoadedError, match="warranty"):
        LichenContextRetriever(session=session, client=client, indexes=["warranty"]).retrieve("x")


def test_nodes_written_through_llamaindex_come_back_whole(embed_model, client):
    session = client.session_sync("notes")
    VectorStoreIndex.from_documents(
        [Document(text="The customer prefers store credit over a card refund.", id_="note-doc", metadata={"agent": "kim"})],
        storage_context=StorageContext.from_defaults(vector_store=LichenVectorStore(session)),
        embed_model=embed_model,
    )
    session.push_index_sync()
    client.load_index_sync("notes")
    retriever = LichenContextRetriever(session=client.session_sync("call-9"), client=client, indexes=["notes", "policies"], k=2)
    node = retriever.retrieve("store credit preference")[0].node
    assert isinstance(node, TextNode)
    assert node.ref_doc_id == "note-doc"
    assert node.metadata == {"agent": "kim", SOURCE_KEY: "notes"}
    assert node.get_content() == "The customer prefers store credit over a card refund."


def test_in_a_query_engine(retriever, llm):
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    response = engine.query("When will the refund arrive?")
    assert str(response)
    assert len(response.source_nodes) == 4
    assert all(SOURCE_KEY in n.node.metadata for n in response.source_nodes)
