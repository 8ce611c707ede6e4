"""The Lichen server end to end: a real ``lichen serve`` subprocess, reached over HTTP by
the real client, over each storage backend (file system; S3 through a real moto server
process). One server per backend per module; tests that kill a server start their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_helpers import (
    Credentials,
    Deployment,
    LichenServer,
    auth,
    free_port,
    shared_moto,
    snapshot_of,
)

from lichen import (
    ConflictError,
    CorruptDataError,
    DocumentInfo,
    InvalidArgumentError,
    LimitExceededError,
    NetworkError,
    NotFoundError,
    QueryOptions,
    UnauthorizedError,
)
from lichen.format.artifact import encode_artifact, read_manifest
from lichen.format.snapshot import IndexSnapshot
from lichen.stores.http import HttpStore, Retries


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(request.param), moto)
    yield deployed
    deployed.stop()


@pytest.fixture
def server(deployment) -> LichenServer:
    return deployment.server


@pytest.fixture
def project(server) -> Credentials:
    return server.create_project()


@pytest.fixture
def client(server, project):
    return server.client(project)


def custom_docs(n: int, *, dim: int = 8, prefix: str = "d", seed: int = 0) -> list[DocumentInfo]:
    rng = np.random.default_rng(seed)
    return [
        DocumentInfo(id=f"{prefix}{i}", text=f"{prefix} text {i}", metadata={"i": i, "tag": prefix}, embedding=rng.standard_normal(dim))
        for i in range(n)
    ]


def matrix_digest(matrix: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float32).tobytes()).hexdigest()


# ------------------------------------------------------------------ credentials
def test_project_created_by_the_cli_works(server):
    credentials = server.create_project_cli()
    assert credentials.project_id.startswith("prj_") and len(credentials.project_key) > 30
    server.client(credentials).session_sync("anything")  # accepted


def test_wrong_key_raises_unauthorized_at_session(server, project):
    with pytest.raises(UnauthorizedError, match="invalid project id or key"):
        server.client(Credentials(project.project_id, "lk_wrong")).session_sync("x")
    with pytest.raises(UnauthorizedError):
        server.client(Credentials("prj_unknown", project.project_key)).session_sync("x")


async def test_wrong_key_raises_unauthorized_at_async_session(server, project):
    with pytest.raises(UnauthorizedError):
        await server.client(Credentials(project.project_id, "lk_wrong")).session("x")


def test_missing_credentials_are_refused_before_any_request(server):
    from lichen import Client

    with pytest.raises(UnauthorizedError, match="LICHEN_PROJECT_ID"):
        Client(url=server.url).session_sync("x")


ROUTES = [
    ("GET", "/v1/project"), ("GET", "/v1/indexes"), ("GET", "/v1/indexes/x"), ("DELETE", "/v1/indexes/x"),
    ("GET", "/v1/indexes/x/artifact"), ("PUT", "/v1/indexes/x/artifact"), ("GET", "/v1/indexes/x/docs"),
    ("POST", "/v1/indexes/x/docs"), ("POST", "/v1/indexes/x/docs/delete"), ("GET", "/v1/jobs/abc"),
]


def test_every_route_requires_credentials(server, project):
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": f"Bearer {project.project_id}:nope"}, {"Authorization": "Basic abc"}):
            response = httpx.request(method, server.url + path, headers=headers, content=b"")
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"]["code"] == "unauthorized"
    unknown = httpx.get(server.url + "/v1/nothing-here", headers=auth(project))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


# ------------------------------------------------------------------ acceptance: sessions across processes
RESUME_IN_OTHER_PROCESS = textwrap.dedent(
    """
    import hashlib, json, sys
    import lichen.models._onnx as onnx

    def refuse(self, texts):
        raise SystemExit(f"re-embedding attempted for {len(texts)} texts")

    onnx.OnnxEmbedder.embed = refuse
    from lichen import Client

    session = Client().session_sync(sys.argv[1])
    docs = session.get_docs_sync()
    print(json.dumps({
        "ids": [d.id for d in docs], "texts": [d.text for d in docs], "metadata": [d.metadata for d in docs],
        "model_id": session.model_id, "version": session.version,
        "matrix_sha256": hashlib.sha256(session.core.matrix.tobytes()).hexdigest(),
    }))
    """
)


def test_session_pushed_in_one_process_resumes_in_another_with_identical_embeddings(server, project, client):
    session = client.session_sync("call-123")
    session.add_docs_sync([
        DocumentInfo(id="turn-1", text="Customer reported a duplicate charge.", metadata={"speaker": "customer"}),
        DocumentInfo(id="turn-2", text="Agent confirmed the refund would arrive in 3-5 business days."),
    ])
    result = session.push_index_sync()
    assert (result.status, result.doc_count, result.version) == ("completed", 2, 1)

    completed = subprocess.run(
        [sys.executable, "-c", RESUME_IN_OTHER_PROCESS, "call-123"], capture_output=True, text=True, timeout=120,
        env={**os.environ, **project.env(server.url)},
    )
    assert completed.returncode == 0, completed.stderr
    other = json.loads(completed.stdout)
    assert other["ids"] == ["turn-1", "turn-2"]
    assert other["texts"] == [d.text for d in session.get_docs_sync()]
    assert other["metadata"] == [{"speaker": "customer"}, {}]
    assert other["model_id"] == "lichen-minilm" and other["version"] == 1
    assert other["matrix_sha256"] == matrix_digest(session.core.matrix)  # bytes equal


async def test_async_session_push_and_resume(server, client):
    session = await client.session("async-call", model_id="custom")
    assert session.doc_count == 0
    await session.add_docs(custom_docs(5))
    pushed = await session.push_index()
    resumed = await client.session("async-call")
    assert resumed.doc_count == 5 and resumed.version == pushed.version == 1
    assert matrix_digest(resumed.core.matrix) == matrix_digest(session.core.matrix)
    assert [i.name for i in await client.list_indexes()] == ["async-call"]
    assert (await client.get_index("async-call")).doc_count == 5
    assert await client.delete_index("async-call") is True
    assert await client.delete_index("async-call") is False


def test_resume_with_a_different_model_is_refused(client):
    client.create_index_sync("custom-one", custom_docs(3), model_id="custom")
    with pytest.raises(ValueError, match="custom"):
        client.session_sync("custom-one", model_id="lichen-minilm")


# ------------------------------------------------------------------ acceptance: long-term indexes
def test_load_index_query_and_unload(client):
    client.create_index_sync("support-faqs", [
        DocumentInfo(id="faq-double-charge", text="If you were charged twice, the duplicate is refunded within 5 days.", metadata={"topic": "billing"}),
        DocumentInfo(id="faq-password", text="To reset your password, use the 'Forgot password' link.", metadata={"topic": "account"}),
        DocumentInfo(id="faq-shipping", text="Standard shipping takes 3 to 7 business days.", metadata={"topic": "shipping"}),
    ])
    # Added on the server: only the new document is embedded (here) and sent.
    assert client.add_docs_sync("support-faqs", [DocumentInfo(id="faq-hours", text="Support is open 9am to 5pm.")]) == (1, 0)
    loaded = client.load_index_sync("support-faqs")
    assert loaded.doc_count == 4 and loaded.read_only and loaded.version == 2
    assert client.query_sync("support-faqs", "when is support open", QueryOptions(top_k=1)).docs[0].id == "faq-hours"
    hits = client.query_sync("support-faqs", "why was I charged twice", QueryOptions(top_k=2))
    assert hits.docs[0].id == "faq-double-charge"
    filtered = client.query_sync("support-faqs", "charged twice", QueryOptions(top_k=3, filter={"topic": "account"}))
    assert [d.id for d in filtered.docs] == ["faq-password"]
    assert client.unload_index_sync("support-faqs") is True
    with pytest.raises(NotFoundError, match="not loaded"):
        client.query_sync("support-faqs", "charged twice")
    with pytest.raises(NotFoundError, match="not found"):
        client.load_index_sync("no-such-index")


def test_second_load_of_an_unchanged_index_transfers_nothing(server, project, isolated_home):
    seen: list[tuple[str, int, int]] = []

    def record(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/artifact"):
            seen.append((response.request.method, response.status_code, int(response.headers.get("content-length", 0))))

    store = HttpStore(server.url, project.project_id, project.project_key, event_hooks={"response": [record]})
    first = snapshot_of("cached", 500, dim=32)
    store.write(first)
    a = store.read("cached")
    b = store.read("cached")
    assert seen[1:] == [("GET", 200, seen[1][2]), ("GET", 304, 0)] and seen[1][2] > 500 * 32 * 4
    assert matrix_digest(a.matrix) == matrix_digest(b.matrix) == matrix_digest(first.matrix)
    assert a.version == b.version == 1
    assert list((isolated_home / "http-cache").rglob("*.lix"))  # the cache lives under LICHEN_HOME

    store.write(snapshot_of("cached", 10, dim=32, seed=1), expected_version=1)
    c = store.read("cached")
    assert seen[-1][:2] == ("GET", 200) and c.doc_count == 10 and c.version == 2
    # A second process (its own cache) sees the same bytes.
    fresh = HttpStore(server.url, project.project_id, project.project_key, cache=False)
    assert matrix_digest(fresh.read("cached").matrix) == matrix_digest(c.matrix)


# ------------------------------------------------------------------ acceptance: tenants
def test_a_project_never_sees_another_projects_indexes(server, project, client):
    other = server.create_project()
    other_client = server.client(other)
    pushed = client.create_index_sync("private", custom_docs(4), model_id="custom")
    client.create_index_sync("shared-name", custom_docs(2, prefix="a"), model_id="custom")

    assert [i.name for i in other_client.list_indexes_sync()] == []
    with pytest.raises(NotFoundError):
        other_client.get_index_sync("private")
    with pytest.raises(NotFoundError):
        other_client.load_index_sync("private")
    with pytest.raises(NotFoundError):
        other_client.get_docs_sync("private")
    with pytest.raises(NotFoundError):
        other_client.add_docs_sync("private", custom_docs(1, prefix="x"))
    with pytest.raises(NotFoundError):
        other_client.delete_docs_sync("private", ["d0"])
    assert other_client.delete_index_sync("private") is False
    assert other_client.session_sync("private").doc_count == 0  # an empty session of its own
    job = httpx.get(f"{server.url}/v1/jobs/{pushed.job_id}", headers=auth(other))
    assert job.status_code == 404

    # The same name in two projects: two independent indexes.
    other_client.create_index_sync("shared-name", custom_docs(7, prefix="b"), model_id="custom")
    assert client.get_index_sync("shared-name").doc_count == 2
    assert sorted(d.id for d in client.get_docs_sync("shared-name")) == ["a0", "a1"]
    assert client.get_index_sync("private").doc_count == 4
    assert [i.name for i in client.list_indexes_sync()] == ["private", "shared-name"]


# ------------------------------------------------------------------ acceptance: concurrency
def _push_concurrently(clients, name: str, overwrite: bool) -> list[object]:
    sessions = [c.session_sync(name) for c in clients]
    for k, session in enumerate(sessions):
        session.delete_docs_sync([d.id for d in session.get_docs_sync()])
        session.add_docs_sync(custom_docs(50, prefix=f"w{k}-", seed=k))
    barrier = threading.Barrier(len(sessions))
    outcomes: list[object] = [None] * len(sessions)

    def push(k: int) -> None:
        barrier.wait()
        try:
            outcomes[k] = sessions[k].push_index_sync(overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            outcomes[k] = exc

    threads = [threading.Thread(target=push, args=(k,)) for k in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def _assert_one_writer(client, name: str) -> int:
    stored = client.get_docs_sync(name)
    writers = {d.id.split("-")[0] for d in stored}
    assert len(writers) == 1 and len(stored) == 50, f"a mix of writers: {sorted(writers)}"
    return int(next(iter(writers))[1:])


def test_concurrent_pushes_to_one_name_conflict_never_mix(deployment, project):
    main, replica = deployment.server, deployment.replica
    main.client(project).create_index_sync("contended", custom_docs(5, prefix="base"), model_id="custom")
    clients = [(main if k % 2 else replica).client(project) for k in range(6)]

    outcomes = _push_concurrently(clients, "contended", overwrite=False)
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1 and winners[0].version == 2, outcomes
    assert all(isinstance(o, ConflictError) for o in losers), losers
    winner = _assert_one_writer(clients[0], "contended")
    assert outcomes[winner] is winners[0]
    assert clients[0].get_index_sync("contended").version == 2


def test_concurrent_overwrites_are_serialised(deployment, project):
    main, replica = deployment.server, deployment.replica
    main.client(project).create_index_sync("serial", custom_docs(5, prefix="base"), model_id="custom")
    clients = [(main if k % 2 else replica).client(project) for k in range(4)]
    outcomes = _push_concurrently(clients, "serial", overwrite=True)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sorted(o.version for o in outcomes) == [2, 3, 4, 5]
    last = max(range(4), key=lambda k: outcomes[k].version)
    assert _assert_one_writer(clients[0], "serial") == last


def test_conditional_write_semantics(server, project):
    store = HttpStore(server.url, project.project_id, project.project_key)
    assert store.write(snapshot_of("cond", 3), expected_version=0).version == 1
    with pytest.raises(ConflictError, match="already exists"):
        store.write(snapshot_of("cond", 3), expected_version=0)
    with pytest.raises(ConflictError, match="at version 1, expected 7"):
        store.write(snapshot_of("cond", 3), expected_version=7)
    with pytest.raises(ConflictError, match="does not exist"):
        store.write(snapshot_of("never", 3), expected_version=2)
    raw = httpx.put(
        f"{server.url}/v1/indexes/cond/artifact", headers={**auth(project), "If-Match": '"5"'},
        content=encode_artifact(snapshot_of("cond", 1)).to_bytes(),
    )
    assert raw.status_code == 412
    error = raw.json()["error"]
    assert error["code"] == "conflict" and error["current_version"] == 1 and len(error["current_etag"]) == 32
    with pytest.raises(ConflictError):
        store.delete("cond", expected_version=4)
    assert store.delete("cond", expected_version=1) is True


# ------------------------------------------------------------------ acceptance: interrupted pushes
SLOW_UPLOAD = textwrap.dedent(
    """
    import sys, time, httpx
    url, token, path = sys.argv[1:]
    data = open(path, "rb").read()

    def body():
        yield data[: len(data) // 2]
        print("half sent", flush=True)
        time.sleep(120)
        yield data[len(data) // 2 :]

    httpx.put(url, content=body(), headers={"Authorization": "Bearer " + token, "Content-Length": str(len(data))}, timeout=300)
    """
)


def _spooled_files(server: LichenServer) -> list[Path]:
    return [p for p in (server.data_dir / "tmp").glob(".upload-*") if p.stat().st_size > 0]


def test_client_killed_mid_upload_leaves_the_previous_version(server, project, client, tmp_path):
    client.create_index_sync("interrupted", custom_docs(20), model_id="custom")
    before = client.store.read("interrupted")
    new_bytes = tmp_path / "v2.lix"
    new_bytes.write_bytes(encode_artifact(snapshot_of("interrupted", 4000, dim=64, seed=9)).to_bytes())

    uploader = subprocess.Popen(
        [sys.executable, "-c", SLOW_UPLOAD, f"{server.url}/v1/indexes/interrupted/artifact",
         f"{project.project_id}:{project.project_key}", str(new_bytes)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert uploader.stdout.readline().strip() == "half sent"
        deadline = time.monotonic() + 10
        while not _spooled_files(server) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _spooled_files(server), "the server never started receiving the body"
    finally:
        uploader.kill()
        uploader.wait()

    after = HttpStore(server.url, project.project_id, project.project_key, cache=False).read("interrupted")
    assert after.version == 1 and after.ids == before.ids
    assert matrix_digest(after.matrix) == matrix_digest(before.matrix)
    deadline = time.monotonic() + 10
    while _spooled_files(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _spooled_files(server), "the interrupted upload was not cleaned up"
    assert client.store.write(snapshot_of("interrupted", 3), expected_version=1).version == 2


def test_server_killed_mid_upload_leaves_the_previous_version(deployment, project):
    deployment.server.client(project).create_index_sync("crash", custom_docs(20), model_id="custom")
    before = HttpStore(deployment.server.url, project.project_id, project.project_key, cache=False).read("crash")

    doomed = deployment.new_server().start()
    release = threading.Event()
    half_sent = threading.Event()

    class SlowStore(HttpStore):
        def _artifact_body(self, encoded):
            data = encoded.to_bytes()

            def chunks():
                yield data[: len(data) // 2]
                half_sent.set()
                release.wait(30)
                yield data[len(data) // 2 :]

            return chunks

    store = SlowStore(doomed.url, project.project_id, project.project_key, retries=Retries(attempts=1, backoff=0.01))
    session_snapshot = snapshot_of("crash", 4000, dim=64, seed=3)
    errors: list[Exception] = []

    def push() -> None:
        try:
            store.write(session_snapshot, expected_version=1)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        assert half_sent.wait(30)
        deadline = time.monotonic() + 10
        while not _spooled_files(doomed) and time.monotonic() < deadline:
            time.sleep(0.02)
        doomed.kill()  # SIGKILL mid-upload
    finally:
        release.set()
        pusher.join(30)
    assert errors and isinstance(errors[0], NetworkError), errors

    restarted = deployment.new_server().start()  # same storage, a fresh process
    try:
        after = HttpStore(restarted.url, project.project_id, project.project_key, cache=False).read("crash")
        assert after.version == 1 and after.ids == before.ids
        assert matrix_digest(after.matrix) == matrix_digest(before.matrix)
        pushed = HttpStore(restarted.url, project.project_id, project.project_key).write(session_snapshot, expected_version=1)
        assert pushed.version == 2
    finally:
        restarted.stop()


# ------------------------------------------------------------------ acceptance: corruption
def test_a_corrupted_stored_artifact_is_refused_at_load(deployment, project):
    client = deployment.server.client(project)
    client.create_index_sync("damaged", custom_docs(50, dim=16), model_id="custom")
    original = deployment.read_artifact_bytes(project, "damaged")

    flipped = bytearray(original)
    matrix = read_manifest(original).sections["matrix"]
    flipped[matrix.offset + 100] ^= 0xFF
    deployment.overwrite_artifact_bytes(project, "damaged", bytes(flipped))
    with pytest.raises(CorruptDataError, match=r"index 'damaged' .*corrupt.*matrix section checksum mismatch"):
        client.load_index_sync("damaged")
    with pytest.raises(CorruptDataError):
        client.session_sync("damaged")
    with pytest.raises(CorruptDataError, match="stored index 'damaged' is corrupt"):
        client.add_docs_sync("damaged", custom_docs(1, dim=16, prefix="n"))

    deployment.overwrite_artifact_bytes(project, "damaged", original[: len(original) // 2])  # truncated
    with pytest.raises(CorruptDataError, match=r"stored index 'damaged' \(version 1\) is corrupt"):
        client.load_index_sync("damaged")

    # An unconditional push repairs it.
    client.store.write(snapshot_of("damaged", 5, dim=16))
    assert client.load_index_sync("damaged").doc_count == 5


def test_a_corrupt_upload_is_rejected_and_changes_nothing(server, project, client):
    client.create_index_sync("guarded", custom_docs(3), model_id="custom")
    good = encode_artifact(snapshot_of("guarded", 10)).to_bytes()
    bad = bytearray(good)
    bad[-5] ^= 0x01
    for body in (bytes(bad), b"not an artifact at all", good[:100]):
        response = httpx.put(f"{server.url}/v1/indexes/guarded/artifact", headers=auth(project), content=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "corrupt_data", response.text
    wrong_name = encode_artifact(snapshot_of("other-name", 2)).to_bytes()
    response = httpx.put(f"{server.url}/v1/indexes/guarded/artifact", headers=auth(project), content=wrong_name)
    assert response.status_code == 422 and "other-name" in response.json()["error"]["message"]
    duplicated = snapshot_of("guarded", 2)
    duplicated.ids = ["same", "same"]
    response = httpx.put(f"{server.url}/v1/indexes/guarded/artifact", headers=auth(project), content=encode_artifact(duplicated).to_bytes())
    assert response.status_code == 422 and "duplicate" in response.json()["error"]["message"]
    assert client.get_index_sync("guarded").version == 1


# ------------------------------------------------------------------ limits
def test_limits_give_clear_errors(server, project, client):
    seen: list[str] = []
    store = HttpStore(
        server.url, project.project_id, project.project_key,
        event_hooks={"request": [lambda request: seen.append(request.method)]},
    )
    with pytest.raises(LimitExceededError, match="at most 5000 per index"):
        store.write(snapshot_of("too-many", 5001, dim=2))
    with pytest.raises(LimitExceededError, match="accepts at most 16777216"):
        store.write(snapshot_of("too-big", 4100, dim=1024))
    assert "PUT" not in seen  # refused before uploading anything

    too_many = encode_artifact(snapshot_of("too-many", 5001, dim=2)).to_bytes()
    response = httpx.put(f"{server.url}/v1/indexes/too-many/artifact", headers=auth(project), content=too_many)
    assert response.status_code == 422 and response.json()["error"]["code"] == "limit_exceeded"
    assert "5001 documents" in response.json()["error"]["message"]

    oversized = b"\0" * ((16 << 20) + 1)
    response = httpx.put(f"{server.url}/v1/indexes/too-big/artifact", headers=auth(project), content=oversized)
    assert response.status_code == 413 and response.json()["error"]["code"] == "limit_exceeded"

    client.create_index_sync("nearly-full", custom_docs(4990, dim=2), model_id="custom")
    with pytest.raises(LimitExceededError, match="would hold 5010 documents"):
        client.add_docs_sync("nearly-full", custom_docs(20, dim=2, prefix="extra"))
    assert client.get_index_sync("nearly-full").doc_count == 4990


# ------------------------------------------------------------------ documents on the server
def test_document_operations_merge_on_the_server(server, project, client):
    client.create_index_sync("docs", custom_docs(5), model_id="custom")
    before = client.store.read("docs")
    added, updated = client.add_docs_sync("docs", [
        DocumentInfo(id="d1", text="changed", metadata={"v": 2}, embedding=np.ones(8)),
        DocumentInfo(id="new", text="fresh", embedding=np.arange(8.0)),
    ])
    assert (added, updated) == (1, 1)
    after = client.store.read("docs")
    assert after.ids == ["d0", "d1", "d2", "d3", "d4", "new"] and after.version == 2
    assert after.texts[1] == "changed" and after.metadata[1] == {"v": 2}
    assert np.array_equal(after.matrix[[0, 2, 3, 4]], before.matrix[[0, 2, 3, 4]])  # untouched rows: same bytes
    assert np.allclose(after.matrix[1], np.ones(8) / np.sqrt(8))  # normalised by the client, stored as sent

    assert client.delete_docs_sync("docs", ["d0", "missing"]) == 1
    assert client.delete_docs_sync("docs", ["missing"]) == 0
    assert client.get_index_sync("docs").version == 3  # a no-op delete makes no version

    docs = client.store.get_documents("docs", ["new", "d3", "nope"], include_embeddings=True)
    assert [d.id for d in docs] == ["new", "d3"] and len(docs[0].embedding) == 8
    with pytest.raises(InvalidArgumentError, match="model"):
        client.store.add_documents(IndexSnapshot(
            name="docs", model_id="lichen-minilm", dimension=8, ids=["z"], texts=["z"], metadata=[{}],
            matrix=np.ones((1, 8), dtype=np.float32),
        ))

    job = client.store.job(client.store.write(snapshot_of("docs", 2), expected_version=3).job_id)
    assert (job.status, job.kind, job.version, job.index_name) == ("completed", "push", 4, "docs")


def test_index_names_are_any_valid_string(client):
    for name in ["déjà vu", "with space & ?query#frag", "percent%20name", "CASE", "case", "a" * 200]:
        client.create_index_sync(name, custom_docs(1), model_id="custom")
        assert client.get_index_sync(name).name == name
        assert client.load_index_sync(name).name == name
    names = [i.name for i in client.list_indexes_sync()]
    assert "CASE" in names and "case" in names and "déjà vu" in names
    with pytest.raises(InvalidArgumentError):
        client.get_index_sync("a/b")


def test_unreachable_server_raises_network_error(isolated_home):
    store = HttpStore(f"http://127.0.0.1:{free_port()}", "prj_x", "lk_y", retries=Retries(attempts=1, backoff=0.01))
    with pytest.raises(NetworkError, match="cannot reach"):
        store.check_credentials()
    with pytest.raises(NetworkError):
        store.write(snapshot_of("x", 1))
