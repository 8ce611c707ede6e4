"""LichenVectorStore features users of other stores reach for: delete by filter, the MMR
knobs in every search, ``where_document`` on the text, paging, nested metadata."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_lichen import LichenContextRetriever, LichenRetriever, LichenVectorStore
from lichen import InvalidArgumentError

TICKETS = [
    Document(page_content="Refund the duplicate charge on the card", metadata={"team": "billing", "user": {"tier": "gold", "id": 7}}),
    Document(page_content="Customer cannot reset the password", metadata={"team": "account", "user": {"tier": "free", "id": 8}}),
    Document(page_content="A refund was requested for order 1234", metadata={"team": "billing", "user": {"tier": "free", "id": 9}}),
    Document(page_content="Shipping label printed twice", metadata={"team": "shipping"}),
]


@pytest.fixture
def store() -> LichenVectorStore:
    store = LichenVectorStore()
    store.add_documents(TICKETS, ids=["t1", "t2", "t3", "t4"])
    return store


def ids(docs) -> list[str]:
    return [doc.id for doc in docs]


def snapshot(store: LichenVectorStore) -> list:
    return [(d.id, d.text, d.metadata) for d in store.index.get_docs_sync()]


# ---------------------------------------------------------------------- delete by filter
async def test_delete_answers_as_the_interface_says_and_delete_documents_counts(store):
    """``VectorStore.delete`` returns ``Optional[bool]``: ``True`` once the documents are
    gone, whether by id or by filter, and whether or not there was anything to remove;
    how many went is ``delete_documents``' answer."""
    assert store.delete(filter={"team": "shipping"}) is True
    assert ids(store.get_documents()) == ["t1", "t2", "t3"]
    assert store.delete(filter={"team": "shipping"}) is True  # nothing left to remove: still done
    assert await store.adelete(where_document={"$contains": "password"}) is True
    assert store.delete(["t-unknown"]) is True and await store.adelete(["t-unknown"]) is True
    assert ids(store.get_documents()) == ["t1", "t3"]

    assert store.delete_documents(filter={"team": "billing"}, ids=["t1", "t2"]) == 1
    assert await store.adelete_documents(["t-unknown", "t3"]) == 1
    assert store.delete_documents(filter={"team": "billing"}) == 0
    assert store.get_documents() == []
    with pytest.raises(InvalidArgumentError, match="delete_documents.. without ids or filter"):
        store.delete_documents()


def test_index_cleanup_survives_a_document_deleted_by_other_means(store):
    """LangChain's ``index()`` takes ``delete() is False`` for a failure and stops: a
    document removed behind its back (here by ``delete(filter=...)``) must not wedge it."""
    from langchain_core.indexing import InMemoryRecordManager, index

    records = InMemoryRecordManager("tickets")
    records.create_schema()
    docs = [Document(page_content=t.page_content, metadata={"source": "tickets", **t.metadata}) for t in TICKETS]
    assert index(docs, records, store, cleanup="full", key_encoder="sha256")["num_added"] == 4
    store.delete(where_document={"$contains": "Shipping"})
    result = index(docs[:2], records, store, cleanup="full", key_encoder="sha256")
    assert (result["num_skipped"], result["num_deleted"]) == (2, 2)


def test_delete_by_ids_and_filter_and_by_text(store):
    assert store.delete_documents(["t1", "t2"], filter={"team": "billing"}) == 1
    assert store.delete_documents(where_document={"$contains": "twice"}) == 1
    assert ids(store.get_documents()) == ["t2", "t3"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filter": {}}, "matches every document"),
        ({"filter": lambda doc: True}, "dict filter"),
        ({"filter": {"team": "billing"}, "delete_all": True}, "not both"),
        ({"filter": {"team": {"$like": "b"}}}, "unknown operator"),
        ({"where_document": {"$like": "x"}}, "unknown where_document operator"),
        ({"wherever": {"team": "billing"}}, "does not support keyword argument.s. wherever"),
    ],
)
async def test_bad_deletes_raise_and_change_nothing(store, kwargs, message):
    before = snapshot(store)
    with pytest.raises(InvalidArgumentError, match=message):
        store.delete(**kwargs)
    with pytest.raises(InvalidArgumentError, match=message):
        await store.adelete(**kwargs)
    assert snapshot(store) == before


