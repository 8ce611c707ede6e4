"""LichenVectorStore beyond the standard suite: ids, metadata, delete, filters, scores,
MMR, hybrid, read-only indexes, model/embedding checks, native async."""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_lichen import LichenEmbeddings, LichenVectorStore
from lichen import Client, ConflictError, IndexNotLoadedError, InvalidArgumentError, SessionIndex

ANIMALS = [
    Document(page_content="cats purr and chase mice", metadata={"kind": "mammal", "legs": 4, "year": 2019}),
    Document(page_content="dogs bark and fetch sticks", metadata={"kind": "mammal", "legs": 4, "year": 2021}),
    Document(page_content="eagles soar over mountains", metadata={"kind": "bird", "legs": 2, "year": 2023}),
    Document(page_content="salmon swim upstream to spawn", metadata={"kind": "fish", "legs": 0, "year": 2024}),
]


@pytest.fixture
def store() -> LichenVectorStore:
    """Built-in model, with four documents under ids a..d."""
    store = LichenVectorStore()
    store.add_documents(ANIMALS, ids=["a", "b", "c", "d"])
    return store


# ---------------------------------------------------------------------- ids and metadata
def test_generated_ids_are_uuid4_strings_and_become_document_ids():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=8))
    ids = store.add_texts(["one", "two"])
    assert all(uuid.UUID(doc_id).version == 4 for doc_id in ids)
    assert [doc.id for doc in store.get_by_ids(ids)] == ids


def test_document_id_is_used_and_kwargs_ids_win():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=8))
    assert store.add_documents([Document(id="mine", page_content="x")]) == ["mine"]
    assert store.add_documents([Document(id="ignored", page_content="y")], ids=["chosen"]) == ["chosen"]
    assert {doc.id for doc in store.get_by_ids(["mine", "chosen", "ignored"])} == {"mine", "chosen"}


def test_add_upserts_by_id():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_texts(["old text"], [{"v": 1}], ids=["x"])
    store.add_texts(["new text"], [{"v": 2}], ids=["x"])
    assert store.index.doc_count == 1
    assert store.get_by_ids(["x"]) == [Document(id="x", page_content="new text", metadata={"v": 2})]


def test_metadata_round_trips_unchanged_with_no_added_keys():
    metadata = {"int": 1, "float": 2.5, "bool": True, "str": "s", "none": None, "list": ["a", 1, False], "empty": []}
    store = LichenVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_texts(["text"], [metadata], ids=["m"])
    (found,) = store.similarity_search("text", k=1)
    assert found.metadata == metadata
    assert type(found.metadata["int"]) is int and type(found.metadata["bool"]) is bool
    assert store.get_by_ids(["m"])[0].metadata == metadata
    # Results are copies: mutating them does not reach the index.
    found.metadata["list"].append("x")
    assert store.get_by_ids(["m"])[0].metadata == metadata


def test_metadata_of_unsupported_types_is_refused_clearly():
    store = LichenVectorStore()
    with pytest.raises(InvalidArgumentError, match="'nested.a' has type set"):
        store.add_texts(["text"], [{"nested": {"a": {1, 2}}}])
    assert store.index.doc_count == 0


def test_length_mismatches_are_refused():
    store = LichenVectorStore()
    with pytest.raises(InvalidArgumentError, match="metadatas"):
        store.add_texts(["a", "b"], [{}])
    with pytest.raises(InvalidArgumentError, match="ids"):
        store.add_texts(["a", "b"], ids=["1"])


def test_unknown_keyword_arguments_are_refused(store):
    with pytest.raises(InvalidArgumentError, match="does not support keyword argument.s. filters; it also accepts fetch_k, lambda_mult"):
        store.similarity_search("cats", filters={"kind": "bird"})
    store.add_texts(["x"], batch_size=16)  # passed by LangChain's index(): accepted


# ---------------------------------------------------------------------- delete
def test_delete_without_ids_refuses(store):
    with pytest.raises(ValueError, match="delete_all=True"):
        store.delete()
    with pytest.raises(ValueError, match="delete_all=True"):
        store.delete(None)
    assert store.index.doc_count == 4


