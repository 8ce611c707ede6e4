"""Writes without a version condition under contention (issue 21, item 6), against real
``lichen serve`` processes on the file system and on S3 (a real moto process): none may
fail for contention alone, none may be lost; and a server admitting no more rewrites
answers 503 with ``Retry-After``: the request was turned away unread, so the client
repeats any write after the wait, and reports a clear error once its retries are spent."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
from server_helpers import Deployment, auth, free_port, shared_moto, snapshot_of

from lichen import DocumentInfo, NetworkError
from lichen.server.app import ServerConfig, create_app
from lichen.server.service import Limits
from lichen.server.storage.fs import FileStorage
from lichen.stores.http import HttpStore, Retries

WRITERS, WRITES = 8, 50


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(request.param), moto)
    yield deployed
    deployed.stop()


def one_doc(writer: int, write: int) -> list[DocumentInfo]:
    rng = np.random.default_rng(writer * 1000 + write)
    return [DocumentInfo(id=f"w{writer}-{write}", text=f"writer {writer} write {write}", embedding=rng.standard_normal(8))]


def test_unconditional_writes_never_fail_or_get_lost_under_contention(deployment):
    """8 clients each add 50 documents, one server-side add_docs at a time, all at once
    into one index: every call succeeds, says it added its document, and every document
    is there. (Batches queued together are merged in one rewrite: the index gets fewer
    versions than writes.)"""
    server = deployment.server
    project = server.create_project()
    server.client(project).create_index_sync("c", [one_doc(99, 0)[0]], model_id="custom")
    failures: list[BaseException] = []
    answers: list[tuple[int, int]] = []
    start = threading.Barrier(WRITERS)

    def writer(k: int) -> None:
        client = server.client(project)
        start.wait()
        for i in range(WRITES):
            try:
                answers.append(client.add_docs_sync("c", one_doc(k, i)))
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures, f"{len(failures)} of {WRITERS * WRITES} writes failed, first: {failures[0]!r}"
    stored = {doc.id for doc in server.client(project).get_docs_sync("c")}
    expected = {f"w{k}-{i}" for k in range(WRITERS) for i in range(WRITES)} | {"w99-0"}
    assert stored == expected, f"lost: {sorted(expected - stored)[:5]}"
    assert answers == [(1, 0)] * (WRITERS * WRITES)
    assert 1 < server.client(project).get_index_sync("c").version <= 1 + WRITERS * WRITES


def test_writes_through_two_replicas_retry_their_lost_races(deployment):
    """Replicas do not share a queue: a write that loses the race to publish is run again
    (the storage's conditional write settles each race), so none fails or is lost."""
    project = deployment.server.create_project()
    deployment.server.client(project).create_index_sync("r", [one_doc(99, 0)[0]], model_id="custom")
    servers = [deployment.server, deployment.replica]
    failures: list[BaseException] = []

    def writer(k: int) -> None:
        client = servers[k % 2].client(project)
        for i in range(10):
            try:
                client.add_docs_sync("r", one_doc(k, i))
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures, failures[:3]
    assert deployment.server.client(project).get_index_sync("r").doc_count == 1 + 4 * 10


class InProcessServer:
    """The real app on 127.0.0.1 under uvicorn, in a thread: the test holds the server's
    merge queue itself, as a long rewrite would, to fill it deterministically."""

    def __init__(self, root, limits: Limits) -> None:
        import uvicorn

        self.storage = FileStorage(root)
        self.app = create_app(ServerConfig(storage=self.storage, limits=limits))
        self.service = self.app.state.service
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_a_full_merge_queue_answers_503_and_the_client_retries_any_write(tmp_path):
    limits = Limits(max_body_bytes=1 << 20, max_docs=1000, max_running_merges=1, max_queued_merges=0)
    with InProcessServer(tmp_path / "data", limits) as server:
        from lichen.server.auth import create_project

        project = create_project(server.storage)
        store = HttpStore(server.url, project.project_id, project.project_key, retries=Retries(attempts=3, max_backoff=0.05))
        store.write(snapshot_of("q", 3), expected_version=0)
        before = server.storage.head(project.project_id, "q")
        batch = snapshot_of("q", 1, prefix="new")

        with server.service.merges.slot((project.project_id, "other")):  # the one running rewrite
            raw = httpx.post(
                f"{server.url}/v1/indexes/q/docs", content=_encoded(batch), headers=auth(_credentials(project))
            )
            assert raw.status_code == 503 and raw.headers["retry-after"].isdigit()
            assert "nothing was written" in raw.json()["error"]["message"]
            # Still busy after every retry: the caller hears it, worded, and nothing changed.
            with pytest.raises(NetworkError, match=r"HTTP 503.*busy rewriting indexes.*nothing was written"):
                store.add_documents(batch)
        assert server.storage.head(project.project_id, "q") == before  # nothing written

        # The server turned the request away unread: conditional or not, a write is
        # retried after Retry-After and goes through once a turn frees.
        for expected_version, total in ((None, 4), (2, 5)):
            slot = server.service.merges.slot((project.project_id, "other"))
            slot.__enter__()
            refused = server.service.merges.refused
            releaser = threading.Thread(target=_release_after_refusal, args=(server.service.merges, refused, slot))
            releaser.start()
            batch = snapshot_of("q", 1, prefix=f"new{total}")
            assert store.add_documents(batch, expected_version=expected_version) == (1, 0)
            releaser.join(10)
            assert server.service.merges.refused > refused
            assert server.storage.head(project.project_id, "q").doc_count == total


def _release_after_refusal(queue, refused: int, slot) -> None:
    deadline = time.monotonic() + 10
    while queue.refused == refused and time.monotonic() < deadline:
        time.sleep(0.01)
    slot.__exit__(None, None, None)


def _encoded(snapshot) -> bytes:
    from lichen.format.artifact import encode_artifact

    return encode_artifact(snapshot).to_bytes()


def _credentials(project):
    from server_helpers import Credentials

    return Credentials(project.project_id, project.project_key)
