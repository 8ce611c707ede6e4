"""LichenVectorStore: the BasePydanticVectorStore contract, LlamaIndex end to end, and
persistence through Lichen."""

from __future__ import annotations

import threading

import pytest
from lichen import Client, DocumentInfo, InvalidArgumentError, SessionIndex
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.lichen import LichenVectorStore

FAQ = {
    "refund": ("Refunds reach the original card within three to five business days.", "billing", 2023),
    "duplicate": ("A duplicate charge is reversed by the payments team within two days.", "billing", 2021),
    "shipping": ("Standard shipping is free on orders over fifty dollars.", "shipping", 2022),
    "express": ("Express shipping arrives in two business days when ordered before noon.", "shipping", 2020),
    "warranty": ("Tents and backpacks carry a lifetime warranty against defects.", "warranty", 2019),
    "privacy": ("Deleting an account removes saved addresses within thirty days.", "privacy", 2024),
}


def faq_nodes(embed_model=None) -> list[TextNode]:
    nodes = []
    for key, (text, topic, year) in FAQ.items():
        node = TextNode(
            id_=f"node-{key}",
            text=text,
            metadata={"topic": topic, "year": year, "score_hint": 0.5, "pinned": key == "refund", "labels": [topic, key]},
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{topic}")
        if embed_model is not None:
            node.embedding = embed_model.get_text_embedding(text)
        nodes.append(node)
    return nodes


@pytest.fixture
def store(embed_model) -> LichenVectorStore:
    store = LichenVectorStore()
    store.add(faq_nodes(embed_model))
    return store


def ask(store: LichenVectorStore, embed_model, text: str, **kwargs) -> list[str]:
    query = VectorStoreQuery(query_embedding=embed_model.get_query_embedding(text), query_str=text, **kwargs)
    return store.query(query).ids


# -- construction ------------------------------------------------------------------------


def test_no_arguments_gives_a_fresh_in_memory_session():
    store = LichenVectorStore()
    assert store.stores_text is True
    assert isinstance(store.client, SessionIndex)
    assert store.client.model_id == "lichen-minilm"
    assert store.client.doc_count == 0
    assert LichenVectorStore().client is not store.client
    assert LichenVectorStore.class_name() == "LichenVectorStore"


def test_wraps_a_given_index_and_rejects_other_things():
    session = SessionIndex("mine")
    assert LichenVectorStore(session).client is session
    with pytest.raises(InvalidArgumentError):
        LichenVectorStore("not an index")
    with pytest.raises(InvalidArgumentError, match="differs"):
        LichenVectorStore(session, model_id="custom")


# -- add / get / delete ------------------------------------------------------------------


def test_add_keeps_ids_metadata_types_and_relationships(store, embed_model):
    originals = {node.node_id: node for node in faq_nodes()}
    fetched = store.get_nodes(node_ids=["node-refund", "node-warranty", "unknown"])
    assert [node.node_id for node in fetched] == ["node-refund", "node-warranty"]
    for node in fetched:
        original = originals[node.node_id]
        assert node.get_content() == original.get_content()
        assert node.metadata == original.metadata
        assert {k: type(v) for k, v in node.metadata.items()} == {k: type(v) for k, v in original.metadata.items()}
        assert node.ref_doc_id == original.ref_doc_id
        assert node.relationships == original.relationships
    assert fetched[0].metadata["pinned"] is True and fetched[1].metadata["pinned"] is False


def test_add_returns_node_ids_and_upserts(store, embed_model):
    node = TextNode(id_="node-refund", text="Refunds are instant now.", metadata={"topic": "billing", "year": 2025})
    assert store.add([node]) == ["node-refund"]
    assert store.client.doc_count == len(FAQ)
    assert store.get_nodes(["node-refund"])[0].get_content() == "Refunds are instant now."


def test_nodes_without_embeddings_are_embedded_by_lichen(embed_model):
    store = LichenVectorStore()
    store.add(faq_nodes())  # no node.embedding
    assert ask(store, embed_model, "how long does a refund take", similarity_top_k=1) == ["node-refund"]


def test_metadata_lichen_cannot_filter_still_round_trips():
    store = LichenVectorStore()
    store.add([TextNode(id_="n", text="t", metadata={"nested": {"a": [1, {"b": 2}]}, "plain": "yes"})])
    node = store.get_nodes(["n"])[0]
    assert node.metadata == {"nested": {"a": [1, {"b": 2}]}, "plain": "yes"}
    assert store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="plain", value="yes")]))