def test_delete_all_empties_the_index(store):
    assert store.delete(delete_all=True) is True
    assert store.index.doc_count == 0
    assert store.similarity_search("cats") == []


def test_delete_ids_and_delete_all_together_refuses(store):
    with pytest.raises(ValueError, match="not both"):
        store.delete(["a"], delete_all=True)


async def test_adelete(store):
    with pytest.raises(ValueError):
        await store.adelete()
    assert await store.adelete(["a", "missing"]) is True
    assert store.index.doc_count == 3
    assert await store.adelete(delete_all=True) is True
    assert store.index.doc_count == 0


# ---------------------------------------------------------------------- filters
def test_mongo_filter(store):
    docs = store.similarity_search("animals", k=4, filter={"year": {"$gte": 2021}, "kind": {"$in": ["mammal", "bird"]}})
    assert {doc.id for doc in docs} == {"b", "c"}
    docs = store.similarity_search("animals", k=4, filter={"$or": [{"kind": "fish"}, {"legs": 2}]})
    assert {doc.id for doc in docs} == {"c", "d"}


def test_seed_filter(store):
    docs = store.similarity_search("animals", k=4, filter={"field": "kind", "condition": {"$eq": "bird"}})
    assert [doc.id for doc in docs] == ["c"]


async def test_callable_filter_sync_and_async(store):
    def is_mammal(doc: Document) -> bool:
        return doc.metadata["kind"] == "mammal"

    expected = [doc.id for doc in store.similarity_search("pets that bark", k=4) if doc.metadata["kind"] == "mammal"]
    assert [doc.id for doc in store.similarity_search("pets that bark", k=4, filter=is_mammal)] == expected
    assert [doc.id for doc in await store.asimilarity_search("pets that bark", k=4, filter=is_mammal)] == expected


async def test_callable_filter_finds_low_ranked_matches(table_embeddings):
    # 200 documents; the predicate only accepts the three least similar, so the adapter
    # must widen its candidate pool several times.
    n = 200
    table = {f"doc {i}": [1.0, i / n] for i in range(n)}
    store = LichenVectorStore(table_embeddings(table, default=[1.0, 0.0]))
    store.add_texts(list(table), [{"i": i} for i in range(n)], ids=[str(i) for i in range(n)])
    calls = []

    def tail(doc: Document) -> bool:
        calls.append(doc.id)
        return doc.metadata["i"] >= n - 3

    assert [doc.id for doc in store.similarity_search("query", k=3, filter=tail)] == ["197", "198", "199"]
    assert [doc.id for doc in await store.asimilarity_search("query", k=3, filter=tail)] == ["197", "198", "199"]
    # Fewer matches than k: everything that passes, no error.
    assert len(store.similarity_search("query", k=10, filter=tail)) == 3


def test_callable_filter_receives_documents(store):
    seen = []
    store.similarity_search("cats", k=1, filter=lambda doc: seen.append(doc) or True)
    assert seen and all(isinstance(doc, Document) and doc.id for doc in seen)


def test_bad_filters_raise(store):
    with pytest.raises(InvalidArgumentError, match=r"\$bogus"):
        store.similarity_search("cats", filter={"kind": {"$bogus": 1}})
    with pytest.raises(InvalidArgumentError, match="filter must be"):
        store.similarity_search("cats", filter="kind == bird")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- scores
def test_scores_are_cosine_sorted_and_relevance_in_unit_interval(store):
    with_scores = store.similarity_search_with_score("a cat chasing a mouse", k=4)
    scores = [score for _, score in with_scores]
    assert scores == sorted(scores, reverse=True) and with_scores[0][0].id == "a"
    assert all(-1.0 <= score <= 1.0 for score in scores)
    relevance = store.similarity_search_with_relevance_scores("a cat chasing a mouse", k=4)
    assert [doc.id for doc, _ in relevance] == [doc.id for doc, _ in with_scores]
    for (_, rel), cos in zip(relevance, scores):
        assert 0.0 <= rel <= 1.0 and math.isclose(rel, (1 + cos) / 2, rel_tol=1e-6)


