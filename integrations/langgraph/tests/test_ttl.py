"""TTL as LangGraph's Postgres and Redis stores offer it: ``supports_ttl``, ``put(...,
ttl=minutes)``, the expiry restarted by reads (``refresh_ttl``, the TTLConfig's
``refresh_on_read``), ``default_ttl``, ``omit_expired``, and sweeps (``sweep_ttl``, a
background ``start_ttl_sweeper``). Time is a clock the tests move, not sleeps."""

from __future__ import annotations

import time

import pytest
from langgraph.store.base import BaseStore
from langgraph.store.lichen import LichenStore, _records
from lichen import Client, InvalidArgumentError

USER = ("memories", "user-1")


@pytest.fixture
def clock(monkeypatch):
    """``clock.now``: the time the store sees, in seconds; tests move it forward."""

    class Clock:
        now = 1_000_000.0

        def minutes(self, n: float) -> None:
            self.now += n * 60

    fake = Clock()
    monkeypatch.setattr(_records, "epoch", lambda: fake.now)
    return fake


def keys(store: LichenStore, namespace=USER) -> list[str]:
    return sorted(item.key for item in store.search(namespace, limit=100))


def test_items_put_with_a_ttl_expire_and_are_swept_with_their_vectors(client, clock):
    store = LichenStore.open(client, "memories", index={"fields": ["text"]})
    assert store.supports_ttl is True
    store.put(USER, "short", {"text": "Parked on level 3"}, ttl=10)
    store.put(USER, "long", {"text": "Allergic to peanuts"}, ttl=60)
    store.put(USER, "forever", {"text": "Name is Ann"})
    store.put(("other",), "gone", {"text": "temporary note"}, ttl=1)
    clock.minutes(11)
    assert store.get(USER, "short", refresh_ttl=False) is not None  # expired, still there until swept (as Postgres)
    assert store.sweep_ttl() == 2
    assert store.get(USER, "short") is None and keys(store) == ["forever", "long"]
    assert store.list_namespaces() == [USER]  # the namespace emptied by the sweep is gone
    items_and_vectors = store.session.get_docs_sync(filter={_records.KIND: {"$ne": _records.CONFIG}})
    assert sorted(doc.id.rsplit("#", 1)[0] for doc in items_and_vectors) == sorted(
        _records.record_id(USER, k) for k in ["forever", "forever", "long", "long"]
    )  # no vector of a swept item is left
    assert store.sweep_ttl() == 0


def test_reads_restart_the_ttl_unless_told_not_to(client, clock):
    store = LichenStore.open(client, "memories", index={"fields": ["text"]})
    for key in ("read", "searched", "unread", "peeked"):
        store.put(USER, key, {"text": f"{key} memory"}, ttl=10)
    clock.minutes(8)
    store.get(USER, "read")
    store.get(USER, "peeked", refresh_ttl=False)
    assert [hit.key for hit in store.search(USER, query="searched memory", limit=1)] == ["searched"]
    before = store.get(USER, "read", refresh_ttl=False)
    clock.minutes(8)  # 16 minutes after the puts, 8 after the reads
    assert store.sweep_ttl() == 2 and keys(store) == ["read", "searched"]
    after = store.get(USER, "read", refresh_ttl=False)
    assert after.updated_at == before.updated_at and after.created_at == before.created_at  # reading is not updating


async def test_the_ttl_config_sets_defaults_and_omit_expired_hides_expired_items(client, clock):
    store = LichenStore.open(
        client, "memories", index={"fields": ["text"]}, ttl={"default_ttl": 5, "refresh_on_read": False, "omit_expired": True}
    )
    assert store.ttl_config["default_ttl"] == 5
    store.put(USER, "default", {"text": "gets the default TTL"})
    store.put(USER, "none", {"text": "explicitly no TTL"}, ttl=None)
    await store.aput(USER, "async", {"text": "async put, own TTL"}, ttl=20)
    clock.minutes(4)
    assert store.get(USER, "default") is not None  # refresh_on_read=False: this read does not restart it
    clock.minutes(2)
    assert store.get(USER, "default") is None  # expired: omitted before any sweep
    assert keys(store) == ["async", "none"] and await store.asearch(USER, query="default TTL", limit=5)
    assert store.get(USER, "default", refresh_ttl=True) is None
    assert await store.asweep_ttl() == 0  # omitted means gone already


def test_the_expiry_is_stored_with_the_index_and_survives_push_and_open(client, lichen_home, clock):
    store = LichenStore.open(client, "memories")
    store.put(USER, "short", {"text": "x"}, ttl=1)
    store.put(USER, "kept", {"text": "y"})
    store.push()
    reopened = LichenStore.open(Client(home=lichen_home), "memories")
    clock.minutes(2)
    assert reopened.sweep_ttl() == 1 and keys(reopened) == ["kept"]


def test_the_background_sweeper_sweeps_until_stopped(client, clock):
    store = LichenStore.open(client, "memories", ttl={"sweep_interval_minutes": 0.0005})  # every 30 ms
    store.put(USER, "short", {"text": "x"}, ttl=1)
    future = store.start_ttl_sweeper()
    clock.minutes(2)
    deadline = time.monotonic() + 5
    while store.get(USER, "short", refresh_ttl=False) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.get(USER, "short") is None
    assert store.stop_ttl_sweeper(timeout=5) is True and future.result(timeout=5) is None
    assert LichenStore.open(client, "other").start_ttl_sweeper().done()  # no TTLConfig: nothing to sweep


@pytest.mark.parametrize(
    "ttl, message",
    [
        ({"default_ttl": 0}, "positive number of minutes"),
        ({"default_tll": 5}, "unknown ttl option"),
        ({"omit_expired": "yes"}, "True or False"),
        ([("default_ttl", 5)], "TTLConfig dict"),
    ],
)
def test_bad_ttl_configs_are_refused(client, ttl, message):
    with pytest.raises(InvalidArgumentError, match=message):
        LichenStore.open(client, "memories", ttl=ttl)


def test_base_store_passes_ttl_through_instead_of_refusing_it(client):
    store = LichenStore.open(client, "memories")
    assert isinstance(store, BaseStore)
    store.put(USER, "k", {"text": "x"}, ttl=5)  # BaseStore.put raised for stores without TTL
    assert store.session.get_docs_sync(ids=[_records.record_id(USER, "k")])[0].metadata[_records.TTL] == 5.0