def test_delete_by_ref_doc_id(store):
    store.delete("doc-billing")
    remaining = {node.node_id for node in store.get_nodes()}
    assert remaining == {"node-shipping", "node-express", "node-warranty", "node-privacy"}
    store.delete("doc-nothing")
    assert store.client.doc_count == 4


def test_delete_nodes_by_ids_and_filters(store):
    store.delete_nodes(["node-refund", "unknown"])
    assert "node-refund" not in {n.node_id for n in store.get_nodes()}
    shipping = MetadataFilters(filters=[MetadataFilter(key="topic", value="shipping")])
    store.delete_nodes(filters=shipping)
    assert {n.node_id for n in store.get_nodes()} == {"node-duplicate", "node-warranty", "node-privacy"}
    # ids and filters together: only the ids that match
    store.delete_nodes(["node-duplicate", "node-privacy"], filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2024)]))
    assert {n.node_id for n in store.get_nodes()} == {"node-duplicate", "node-warranty"}
    with pytest.raises(InvalidArgumentError, match="clear"):
        store.delete_nodes()


def test_get_nodes_by_filter_and_clear(store):
    recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2022, operator=">=")])
    assert {n.node_id for n in store.get_nodes(filters=recent)} == {"node-refund", "node-shipping", "node-privacy"}
    assert store.get_nodes(node_ids=[]) == []
    assert len(store.get_nodes()) == len(FAQ)
    store.clear()
    assert store.get_nodes() == [] and store.client.doc_count == 0


# -- query -------------------------------------------------------------------------------


def test_query_honours_similarity_top_k_and_sorts_by_score(store, embed_model):
    query = VectorStoreQuery(query_embedding=embed_model.get_query_embedding("shipping costs"), similarity_top_k=3)
    result = store.query(query)
    assert len(result.nodes) == len(result.similarities) == len(result.ids) == 3
    assert result.ids[0] in ("node-shipping", "node-express")
    assert result.similarities == sorted(result.similarities, reverse=True)
    assert [n.node_id for n in result.nodes] == result.ids


def test_query_text_only_is_embedded_by_lichen(store):
    result = store.query(VectorStoreQuery(query_str="lifetime warranty on tents", similarity_top_k=1))
    assert result.ids == ["node-warranty"]


def test_query_node_ids_and_doc_ids(store, embed_model):
    ids = ask(store, embed_model, "refund", similarity_top_k=10, node_ids=["node-warranty", "node-privacy"])
    assert set(ids) == {"node-warranty", "node-privacy"}
    # [] is what VectorStoreIndex.as_retriever passes: no restriction
    assert len(ask(store, embed_model, "refund", similarity_top_k=10, node_ids=[])) == len(FAQ)
    assert set(ask(store, embed_model, "refund", similarity_top_k=10, doc_ids=["doc-shipping"])) == {"node-shipping", "node-express"}
    both = ask(
        store, embed_model, "refund", similarity_top_k=10,
        doc_ids=["doc-billing"], node_ids=["node-duplicate", "node-warranty"],
        filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2000, operator=">")]),
    )
    assert both == ["node-duplicate"]


