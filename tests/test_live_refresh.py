"""Issue 25, the client's side, against real ``lichen serve`` processes (file system and
S3 through a moto process) and the embedded store: a loaded index kept current in the
background (a push from another process and a write on another replica reach it with
no call on the client), by delta where the server gives one; queries from several
threads while versions swap never fail and never see two versions at once; a server
killed mid-refresh leaves the previous version serving; a cached copy serves with the
server down and says so, and catches up once it is back; ``load_indexes``; auto-refresh
stops on unload and close."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from server_helpers import AWS_ENV, Deployment, LichenServer, fresh_storage, shared_moto, snapshot_of

from lichen import Client, DocumentInfo, IndexNotLoadedError, NetworkError, NotFoundError, QueryOptions
from lichen.format.snapshot import IndexSnapshot

ROOT = Path(__file__).resolve().parents[1]
DIM = 8
DEADLINE_S = 60.0  # how long a test waits for what must happen before calling it a failure


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(f"refresh-{request.param}"), moto)
    yield deployed
    deployed.stop()


@pytest.fixture(params=["fs", "s3"])
def storage(request) -> dict[str, str]:
    """Where a test's own servers keep indexes: a directory, or a fresh bucket."""
    return fresh_storage(request.param)


def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def versioned(name: str, n: int, version: int, *, seed: int = 0) -> IndexSnapshot:
    """``n`` documents all tagged ``{"v": version}``: a query returning documents of two
    tags saw two versions at once."""
    snapshot = snapshot_of(name, n, dim=DIM, seed=seed)
    snapshot.metadata = [{"i": i, "v": version} for i in range(n)]
    return snapshot


def docs_of(snapshot: IndexSnapshot) -> list[DocumentInfo]:
    return [
        DocumentInfo(id=i, text=t, metadata=m, embedding=snapshot.matrix[row].tolist())
        for row, (i, t, m) in enumerate(zip(snapshot.ids, snapshot.texts, snapshot.metadata))
    ]


def live_client(server: LichenServer, credentials, home: Path, **options) -> Client:
    client = server.client(credentials, home=home, **options)
    client.long_poll_seconds = 5.0
    return client


PUSHER = """
import sys
from lichen import Client, DocumentInfo
name, n = sys.argv[1], int(sys.argv[2])
docs = [DocumentInfo(id=f"p{i}", text=f"pushed {i}", metadata={"v": 99}, embedding=[1.0] + [0.0] * 7) for i in range(n)]
client = Client()
session = client.session_sync(name)
session.clear_sync()
session.add_docs_sync(docs)
print(session.push_index_sync().version)
"""


