"""LichenVectorStore features LlamaIndex users reach for next: MMR mode, a blending
HYBRID default, one [0, 1] score scale, StorageContext persistence and the dict round
trip, text filters, paging and nested metadata."""

from __future__ import annotations

import os

import fsspec
import pytest
from lichen import Client, CorruptDataError, DocumentInfo, InvalidArgumentError, NotFoundError
from lichen.engine.fusion import DEFAULT_RRF_K
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.lichen import HYBRID_DEFAULT_ALPHA, SCORE_KEYS, LichenVectorStore

MMR = VectorStoreQueryMode.MMR
HYBRID = VectorStoreQueryMode.HYBRID

# Hand-placed 3-d vectors: three near-duplicates of the query and one distinct document.
VECTORS = {
    "dup1": [1.0, 0.05, 0.0],
    "dup2": [1.0, 0.06, 0.0],
    "dup3": [1.0, 0.07, 0.0],
    "other": [0.7, 0.0, 0.7],
    "far": [0.0, 0.2, 1.0],
}
TEXTS = {
    "dup1": "refund policy for duplicate charges",
    "dup2": "refund policy for double charges",
    "dup3": "refund policy for repeated charges",
    "other": "shipping is free above fifty dollars",
    "far": "the warranty covers zippers for life",
}
QUERY = [1.0, 0.0, 0.0]


def placed_nodes() -> list[TextNode]:
    return [
        TextNode(id_=k, text=TEXTS[k], embedding=v, metadata={"n": i, "user": {"tier": "gold" if i % 2 else "free"}})
        for i, (k, v) in enumerate(VECTORS.items())
    ]


@pytest.fixture
def placed() -> LichenVectorStore:
    store = LichenVectorStore(model_id="custom")
    store.add(placed_nodes())
    return store


def mmr_query(k: int = 2, **kwargs) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=QUERY, similarity_top_k=k, mode=MMR, **kwargs)


# -- 1. MMR ------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [None, 0.1, 0.5, 0.9])
def test_mmr_selects_what_simple_vector_store_selects(placed, threshold):
    simple = SimpleVectorStore()
    simple.add(placed_nodes())
    kwargs = {} if threshold is None else {"mmr_threshold": threshold}
    expected = simple.query(mmr_query(3), **kwargs)
    got = placed.query(mmr_query(3), **kwargs)
    assert got.ids == expected.ids
    mmr_scores = [n.metadata[SCORE_KEYS["mmr"]] for n in got.nodes]
    assert mmr_scores == pytest.approx(expected.similarities, abs=1e-5)


def test_mmr_prefers_diversity_and_threshold_one_is_relevance(placed):
    assert placed.query(mmr_query(2), mmr_threshold=0.3).ids == ["dup1", "far"]
    assert placed.query(mmr_query(2, mmr_threshold=0.3)).ids == ["dup1", "far"]  # the query's own field
    assert placed.query(mmr_query(2), mmr_threshold=1.0).ids == ["dup1", "dup2"]


async def test_mmr_through_a_retriever_sync_and_async(placed):
    index = VectorStoreIndex.from_vector_store(placed, embed_model=MockEmbedding(embed_dim=3))
    retriever = index.as_retriever(
        similarity_top_k=2, vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": 0.3}
    )
    bundle_embedding = QUERY

    class Fixed(MockEmbedding):
        def _get_query_embedding(self, query: str):
            return bundle_embedding

        async def _aget_query_embedding(self, query: str):
            return bundle_embedding

    retriever._embed_model = Fixed(embed_dim=3)
    assert [n.node.node_id for n in retriever.retrieve("refund")] == ["dup1", "far"]
    assert [n.node.node_id for n in await retriever.aretrieve("refund")] == ["dup1", "far"]