def test_relevance_of_identical_and_opposite_vectors(table_embeddings):
    store = LichenVectorStore(table_embeddings({"up": [1.0, 0.0], "down": [-1.0, 0.0]}, default=[1.0, 0.0]))
    store.add_texts(["up", "down"], ids=["up", "down"])
    relevance = dict((doc.id, rel) for doc, rel in store.similarity_search_with_relevance_scores("up", k=2))
    assert relevance == pytest.approx({"up": 1.0, "down": 0.0}, abs=1e-6)


async def test_score_threshold_retriever_sync_and_async(store):
    retriever = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.7, "k": 4})
    docs = retriever.invoke("a cat chasing a mouse")
    relevance = dict((doc.id, rel) for doc, rel in store.similarity_search_with_relevance_scores("a cat chasing a mouse", k=4))
    assert [doc.id for doc in docs] == [i for i, rel in relevance.items() if rel >= 0.7]
    assert docs and [doc.id for doc in await retriever.ainvoke("a cat chasing a mouse")] == [doc.id for doc in docs]


# ---------------------------------------------------------------------- hybrid
def test_hybrid_is_opt_in(store):
    (doc, score) = store.similarity_search_with_score("salmon", k=1)[0]
    assert doc.id == "d"
    keyword_only = store.similarity_search_with_score("upstream spawn", k=4, alpha=0.0)
    assert keyword_only[0][0].id == "d"
    relevance = store.similarity_search_with_relevance_scores("upstream spawn", k=4, alpha=0.5)
    assert all(0.0 <= rel <= 1.0 for _, rel in relevance)
    assert [rel for _, rel in relevance] == sorted((rel for _, rel in relevance), reverse=True)
    # "d" is first by both rankings: the rescaled fusion score reaches the top of the scale.
    assert relevance[0][0].id == "d" and relevance[0][1] == pytest.approx(1.0)


def test_hybrid_with_custom_embeddings():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_texts(["alpha beta", "gamma delta"], ids=["1", "2"])
    assert store.similarity_search("delta", k=1, alpha=0.0)[0].id == "2"
    assert len(store.similarity_search("delta", k=2, alpha=0.5)) == 2


# ---------------------------------------------------------------------- by vector, MMR
async def test_search_by_vector(store):
    vector = LichenEmbeddings().embed_query("birds of prey flying high")
    assert store.similarity_search_by_vector(vector, k=1)[0].id == "c"
    assert (await store.asimilarity_search_by_vector(vector, k=1))[0].id == "c"
    (doc, score), = store.similarity_search_with_score_by_vector(vector, k=1, filter={"kind": "fish"})
    assert doc.id == "d" and -1.0 <= score <= 1.0


@pytest.fixture
def clustered(table_embeddings) -> LichenVectorStore:
    """Three near-duplicates close to the query and one distinct, slightly less similar."""
    table = {
        "query": [1.0, 0.0, 0.0],
        "dup 1": [1.0, 0.05, 0.0],
        "dup 2": [1.0, 0.06, 0.0],
        "dup 3": [1.0, 0.07, 0.0],
        "other": [0.7, 0.0, 0.7],
    }
    store = LichenVectorStore(table_embeddings(table, default=[0.0, 0.0, 1.0]))
    store.add_texts([t for t in table if t != "query"], ids=["dup1", "dup2", "dup3", "other"])
    return store


async def test_mmr_prefers_diversity(clustered):
    plain = [doc.id for doc in clustered.similarity_search("query", k=2)]
    assert plain == ["dup1", "dup2"]
    for docs in (
        clustered.max_marginal_relevance_search("query", k=2, fetch_k=4, lambda_mult=0.3),
        await clustered.amax_marginal_relevance_search("query", k=2, fetch_k=4, lambda_mult=0.3),
        clustered.max_marginal_relevance_search_by_vector([1.0, 0.0, 0.0], k=2, fetch_k=4, lambda_mult=0.3),
        await clustered.amax_marginal_relevance_search_by_vector([1.0, 0.0, 0.0], k=2, fetch_k=4, lambda_mult=0.3),
    ):
        assert [doc.id for doc in docs] == ["dup1", "other"]
    retriever = clustered.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.3})
    assert [doc.id for doc in retriever.invoke("query")] == ["dup1", "other"]
    assert [doc.id for doc in await retriever.ainvoke("query")] == ["dup1", "other"]