# ------------------------------------------------------------------ freshness
def test_a_push_from_another_process_reaches_a_long_polling_client(deployment, tmp_path):
    """The client long-polls one server; another process pushes through a replica over
    the same storage (directory or bucket)."""
    server = deployment.server
    credentials = server.create_project()
    server.client(credentials, home=tmp_path / "w").store.write(versioned("kb", 12, 1), expected_version=0)
    client = live_client(server, credentials, tmp_path / "r")
    client.load_index_sync("kb", auto_refresh=True, interval=0.2)
    replica = deployment.replica.url
    env = {**os.environ, **AWS_ENV, **credentials.env(replica), "LICHEN_HOME": str(tmp_path / "pusher")}
    pushed = subprocess.run([sys.executable, "-c", PUSHER, "kb", "3"], env=env, capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    until(lambda: client.loaded_index("kb").doc_count == 3, "the pushed version")
    status = client.index_status("kb")
    assert status.version == int(pushed.stdout) and not status.stale and status.full_refreshes == 1
    assert [d.id for d in client.get_docs_sync("kb")] == ["p0", "p1", "p2"]
    client.close()


def test_a_write_on_another_replica_arrives_by_delta(deployment, tmp_path):
    server, replica = deployment.server, deployment.replica
    credentials = server.create_project()
    base = versioned("faq", 40, 1)
    server.client(credentials, home=tmp_path / "w").store.write(base, expected_version=0)
    client = live_client(server, credentials, tmp_path / "r")  # long-polls the first server
    client.load_index_sync("faq", auto_refresh=True, interval=0.2)
    writer = live_client(replica, credentials, tmp_path / "w2")  # writes through the other
    added = docs_of(snapshot_of("faq", 2, dim=DIM, prefix="new", seed=7))
    writer.add_docs_sync("faq", added)
    writer.delete_docs_sync("faq", ["d3"])
    until(lambda: client.index_status("faq").version == 3, "both writes")
    status = client.index_status("faq")
    assert status.delta_refreshes >= 1 and status.full_refreshes == 0 and status.last_error is None
    ids = [d.id for d in client.loaded_index("faq").get_docs_sync()]
    assert ids == [i for i in base.ids if i != "d3"] + ["new0", "new1"]
    assert client.loaded_index("faq").version == 3
    client.close()
    writer.close()


def test_queries_never_fail_nor_mix_versions_while_versions_swap(deployment, tmp_path):
    """Three threads query the whole index without pause while another rewrites every
    document (server-side: deltas) and pushes (whole versions) in turn; every answer must
    hold the documents of one version only."""
    server = deployment.server
    credentials = server.create_project()
    n = 30
    writer = live_client(server, credentials, tmp_path / "w")
    writer.store.write(versioned("swap", n, 0), expected_version=0)
    client = live_client(server, credentials, tmp_path / "r")
    client.load_index_sync("swap", auto_refresh=True, interval=0.2)
    stop = threading.Event()
    seen: set[int] = set()
    problems: list[str] = []
    query = QueryOptions(top_k=n, embedding=np.ones(DIM).tolist())

    def read() -> None:
        while not stop.is_set():
            try:
                docs = client.query_sync("swap", "any", query).docs
                tags = {d.metadata["v"] for d in docs}
                if len(docs) != n or len(tags) != 1:
                    problems.append(f"{len(docs)} documents of versions {sorted(tags)}")
                seen.update(tags)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for version in range(1, 9):
            if version % 2:
                writer.add_docs_sync("swap", docs_of(versioned("swap", n, version, seed=version)))
            else:
                writer.store.write(versioned("swap", n, version, seed=version))
            until(lambda: version in seen or bool(problems), f"version {version} answering")
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        client.close()
    assert not problems, problems[:5]
    status = client.index_status("swap")
    assert status.delta_refreshes >= 1 and status.full_refreshes >= 1


# ------------------------------------------------------------------ availability
class ThrottledProxy:
    """A TCP proxy between the client and the server that forwards at most ``rate`` bytes
    a second toward the client, so that a download is still in flight when the test
    kills the server; ``upstream`` can be pointed at a restarted server."""

    def __init__(self, upstream: int, rate: int) -> None:
        self.upstream = upstream
        self.rate = rate
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.socket()
                # A small window: the server cannot hand the whole body to the kernel
                # before the test kills it.
                upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
                upstream.connect(("127.0.0.1", self.upstream))
            except OSError:
                downstream.close()
                continue
            threading.Thread(target=self._pipe, args=(downstream, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, throttled: bool) -> None:
        try:
            while True:
                rate = self.rate if throttled else None  # read each time: the test may lift it
                data = source.recv(16384 if rate is None else max(1, rate // 20))
                if not data:
                    break
                target.sendall(data)
                if rate is not None:
                    self.sent += len(data)
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._listener.close()


def test_a_server_killed_mid_refresh_leaves_the_previous_version_serving(tmp_path, storage):
    server = LichenServer(tmp_path / "data", limits={"max_body_bytes": 64 << 20, "max_docs": 200_000}, **storage).start()
    proxy = ThrottledProxy(server.port, rate=1 << 20)
    try:
        credentials = server.create_project()
        writer = server.client(credentials, home=tmp_path / "w")
        writer.store.write(versioned("big", 50, 1), expected_version=0)
        client = Client(credentials.project_id, credentials.project_key, url=proxy.url, home=tmp_path / "r", retries=0)
        client.long_poll_seconds = 5.0
        client.load_index_sync("big", auto_refresh=True, interval=0.05)
        big = versioned("big", 20_000, 2)
        big.texts = [f"{i} " + "padding " * 40 for i in range(20_000)]  # ~7 MB: beyond what socket buffers hold
        writer.store.write(big)
        before = proxy.sent
        until(lambda: proxy.sent > before + (256 << 10), "the download to be under way")
        server.kill()
        proxy.rate = 1 << 30  # what the dead server left in its socket arrives, then the cut
        until(lambda: client.index_status("big").last_error is not None, "the refresh to fail")
        status = client.index_status("big")
        assert status.version == 1 and status.stale and client.was_served_stale("big")
        assert client.loaded_index("big").doc_count == 50
        hits = client.query_sync("big", "q", QueryOptions(top_k=3, embedding=np.ones(DIM).tolist())).docs
        assert len(hits) == 3 and {d.metadata["v"] for d in hits} == {1}
        # Back up (a new process on another port behind the same address): it catches up.
        restarted = LichenServer(tmp_path / "data", **storage).start()
        proxy.upstream = restarted.port
        until(lambda: client.index_status("big").version == 2, "the refresh after the restart")
        status = client.index_status("big")
        assert not status.stale and status.last_error is None and client.loaded_index("big").doc_count == 20_000
        assert client.was_served_stale("big")  # answers given meanwhile came from version 1
        client.close()
        restarted.stop()
    finally:
        proxy.close()
        server.stop()


def test_a_cached_copy_serves_while_the_server_is_down_and_says_so(tmp_path, storage):
    server = LichenServer(tmp_path / "data", **storage).start()
    credentials = server.create_project()
    server.client(credentials, home=tmp_path / "w").store.write(versioned("kb", 20, 1), expected_version=0)
    warm = server.client(credentials, home=tmp_path / "cache")
    warm.load_index_sync("kb")  # leaves a copy in the download cache
    warm.close()
    server.stop()
    client = Client(credentials.project_id, credentials.project_key, url=server.url, home=tmp_path / "cache", retries=0)
    client.long_poll_seconds = 5.0
    index = client.load_index_sync("kb", auto_refresh=True, interval=0.05)  # pauses from 0.05 s, doubling
    status = client.index_status("kb")
    assert index.doc_count == 20 and status.version == 1 and status.source == "cache"
    assert status.stale and client.was_served_stale("kb") and server.url in status.last_error
    assert status.last_refresh is None
    cold = Client(credentials.project_id, credentials.project_key, url=server.url, home=tmp_path / "empty", retries=0)
    with pytest.raises(NetworkError, match=server.url.replace(".", r"\.")):
        cold.load_index_sync("kb")
    report = cold.load_indexes_sync(["kb"])
    assert not report.ok and isinstance(report.failed["kb"], NetworkError)
    # The server comes back with a newer version: the cached copy catches up by itself.
    server.start()
    server.client(credentials, home=tmp_path / "w").add_docs_sync("kb", docs_of(snapshot_of("kb", 1, dim=DIM, prefix="late")))
    until(lambda: client.index_status("kb").version == 2, "the catch-up")
    status = client.index_status("kb")
    assert not status.stale and status.last_error is None and status.last_refresh is not None
    assert status.delta_refreshes == 1 and client.loaded_index("kb").doc_count == 21
    client.close()
    server.stop()


def test_a_restart_refreshes_its_cached_copy_by_delta(tmp_path, storage):
    server = LichenServer(tmp_path / "data", **storage).start()
    try:
        credentials = server.create_project()
        writer = server.client(credentials, home=tmp_path / "w")
        writer.store.write(versioned("kb", 20, 1), expected_version=0)
        server.client(credentials, home=tmp_path / "r").load_index_sync("kb")
        writer.add_docs_sync("kb", docs_of(snapshot_of("kb", 1, dim=DIM, prefix="n")))
        downloads = []
        hooks = {"response": [lambda r: downloads.append(r.request.url.path)]}
        client = server.client(credentials, home=tmp_path / "r", event_hooks=hooks)
        assert client.load_index_sync("kb").doc_count == 21
        assert client.index_status("kb").version == 2
        assert not any(path.endswith("/artifact") for path in downloads), downloads
        assert any(path.endswith("/changes") for path in downloads)
    finally:
        server.stop()


# ------------------------------------------------------------------ many indexes, stopping
def test_load_indexes_loads_what_it_can_and_says_why_not(deployment, tmp_path):
    server = deployment.server
    credentials = server.create_project()
    writer = server.client(credentials, home=tmp_path / "w")
    for i in range(3):
        writer.store.write(versioned(f"many-{i}", 5 + i, 1), expected_version=0)
    client = live_client(server, credentials, tmp_path / "r")
    report = client.load_indexes_sync(["many-0", "missing", "many-1", "many-2"], concurrency=2)
    assert list(report.loaded) == ["many-0", "many-1", "many-2"] and not report.ok
    assert "missing" in str(report.failed["missing"]) and isinstance(report.failed["missing"], NotFoundError)
    assert [client.loaded_index(f"many-{i}").doc_count for i in range(3)] == [5, 6, 7]
    client.close()


def test_unload_and_close_stop_the_refresh(tmp_path):
    server = LichenServer(tmp_path / "data").start()
    try:
        credentials = server.create_project()
        writer = server.client(credentials, home=tmp_path / "w")
        for name in ("a", "b"):
            writer.store.write(versioned(name, 5, 1), expected_version=0)
        client = live_client(server, credentials, tmp_path / "r")
        client.long_poll_seconds = 0.5
        client.load_index_sync("a", auto_refresh=True, interval=0.2)
        b = client.load_index_sync("b", auto_refresh=True, interval=0.2)
        threads = [t for t in threading.enumerate() if t.name in ("lichen-refresh-a", "lichen-refresh-b")]
        assert len(threads) == 2
        assert client.unload_index_sync("a")
        with pytest.raises(IndexNotLoadedError):
            client.index_status("a")
        client.close()
        for thread in threads:
            thread.join(DEADLINE_S)
            assert not thread.is_alive()
        writer.store.write(versioned("b", 7, 2))
        time.sleep(1.0)  # a refresher still running would long-poll and swap within this
        assert client.loaded_index("b") is b and b.doc_count == 5
        status = client.index_status("b")
        assert not status.auto_refresh and status.version == 1
    finally:
        server.stop()


# ------------------------------------------------------------------ version skew
def _older_source(tmp_path: Path) -> Path | None:
    """``src/`` of the commit before the server learned long-polls and changes (the
    parent of the one that added ``server/watch.py``), or ``None`` without git history."""
    try:
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/lichen/server/watch.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()
        if not added:
            return None
        archive = subprocess.run(["git", "archive", f"{added[-1]}^", "src"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    target = tmp_path / "older"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def test_an_older_server_is_polled_by_etag_and_downloaded_from(tmp_path, monkeypatch):
    """A server of the version before (no features, no long-poll, no changes route), run
    from that commit's source: the client polls get_info every interval and downloads
    each new version whole."""
    source = _older_source(tmp_path)
    if source is None:
        pytest.skip("no git history here to run the older server from")
    monkeypatch.setenv("PYTHONPATH", str(source))
    server = LichenServer(tmp_path / "data").start()
    monkeypatch.delenv("PYTHONPATH")
    try:
        credentials = server.create_project()
        writer = server.client(credentials, home=tmp_path / "w")
        writer.store.write(versioned("old", 10, 1), expected_version=0)
        client = live_client(server, credentials, tmp_path / "r")
        assert client.store.features() == frozenset()
        client.load_index_sync("old", auto_refresh=True, interval=0.1)
        writer.add_docs_sync("old", docs_of(snapshot_of("old", 2, dim=DIM, prefix="n")))
        until(lambda: client.loaded_index("old").doc_count == 12, "the server-side add")
        writer.store.write(versioned("old", 4, 3, seed=3))
        until(lambda: client.loaded_index("old").doc_count == 4, "the push")
        status = client.index_status("old")
        assert status.version == 3 and status.full_refreshes == 2 and status.delta_refreshes == 0
        assert status.last_error is None and not status.stale
        client.close()
    finally:
        server.stop()


# ------------------------------------------------------------------ the embedded store
class _LateLock:
    """A lock the refresher thread takes 50 ms late: it widens any gap between a refresh
    putting a new version in place and recording that version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> _LateLock:
        if threading.current_thread().name.startswith("lichen-refresh"):
            time.sleep(0.05)
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def test_index_status_never_pairs_one_versions_documents_with_another_version(tmp_path):
    home = tmp_path / "home"
    writer = Client(home=home)
    counts = {writer.store.write(versioned("st", 3, 1), expected_version=0).version: 3}
    client = Client(home=home)
    client.load_index_sync("st", auto_refresh=True, interval=0.01)
    client._live["st"].lock = _LateLock()
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch() -> None:  # until told to stop and it has itself seen the last version
        while not (stop.is_set() and seen and seen[-1][0] == max(counts)):
            status = client.index_status("st")
            seen.append((status.version, status.doc_count))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for n in (5, 7, 9):
            version = writer.store.write(versioned("st", n, n)).version
            counts[version] = n
            until(lambda: client.index_status("st").version == version, f"version {version}")  # noqa: B023
    finally:
        stop.set()
        watcher.join()
        client.close()
    assert {version for version, _ in seen} == set(counts)
    mixed = sorted({(v, c) for v, c in seen if c != counts[v]})
    assert not mixed, f"(version, documents) pairs of two versions: {mixed}"


def test_the_embedded_store_refreshes_from_another_process(tmp_path):
    home = tmp_path / "home"
    Client(home=home).store.write(versioned("local", 10, 1), expected_version=0)
    client = Client(home=home)
    client.load_index_sync("local", auto_refresh=True, interval=0.1)
    env = {**os.environ, "LICHEN_HOME": str(home)}
    for key in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY"):
        env.pop(key, None)
    pushed = subprocess.run([sys.executable, "-c", PUSHER, "local", "4"], env=env, capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    until(lambda: client.loaded_index("local").doc_count == 4, "the pushed version")
    status = client.index_status("local")
    assert status.version == 2 and status.full_refreshes == 1 and not status.stale
    client.close()