def test_mmr_honours_filters_and_prefetch(placed):
    filters = MetadataFilters(filters=[MetadataFilter(key="n", value=0, operator="!=")])
    assert placed.query(mmr_query(2, filters=filters), mmr_threshold=0.3).ids == ["dup2", "far"]
    # Only the best 2 candidates reach MMR: the distinct document is never seen.
    assert placed.query(mmr_query(2), mmr_threshold=0.3, mmr_prefetch_k=2).ids == ["dup1", "dup2"]
    assert placed.query(mmr_query(2), mmr_threshold=0.3, mmr_prefetch_factor=1).ids == ["dup1", "dup2"]
    assert LichenVectorStore(model_id="custom").query(mmr_query(2)).ids == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mmr_threshold": 1.5}, "mmr_threshold must be a number between 0 and 1"),
        ({"mmr_prefetch_k": 0}, "mmr_prefetch_k must be"),
        ({"mmr_prefetch_factor": "4"}, "mmr_prefetch_factor must be"),
        ({"mmr_treshold": 0.5}, "does not support mmr_treshold"),
    ],
)
def test_bad_mmr_arguments_raise(placed, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        placed.query(mmr_query(2), **kwargs)


def test_mmr_needs_a_query_embedding(placed):
    with pytest.raises(InvalidArgumentError, match="MMR mode needs the query_embedding"):
        placed.query(VectorStoreQuery(query_str="refund", mode=MMR))


# -- 2. HYBRID without alpha blends ---------------------------------------------------------


def test_hybrid_without_alpha_blends_at_the_measured_default():
    # Vector search ranks "a" first; only "b" holds the query's words.
    store = LichenVectorStore(model_id="custom")
    store.add([
        TextNode(id_="a", text="completely unrelated words", embedding=[1.0, 0.0]),
        TextNode(id_="b", text="lifetime warranty on zippers", embedding=[0.9, 0.43]),
        TextNode(id_="c", text="nothing to see", embedding=[0.0, 1.0]),
    ])
    base = dict(query_embedding=[1.0, 0.0], query_str="zippers warranty", similarity_top_k=3)
    assert store.query(VectorStoreQuery(**base)).ids[0] == "a"  # default mode: pure vector
    hybrid = store.query(VectorStoreQuery(mode=HYBRID, **base))
    assert hybrid.ids[0] == "b"
    explicit = store.query(VectorStoreQuery(mode=HYBRID, alpha=HYBRID_DEFAULT_ALPHA, **base))
    assert hybrid.ids == explicit.ids and hybrid.similarities == explicit.similarities
    assert 0.0 < HYBRID_DEFAULT_ALPHA < 1.0
    assert SCORE_KEYS["keyword"] in hybrid.nodes[0].metadata


# -- 3. one [0, 1] score scale --------------------------------------------------------------


def test_every_mode_scores_on_the_unit_scale_with_raw_parts_in_metadata(placed):
    vector = placed.query(VectorStoreQuery(query_embedding=QUERY, similarity_top_k=5))
    for node, sim in zip(vector.nodes, vector.similarities):
        cosine = node.metadata[SCORE_KEYS["vector"]]
        assert sim == pytest.approx((1 + cosine) / 2) and node.metadata[SCORE_KEYS["score"]] == pytest.approx(cosine)
    hybrid = placed.query(VectorStoreQuery(query_embedding=QUERY, query_str="refund charges", similarity_top_k=5, mode=HYBRID))
    for node, sim in zip(hybrid.nodes, hybrid.similarities):
        assert sim == pytest.approx(node.metadata[SCORE_KEYS["score"]] * (DEFAULT_RRF_K + 1))
        assert SCORE_KEYS["vector"] in node.metadata and SCORE_KEYS["keyword"] in node.metadata
    keyword = placed.query(VectorStoreQuery(query_str="zippers", similarity_top_k=5, mode="text_search"))
    assert keyword.ids == ["far"] and keyword.similarities == [pytest.approx(1.0)]
    mmr = placed.query(mmr_query(3))
    for result in (vector, hybrid, keyword, mmr):
        assert result.similarities and all(0.0 <= s <= 1.0 for s in result.similarities)
    for result in (vector, hybrid, keyword):
        assert result.similarities == sorted(result.similarities, reverse=True)


def test_score_parts_stay_out_of_llm_and_embedding_text(placed):
    node = placed.query(VectorStoreQuery(query_embedding=QUERY, query_str="refund", similarity_top_k=1, mode=HYBRID)).nodes[0]
    assert {SCORE_KEYS["score"], SCORE_KEYS["vector"], SCORE_KEYS["keyword"]} <= set(node.metadata)
    for mode in (MetadataMode.LLM, MetadataMode.EMBED):
        assert "lichen_" not in node.get_content(metadata_mode=mode)
    assert "user" in node.get_content(metadata_mode=MetadataMode.LLM)


def test_a_cosine_tuned_cutoff_keeps_hybrid_results(store_with_text):
    index = VectorStoreIndex.from_vector_store(store_with_text, embed_model=MockEmbedding(embed_dim=384))
    retriever = index.as_retriever(similarity_top_k=3, vector_store_query_mode="hybrid")
    nodes = retriever.retrieve("refund for a duplicate charge")
    kept = SimilarityPostprocessor(similarity_cutoff=0.6).postprocess_nodes(nodes)
    assert kept and kept[0].node.node_id == nodes[0].node.node_id


@pytest.fixture
def store_with_text(embed_model) -> LichenVectorStore:
    store = LichenVectorStore()
    store.add([TextNode(id_=k, text=t, embedding=embed_model.get_text_embedding(t)) for k, t in TEXTS.items()])
    return store


# -- 4. persistence ---------------------------------------------------------------------------


def test_storage_context_persist_and_reload(embed_model, tmp_path):
    store = LichenVectorStore()
    index = VectorStoreIndex(
        [TextNode(id_=k, text=t) for k, t in TEXTS.items()],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
    )
    before = [n.node.node_id for n in index.as_retriever(similarity_top_k=3).retrieve("free shipping")]
    persist_dir = str(tmp_path / "storage")
    index.storage_context.persist(persist_dir=persist_dir)
    assert store.persist_path.endswith("default__vector_store.json")

    restored = LichenVectorStore.from_persist_dir(persist_dir)
    assert restored.client.doc_count == len(TEXTS) and restored.persist_path == store.persist_path
    context = StorageContext.from_defaults(persist_dir=persist_dir, vector_store=restored)
    reloaded = load_index_from_storage(context, embed_model=embed_model)
    after = [n.node.node_id for n in reloaded.as_retriever(similarity_top_k=3).retrieve("free shipping")]
    assert after == before
    stored = {d.id: d.embedding for d in store.client.get_docs_sync(include_embeddings=True)}
    assert {d.id: d.embedding for d in restored.client.get_docs_sync(include_embeddings=True)} == stored


def test_the_conventional_reload_says_what_to_do_and_no_image_store_is_written(embed_model, tmp_path):
    """``load_index_from_storage(StorageContext.from_defaults(persist_dir=...))``, the
    reload LlamaIndex's docs teach, parses every ``*vector_store.json`` as a
    SimpleVectorStore: it used to die on the binary artifact with a UnicodeDecodeError;
    now the error is the way to load it. The store's own context leaves out the empty
    image store, so ``persist`` writes no ``image__vector_store.json``."""
    store = LichenVectorStore()
    index = VectorStoreIndex(
        [TextNode(id_=k, text=t) for k, t in TEXTS.items()], storage_context=store.storage_context(), embed_model=embed_model
    )
    persist_dir = str(tmp_path / "storage")
    index.storage_context.persist(persist_dir=persist_dir)
    assert sorted(os.listdir(persist_dir)) == [
        "default__vector_store.json", "default__vector_store.lix", "docstore.json", "graph_store.json", "index_store.json",
    ]
    with pytest.raises(ValueError, match=r"LichenVectorStore\.from_persist_dir\(persist_dir\)") as caught:
        load_index_from_storage(StorageContext.from_defaults(persist_dir=persist_dir), embed_model=embed_model)
    assert "vector_store=store" in str(caught.value) and "default__vector_store.lix" in str(caught.value)

    restored = LichenVectorStore.from_persist_dir(persist_dir)
    for context in (restored.storage_context(persist_dir), StorageContext.from_defaults(persist_dir=persist_dir, vector_store=restored)):
        reloaded = load_index_from_storage(context, embed_model=embed_model)
        assert reloaded.as_retriever(similarity_top_k=1).retrieve("free shipping")[0].node.node_id == "other"


def test_an_artifact_persisted_under_a_json_name_before_the_manifest_still_loads(placed, tmp_path):
    placed.save(tmp_path / "default__vector_store.json")  # the old layout: the artifact itself
    restored = LichenVectorStore.from_persist_dir(str(tmp_path))
    assert restored.client.doc_count == len(VECTORS)
    (tmp_path / "broken__vector_store.json").write_text('{"embedding_dict": {}}')
    with pytest.raises(CorruptDataError, match="not a LichenVectorStore manifest"):
        LichenVectorStore.from_persist_dir(str(tmp_path), namespace="broken")


def test_persist_through_an_fsspec_file_system(placed):
    fs = fsspec.filesystem("memory")
    placed.persist("/lichen-test/default__vector_store.json", fs=fs)
    restored = LichenVectorStore.from_persist_dir("/lichen-test", fs=fs)
    assert restored.query(mmr_query(2), mmr_threshold=0.3).ids == ["dup1", "far"]
    fs.rm("/lichen-test", recursive=True)


def test_dict_round_trip_keeps_the_index_it_points_at(placed, tmp_path):
    placed.persist(str(tmp_path / "kb.lichen"))
    data = placed.to_dict()
    assert data["index_name"] == placed.client.name and data["model_id"] == "custom"
    again = LichenVectorStore.from_dict(data)
    assert again.client.doc_count == len(VECTORS)
    assert again.query(VectorStoreQuery(query_embedding=QUERY, similarity_top_k=1)).ids == ["dup1"]
    assert LichenVectorStore.from_json(placed.to_json()).client.doc_count == len(VECTORS)


def test_dict_round_trip_through_a_client(tmp_path):
    client = Client(home=tmp_path)
    session = client.session_sync("handbook")
    session.add_docs_sync([DocumentInfo(id="h1", text="returns within thirty days")])
    session.push_index_sync()
    data = LichenVectorStore(session).to_dict()
    assert data["persist_path"] is None and data["index_name"] == "handbook"
    reopened = LichenVectorStore.from_dict(data, client=client)
    assert [n.node_id for n in reopened.get_nodes()] == ["h1"] and not reopened.read_only
    client.load_index_sync("handbook")
    read_only = LichenVectorStore(client.loaded_index("handbook")).to_dict()
    assert read_only["read_only"] is True
    assert LichenVectorStore.from_dict(read_only, client=client).client is client.loaded_index("handbook")
    # Without a client or a file there is only the name to keep.
    fresh = LichenVectorStore.from_dict(data)
    assert fresh.client.name == "handbook" and fresh.client.doc_count == 0


def test_reopening_refuses_what_it_cannot_honour(placed, tmp_path):
    with pytest.raises(NotFoundError):
        LichenVectorStore.from_persist_dir(str(tmp_path / "nothing-here"))
    placed.persist(str(tmp_path / "kb.lichen"))
    with pytest.raises(InvalidArgumentError, match="differs from the model"):
        LichenVectorStore.from_dict({**placed.to_dict(), "model_id": "lichen-minilm"})
    with pytest.raises(InvalidArgumentError, match="needs index_name"):
        LichenVectorStore(client=Client(home=tmp_path / "home"), index_name="")


# -- 7, 8, 9: text filters, paging, nested metadata --------------------------------------------


async def test_where_document_in_queries_gets_and_deletes(placed):
    query = VectorStoreQuery(query_embedding=QUERY, similarity_top_k=5)
    assert placed.query(query, where_document={"$contains": "zippers"}).ids == ["far"]
    assert (await placed.aquery(query, where_document={"$not_contains": "refund"})).ids == ["other", "far"]
    filters = MetadataFilters(filters=[MetadataFilter(key="n", value=1, operator=">=")])
    assert [n.node_id for n in placed.get_nodes(filters=filters, where_document={"$regex": "charges$"})] == ["dup2", "dup3"]
    placed.delete_nodes(where_document={"$icontains": "DOUBLE"})
    assert [n.node_id for n in await placed.aget_nodes()] == ["dup1", "dup3", "other", "far"]
    await placed.adelete_nodes(filters=filters, where_document={"$contains": "free"})
    assert [n.node_id for n in placed.get_nodes()] == ["dup1", "dup3", "far"]
    with pytest.raises(InvalidArgumentError, match="unknown where_document operator"):
        placed.query(query, where_document={"$has": "x"})


async def test_get_nodes_pages_in_stable_insertion_order(placed):
    assert [n.node_id for n in placed.get_nodes(limit=2)] == ["dup1", "dup2"]
    assert [n.node_id for n in await placed.aget_nodes(limit=2, offset=2)] == ["dup3", "other"]
    placed.add([TextNode(id_="dup2", text="updated", embedding=[1.0, 0.0, 0.1])])
    assert [n.node_id for n in placed.get_nodes(offset=1, limit=1)] == ["dup2"]
    with pytest.raises(InvalidArgumentError, match="offset must be"):
        placed.get_nodes(offset=-1)


def test_nested_metadata_is_filterable_by_dotted_path(placed, embed_model):
    gold = MetadataFilters(filters=[MetadataFilter(key="user.tier", value="gold")])
    assert [n.node_id for n in placed.get_nodes(filters=gold)] == ["dup2", "other"]
    assert placed.query(VectorStoreQuery(query_embedding=QUERY, similarity_top_k=5, filters=gold)).ids == ["dup2", "other"]
    node = placed.get_nodes(["dup2"])[0]
    assert node.metadata == {"n": 1, "user": {"tier": "gold"}}
    index = VectorStoreIndex(
        [TextNode(id_="x", text="nested metadata", metadata={"author": {"team": "docs", "tags": ["a"]}})],
        storage_context=StorageContext.from_defaults(vector_store=LichenVectorStore()),
        embed_model=embed_model,
    )
    team = MetadataFilters(filters=[MetadataFilter(key="author.team", value="docs")])
    assert [n.node.node_id for n in index.as_retriever(filters=team).retrieve("metadata")] == ["x"]
    # What Lichen cannot hold as a column (a list of dicts) still round-trips, unfilterable.
    placed.add([TextNode(id_="q", text="t", embedding=[1.0, 0.0, 0.0], metadata={"rows": [{"a": 1}], "user": {"tier": "gold"}})])
    assert placed.get_nodes(["q"])[0].metadata == {"rows": [{"a": 1}], "user": {"tier": "gold"}}
    assert [n.node_id for n in placed.get_nodes(filters=gold)] == ["dup2", "other", "q"]