def test_mmr_with_filters_and_empty_store(clustered):
    docs = clustered.max_marginal_relevance_search("query", k=2, filter=lambda doc: doc.id != "dup1")
    assert [doc.id for doc in docs] == ["dup2", "other"]
    assert LichenVectorStore().max_marginal_relevance_search("anything") == []


def test_mmr_with_builtin_model(store):
    docs = store.max_marginal_relevance_search("pets", k=2, fetch_k=4, filter={"kind": "mammal"})
    assert {doc.id for doc in docs} == {"a", "b"}


# ---------------------------------------------------------------------- constructors
async def test_from_texts_and_documents():
    embedding = DeterministicFakeEmbedding(size=8)
    store = LichenVectorStore.from_texts(["x", "y"], embedding, metadatas=[{"n": 1}, {"n": 2}], ids=["1", "2"])
    assert store.similarity_search("y", k=1) == [Document(id="2", page_content="y", metadata={"n": 2})]
    store = await LichenVectorStore.afrom_texts(["x", "y"], embedding, ids=["1", "2"], index_name="named")
    assert store.index.name == "named" and store.index.doc_count == 2
    store = LichenVectorStore.from_documents([Document(id="d", page_content="z")], LichenEmbeddings())
    assert store.get_by_ids(["d"])[0].page_content == "z"
    store = await LichenVectorStore.afrom_documents([Document(id="d", page_content="z")], LichenEmbeddings())
    assert store.index.model_id == "lichen-minilm"


# ---------------------------------------------------------------------- models and embeddings
def test_builtin_model_store_lets_the_index_embed():
    store = LichenVectorStore(LichenEmbeddings())
    assert store.index.model_id == "lichen-minilm"
    assert isinstance(store.embeddings, LichenEmbeddings)
    store.add_texts(["refunds take five days"], ids=["r"])
    (stored,) = store.index.get_docs_sync(["r"], include_embeddings=True)
    assert stored.embedding == pytest.approx(LichenEmbeddings().embed_documents(["refunds take five days"])[0], abs=1e-5)
    assert LichenVectorStore().index.model_id == "lichen-minilm"


def test_custom_embeddings_use_a_custom_session():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=6))
    assert store.index.model_id == "custom"
    store.add_texts(["x"])
    assert store.index.dimension == 6


def test_wrong_embeddings_for_an_index_are_refused(client):
    with pytest.raises(InvalidArgumentError, match="built-in model"):
        LichenVectorStore(DeterministicFakeEmbedding(size=384), index=client.session_sync("builtin"))
    with pytest.raises(InvalidArgumentError, match="custom"):
        LichenVectorStore(index=SessionIndex("own", "custom"))


def test_dimension_change_is_refused():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=6), index=SessionIndex("own", "custom"))
    store.add_texts(["x"])
    other = LichenVectorStore(DeterministicFakeEmbedding(size=7), index=store.index)
    with pytest.raises(InvalidArgumentError, match="dimension"):
        other.add_texts(["y"])


# ---------------------------------------------------------------------- sessions and long-term indexes
def test_push_and_search_a_loaded_index_read_only(client):
    session = client.session_sync("call-9")
    store = LichenVectorStore(index=session)
    store.add_documents(ANIMALS, ids=["a", "b", "c", "d"])
    session.push_index_sync()
    client.load_index_sync("call-9")
    loaded = LichenVectorStore(index=client.loaded_index("call-9"))
    assert loaded.similarity_search("birds", k=1)[0].id == "c"
    assert loaded.get_by_ids(["a"])[0].metadata == ANIMALS[0].metadata
    with pytest.raises(InvalidArgumentError, match="read-only"):
        loaded.add_texts(["new"])
    with pytest.raises(InvalidArgumentError, match="read-only"):
        loaded.delete(["a"])
    with pytest.raises(IndexNotLoadedError):
        client.loaded_index("never-loaded")


