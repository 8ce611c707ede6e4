"""HttpStore's own decisions, against scripted HTTP exchanges (httpx.MockTransport):
which calls are retried, how errors map to Lichen exceptions, lost-response recovery,
progress bars, configuration objects. End-to-end behaviour against a real server is in
``test_server.py``."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from lichen import (
    ConflictError,
    CorruptDataError,
    InvalidArgumentError,
    LichenError,
    LimitExceededError,
    NetworkError,
    NotFoundError,
    StorageError,
    UnauthorizedError,
)
from lichen.artifact import encode_artifact, read_manifest
from lichen.stores._base import IndexSnapshot
from lichen._progress import progress_wanted
from lichen.stores.http import HttpStore, Retries, Timeout

PROJECT = {"project_id": "prj_1", "protocol": 1, "limits": {"max_body_bytes": 1 << 30, "max_docs": 1_000_000}}
FAST = Retries(attempts=3, backoff=0.001, max_backoff=0.002)


def snapshot(name: str = "idx", n: int = 3, dim: int = 4) -> IndexSnapshot:
    matrix = np.eye(n, dim, dtype=np.float32)
    return IndexSnapshot(name=name, model_id="custom", dimension=dim, ids=[f"d{i}" for i in range(n)],
                         texts=["t"] * n, metadata=[{}] * n, matrix=matrix)


def error(status: int, code: str, message: str = "nope", **extra) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, **extra}})


def push_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"job_id": "j1", "index_name": "idx", "doc_count": 3, "status": "completed",
                                     "version": 2, "etag": read_manifest(request.content).etag})


class Script:
    """Answers requests from a list of responders (callables or responses), in order,
    recording what it was asked."""

    def __init__(self, *steps) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step

    @property
    def methods(self) -> list[str]:
        return [r.method for r in self.requests]


def store_for(script: Script, **options) -> HttpStore:
    options.setdefault("retries", FAST)
    transport = httpx.MockTransport(script)
    return HttpStore("http://lichen.test", "prj_1", "lk_secret", transport=transport, async_transport=transport,
                     cache=False, **options)


def test_requests_carry_the_credentials():
    script = Script(httpx.Response(200, json=PROJECT))
    store_for(script).check_credentials()
    assert script.requests[0].headers["authorization"] == "Bearer prj_1:lk_secret"
    assert script.requests[0].url.path == "/v1/project"


def test_idempotent_calls_are_retried_on_5xx_and_connection_errors():
    script = Script(httpx.Response(503), httpx.ConnectError("refused"), error(500, "internal"), httpx.Response(200, json=PROJECT))
    store_for(script).check_credentials()
    assert script.methods == ["GET"] * 4


def test_retries_give_up_with_network_error():
    script = Script(*[httpx.Response(502)] * 4)
    with pytest.raises(NetworkError, match="HTTP 502"):
        store_for(script).check_credentials()
    assert len(script.requests) == 4  # one try and three repeats


def test_a_definite_server_answer_is_not_retried():
    script = Script(error(500, "corrupt_data", "stored index 'idx' is corrupt: bad"))
    with pytest.raises(CorruptDataError, match="is corrupt"):
        store_for(script).read("idx")
    assert len(script.requests) == 1


def test_unconditional_push_is_not_retried_after_sending():
    script = Script(httpx.Response(200, json=PROJECT), httpx.Response(503))
    with pytest.raises(NetworkError):
        store_for(script).write(snapshot())
    assert script.methods == ["GET", "PUT"]


def test_unconditional_push_is_retried_when_nothing_was_sent():
    script = Script(httpx.Response(200, json=PROJECT), httpx.ConnectError("refused"), push_ok)
    assert store_for(script).write(snapshot()).version == 2
    assert script.methods == ["GET", "PUT", "PUT"]


def test_conditional_push_is_retried_and_sends_its_condition():
    script = Script(httpx.Response(200, json=PROJECT), httpx.Response(502), push_ok)
    assert store_for(script).write(snapshot(), expected_version=1).version == 2
    assert [r.headers.get("if-match") for r in script.requests[1:]] == ['"1"', '"1"']
    assert script.requests[2].headers["content-length"] == str(len(script.requests[2].content))
    create = Script(httpx.Response(200, json=PROJECT), push_ok)
    store_for(create).write(snapshot(), expected_version=0)
    assert create.requests[1].headers["if-none-match"] == "*"


def test_a_push_whose_answer_was_lost_is_recognised_as_applied():
    applied: dict[str, str] = {}

    def apply_then_drop(request):
        applied["etag"] = read_manifest(request.content).etag
        raise httpx.ReadError("connection reset")

    def conflict(request):
        return error(412, "conflict", "index 'idx' is at version 2, expected 1", current_version=2, current_etag=applied["etag"])

    def info(request):
        return httpx.Response(200, headers={"Lichen-Job-Id": "j9"}, json={
            "name": "idx", "doc_count": 3, "model_id": "custom", "dimension": 4, "version": 2,
            "created_at": "", "updated_at": "", "etag": applied["etag"], "size": 1,
        })

    script = Script(httpx.Response(200, json=PROJECT), apply_then_drop, conflict, info)
    result = store_for(script).write(snapshot(), expected_version=1)
    assert (result.version, result.job_id, result.status) == (2, "j9", "completed")


def test_a_real_conflict_after_a_retry_is_still_a_conflict():
    script = Script(httpx.Response(200, json=PROJECT), httpx.Response(503),
                    error(412, "conflict", "index 'idx' is at version 5, expected 1", current_version=5, current_etag="0" * 32))
    with pytest.raises(ConflictError, match="version 5"):
        store_for(script).write(snapshot(), expected_version=1)


@pytest.mark.parametrize(
    ("response", "exception", "match"),
    [
        (error(401, "unauthorized", "invalid project id or key"), UnauthorizedError, "invalid project id or key"),
        (httpx.Response(401), UnauthorizedError, "HTTP 401"),
        (error(404, "not_found", "index 'x' not found"), NotFoundError, "index 'x' not found"),
        (error(409, "conflict", "busy"), ConflictError, "busy"),
        (error(412, "conflict", "stale"), ConflictError, "stale"),
        (error(413, "limit_exceeded", "too big"), LimitExceededError, "too big"),
        (error(422, "limit_exceeded", "too many"), LimitExceededError, "too many"),
        (error(422, "invalid_argument", "bad name"), InvalidArgumentError, "bad name"),
        (error(422, "corrupt_data", "not an artifact"), CorruptDataError, "not an artifact"),
        (httpx.Response(418), LichenError, "unexpected HTTP 418"),
    ],
)
def test_error_responses_map_to_lichen_exceptions(response, exception, match):
    with pytest.raises(exception, match=match):
        store_for(Script(response)).get_info("x")


def test_missing_index_on_delete_is_false_not_an_error():
    assert store_for(Script(error(404, "not_found"))).delete("x") is False


def test_unexpected_bodies_are_network_errors():
    with pytest.raises(NetworkError, match="unexpected response"):
        store_for(Script(httpx.Response(200, text="<html>proxy error</html>"))).list()


def test_server_speaking_another_protocol_is_refused():
    with pytest.raises(LichenError, match="protocol 2"):
        store_for(Script(httpx.Response(200, json={**PROJECT, "protocol": 2}))).check_credentials()


def test_limits_are_checked_before_uploading():
    small = {**PROJECT, "limits": {"max_body_bytes": 100, "max_docs": 2}}
    script = Script(httpx.Response(200, json=small))
    with pytest.raises(LimitExceededError, match="at most 100"):
        store_for(script).write(snapshot())
    assert script.methods == ["GET"]


def test_async_face_shares_the_logic_and_survives_several_event_loops():
    script = Script(httpx.Response(503), httpx.Response(200, json=PROJECT), httpx.Response(200, json={"indexes": []}))
    store = store_for(script)
    asyncio.run(store.acheck_credentials())
    assert asyncio.run(store.alist()) == []  # a second asyncio.run: a new loop, a new AsyncClient
    assert script.methods == ["GET", "GET", "GET"]


def test_progress_bar_only_where_wanted(monkeypatch, capsys):
    monkeypatch.setenv("LICHEN_PROGRESS", "0")
    assert progress_wanted(None) is False
    assert progress_wanted(True) is True
    monkeypatch.delenv("LICHEN_PROGRESS")
    assert progress_wanted(None) is False  # pytest's stderr is not a TTY

    script = Script(httpx.Response(200, json=PROJECT), push_ok)
    store_for(script, progress=True).write(snapshot(n=3000, dim=1000))  # 12 MB
    assert "push idx" in capsys.readouterr().err
    quiet = Script(httpx.Response(200, json=PROJECT), push_ok)
    store_for(quiet).write(snapshot(n=3000, dim=1000))
    assert capsys.readouterr().err == ""


def test_configuration_objects():
    assert Timeout(read=3).to_httpx().read == 3
    store = HttpStore("http://x", "p", "k", timeout=7, retries=0, cache=False)
    assert store.timeout.read == 7 and store.timeout.connect == 5.0 and store.retries.attempts == 0
    delays = [Retries(backoff=0.1, max_backoff=1.0).delay(n) for n in range(8)]
    assert all(0.075 <= d <= 1.25 for d in delays) and delays[0] < delays[3]
    with pytest.raises(InvalidArgumentError, match="http"):
        HttpStore("ftp://x", "p", "k")


def test_requests_name_indexes_safely():
    script = Script(error(404, "not_found"))
    with pytest.raises(NotFoundError):
        store_for(script).get_info("a b?c#d%")
    assert script.requests[0].url.raw_path == b"/v1/indexes/a%20b%3Fc%23d%25"
    with pytest.raises(InvalidArgumentError):
        store_for(Script()).get_info("../etc")


def test_delete_documents_sends_json():
    script = Script(httpx.Response(200, json={"job_id": "j", "index_name": "i", "deleted": 2, "doc_count": 1, "version": 3}))
    assert store_for(script).delete_documents("i", ["a", "b"]) == 2
    assert json.loads(script.requests[0].content) == {"ids": ["a", "b"]}
    with pytest.raises(InvalidArgumentError):
        store_for(Script()).delete_documents("i", "a")


def test_long_id_lists_are_split_across_requests():
    def answer(request):
        ids = request.url.params.get_list("ids")
        assert len(str(request.url)) < 8000
        return httpx.Response(200, json={"index_name": "i", "version": 1,
                                         "docs": [{"id": i, "text": i.upper()} for i in ids]})

    ids = [f"document-number-{n:05d}" for n in range(2000)]
    script = Script(*[answer] * 20)
    docs = store_for(script).get_documents("i", ids)
    assert [d.id for d in docs] == ids and len(script.requests) > 5
    assert store_for(Script()).get_documents("i", []) == []


def test_an_unwritable_download_cache_degrades_to_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    body = encode_artifact(snapshot()).to_bytes()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, stream=httpx.ByteStream(body), headers={"ETag": '"e"'})
    )
    store = HttpStore("http://lichen.test", "prj_1", "lk_secret", transport=transport, async_transport=transport,
                      cache_dir=blocker, retries=FAST)
    with pytest.warns(RuntimeWarning, match="download cache .* cannot be used") as warned:
        assert store.read("idx").ids == ["d0", "d1", "d2"]
        assert store.read("idx").ids == ["d0", "d1", "d2"]
    assert len(warned) == 1 and str(blocker) in str(warned[0].message)
    assert blocker.read_text().startswith("a file")
    # With no usable temporary directory either, there is nowhere to put a download.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    with pytest.raises(StorageError, match="cannot write the downloaded index to .*LICHEN_HOME"):
        store.read("idx")


# ---------------------------------------------------------------- against a real lichen serve
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_helpers import Deployment

    deployed = Deployment("fs", tmp_path_factory.mktemp("http-store"), None)
    yield deployed.server
    deployed.stop()


def _roundtrip(client) -> None:
    from lichen import DocumentInfo

    if client.list_indexes_sync() == []:
        client.create_index_sync("faqs", [DocumentInfo(id="a", text="a", embedding=[1.0, 0.0])], model_id="custom")
    for _ in range(2):
        assert client.load_index_sync("faqs").doc_count == 1
        assert [d.id for d in client.get_docs_sync("faqs")] == ["a"]


def test_a_client_with_an_unusable_cache_warns_once_and_reads_from_the_server(server, tmp_path, recwarn):
    blocker = tmp_path / "home"
    blocker.write_text("LICHEN_HOME is a file")
    credentials = server.create_project()
    with pytest.warns(RuntimeWarning, match=f"download cache {blocker}.* cannot be used .*LICHEN_HOME"):
        client = server.client(credentials, home=blocker)
    recwarn.clear()
    _roundtrip(client)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert blocker.read_text() == "LICHEN_HOME is a file"


def test_a_cache_that_breaks_after_opening_degrades_on_the_next_download(server, tmp_path):
    import shutil

    home = tmp_path / "home"
    credentials = server.create_project()
    client = server.client(credentials, home=home)  # usable now: no warning
    shutil.rmtree(home)
    home.write_text("replaced by a file")  # e.g. the disk was remounted read-only
    with pytest.warns(RuntimeWarning, match="download cache .* cannot be used") as warned:
        _roundtrip(client)
    assert len([w for w in warned if "download cache" in str(w.message)]) == 1


def test_creating_an_existing_index_on_a_server_says_it_exists(server, tmp_path):
    from lichen import DocumentInfo, IndexNotLoadedError

    client = server.client(server.create_project(), home=tmp_path / "home")
    docs = [DocumentInfo(id="a", text="a", embedding=[1.0, 0.0])]
    client.create_index_sync("faqs", docs, model_id="custom")
    with pytest.raises(ConflictError, match=r"index 'faqs' already exists \(version 1\).*overwrite=True"):
        client.create_index_sync("faqs", docs, model_id="custom")
    assert client.get_index_sync("faqs").version == 1
    with pytest.raises(IndexNotLoadedError, match=f"'nowhere' does not exist in the server at {server.url}"):
        client.query_sync("nowhere", "a")
    with pytest.raises(IndexNotLoadedError, match="'faqs' exists but is not loaded"):
        client.query_sync("faqs", "a")
