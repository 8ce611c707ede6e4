"""A server's merges, deletes and compactions (issue 21, items 7 and 8): the streamed
rewrite writes exactly what ``encode_artifact`` writes for the same snapshot, refuses a
damaged stored artifact, and a compaction publishes a fresh graph (rebased on whatever
was written meanwhile) that the next reader loads without rebuilding, never
overwriting a newer version. In-process over a real ``FileStorage``, and end to end
through real ``lichen serve`` processes on the file system and on S3."""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import Deployment, shared_moto
from test_approximate import assert_graph_matches_scan, clustered, core_with

from lichen import CorruptDataError, DocumentInfo, InvalidArgumentError, LimitExceededError
from lichen.engine.core import IndexCore
from lichen.engine.graph import VectorGraph
from lichen.format.artifact import encode_artifact, read_artifact, read_manifest
from lichen.format.snapshot import IndexSnapshot
from lichen.server import compaction
from lichen.server.auth import create_project
from lichen.server.compaction import CompactionPolicy
from lichen.server.rewrite import open_stored, plan_delete, plan_upsert, write_rewrite
from lichen.server.service import IndexService, Limits, merge_upsert, remove_docs
from lichen.server.storage import IndexConflict
from lichen.server.storage.fs import FileStorage

FIELDS = {"version": 9, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"}


def stored_index(count: int, *, graph: bool, seed: int = 0) -> IndexSnapshot:
    """An index as a server stores it (through the bytes), with odd texts and metadata."""
    core, _ = core_with(count, seed=seed, approximate=graph if graph else False)
    docs = core.get()
    texts = [f"\u00e9t\u00e9 \"{i}\" \\ \U0001f600" if i % 3 else "" for i in range(count)]
    metadata = [{"i": i, "nested": {"x": [1.5, None, True]}, "s": "\u2603"} if i % 2 else {} for i in range(count)]
    snapshot = core.snapshot("g", "custom")
    snapshot = dataclasses.replace(snapshot, ids=[d.id for d in docs], texts=texts, metadata=metadata)
    return read_artifact(encode_artifact(snapshot).to_bytes())


def batch_of(ids: list[str], seed: int) -> IndexSnapshot:
    core = IndexCore(approximate=False)
    docs = [DocumentInfo(id=doc_id, text=f"new {doc_id} \u00fc", metadata={"b": seed, "k": [doc_id]}) for doc_id in ids]
    core.upsert(docs, clustered(len(ids), seed=seed))
    return core.snapshot("g", "custom")


def streamed(current: IndexSnapshot, plan) -> bytes:
    """What the server writes: ``plan(stored)`` over ``current`` stored in a file."""
    with tempfile.TemporaryFile() as source, tempfile.TemporaryFile() as out:
        source.write(encode_artifact(current).to_bytes())
        source.flush()
        rewrite = plan(open_stored(source))
        write_rewrite(rewrite, out, **FIELDS)
        out.seek(0)
        return out.read()


def encoded(snapshot: IndexSnapshot) -> bytes:
    return encode_artifact(dataclasses.replace(snapshot, **FIELDS)).to_bytes()


# ------------------------------------------------------------------ byte equality
_ID = st.integers(0, 80).map(lambda i: f"d{i}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(0, 60),
    graph=st.booleans(),
    batches=st.lists(st.lists(_ID, min_size=0, max_size=20, unique=True), min_size=1, max_size=3),
    doomed=st.sets(_ID, max_size=40),
    seed=st.integers(0, 2**16),
)
def test_a_streamed_rewrite_is_byte_for_byte_what_encode_artifact_writes(count, graph, batches, doomed, seed):
    """Upserting batches (one after the other in one rewrite) and deleting ids: the bytes
    streamed from the stored artifact equal ``encode_artifact`` of ``merge_upsert`` of the
    batches combined, and of ``remove_docs``, graph edits included."""
    current = stored_index(count, graph=graph and count > 0, seed=seed)
    snapshots = [batch_of(ids, seed + k) for k, ids in enumerate(batches)]

    combined = snapshots[0]
    for later in snapshots[1:]:
        combined, _, _ = merge_upsert(combined, later)
    rewrite, outcomes = _plan(current, snapshots)
    if rewrite is None:
        assert combined.doc_count == 0 and all(o == (0, 0) for o in outcomes)
    else:
        merged, added, updated = merge_upsert(current, combined)
        assert streamed(current, lambda stored: plan_upsert(stored, snapshots)[0]) == encoded(merged)
        assert sum(a for a, _ in outcomes) == added
        # Each batch counts as if merged after the ones before it.
        seen = set(current.ids)
        for snapshot, outcome in zip(snapshots, outcomes):
            new = [doc_id for doc_id in snapshot.ids if doc_id not in seen]
            assert outcome == (len(new), snapshot.doc_count - len(new))
            seen.update(new)

    kept, deleted = remove_docs(current, set(doomed))
    planned = _plan_delete(current, set(doomed))
    if not deleted:
        assert planned is None
    else:
        assert planned[1] == deleted
        data = streamed(current, lambda stored: plan_delete(stored, set(doomed))[0])
        assert data == encoded(kept)
        read_artifact(data, strict=True)


def _plan(current: IndexSnapshot, batches: list[IndexSnapshot]):
    with tempfile.TemporaryFile() as source:
        source.write(encode_artifact(current).to_bytes())
        return plan_upsert(open_stored(source), batches)


def _plan_delete(current: IndexSnapshot, doomed: set[str]):
    with tempfile.TemporaryFile() as source:
        source.write(encode_artifact(current).to_bytes())
        return plan_delete(open_stored(source), doomed)


def test_a_batch_that_does_not_fit_is_refused_alone_before_anything_is_written():
    current = stored_index(10, graph=False)
    other_model = dataclasses.replace(batch_of(["x1"], 1), model_id="other")
    wider = batch_of(["x2"], 2)
    wider = dataclasses.replace(wider, dimension=wider.dimension + 1, matrix=np.ones((1, wider.dimension + 1), np.float32))
    fits, too_many = batch_of(["x3"], 3), batch_of([f"y{i}" for i in range(5)], 4)
    with tempfile.TemporaryFile() as source:
        source.write(encode_artifact(current).to_bytes())
        rewrite, outcomes = plan_upsert(open_stored(source), [other_model, wider, fits, too_many], max_docs=12)
    assert isinstance(outcomes[0], InvalidArgumentError) and "uses model 'custom'" in str(outcomes[0])
    assert isinstance(outcomes[1], InvalidArgumentError) and "has dimension" in str(outcomes[1])
    assert outcomes[2] == (1, 0)
    assert isinstance(outcomes[3], LimitExceededError) and "would hold 16 documents" in str(outcomes[3])
    assert rewrite is not None and rewrite.doc_count == 11


@pytest.mark.parametrize("section", ["texts", "metadata", "matrix", "graph", "offsets"])
def test_a_damaged_stored_section_is_refused_by_the_rewrite(section):
    current = stored_index(40, graph=True)
    data = bytearray(encode_artifact(current).to_bytes())
    sec = read_manifest(bytes(data)).sections[section]
    data[sec.offset + sec.length // 2] ^= 0x01
    with tempfile.TemporaryFile() as source, tempfile.TemporaryFile() as out:
        source.write(bytes(data))
        with pytest.raises(CorruptDataError, match=f"{section} section checksum mismatch"):
            rewrite, _ = plan_upsert(open_stored(source), [batch_of(["d3", "new"], 5)])
            write_rewrite(rewrite, out, **FIELDS)


# ------------------------------------------------------------------ compaction, in process
@pytest.fixture
def service(tmp_path):
    storage = FileStorage(tmp_path / "data")
    limits = Limits(max_body_bytes=16 << 20, max_docs=5000)
    service = IndexService(storage, limits, CompactionPolicy(min_docs=50, edit_fraction=0.05))
    project = create_project(storage).project_id
    return service, project


def push(service: IndexService, project: str, snapshot: IndexSnapshot, name: str = "g") -> None:
    upload = service.storage.new_upload()
    try:
        for chunk in encode_artifact(snapshot):
            upload.write(chunk)
        service.push(project, name, upload, expected_version=None)
    finally:
        upload.discard()


def add(service: IndexService, project: str, snapshot: IndexSnapshot, name: str = "g") -> None:
    upload = service.storage.new_upload()
    try:
        for chunk in encode_artifact(snapshot):
            upload.write(chunk)
        service.add_docs(project, name, upload, expected_version=None)
    finally:
        upload.discard()


def stored_now(service: IndexService, project: str, name: str = "g") -> tuple[object, IndexSnapshot]:
    head = service.storage.head(project, name)
    with service.storage.open_artifact(project, name) as stored:
        return head, read_artifact(stored.seekable().read())


def forbid_rebuilds(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the graph was rebuilt by a reader")

    monkeypatch.setattr(VectorGraph, "build", refuse)


def test_deleting_most_of_an_index_is_followed_by_a_compaction_readers_never_rebuild_after(service, monkeypatch):
    service, project = service
    core, vectors = core_with(120, seed=50, approximate=True)
    push(service, project, core.snapshot("g", "custom"))
    deleted = service.delete_docs(project, "g", [f"d{i}" for i in range(0, 120, 2)], expected_version=None)
    assert deleted.deleted == 60
    after_delete, snapshot = stored_now(service, project)
    assert snapshot.graph is None  # 60 removals outgrew the graph: dropped, compaction queued
    assert service.compactor.wait_idle(60)
    head, snapshot = stored_now(service, project)
    assert (head.version, head.job_id, head.doc_count) == (after_delete.version, after_delete.job_id, 60)
    assert head.etag != after_delete.etag and head.etag == read_manifest(encode_artifact(snapshot).to_bytes()).etag
    assert snapshot.graph is not None and snapshot.graph_removals is None and snapshot.graph_insertions is None
    assert snapshot.keys.tolist() == list(range(60))
    forbid_rebuilds(monkeypatch)
    loaded = IndexCore.from_snapshot(snapshot, approximate=True)
    assert loaded.has_graph  # adopted as stored
    assert_graph_matches_scan(loaded, np.vstack([vectors[1::8], clustered(4, seed=51)]))
    assert service.compactor.outcomes[-1][2] == "published"


def test_a_compaction_rebases_its_graph_on_writes_made_during_the_build(service, monkeypatch):
    service, project = service
    compactor = service.compactor
    policy = compactor.policy
    compactor.policy = dataclasses.replace(policy, enabled=False)
    core, vectors = core_with(100, seed=60, approximate=True)
    push(service, project, dataclasses.replace(core.snapshot("g", "custom"), graph=None, keys=None))
    real_build = compaction._build

    def build_then_write(*args, **kwargs):
        """Writes land between the build and its publishing (as they may during minutes
        of building a big graph)."""
        built = real_build(*args, **kwargs)
        compactor.policy = dataclasses.replace(policy, enabled=False)  # these writes queue no other compaction
        add(service, project, batch_of(["d3", "d4", "n1", "n2"], 61))  # 2 replaced, 2 added
        service.delete_docs(project, "g", ["d10", "d11", "n1"], expected_version=None)
        compactor.policy = policy
        return built

    monkeypatch.setattr(compaction, "_build", build_then_write)
    compactor.policy = policy
    assert compactor.compact(project, "g") == "published"
    head, snapshot = stored_now(service, project)
    assert head.doc_count == 99 and snapshot.graph is not None
    # The built graph's nodes are its rows, 0..99. d3 and d4 (rows 3, 4) changed vectors,
    # d10 and d11 are gone, n2 is new (key 100; n1 came and went).
    assert snapshot.graph_removals.tolist() == [3, 4, 10, 11]
    assert snapshot.graph_insertions.tolist() == [3, 4, 100]
    forbid_rebuilds(monkeypatch)
    loaded = IndexCore.from_snapshot(snapshot, approximate=True)
    live = {doc_id: snapshot.matrix[i] for i, doc_id in enumerate(snapshot.ids)}
    assert_graph_matches_scan(loaded, np.vstack([live["d3"], live["n2"], vectors[20:60:8], clustered(3, seed=62)]))
    assert loaded.has_graph and len(loaded) == 99


def test_a_compaction_never_overwrites_a_newer_version(service):
    service, project = service
    core, _ = core_with(80, seed=70, approximate=True)
    push(service, project, core.snapshot("g", "custom"))
    old = service.storage.head(project, "g")
    add(service, project, batch_of(["late"], 71))
    upload = service.storage.new_upload()
    try:
        for chunk in encode_artifact(core.snapshot("g", "custom")):
            upload.write(chunk)
        upload.finish()
        manifest = read_manifest(upload.path)
        with pytest.raises(IndexConflict, match="changed \\(now at version 2\\) since version 1"):
            service.storage.publish(project, "g", upload, manifest, expected_version=1, job_id=old.job_id, replacing=old)
    finally:
        upload.discard()
    assert service.storage.head(project, "g").version == 2


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(request.param), moto)
    yield deployed
    deployed.stop()


def test_a_server_compacts_after_deletes_and_clients_load_its_graph(deployment, monkeypatch):
    server = deployment.new_server(limits={"max_body_bytes": 16 << 20, "max_docs": 5000, "compact_min_docs": 50})
    server.start()
    try:
        project = server.create_project()
        client = server.client(project)
        session = client.session_sync("big", model_id="custom")
        session.approximate = True
        rng = np.random.default_rng(80)
        session.add_docs_sync([DocumentInfo(id=f"d{i}", text=f"t{i}", embedding=rng.standard_normal(8)) for i in range(150)])
        session.push_index_sync()
        assert client.delete_docs_sync("big", [f"d{i}" for i in range(60)]) == 60  # 40%: the graph is dropped
        storage = server.open_storage()
        after = storage.head(project.project_id, "big")
        deadline = time.monotonic() + 60
        while storage.head(project.project_id, "big").etag == after.etag:
            assert time.monotonic() < deadline, f"no compaction within 60 s:\n{server.log()}"
            time.sleep(0.1)
        assert client.get_index_sync("big").version == after.version
        forbid_rebuilds(monkeypatch)
        loaded = client.load_index_sync("big")
        assert loaded.core.has_graph and loaded.doc_count == 90
        # A client holding that version still writes to it: the compaction kept it.
        session = client.session_sync("big")
        session.add_docs_sync([DocumentInfo(id="late", text="late", embedding=rng.standard_normal(8))])
        assert session.push_index_sync().version == after.version + 1
    finally:
        server.stop()