def test_hybrid_and_keyword_modes(store, embed_model):
    text = "noon"  # one rare word: BM25 finds it, a 384-d vector of one word barely does
    keyword = store.query(VectorStoreQuery(query_str=text, similarity_top_k=2, mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert keyword.ids == ["node-express"]  # the only document holding the word; no zero-score filler
    assert keyword.similarities[0] > 0
    hybrid = store.query(VectorStoreQuery(
        query_embedding=embed_model.get_query_embedding(text), query_str=text,
        similarity_top_k=4, mode=VectorStoreQueryMode.HYBRID, alpha=0.3,
    ))
    assert hybrid.ids[0] == "node-express"
    assert hybrid.similarities == sorted(hybrid.similarities, reverse=True)
    pure_vector = store.query(VectorStoreQuery(
        query_embedding=embed_model.get_query_embedding(text), query_str=text,
        similarity_top_k=4, mode=VectorStoreQueryMode.HYBRID, alpha=1.0,
    ))
    default = store.query(VectorStoreQuery(
        query_embedding=embed_model.get_query_embedding(text), query_str=text, similarity_top_k=4, alpha=0.0,
    ))
    # alpha only applies in hybrid mode; the default mode is pure vector search
    assert default.ids == pure_vector.ids and default.similarities == pytest.approx(pure_vector.similarities)


def test_hybrid_top_k(store, embed_model):
    query = VectorStoreQuery(
        query_embedding=embed_model.get_query_embedding("shipping"), query_str="shipping",
        similarity_top_k=1, hybrid_top_k=3, mode="hybrid", alpha=0.5,
    )
    assert len(store.query(query).ids) == 3


@pytest.mark.parametrize("mode", ["svm", "semantic_hybrid", "logistic_regression", "linear_regression"])
def test_unsupported_modes_raise(store, mode):
    with pytest.raises(InvalidArgumentError, match="not supported"):
        store.query(VectorStoreQuery(query_str="x", mode=mode))


def test_query_needs_an_embedding_or_text(store):
    with pytest.raises(InvalidArgumentError, match="query_embedding or a query_str"):
        store.query(VectorStoreQuery())


def test_documents_written_outside_llamaindex_come_back_as_text_nodes():
    session = SessionIndex("plain")
    session.add_docs_sync([DocumentInfo(id="x", text="written by the Lichen API", metadata={"lang": "en"})])
    node = LichenVectorStore(session).query(VectorStoreQuery(query_str="Lichen API", similarity_top_k=1)).nodes[0]
    assert isinstance(node, TextNode)
    assert (node.node_id, node.get_content()) == ("x", "written by the Lichen API")
    assert node.metadata == {"lang": "en", "lichen_score": pytest.approx(node.metadata["lichen_vector_score"]),
                             "lichen_vector_score": pytest.approx(node.metadata["lichen_score"])}


def test_any_dimension_with_model_id_custom():
    mock = MockEmbedding(embed_dim=8)
    store = LichenVectorStore(model_id="custom")
    index = VectorStoreIndex.from_documents(
        [Document(text="eight dimensions", id_="d")],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=mock,
    )
    assert store.client.dimension == 8
    assert index.as_retriever().retrieve("anything")[0].node.ref_doc_id == "d"
    with pytest.raises(InvalidArgumentError, match="custom"):
        store.add([TextNode(text="no vector")])


# -- LlamaIndex end to end -------------------------------------------------------------


def test_from_vector_store_query_engine_and_retriever_with_filters(store, embed_model, llm):
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    retrieved = index.as_retriever(similarity_top_k=2).retrieve("when is my money back after a return?")
    assert retrieved[0].node.node_id == "node-refund"
    assert retrieved[0].node.ref_doc_id == "doc-billing"
    assert retrieved[0].score >= retrieved[1].score

    not_billing = MetadataFilters(
        filters=[MetadataFilter(key="topic", value="billing"), MetadataFilter(key="year", value=2024)],
        condition=FilterCondition.NOT,
    )
    filtered = index.as_retriever(similarity_top_k=10, filters=not_billing).retrieve("money back")
    assert {n.node.node_id for n in filtered} == {"node-shipping", "node-express", "node-warranty"}

    engine = index.as_query_engine(llm=llm, similarity_top_k=2, filters=MetadataFilters(filters=[
        MetadataFilter(key="topic", value=["shipping", "warranty"], operator="in"),
    ]))
    response = engine.query("how fast is delivery?")
    assert str(response)
    assert [n.node.node_id for n in response.source_nodes] == ["node-express", "node-shipping"]


def test_from_documents_with_sentence_splitter_ingests_real_text(embed_model, llm, handbook_text):
    store = LichenVectorStore()
    document = Document(text=handbook_text, id_="handbook", metadata={"source": "support_handbook.md"})
    index = VectorStoreIndex.from_documents(
        [document],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=128, chunk_overlap=16)],
    )
    chunks = store.get_nodes()
    assert len(chunks) >= 4
    assert all(c.ref_doc_id == "handbook" and c.metadata == {"source": "support_handbook.md"} for c in chunks)
    assert {c.node_id for c in chunks} == {n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[
        MetadataFilter(key="source", value="handbook", operator="text_match"),
    ]))}

    hits = index.as_retriever(similarity_top_k=2).retrieve("Is a tent zipper repaired for free?")
    assert "lifetime warranty" in hits[0].node.get_content()
    hits = index.as_retriever(similarity_top_k=1).retrieve("customs duties for Canada")
    assert "customs duties" in hits[0].node.get_content()
    response = index.as_query_engine(llm=llm, similarity_top_k=2).query("How do I recover my account?")
    assert any("password reset link" in n.node.get_content() for n in response.source_nodes)

    index.delete_ref_doc("handbook")
    assert store.client.doc_count == 0


