"""Graph edits a server defers to the next reader (format 4): what a merge or delete
writes down, how a reader applies it, and what it refuses."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import orjson
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_approximate import assert_graph_matches_scan, clustered, core_with, make_docs

import lichen.format.graph_edits as edits_module
from lichen import CorruptDataError, DocumentInfo
from lichen.engine.core import IndexCore
from lichen.engine.graph import VectorGraph
from lichen.format.artifact import ALIGNMENT, encode_artifact, read_artifact, read_manifest
from lichen.format.snapshot import IndexSnapshot
from lichen.server.service import merge_upsert, remove_docs

HEADER = struct.Struct("<8sIIQ16s")


def stored(count: int = 100, seed: int = 30) -> tuple[IndexSnapshot, np.ndarray]:
    """A pushed index with its graph, as a server holds it."""
    core, vectors = core_with(count, seed=seed, approximate=True)
    return read_artifact(encode_artifact(core.snapshot("g", "custom")).to_bytes()), vectors


def batch(docs: list[DocumentInfo], vectors: np.ndarray) -> IndexSnapshot:
    core = IndexCore(approximate=False)
    core.upsert(docs, vectors)
    return core.snapshot("g", "custom")


def reload(snapshot: IndexSnapshot) -> IndexCore:
    """Through the bytes, as the next reader gets them."""
    return IndexCore.from_snapshot(read_artifact(encode_artifact(snapshot).to_bytes()), approximate=True)


def forbid_rebuilds(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the graph was rebuilt")

    monkeypatch.setattr(VectorGraph, "build", refuse)


def test_merges_and_deletes_write_down_their_edits_for_the_next_reader(monkeypatch):
    current, _ = stored()
    forbid_rebuilds(monkeypatch)
    added, moved = clustered(10, seed=31), clustered(5, seed=32)
    merged, n_added, n_updated = merge_upsert(
        current, batch(make_docs(10, start=100) + make_docs(5, start=20), np.vstack([added, moved]))
    )
    assert (n_added, n_updated) == (10, 5)
    kept, deleted = remove_docs(merged, {"d3", "d4", "d105"})
    assert deleted == 3
    # Replaced keys (20-24) leave and re-enter; deleted ones (3, 4) leave; an added then
    # deleted document (key 105) leaves a removal the graph ignores and no insertion.
    assert kept.graph_removals.tolist() == [3, 4, 20, 21, 22, 23, 24, 105]
    assert kept.graph_insertions.tolist() == [20, 21, 22, 23, 24, *range(100, 105), *range(106, 110)]
    assert bytes(kept.graph) == bytes(current.graph)  # the server never touches the graph
    assert read_manifest(encode_artifact(kept).to_bytes()).format_version == 4

    loaded = reload(kept)
    # The load copies nothing: removals are written down on the mapped graph, the
    # inserted rows scored exactly until the indexer puts them in (on another thread).
    with loaded._lock:
        assert loaded.has_graph and set(loaded.unindexed_keys().tolist()) <= set(kept.graph_insertions.tolist())
    queries = np.vstack([clustered(10, seed=33), added, moved])
    assert_graph_matches_scan(loaded, queries)
    assert loaded.has_graph and len(loaded) == 107
    for i, vector in enumerate(moved):
        assert loaded.search(vector, "", top_k=1)[0].id == f"d{20 + i}"


def test_a_write_after_load_applies_the_pending_edits_first(monkeypatch):
    current, vectors = stored()
    forbid_rebuilds(monkeypatch)
    merged, _, _ = merge_upsert(current, batch(make_docs(4, start=100), clustered(4, seed=34)))
    loaded = reload(merged)
    fresh = clustered(6, seed=35)
    loaded.upsert(make_docs(6, start=200), fresh)  # new keys after the server's
    loaded.delete(["d0", "d101"])
    assert loaded.has_graph and len(loaded) == 108
    assert_graph_matches_scan(loaded, np.vstack([clustered(5, seed=36), fresh, vectors[:3]]))
    again = reload(loaded.snapshot("g", "custom"))  # the client writes a clean graph back
    assert again.has_graph and again.snapshot("g", "custom").graph_removals is None
    assert_graph_matches_scan(again, fresh)


def test_edits_beyond_the_limits_drop_the_graph(monkeypatch):
    current, _ = stored()
    merged, _, _ = merge_upsert(current, batch(make_docs(40, start=100), clustered(40, seed=37)))
    assert merged.graph is None and merged.keys is None  # 40 insertions > 25% of 140
    monkeypatch.setattr(edits_module, "MAX_DEFERRED_KEYS", 3)
    kept, _ = remove_docs(current, {"d1", "d2", "d3", "d4"})
    assert kept.graph is None and kept.graph_removals is None


def test_edits_that_do_not_fit_the_graph_are_refused_before_anything_is_applied():
    current, _ = stored()
    cases = {
        # the graph already holds key 7 and nothing removes it first
        "already holds": {"graph_insertions": np.array([7], np.uint64)},
        # removing a live key without re-inserting it leaves 99 nodes for 100 documents
        "would hold 99 documents": {"graph_removals": np.array([7], np.uint64)},
    }
    for message, fields in cases.items():
        edited = dataclasses.replace(current, **fields)
        with pytest.raises(CorruptDataError, match=message):
            IndexCore.from_snapshot(edited)
    outside = dataclasses.replace(current, graph_removals=np.array([200], np.uint64),
                                  graph_insertions=np.array([200], np.uint64))
    with pytest.raises(CorruptDataError, match="keys the index does not hold"):
        read_artifact(encode_artifact(outside).to_bytes())


def rewritten(data: bytes, change, version: int) -> bytes:
    """``data`` with its manifest edited by ``change`` and the header saying ``version``
    (the body, whose offsets count from its own start, moves as is)."""
    magic, _, reserved, length, _ = HEADER.unpack_from(data)
    manifest = orjson.loads(data[HEADER.size : HEADER.size + length])
    body = data[-(-(HEADER.size + length) // ALIGNMENT) * ALIGNMENT :]
    change(manifest)
    manifest["format_version"] = version
    mb = orjson.dumps(manifest)
    head = HEADER.pack(magic, version, reserved, len(mb), xxhash.xxh3_128_digest(mb)) + mb
    return head + bytes(-len(head) % ALIGNMENT) + body


def test_a_format_3_artifact_cannot_carry_edits_and_lists_must_ascend():
    current, _ = stored()
    merged, _, _ = merge_upsert(current, batch(make_docs(2, start=100), clustered(2, seed=38)))
    data = encode_artifact(merged).to_bytes()
    assert read_artifact(data).graph_insertions.tolist() == [100, 101]
    with pytest.raises(CorruptDataError, match="format 3 has no 'graph_insertions'"):
        read_artifact(rewritten(data, lambda m: None, version=3))
    with pytest.raises(CorruptDataError, match="'graph_insertions' is not strictly ascending"):
        read_artifact(rewritten(data, lambda m: m.update(graph_insertions=[101, 100]), version=4))
    with pytest.raises(CorruptDataError, match="'graph_removals' is not a list of keys"):
        read_artifact(rewritten(data, lambda m: m.update(graph_removals=[-1]), version=4))
    with pytest.raises(ValueError, match="strictly ascending"):
        encode_artifact(dataclasses.replace(merged, graph_insertions=np.array([101, 100], np.uint64)))


_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 6)),
        st.tuples(st.just("update"), st.lists(st.integers(0, 200), min_size=1, max_size=5)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 200), min_size=1, max_size=5)),
        st.tuples(st.just("push"), st.just(0)),  # a client loads, applies, pushes back
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=_OPERATIONS, seed=st.integers(0, 2**16))
def test_any_sequence_of_server_changes_and_pushes_leaves_a_graph_equal_to_the_scan(operations, seed):
    current, _ = stored(60, seed=40)
    vectors = {doc_id: current.matrix[i] for i, doc_id in enumerate(current.ids)}
    rng = np.random.default_rng(seed)
    next_id = 1000
    for kind, argument in operations:
        ids = list(current.ids)
        if kind == "add" and len(ids) + argument <= 120:
            docs = make_docs(argument, start=next_id)
            next_id += argument
        elif kind == "update":
            docs = [make_docs(1, start=int(ids[i % len(ids)][1:]))[0] for i in dict.fromkeys(argument)] if ids else []
        elif kind == "delete" and len(ids) > 10:
            kept, _ = remove_docs(current, {ids[i % len(ids)] for i in argument})
            current = read_artifact(encode_artifact(kept).to_bytes())
            continue
        elif kind == "push":
            current = read_artifact(encode_artifact(reload(current).snapshot("g", "custom")).to_bytes())
            continue
        else:
            continue
        fresh = clustered(len(docs), seed=int(rng.integers(2**31)))
        vectors.update({doc.id: v for doc, v in zip(docs, fresh)})
        current, _, _ = merge_upsert(current, batch(docs, fresh))
        current = read_artifact(encode_artifact(current).to_bytes())
    loaded = reload(current)
    live = np.stack([vectors[doc_id] for doc_id in current.ids])
    assert_graph_matches_scan(loaded, np.vstack([live[:: max(1, len(live) // 8)], clustered(4, seed=seed)]))
    assert loaded.has_graph and len(loaded) == len(current.ids)