# ---------------------------------------------------------------------- search kwargs
@pytest.mark.parametrize("search_type", ["similarity", "mmr", "similarity_score_threshold"])
async def test_mmr_knobs_are_accepted_by_every_search_type(store, search_type):
    search_kwargs = {"k": 1, "fetch_k": 20, "lambda_mult": 0.25}
    if search_type == "similarity_score_threshold":
        search_kwargs["score_threshold"] = 0.5
    retriever = store.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
    assert ids(retriever.invoke("refund for a duplicate charge")) == ["t1"]
    assert ids(await retriever.ainvoke("refund for a duplicate charge")) == ["t1"]


def test_unknown_and_malformed_search_kwargs_raise(store):
    retriever = store.as_retriever(search_kwargs={"k": 1, "fetch_k": 20, "nprobe": 4})
    with pytest.raises(InvalidArgumentError, match="does not support keyword argument.s. nprobe"):
        retriever.invoke("refund")
    for bad, message in (({"fetch_k": 0}, "fetch_k must be a positive integer"),
                         ({"fetch_k": "20"}, "fetch_k must be"),
                         ({"lambda_mult": 1.5}, "lambda_mult must be a number between 0 and 1")):
        with pytest.raises(InvalidArgumentError, match=message):
            store.similarity_search("refund", k=1, **bad)
        with pytest.raises(InvalidArgumentError, match=message):
            store.max_marginal_relevance_search("refund", k=1, **bad)


def test_fetch_k_is_the_first_candidate_pool_of_a_callable_filter(table_embeddings):
    n = 100
    table = {f"doc {i}": [1.0, i / n] for i in range(n)}
    store = LichenVectorStore(table_embeddings(table, default=[1.0, 0.0]))
    store.add_texts(list(table), [{"i": i} for i in range(n)], ids=[str(i) for i in range(n)])
    seen: list[str] = []

    def tail(doc: Document) -> bool:
        seen.append(doc.id)
        return doc.metadata["i"] >= n - 2

    assert ids(store.similarity_search("q", k=2, filter=tail, fetch_k=n)) == ["98", "99"]
    assert len(seen) == n  # one round of exactly fetch_k candidates
    seen.clear()
    assert ids(store.similarity_search("q", k=2, filter=tail)) == ["98", "99"]
    assert len(seen) > n  # the default starts small and widens


# ---------------------------------------------------------------------- where_document
async def test_where_document_filters_the_text(store):
    assert ids(store.similarity_search("refund", k=4, where_document={"$contains": "refund"})) == ["t3"]
    hits = store.similarity_search("refund", k=4, where_document={"$icontains": "REFUND"})
    assert set(ids(hits)) == {"t1", "t3"}
    hits = await store.asimilarity_search(
        "refund", k=4, filter={"user.tier": "gold"}, where_document={"$not_contains": "password"}
    )
    assert ids(hits) == ["t1"]
    hits = store.similarity_search(
        "refund", k=4, filter=lambda doc: doc.id != "t1", where_document={"$or": [{"$regex": "order \\d+"}, {"$contains": "Refund"}]}
    )
    assert ids(hits) == ["t3"]
    mmr = store.max_marginal_relevance_search("refund", k=2, where_document={"$regex": "(?i)refund"})
    assert set(ids(mmr)) == {"t1", "t3"}
    relevance = store.similarity_search_with_relevance_scores("refund", k=4, where_document={"$contains": "twice"})
    assert ids(doc for doc, _ in relevance) == ["t4"]
    retriever = store.as_retriever(search_kwargs={"k": 4, "where_document": {"$contains": "password"}})
    assert ids(retriever.invoke("anything")) == ["t2"]