def test_push_and_open_by_name_like_the_llamaindex_and_langgraph_adapters(lichen_home, monkeypatch):
    """``from_index_name(client, name)`` opens the session of that name, ``push()``
    stores it; a new process (a new Client) opens it again by name, vectors and all."""
    store = LichenVectorStore.from_index_name(Client(home=lichen_home), "notes")
    store.add_documents(ANIMALS, ids=["a", "b", "c", "d"])
    assert store.push().doc_count == 4
    store.add_texts(["owls hunt at night"], ids=["e"])  # not pushed: stays with this store

    embedded = []
    real = SessionIndex.embed_texts
    monkeypatch.setattr(SessionIndex, "embed_texts", lambda self, texts: embedded.append(texts) or real(self, texts))
    again = LichenVectorStore.from_index_name(Client(home=lichen_home), "notes")
    assert sorted(doc.id for doc in again.get_documents()) == ["a", "b", "c", "d"] and embedded == []
    assert again.get_by_ids(["c"])[0].metadata == ANIMALS[2].metadata
    assert again.similarity_search("birds", k=1)[0].id == "c"
    again.delete(["a"])
    assert again.push().version == 2
    with pytest.raises(ConflictError):
        store.push()  # someone else pushed "notes" since this store opened it
    assert store.push(overwrite=True).doc_count == 5
    with pytest.raises(InvalidArgumentError, match="no store"):
        LichenVectorStore().push()


async def test_apush_and_afrom_index_name_with_custom_embeddings(lichen_home):
    embedding = DeterministicFakeEmbedding(size=8)
    store = await LichenVectorStore.afrom_index_name(Client(home=lichen_home), "own-vectors", embedding)
    assert store.index.model_id == "custom"
    await store.aadd_texts(["a text", "another text"], ids=["1", "2"])
    assert (await store.apush()).doc_count == 2
    again = await LichenVectorStore.afrom_index_name(Client(home=lichen_home), "own-vectors", embedding)
    assert again.index.model_id == "custom" and (await again.asimilarity_search("a text", k=1))[0].id == "1"
    with pytest.raises(InvalidArgumentError, match="custom"):
        LichenVectorStore.from_index_name(Client(home=lichen_home), "own-vectors")  # no Embeddings for its vectors


# ---------------------------------------------------------------------- async is native
async def test_async_methods_do_not_use_the_thread_pool_fallback(monkeypatch, store):
    import langchain_core.vectorstores.base as base

    def no_executor(*args, **kwargs):
        raise AssertionError("fell back to VectorStore's run_in_executor")

    monkeypatch.setattr(base, "run_in_executor", no_executor)
    await store.aadd_texts(["owls hunt at night"], [{"kind": "bird"}], ids=["e"])
    assert (await store.aget_by_ids(["e"]))[0].id == "e"
    assert (await store.asimilarity_search("owl", k=1))[0].id == "e"
    assert (await store.asimilarity_search_with_score("owl", k=1))[0][0].id == "e"
    assert (await store.asimilarity_search_with_relevance_scores("owl", k=1))[0][0].id == "e"
    assert await store.amax_marginal_relevance_search("owl", k=1)
    await store.aadd_documents([Document(page_content="newts", metadata={})], ids=["f"])
    assert await store.adelete(["e", "f"])
    await LichenVectorStore.afrom_texts(["x"], LichenEmbeddings())
    await LichenVectorStore.afrom_documents([Document(page_content="x")], DeterministicFakeEmbedding(size=4))


async def test_concurrent_reads_and_writes():
    store = LichenVectorStore(DeterministicFakeEmbedding(size=16))

    async def writer(i: int) -> None:
        await store.aadd_texts([f"text {i} {j}" for j in range(20)], ids=[f"{i}-{j}" for j in range(20)])

    async def reader() -> None:
        for _ in range(5):
            await store.asimilarity_search("text", k=3)

    await asyncio.gather(*(writer(i) for i in range(5)), *(reader() for _ in range(5)))
    # And from LangChain's own thread-pool path (sync methods called from threads).
    await asyncio.gather(*(asyncio.to_thread(store.similarity_search, "text", 3) for _ in range(8)))
    assert store.index.doc_count == 100