def test_query_fusion_retriever_keeps_the_stores_order(store, embed_model, llm):
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    base = index.as_retriever(similarity_top_k=4, vector_store_query_mode="hybrid", alpha=0.5)
    fused = QueryFusionRetriever([base], llm=llm, num_queries=1, mode="simple", similarity_top_k=4, use_async=False)
    question = "express shipping before noon"
    assert [n.node.node_id for n in fused.retrieve(question)] == [n.node.node_id for n in base.retrieve(question)]


# -- async -------------------------------------------------------------------------------


def record_embedding_threads(monkeypatch) -> list[int]:
    """Threads the shipped model ran on, to prove async paths keep it off the loop."""
    from lichen.models._onnx import OnnxEmbedder

    threads: list[int] = []
    original = OnnxEmbedder.embed

    def spy(self, texts, *args, **kwargs):
        threads.append(threading.get_ident())
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(OnnxEmbedder, "embed", spy)
    return threads


async def test_async_add_and_query_embed_off_the_event_loop(monkeypatch):
    store = LichenVectorStore()
    threads = record_embedding_threads(monkeypatch)
    nodes = [TextNode(id_=f"n{i}", text=f"note number {i} about refunds, shipping and warranty " * 8) for i in range(4)]
    assert await store.async_add(nodes) == [f"n{i}" for i in range(4)]
    assert store.client.doc_count == 4
    await store.aquery(VectorStoreQuery(query_str="warranty", similarity_top_k=2))
    assert len(threads) == 2 and threading.get_ident() not in threads


async def test_async_api(store, embed_model):
    extra = faq_nodes(embed_model)[0]
    extra.id_ = "node-extra"
    assert await store.async_add([extra]) == ["node-extra"]
    result = await store.aquery(VectorStoreQuery(query_str="lifetime warranty", similarity_top_k=1))
    assert result.ids == ["node-warranty"]
    vector = await store.aquery(VectorStoreQuery(query_embedding=embed_model.get_query_embedding("delete my account and saved addresses"), similarity_top_k=1))
    assert vector.ids == ["node-privacy"]
    assert [n.node_id for n in await store.aget_nodes(["node-extra"])] == ["node-extra"]
    await store.adelete("doc-warranty")
    await store.adelete_nodes(["node-extra"])
    await store.adelete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="privacy")]))
    assert {n.node_id for n in await store.aget_nodes()} == {"node-refund", "node-duplicate", "node-shipping", "node-express"}
    await store.aclear()
    assert store.client.doc_count == 0


async def test_async_index_end_to_end(embed_model, llm):
    store = LichenVectorStore()
    index = VectorStoreIndex(
        nodes=faq_nodes(), storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model, use_async=True,
    )
    assert store.client.doc_count == len(FAQ)
    nodes = await index.as_retriever(similarity_top_k=1).aretrieve("lifetime warranty on backpacks")
    assert nodes[0].node.node_id == "node-warranty"
    response = await index.as_query_engine(llm=llm).aquery("warranty")
    assert response.source_nodes


# -- persistence -------------------------------------------------------------------------


def test_push_then_load_as_long_term_index(embed_model):
    client = Client()
    store = LichenVectorStore(client.session_sync("faq"))
    store.add(faq_nodes(embed_model))
    assert store.push().doc_count == len(FAQ)

    long_term = LichenVectorStore(Client().load_index_sync("faq"))
    node = long_term.get_nodes(["node-duplicate"])[0]
    assert node.ref_doc_id == "doc-billing" and node.metadata["year"] == 2021
    assert ask(long_term, embed_model, "duplicate charge", similarity_top_k=1) == ["node-duplicate"]
    with pytest.raises(InvalidArgumentError, match="read-only"):
        long_term.add([TextNode(text="nope")])

    resumed = LichenVectorStore(Client().session_sync("faq"))
    resumed.delete("doc-billing")
    resumed.push()
    assert Client().get_index_sync("faq").doc_count == len(FAQ) - 2


async def test_apush(embed_model):
    client = Client()
    store = LichenVectorStore(await client.session("faq-async"))
    await store.async_add(faq_nodes(embed_model))
    result = await store.apush()
    assert result.doc_count == len(FAQ)


def test_save_and_open(store, tmp_path, embed_model):
    path = tmp_path / "faq.lichen"
    store.save(path)
    reopened = LichenVectorStore.open(path)
    assert {n.node_id for n in reopened.get_nodes()} == set(f"node-{k}" for k in FAQ)
    assert ask(reopened, embed_model, "refund", similarity_top_k=1) == ask(store, embed_model, "refund", similarity_top_k=1)