def test_filter_dicts_can_test_the_text_directly(store):
    hits = store.similarity_search("refund", k=4, filter={"team": "billing", "$document": {"$contains": "order"}})
    assert ids(hits) == ["t3"]
    retriever = LichenRetriever(index=store.index, k=4, filter={"$document": {"$icontains": "label"}})
    assert ids(retriever.invoke("anything")) == ["t4"]


# ---------------------------------------------------------------------- paging
async def test_get_documents_pages_in_stable_insertion_order(store):
    assert ids(store.get_documents(limit=2)) == ["t1", "t2"]
    assert ids(store.get_documents(limit=2, offset=2)) == ["t3", "t4"]
    assert store.get_documents(offset=4) == []
    store.add_documents([Document(page_content="updated", metadata={"team": "billing"})], ids=["t2"])
    assert ids(await store.aget_documents(limit=3)) == ["t1", "t2", "t3"]
    assert ids(store.get_documents(filter={"team": "billing"}, offset=1)) == ["t2", "t3"]
    assert ids(store.get_documents(["t4", "t1", "zz"], limit=1)) == ["t4"]
    assert ids(store.get_documents(where_document={"$contains": "refund"})) == ["t3"]
    with pytest.raises(InvalidArgumentError, match="limit must be"):
        store.get_documents(limit=-1)
    with pytest.raises(InvalidArgumentError, match="dict filter"):
        store.get_documents(filter=lambda doc: True)


# ---------------------------------------------------------------------- nested metadata
async def test_nested_metadata_round_trips_and_filters_by_dotted_path(store):
    (doc,) = store.get_by_ids(["t1"])
    assert doc.metadata == TICKETS[0].metadata
    assert ids(store.similarity_search("refund", k=4, filter={"user.tier": "gold"})) == ["t1"]
    assert set(ids(await store.asimilarity_search("help", k=4, filter={"user.id": {"$gte": 8}}))) == {"t2", "t3"}
    assert ids(store.get_documents(filter={"user": {"$exists": False}})) == ["t4"]


def test_context_retriever_filters_nested_metadata(client):
    session = client.session_sync("tickets")
    store = LichenVectorStore(index=session)
    store.add_documents(TICKETS, ids=["t1", "t2", "t3", "t4"])
    retriever = LichenContextRetriever(session=session, k=4, filter={"user.tier": "free"})
    assert {doc.id for doc in retriever.invoke("refund")} == {"t2", "t3"}


# ---------------------------------------------------------------------- relevance thresholds
def test_the_relevance_scale_and_its_threshold_conversion_lead_the_class_docstring():
    """Someone bringing a cosine-tuned ``score_threshold`` reads, before Setup, that the
    scale is ``(1 + cosine) / 2`` and how to convert; an example section shows it."""
    doc = LichenVectorStore.__doc__ or ""
    summary = doc.split("Setup:", 1)[0]
    assert "(1 + cosine) / 2" in summary and "score_threshold" in summary and "cosine_relevance" in summary
    example = doc.split("Relevance scores and thresholds:", 1)[1].split("```", 2)[1]
    assert "score_threshold" in example and "cosine_relevance(0.7)" in example


async def test_a_converted_cosine_threshold_keeps_exactly_the_documents_at_that_cosine(store):
    from lichen.scores import cosine_relevance

    cosines = dict((doc.id, score) for doc, score in store.similarity_search_with_score("refund for a charge", k=4))
    cut = sorted(cosines.values())[1]  # keeps three of the four
    kept = store.similarity_search_with_relevance_scores("refund for a charge", k=4, score_threshold=cosine_relevance(cut))
    assert {doc.id for doc, _ in kept} == {i for i, c in cosines.items() if c >= cut} and len(kept) == 3
    for doc, relevance in kept:
        assert relevance == pytest.approx((1 + cosines[doc.id]) / 2)
    retriever = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"k": 4, "score_threshold": cosine_relevance(cut)})
    assert {doc.id for doc in await retriever.ainvoke("refund for a charge")} == {doc.id for doc, _ in kept}
