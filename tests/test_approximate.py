"""Approximate (graph) search: equal to exact where it must be, close to it where it may
differ, consistent through writes, and stored in (and refused from) the artifact.

Vectors are seeded synthetic ones: these tests are about the engine, not the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from filter_reference import reference_match
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lichen.engine.core as engine_module
from lichen import Client, CorruptDataError, DocumentInfo, QueryOptions, SessionIndex
from lichen.engine.core import APPROXIMATE_THRESHOLD, IndexCore
from lichen.engine.graph import VectorGraph
from lichen.format.artifact import read_artifact, read_artifact_file, read_manifest, write_artifact_file

FIXTURES = Path(__file__).parent / "fixtures"
DIM = 32


def clustered(count: int, seed: int, dim: int = DIM, clusters: int = 1000) -> np.ndarray:
    """Unit vectors around fixed random centres (documents and queries alike): the shape
    of real embeddings (topics), unlike uniform noise, where every point is about as far
    from every other and no index beats a scan."""
    centres = np.random.default_rng(0).standard_normal((clusters, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, clusters, count)] + 0.5 * rng.standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_docs(count: int, start: int = 0) -> list[DocumentInfo]:
    return [
        DocumentInfo(
            id=f"d{i}",
            text=f"passage {i} about topic{i % 7}",
            metadata={"group": i % 10, "tier": ["gold", "silver", "bronze"][i % 3], "even": i % 2 == 0},
        )
        for i in range(start, start + count)
    ]


def ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def core_with(count: int, seed: int = 0, *, approximate: bool | None = None) -> tuple[IndexCore, np.ndarray]:
    vectors = clustered(count, seed)
    core = IndexCore(approximate=approximate)
    core.upsert(make_docs(count), vectors)
    return core, vectors


def test_below_the_threshold_search_is_exact_and_builds_no_graph():
    core, vectors = core_with(500)
    queries = clustered(20, seed=9)
    for query in queries:
        assert not core.uses_graph()
        hits = core.search(query, "", top_k=10)
        exact = core.search(query, "", top_k=10, exact=True)
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in exact]
    assert not core.has_graph


def test_forced_graph_on_a_small_index_returns_exactly_the_exact_results():
    # 60 documents fit in the re-ranked pool (RERANK_FLOOR), so the graph must hand back
    # all of them and the exact re-rank makes ids and scores identical to the scan.
    assert 60 <= engine_module.RERANK_FLOOR <= engine_module.CANDIDATE_FLOOR
    core, _ = core_with(60, approximate=True)
    for query in clustered(20, seed=3):
        hits = core.search(query, "", top_k=10)
        exact = core.search(query, "", top_k=10, exact=True)
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in exact]
    assert core.has_graph


def test_seeded_50k_set_reaches_the_recall_target():
    core, vectors = core_with(APPROXIMATE_THRESHOLD, seed=1)
    assert core.uses_graph()
    assert core.wait_for_graph(timeout=600)  # built on another thread; queries scanned meanwhile
    queries = clustered(50, seed=2)
    recalls = []
    for query in queries:
        hits = core.search(query, "", top_k=10)
        exact = core.search(query, "", top_k=10, exact=True)
        recalls.append(len(set(ids(hits)) & set(ids(exact))) / 10)
        # Scores are re-ranked exactly: each returned score is the true cosine.
        assert all(abs(h.score - float(vectors[int(h.id[1:])] @ query)) < 1e-5 for h in hits)
    assert core.has_graph
    assert np.mean(recalls) >= 0.99, recalls


def test_query_options_exact_and_session_setting_pick_the_path():
    session = SessionIndex("big", model_id="custom", dimension=DIM)
    vectors = clustered(400, seed=4)
    session.add_docs_sync(
        [DocumentInfo(id=d.id, text=d.text, metadata=d.metadata, embedding=v.tolist()) for d, v in zip(make_docs(400), vectors)]
    )
    query = clustered(1, seed=5)[0].tolist()
    session.query_sync("", QueryOptions(top_k=5, embedding=query))
    assert not session.core.has_graph  # small: exact
    session.approximate = True
    approximate = session.query_sync("", QueryOptions(top_k=5, embedding=query))
    assert session.core.has_graph
    exact = session.query_sync("", QueryOptions(top_k=5, embedding=query, exact=True))
    assert ids(approximate.docs) == ids(exact.docs)
    session.approximate = False
    assert not session.core.uses_graph()
    with pytest.raises(Exception, match="approximate must be"):
        session.approximate = "yes"


@pytest.fixture(scope="module")
def graph_core():
    core, vectors = core_with(3000, seed=6, approximate=True)
    core.search(vectors[0], "", top_k=1)  # build the graph once for the module
    return core


FIELD_FILTERS = st.one_of(
    st.builds(lambda g: {"group": g}, st.integers(0, 9)),
    st.builds(lambda gs: {"group": {"$in": gs}}, st.lists(st.integers(0, 9), min_size=1, max_size=6)),
    st.builds(lambda g: {"group": {"$gte": g}}, st.integers(0, 10)),
    st.builds(lambda t: {"tier": {"$ne": t}}, st.sampled_from(["gold", "silver", "bronze"])),
    st.builds(lambda e, t: {"$and": [{"even": e}, {"tier": t}]}, st.booleans(), st.sampled_from(["gold", "silver"])),
    st.builds(lambda a, b: {"$or": [{"group": a}, {"group": b}]}, st.integers(0, 9), st.integers(0, 9)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=FIELD_FILTERS, seed=st.integers(0, 10_000), top_k=st.integers(1, 30), alpha=st.sampled_from([1.0, 0.5]))
def test_filtered_graph_search_never_returns_a_document_failing_the_filter(graph_core, monkeypatch, spec, seed, top_k, alpha):
    monkeypatch.setattr(engine_module, "EXACT_FILTER_ROWS", 0)  # every filter goes through the graph
    query = clustered(1, seed=seed)[0]
    hits = graph_core.search(query, "topic3 passage", top_k=top_k, filter=spec, alpha=alpha)
    assert all(reference_match(hit.metadata, spec) for hit in hits)
    matching = sum(reference_match(doc.metadata, spec) for doc in graph_core.get())
    assert len(hits) == min(top_k, matching)  # a short over-fetch falls back to the scan


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=FIELD_FILTERS, seed=st.integers(0, 10_000), top_k=st.integers(1, 30))
def test_a_selective_filter_takes_the_exact_path_and_equals_exact_search(graph_core, spec, seed, top_k):
    # 3,000 rows are under EXACT_FILTER_ROWS: the planner scans the filtered rows.
    query = clustered(1, seed=seed)[0]
    hits = graph_core.search(query, "", top_k=top_k, filter=spec)
    exact = graph_core.search(query, "", top_k=top_k, filter=spec, exact=True)
    assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in exact]


def test_hybrid_search_runs_on_the_graph_and_keeps_exact_parts():
    core, _ = core_with(2000, seed=7, approximate=True)
    query = clustered(1, seed=8)[0]
    hits = core.search(query, "topic3", top_k=10, alpha=0.5)
    exact = core.search(query, "topic3", top_k=10, alpha=0.5, exact=True)
    assert core.has_graph
    assert len(set(ids(hits)) & set(ids(exact))) >= 9
    by_id = {h.id: h for h in core.search(query, "topic3", top_k=2000, alpha=0.5, exact=True)}
    for hit in hits:
        assert hit.vector_score == pytest.approx(by_id[hit.id].vector_score, abs=1e-6)
        assert hit.keyword_score == pytest.approx(by_id[hit.id].keyword_score)


def assert_graph_matches_scan(core: IndexCore, queries: np.ndarray) -> None:
    """With the index inside one candidate pool, all of it re-ranked, graph results must
    equal the scan's: any stale, missing or duplicated graph node would show up as a
    difference."""
    assert len(core) <= engine_module.CANDIDATE_FLOOR
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "RERANK_FLOOR", engine_module.CANDIDATE_FLOOR)
        for query in queries:
            hits = core.search(query, "", top_k=8)
            exact = core.search(query, "", top_k=8, exact=True)
            assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in exact]


def test_adds_updates_and_deletes_after_load_keep_the_graph_consistent(tmp_path):
    core, vectors = core_with(60, seed=10, approximate=True)
    snapshot = core.snapshot("kept", "custom")
    assert snapshot.graph is not None and snapshot.keys is not None
    path = tmp_path / "kept.lix"
    write_artifact_file(snapshot, path)
    loaded = IndexCore.from_snapshot(read_artifact_file(path), approximate=True)
    assert loaded.has_graph  # adopted from the file, not rebuilt
    queries = clustered(15, seed=11)
    assert_graph_matches_scan(loaded, queries)

    fresh = clustered(20, seed=12)
    loaded.upsert(make_docs(20, start=60), fresh)  # insert
    moved = clustered(10, seed=13)
    loaded.upsert(make_docs(10, start=0), moved)  # update: same ids, new vectors
    assert loaded.delete([f"d{i}" for i in range(30, 45)]) == 15  # delete
    assert len(loaded) == 65
    assert_graph_matches_scan(loaded, np.vstack([queries, fresh[:5], moved[:5]]))
    for i in range(10):
        assert loaded.search(moved[i], "", top_k=1)[0].id == f"d{i}"
    returned = {h.id for q in queries for h in loaded.search(q, "", top_k=20)}
    assert not returned & {f"d{i}" for i in range(30, 45)}

    # And the written-again index round-trips with its edited graph.
    write_artifact_file(loaded.snapshot("kept", "custom"), path)
    again = IndexCore.from_snapshot(read_artifact_file(path), approximate=True)
    assert again.has_graph and len(again) == 65
    assert_graph_matches_scan(again, queries)


def test_deleting_the_newest_documents_keeps_graph_results_right():
    # Keys are then still 0..n-1, so the engine maps graph keys to rows directly, while
    # the graph keeps the deleted keys (n and up) as tombstones.
    core, vectors = core_with(100, seed=16, approximate=True)
    core.search(vectors[0], "", top_k=1)
    assert core.delete([f"d{i}" for i in range(90, 100)]) == 10
    assert core.has_graph  # 10% tombstones: kept, not rebuilt
    for i in (0, 50, 89):
        assert core.search(vectors[i], "", top_k=1)[0].id == f"d{i}"
    assert_graph_matches_scan(core, np.vstack([clustered(10, seed=17), vectors[90:95]]))
    returned = {h.id for q in vectors[90:] for h in core.search(q, "", top_k=20)}
    assert not returned & {f"d{i}" for i in range(90, 100)}


def test_many_deletes_rebuild_the_graph_instead_of_keeping_tombstones():
    core, vectors = core_with(200, seed=14, approximate=True)
    core.search(vectors[0], "", top_k=1)
    assert core.has_graph
    worn = core._graph
    core.delete([f"d{i}" for i in range(100)])  # half the graph would be tombstones
    assert core.has_graph and core._graph is not worn and core._graph.tombstone_fraction == 0
    assert_graph_matches_scan(core, clustered(5, seed=15))


def test_a_big_index_pushes_its_graph_and_loads_it_without_rebuilding(monkeypatch):
    monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 500)  # "big" from 500 documents
    client = Client()
    vectors = clustered(800, seed=16)
    docs = [DocumentInfo(id=d.id, text=d.text, metadata=d.metadata, embedding=v.tolist()) for d, v in zip(make_docs(800), vectors)]
    client.create_index_sync("big", docs, model_id="custom")
    path = client.store.index_path("big")
    manifest = read_manifest(path)
    assert manifest.format_version == 3 and manifest.has_graph  # no graph edits: the plain format
    loaded = client.load_index_sync("big")
    assert loaded.core.has_graph and loaded.core.uses_graph()
    hit = loaded.query_sync("", QueryOptions(top_k=1, embedding=vectors[5].tolist())).docs[0]
    assert hit.id == "d5"


def test_a_format_1_artifact_still_loads():
    snapshot = read_artifact(FIXTURES / "format1.lix")
    assert snapshot.graph is None and snapshot.keys is None
    session = SessionIndex.from_snapshot(snapshot)
    assert session.doc_count == 5 and session.version == 3
    hits = session.query_sync("when do I get my money back", QueryOptions(top_k=1)).docs
    assert hits[0].id == "faq-0"
    session.approximate = True  # an old index gains a graph on demand
    assert session.query_sync("when do I get my money back", QueryOptions(top_k=1)).docs[0].id == "faq-0"
    session.add_docs_sync([DocumentInfo(id="faq-5", text="Gift cards never expire.")])
    assert session.query_sync("do gift cards expire", QueryOptions(top_k=1)).docs[0].id == "faq-5"


def test_a_damaged_graph_section_is_refused_and_nothing_is_loaded(monkeypatch):
    monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 100)
    client = Client()
    vectors = clustered(200, seed=17)
    client.create_index_sync("g", [DocumentInfo(id=f"d{i}", text="t", embedding=v.tolist()) for i, v in enumerate(vectors)], model_id="custom")
    path = client.store.index_path("g")
    good = path.read_bytes()
    graph = read_manifest(path).sections["graph"]
    damaged = bytearray(good)
    damaged[graph.offset + graph.length // 2] ^= 0x5A
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptDataError, match="graph section checksum mismatch"):
        client.load_index_sync("g")
    with pytest.raises(CorruptDataError, match="graph"):
        read_artifact(bytes(damaged))
    assert path.read_bytes() == bytes(damaged)  # a failed read writes nothing
    path.write_bytes(good)
    assert client.load_index_sync("g").doc_count == 200


def test_a_graph_from_another_index_is_refused_even_with_a_valid_checksum(tmp_path):
    # The checksum is right (recomputed), but the graph holds other vectors.
    small, _ = core_with(50, seed=18, approximate=True)
    other = small.snapshot("g", "custom")
    core, _ = core_with(200, seed=17, approximate=True)
    snapshot = core.snapshot("g", "custom")
    snapshot.graph = other.graph
    path = tmp_path / "swapped.lix"
    write_artifact_file(snapshot, path)
    with pytest.raises(CorruptDataError, match="graph holds 50 documents, the index 200"):
        IndexCore.from_snapshot(read_artifact_file(path))
    snapshot.graph = b"\x00" * 64
    write_artifact_file(snapshot, path)
    with pytest.raises(CorruptDataError, match="graph section"):
        IndexCore.from_snapshot(read_artifact_file(path))


def test_lichen_and_onnxruntime_import_in_either_order(tmp_path):
    # usearch 2.26.1-2.26.6 crash the process when onnxruntime is imported after them;
    # the dependency range excludes them, and this guards the range.
    import subprocess
    import sys

    for order in ("import lichen.engine.graph, onnxruntime", "import onnxruntime, lichen.engine.graph"):
        done = subprocess.run([sys.executable, "-c", order], capture_output=True, timeout=120)
        assert done.returncode == 0, (order, done.returncode, done.stderr[-500:])


def test_server_side_adds_updates_and_deletes_reach_the_next_reader_without_a_rebuild(tmp_path, monkeypatch):
    # A real server merges without opening the graph: it stores the edits it implies
    # (format 4), and the next load applies them to the stored graph. Only a graph the
    # edits outgrow is dropped and rebuilt at load.
    from server_helpers import Deployment

    deployment = Deployment("fs", tmp_path, None)
    try:
        project = deployment.server.create_project()
        client = Client(url=deployment.server.url, project_id=project.project_id, project_key=project.project_key)
        vectors = clustered(120, seed=19)
        docs = [DocumentInfo(id=d.id, text=d.text, metadata=d.metadata, embedding=v.tolist()) for d, v in zip(make_docs(120), vectors)]
        monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 100)
        client.create_index_sync("shared", docs, model_id="custom")
        assert client.load_index_sync("shared").core.has_graph  # pushed with its graph

        extra, moved = clustered(5, seed=20), clustered(3, seed=22)
        client.add_docs_sync(
            "shared",
            [DocumentInfo(id=f"new{i}", text="n", embedding=v.tolist()) for i, v in enumerate(extra)]
            + [DocumentInfo(id=f"d{10 + i}", text="moved", embedding=v.tolist()) for i, v in enumerate(moved)],
        )
        assert client.delete_docs_sync("shared", ["d0", "d1", "new4"]) == 3
        built = []
        real_build = VectorGraph.build.__func__
        monkeypatch.setattr(VectorGraph, "build", classmethod(lambda cls, *a, **k: built.append(1) or real_build(cls, *a, **k)))
        loaded = client.load_index_sync("shared")
        assert loaded.doc_count == 122 and loaded.core.has_graph and not built  # edited, not rebuilt
        for i in range(3):
            assert loaded.query_sync("", QueryOptions(top_k=1, embedding=moved[i].tolist())).docs[0].id == f"d{10 + i}"
        assert loaded.query_sync("", QueryOptions(top_k=1, embedding=extra[3].tolist())).docs[0].id == "new3"
        assert_graph_matches_scan(loaded.core, np.vstack([clustered(5, seed=21), extra, moved, vectors[:2]]))

        # Every load pays for the edits until a client pushes the index again, which
        # stores the edited graph whole.
        assert client.store.read("shared").graph_insertions is not None
        client.session_sync("shared").push_index_sync()
        pushed = client.store.read("shared")
        assert pushed.graph is not None and pushed.graph_insertions is None and pushed.graph_removals is None
        assert_graph_matches_scan(client.load_index_sync("shared").core, np.vstack([extra, moved]))
        assert not built

        # Edits beyond a quarter of the index: the server drops the graph instead.
        assert client.delete_docs_sync("shared", [f"d{i}" for i in range(20, 60)]) == 40
        monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 50)  # 82 documents: still "big"
        loaded = client.load_index_sync("shared")
        assert loaded.doc_count == 82 and built  # rebuilt at load, before any query
        assert_graph_matches_scan(loaded.core, clustered(5, seed=21))
    finally:
        deployment.stop()
