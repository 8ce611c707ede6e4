"""LichenStore through LangGraph's own BaseStore methods: items, semantic search with
filters, namespaces, batches, persistence, async, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp
from langgraph.store.lichen import LichenStore
from lichen import Client, InvalidArgumentError, LichenError, LimitExceededError

USER = ("memories", "user-1")

MEMORIES = {
    "food": {"text": "Allergic to peanuts and shellfish", "kind": "health", "stars": 5},
    "pet": {"text": "Has a golden retriever called Biscuit", "kind": "family", "stars": 3},
    "work": {"text": "Works night shifts as a nurse", "kind": "work", "stars": 4},
    "music": {"text": "Plays jazz piano on weekends", "kind": "hobby", "stars": 2},
}


def put_memories(store: LichenStore, namespace=USER) -> None:
    for key, value in MEMORIES.items():
        store.put(namespace, key, value)


def test_put_get_update_delete_round_trip(store):
    value = {"text": "Prefers email", "nested": {"channel": ["email", "sms"], "n": 1.5}, "flag": None}
    store.put(USER, "contact", value)
    item = store.get(USER, "contact")
    assert (item.namespace, item.key, item.value) == (USER, "contact", value)
    assert item.created_at == item.updated_at and item.created_at.tzinfo == timezone.utc
    assert store.get(USER, "missing") is None and store.get(("other",), "contact") is None

    store.put(USER, "contact", {"text": "Prefers phone calls"})
    updated = store.get(USER, "contact")
    assert updated.value == {"text": "Prefers phone calls"}
    assert updated.created_at == item.created_at and updated.updated_at > item.updated_at

    store.delete(USER, "contact")
    assert store.get(USER, "contact") is None
    assert store.session.get_docs_sync(filter={"lg:kind": {"$in": ["item", "vector"]}}) == []  # the record and its vector are gone
    store.delete(USER, "contact")  # deleting what is not there is a no-op


def test_semantic_search_ranks_by_meaning_within_the_namespace_prefix(store):
    put_memories(store)
    put_memories(store, ("memories", "user-2"))
    hits = store.search(USER, query="which foods is the user allergic to?", limit=4)
    assert [hit.key for hit in hits][0] == "food"
    assert {hit.namespace for hit in hits} == {USER}
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    # The whole prefix: both users, best first.
    both = store.search(("memories",), query="dog", limit=2)
    assert {(h.namespace[1], h.key) for h in both} == {("user-1", "pet"), ("user-2", "pet")}
    assert both[0].score == pytest.approx(both[1].score)


def test_search_filters_on_value_fields_with_and_without_a_query(store):
    put_memories(store)
    assert [h.key for h in store.search(USER, query="dog", filter={"kind": "work"})] == ["work"]
    assert {h.key for h in store.search(USER, filter={"stars": {"$gte": 4}})} == {"food", "work"}
    assert {h.key for h in store.search(USER, filter={"stars": {"$gt": 2, "$lt": 5}})} == {"pet", "work"}
    assert {h.key for h in store.search(USER, filter={"kind": {"$ne": "health"}, "stars": {"$lte": 3}})} == {"pet", "music"}
    assert store.search(USER, query="dog", filter={"kind": "nothing"}) == []
    # Lichen operators beyond LangGraph's six work too.
    assert {h.key for h in store.search(USER, filter={"kind": {"$in": ["hobby", "family"]}})} == {"pet", "music"}


def test_search_without_query_returns_the_most_recently_updated_first_and_pages(store):
    put_memories(store)
    store.put(USER, "food", {**MEMORIES["food"], "stars": 1})  # updated last
    keys = [h.key for h in store.search(USER, limit=10)]
    assert keys[0] == "food" and sorted(keys) == sorted(MEMORIES)
    pages = [h.key for offset in range(0, 4, 2) for h in store.search(USER, limit=2, offset=offset)]
    assert pages == keys
    assert all(h.score is None for h in store.search(USER))


def test_query_pages_are_disjoint_and_in_score_order(store):
    put_memories(store)
    everything = store.search(USER, query="family pets", limit=10)
    paged = store.search(USER, query="family pets", limit=2) + store.search(USER, query="family pets", limit=2, offset=2)
    assert [h.key for h in paged] == [h.key for h in everything]
    assert store.search(USER, query="family pets", limit=0) == []


def test_items_with_several_vectors_rank_once_by_their_best_vector(store):
    store.put(USER, "trip", {"notes": ["Booked a hotel in Lisbon", "Allergic to cats", "Flight at 7am"]}, index=["notes[*]"])
    store.put(USER, "other", {"notes": ["Likes hiking"]}, index=["notes[*]"])
    hits = store.search(USER, query="cat allergy", limit=5)
    assert [h.key for h in hits] == ["trip", "other"]  # one hit per item...
    query, (best,) = store.session.embed_query("cat allergy"), store.session.embed_texts(["Allergic to cats"])
    assert hits[0].score == pytest.approx(float(query @ best), abs=1e-5)  # ...scored by its best vector
    assert store.session.doc_count == 2 + 4  # two records, four vectors
    # Re-putting with fewer texts removes the vectors that are no longer there.
    store.put(USER, "trip", {"notes": ["Flight at 7am"]}, index=["notes[*]"])
    assert store.session.doc_count == 2 + 2
    assert store.search(USER, query="morning flight", limit=1)[0].key == "trip"


def test_unindexed_items_come_after_scored_ones(store):
    put_memories(store)
    store.put(USER, "secret", {"text": "peanut butter recipe"}, index=False)
    hits = store.search(USER, query="peanut", limit=10)
    assert [h.key for h in hits][-1] == "secret" and hits[-1].score is None
    assert all(h.score is not None for h in hits[:-1])
    assert store.get(USER, "secret").value == {"text": "peanut butter recipe"}


def test_list_namespaces_prefix_suffix_wildcards_depth_and_paging(store):
    for namespace in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"), ("x",)]:
        store.put(namespace, "k", {"text": "t"}, index=False)
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    store.delete(("x",), "k")
    assert ("x",) not in store.list_namespaces()


def test_a_batch_reads_before_it_writes_and_the_last_put_wins(store):
    store.put(USER, "k", {"text": "old"})
    results = store.batch([
        PutOp(USER, "k", {"text": "first"}),
        GetOp(USER, "k"),
        PutOp(USER, "k", {"text": "second"}),
        SearchOp(USER, query="second"),
    ])
    assert results[1].value == {"text": "old"} and [h.value for h in results[3]] == [{"text": "old"}]
    assert store.get(USER, "k").value == {"text": "second"}
    assert store.session.doc_count == 2 + 1  # one record, one vector (and the index config): nothing left of "first"


def test_push_and_reopen_resumes_items_vectors_and_namespaces(store, client, lichen_home):
    put_memories(store)
    before = store.search(USER, query="dog", limit=4)
    assert store.push().version == 1
    reopened = LichenStore.open(Client(home=lichen_home), "memories", index={"fields": ["text"]})
    assert reopened.list_namespaces() == [USER]
    after = reopened.search(USER, query="dog", limit=4)
    assert [(h.key, h.value, h.score, h.created_at) for h in after] == [(h.key, h.value, h.score, h.created_at) for h in before]


def test_threads_writing_at_once_lose_nothing(store):
    def writer(n: int) -> None:
        for i in range(10):
            store.put(("t", str(n)), f"k{i}", {"text": f"note {i} from {n}"}, index=False)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.list_namespaces() == [("t", str(n)) for n in range(4)]
    assert len(store.search(("t",), limit=100)) == 40 and store.session.doc_count == 40


async def test_async_faces_run_the_same_store_off_the_event_loop(store):
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = store.session.add_docs_sync

    def spy(docs):
        seen.append(threading.get_ident())
        return original(docs)

    store.session.add_docs_sync = spy
    await asyncio.gather(*(store.aput(USER, key, value) for key, value in MEMORIES.items()))
    assert seen and loop_thread not in seen
    assert (await store.aget(USER, "pet")).value == MEMORIES["pet"]
    assert [h.key for h in await store.asearch(USER, query="peanuts", limit=1)] == ["food"]
    assert await store.alist_namespaces() == [USER]
    await store.adelete(USER, "pet")
    assert await store.aget(USER, "pet") is None
    assert (await store.apush()).doc_count == 6 + 1  # three records and their vectors, and the index config


class HashEmbeddings:
    """Deterministic 8-d vectors from character counts: a stand-in for a custom model."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [[float(text.count(c)) + 0.01 for c in "aeiourst"] for text in texts]


