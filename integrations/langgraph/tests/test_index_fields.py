"""A store opened with other ``index`` fields than its vectors were built from says so:
items put from then on would be embedded from other text than the stored ones, and a
search would rank the two kinds against each other without anyone noticing."""

from __future__ import annotations

import warnings

import pytest
from langgraph.store.lichen import LichenStore
from lichen import Client

USER = ("memories", "user-1")


def test_opening_with_other_fields_than_the_vectors_were_built_from_warns(lichen_home):
    store = LichenStore.open(Client(home=lichen_home), "memories", index={"fields": ["text"]})
    store.put(USER, "food", {"text": "Allergic to peanuts", "kind": "health"})
    store.push()

    with pytest.warns(UserWarning, match=r"built from index fields \['text'\], but this store embeds \['\$'\]"):
        LichenStore.open(Client(home=lichen_home), "memories")  # the default fields: the whole value
    with pytest.warns(UserWarning, match=r"index=\{'fields': \['text'\]\}"):
        LichenStore(store.session, index={"fields": ["kind", "text"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = LichenStore.open(Client(home=lichen_home), "memories", index={"fields": ["text"]})
    assert [hit.key for hit in again.search(USER, query="peanut allergy")] == ["food"]


def test_what_is_recorded_is_what_the_store_embedded_with(lichen_home):
    client = Client(home=lichen_home)
    store = LichenStore.open(client, "memories", index={"fields": ["text"]})
    store.put(USER, "raw", {"text": "not embedded"}, index=False)
    store.put(USER, "own", {"text": "x", "title": "per-item fields"}, index=["title"])
    store.push()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing was embedded with the store's fields: nothing to compare
        other = LichenStore.open(Client(home=lichen_home), "memories", index={"fields": ["title"]})
    other.put(USER, "new", {"title": "embedded from title"})  # now the vectors come from ["title"]
    other.push()
    with pytest.warns(UserWarning, match=r"built from index fields \['title'\]"):
        LichenStore.open(Client(home=lichen_home), "memories", index={"fields": ["text"]})
    assert sorted(other.list_namespaces()) == [USER] and len(other.search(USER)) == 3  # the record is no item