def test_custom_model_sessions_embed_with_the_given_function(client):
    embed = HashEmbeddings()
    store = LichenStore(client.session_sync("custom-mem", model_id="custom"), index={"embed": embed, "dims": 8, "fields": ["text"]})
    store.put(USER, "a", {"text": "aaaa"})
    store.put(USER, "b", {"text": "ssss"})
    assert [h.key for h in store.search(USER, query="sss")] == ["b", "a"] and embed.calls == 3
    with pytest.raises(InvalidArgumentError, match="custom"):
        LichenStore(client.session_sync("custom-2", model_id="custom"))


async def test_custom_async_embedding_function(client):
    async def aembed(texts: list[str]) -> list[list[float]]:
        return HashEmbeddings()(texts)

    store = LichenStore(client.session_sync("custom-async", model_id="custom"), index={"embed": aembed, "dims": 8, "fields": ["text"]})
    await store.aput(USER, "a", {"text": "aaaa"})
    await store.aput(USER, "b", {"text": "tttt"})
    assert [h.key for h in await store.asearch(USER, query="tt")] == ["b", "a"]


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, error",
    [
        (lambda s: s.put(USER, "k", ["not", "a", "dict"]), InvalidArgumentError),
        (lambda s: s.put(USER, "k", {"when": datetime.now()}), InvalidArgumentError),
        (lambda s: s.put(USER, "k", {1: "non-string key"}), InvalidArgumentError),
        (lambda s: s.put(USER, "k", {"text": "x" * (1 << 20)}), LimitExceededError),
        (lambda s: s.put((), "k", {"text": "x"}), InvalidNamespaceError),
        (lambda s: s.put(("a.b",), "k", {"text": "x"}), InvalidNamespaceError),
        (lambda s: s.put(("langgraph",), "k", {"text": "x"}), InvalidNamespaceError),
        (lambda s: s.put(USER, "k", {"text": "x"}, ttl=-5), InvalidArgumentError),
        (lambda s: s.put(USER, "k", {"text": "x"}, ttl="5"), InvalidArgumentError),
        (lambda s: s.put(USER, "k", {"text": "x"}, index="text"), InvalidArgumentError),
        (lambda s: s.batch([PutOp(USER, "", {"text": "x"})]), InvalidArgumentError),
        (lambda s: s.batch([PutOp(USER, "ok", {"text": "x"}), PutOp(USER, "big", {"text": "x" * (1 << 20)})]), LimitExceededError),
        (lambda s: s.search(USER, filter={"profile": {"name": "Ann"}}), InvalidArgumentError),
        (lambda s: s.search(USER, filter={"stars": {"$regex": "x"}}), InvalidArgumentError),
        (lambda s: s.search(USER, filter=["stars"]), InvalidArgumentError),
        (lambda s: s.search(USER, query="x", limit=-1), InvalidArgumentError),
        (lambda s: s.batch([SearchOp(USER, query=3)]), InvalidArgumentError),
        (lambda s: s.batch([PutOp(USER, "k", {"text": "x"}), "not an op"]), InvalidArgumentError),
        (lambda s: s.list_namespaces(max_depth=-1), InvalidArgumentError),
    ],
)
def test_bad_input_raises_a_clear_error_and_changes_nothing(store, stored_state, call, error):
    put_memories(store)
    before, namespaces = stored_state(store), store.list_namespaces()
    with pytest.raises(error):
        call(store)
    assert stored_state(store) == before and store.list_namespaces() == namespaces
    if error is not InvalidNamespaceError:
        assert issubclass(error, LichenError)


def test_unknown_index_options_and_dimension_mismatch_are_refused(client):
    with pytest.raises(InvalidArgumentError, match="unknown index option"):
        LichenStore.open(client, "m", index={"feilds": ["text"]})
    with pytest.raises(InvalidArgumentError, match="dims"):
        LichenStore.open(client, "m", index={"dims": 1536})
