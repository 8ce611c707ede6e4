"""HttpStore's own decisions, against scripted HTTP exchanges (httpx.MockTransport):
which calls are retried, how errors map to Lichen exceptions, lost-response recovery,
progress bars, configuration objects.

The script injects the faults (dropped connections, lost answers, 5xx from a proxy); every
answer a Lichen server would give comes from a real ``lichen serve`` (the script forwards
the request to it) or, for errors that cannot be provoked on demand, is rendered by the
server's own error renderer. So a change to what the server answers breaks these tests
as it would break the client. End-to-end behaviour is in ``test_server.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from server_helpers import Credentials, Deployment, LichenServer, snapshot_of

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
from lichen._progress import progress_wanted
from lichen.format.snapshot import IndexSnapshot
from lichen.protocol import ErrorCode
from lichen.stores.http import HttpStore, Retries, Timeout

FAST = Retries(attempts=3, backoff=0.001, max_backoff=0.002)
Responder = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    deployed = Deployment("fs", tmp_path_factory.mktemp("http-store"), None)
    yield deployed
    deployed.stop()


@pytest.fixture(scope="module")
def server(deployment) -> LichenServer:
    return deployment.server


@pytest.fixture
def project(server) -> Credentials:
    return server.create_project()


@pytest.fixture(scope="module")
def upstream(server) -> httpx.Client:
    """The connection the script forwards requests over to the real server."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture
def real(upstream) -> Responder:
    """The answer of the real server to the scripted request."""
    return lambda request: forward(upstream, request)


@pytest.fixture
def direct(server, project) -> HttpStore:
    """A store talking to the real server with no script in between, to set up state."""
    return HttpStore(server.url, project.project_id, project.project_key, cache=False)


_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


def forward(upstream: httpx.Client, request: httpx.Request) -> httpx.Response:
    answer = upstream.send(upstream.build_request(
        request.method, request.url.raw_path.decode("ascii"), content=request.content,
        headers=[(k, v) for k, v in request.headers.multi_items() if k.lower() not in _HOP_BY_HOP],
    ))
    headers = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
    # A stream, as from the network: the client streams downloads.
    return httpx.Response(answer.status_code, headers=headers, stream=httpx.ByteStream(answer.content))


def lost(responder: Responder, seen: dict | None = None) -> Responder:
    """The request reaches the server and is applied; its answer never arrives."""

    def step(request: httpx.Request) -> httpx.Response:
        answer = responder(request)
        answer.read()
        if seen is not None:
            seen["answer"] = answer
        raise httpx.ReadError("connection reset")

    return step


def edited(responder: Responder, change: Callable[[dict], None]) -> Responder:
    """The real answer with its JSON body changed by ``change``: a server unlike this one."""

    def step(request: httpx.Request) -> httpx.Response:
        answer = responder(request)
        answer.read()
        body = answer.json()
        change(body)
        return httpx.Response(answer.status_code, json=body)

    return step


def server_error(status: int, code: str, message: str = "nope") -> httpx.Response:
    """An error answer as the server renders it, for errors no test can provoke on demand
    (a lost race, a full spool, damage found in storage)."""
    from lichen.server.app import ApiError, _error_response

    rendered = _error_response(ApiError(status, code, message))
    return httpx.Response(rendered.status_code, headers=dict(rendered.headers), content=rendered.body)


def snapshot(name: str = "idx", n: int = 3, dim: int = 4) -> IndexSnapshot:
    matrix = np.eye(n, dim, dtype=np.float32)
    return IndexSnapshot(name=name, model_id="custom", dimension=dim, ids=[f"d{i}" for i in range(n)],
                         texts=["t"] * n, metadata=[{}] * n, matrix=matrix)


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


def store_for(script: Script, project: Credentials | None = None, **options) -> HttpStore:
    options.setdefault("retries", FAST)
    transport = httpx.MockTransport(script)
    project = project or Credentials("prj_1", "lk_secret")
    return HttpStore("http://lichen.test", project.project_id, project.project_key, transport=transport,
                     async_transport=transport, cache=False, **options)


def test_requests_carry_the_credentials(project, real):
    script = Script(real)
    store_for(script, project).check_credentials()
    assert script.requests[0].headers["authorization"] == f"Bearer {project.project_id}:{project.project_key}"
    assert script.requests[0].url.path == "/v1/project"


def test_idempotent_calls_are_retried_on_5xx_and_connection_errors(project, real):
    script = Script(httpx.Response(503), httpx.ConnectError("refused"), server_error(500, ErrorCode.INTERNAL), real)
    store_for(script, project).check_credentials()
    assert script.methods == ["GET"] * 4


def test_retries_give_up_with_network_error():
    script = Script(*[httpx.Response(502)] * 4)
    with pytest.raises(NetworkError, match="HTTP 502"):
        store_for(script).check_credentials()
    assert len(script.requests) == 4  # one try and three repeats


def test_a_definite_server_answer_is_not_retried(project, real):
    script = Script(server_error(500, ErrorCode.CORRUPT_DATA, "stored index 'idx' is corrupt: bad"))
    with pytest.raises(CorruptDataError, match="is corrupt"):
        store_for(script, project).read("idx")
    assert len(script.requests) == 1
    script = Script(real)  # and a real answer: no such index
    with pytest.raises(NotFoundError, match="'idx' not found"):
        store_for(script, project).read("idx")
    assert len(script.requests) == 1


def test_unconditional_push_is_not_retried_after_sending(project, real, direct):
    script = Script(real, httpx.Response(503))
    with pytest.raises(NetworkError):
        store_for(script, project).write(snapshot())
    assert script.methods == ["GET", "PUT"]
    assert direct.list() == []


def test_unconditional_push_is_retried_when_nothing_was_sent(project, real):
    script = Script(real, httpx.ConnectError("refused"), real)
    assert store_for(script, project).write(snapshot()).version == 1
    assert script.methods == ["GET", "PUT", "PUT"]


def test_conditional_push_is_retried_and_sends_its_condition(project, real, direct):
    create = Script(real, real)
    assert store_for(create, project).write(snapshot(), expected_version=0).version == 1
    assert create.requests[1].headers["if-none-match"] == "*"
    script = Script(real, httpx.Response(502), real)
    assert store_for(script, project).write(snapshot(), expected_version=1).version == 2
    assert [r.headers.get("if-match") for r in script.requests[1:]] == ['"1"', '"1"']
    assert script.requests[2].headers["content-length"] == str(len(script.requests[2].content))
    assert direct.get_info("idx").version == 2


def test_a_push_whose_answer_was_lost_is_recognised_as_applied(project, real, direct):
    direct.write(snapshot(), expected_version=0)
    applied: dict = {}
    # The push is applied and its answer lost; the retry gets the real 412 naming the
    # applied version's ETag, and the client asks the real server for the job.
    script = Script(real, lost(real, applied), real, real)
    result = store_for(script, project).write(snapshot(), expected_version=1)
    assert applied["answer"].status_code == 200
    pushed = applied["answer"].json()
    assert (result.version, result.job_id, result.status) == (2, pushed["job_id"], "completed")
    assert script.methods == ["GET", "PUT", "PUT", "GET"]
    assert direct.get_info("idx").version == 2


def test_a_real_conflict_after_a_retry_is_still_a_conflict(project, real, direct):
    direct.write(snapshot(), expected_version=0)
    direct.write(snapshot(n=2), expected_version=1)
    script = Script(real, httpx.Response(503), real)
    with pytest.raises(ConflictError, match="version 2, expected 1"):
        store_for(script, project).write(snapshot(), expected_version=1)
    assert direct.get_info("idx").doc_count == 2


@pytest.mark.parametrize(
    ("status", "code", "exception"),
    [
        (401, ErrorCode.UNAUTHORIZED, UnauthorizedError),
        (404, ErrorCode.NOT_FOUND, NotFoundError),
        (409, ErrorCode.CONFLICT, ConflictError),
        (412, ErrorCode.CONFLICT, ConflictError),
        (413, ErrorCode.LIMIT_EXCEEDED, LimitExceededError),
        (422, ErrorCode.LIMIT_EXCEEDED, LimitExceededError),
        (422, ErrorCode.INVALID_ARGUMENT, InvalidArgumentError),
        (422, ErrorCode.CORRUPT_DATA, CorruptDataError),
        (400, ErrorCode.INVALID_ARGUMENT, InvalidArgumentError),
    ],
)
def test_error_responses_map_to_lichen_exceptions(status, code, exception):
    """Each (status, code) of docs/protocol.md's table, as the server renders it."""
    with pytest.raises(exception, match="the server's words"):
        store_for(Script(server_error(status, code, "the server's words"))).get_info("x")


@pytest.mark.parametrize(
    ("response", "exception", "match"),
    [(httpx.Response(401), UnauthorizedError, "HTTP 401"), (httpx.Response(418), LichenError, "unexpected HTTP 418")],
)
def test_bodiless_answers_map_by_status(response, exception, match):
    """What a proxy in between might answer: no Lichen error body, only a status."""
    with pytest.raises(exception, match=match):
        store_for(Script(response)).get_info("x")


def test_real_error_answers_map_to_lichen_exceptions(server, project, real, direct):
    direct.write(snapshot(), expected_version=0)
    store = store_for(Script(real), Credentials(project.project_id, "lk_wrong"))
    with pytest.raises(UnauthorizedError, match="invalid project id or key"):
        store.get_info("idx")
    with pytest.raises(NotFoundError, match="'nowhere' not found"):
        store_for(Script(real), project).get_info("nowhere")
    with pytest.raises(ConflictError, match="version 1, expected 7"):
        store_for(Script(real, real), project).write(snapshot(), expected_version=7)
    with pytest.raises(LimitExceededError, match="5001 documents"):  # the test server allows 5,000
        store_for(Script(edited(real, lambda body: body["limits"].update(max_docs=10**6)), real), project).write(
            snapshot_of("idx", 5001, dim=2)
        )
    assert direct.get_info("idx").version == 1


def test_missing_index_on_delete_is_false_not_an_error(project, real):
    assert store_for(Script(real), project).delete("x") is False


def test_unexpected_bodies_are_network_errors():
    with pytest.raises(NetworkError, match="unexpected response"):
        store_for(Script(httpx.Response(200, text="<html>proxy error</html>"))).list()


def test_server_speaking_another_protocol_is_refused(project, real):
    speaks_2 = edited(real, lambda body: body.update(protocol=2))
    with pytest.raises(LichenError, match="protocol 2"):
        store_for(Script(speaks_2), project).check_credentials()


def test_limits_are_checked_before_uploading(project, real):
    script = Script(edited(real, lambda body: body.update(limits={"max_body_bytes": 100, "max_docs": 2})))
    with pytest.raises(LimitExceededError, match="at most 100"):
        store_for(script, project).write(snapshot())
    assert script.methods == ["GET"]


def test_async_face_shares_the_logic_and_survives_several_event_loops(project, real):
    script = Script(httpx.Response(503), real, real)
    store = store_for(script, project)
    asyncio.run(store.acheck_credentials())
    assert asyncio.run(store.alist()) == []  # a second asyncio.run: a new loop, a new AsyncClient
    assert script.methods == ["GET", "GET", "GET"]


def test_progress_bar_only_where_wanted(monkeypatch, capsys, project, real):
    monkeypatch.setenv("LICHEN_PROGRESS", "0")
    assert progress_wanted(None) is False
    assert progress_wanted(True) is True
    monkeypatch.delenv("LICHEN_PROGRESS")
    assert progress_wanted(None) is False  # pytest's stderr is not a TTY

    big = snapshot_of("idx", 3000, dim=1000)  # 12 MB
    script = Script(real, real)
    store_for(script, project, progress=True).write(big)
    assert "push idx" in capsys.readouterr().err
    quiet = Script(real, real)
    assert store_for(quiet, project).write(big).version == 2
    assert capsys.readouterr().err == ""


def test_configuration_objects():
    assert Timeout(read=3).to_httpx().read == 3
    store = HttpStore("http://x", "p", "k", timeout=7, retries=0, cache=False)
    assert store.timeout.read == 7 and store.timeout.connect == 5.0 and store.retries.attempts == 0
    delays = [Retries(backoff=0.1, max_backoff=1.0).delay(n) for n in range(8)]
    assert all(0.075 <= d <= 1.25 for d in delays) and delays[0] < delays[3]
    with pytest.raises(InvalidArgumentError, match="http"):
        HttpStore("ftp://x", "p", "k")


def test_requests_name_indexes_safely(project, real):
    script = Script(real)
    with pytest.raises(NotFoundError, match="'a b\\?c#d%' not found"):
        store_for(script, project).get_info("a b?c#d%")
    assert script.requests[0].url.raw_path == b"/v1/indexes/a%20b%3Fc%23d%25"
    with pytest.raises(InvalidArgumentError):
        store_for(Script()).get_info("../etc")


def test_delete_documents_sends_json(project, real, direct):
    stored = snapshot_of("i", 3, dim=4)
    stored.ids = ["a", "b", "c"]
    direct.write(stored)
    script = Script(real)
    assert store_for(script, project).delete_documents("i", ["a", "b"]) == 2
    assert json.loads(script.requests[0].content) == {"ids": ["a", "b"]}
    assert [d.id for d in direct.get_documents("i")] == ["c"]
    with pytest.raises(InvalidArgumentError):
        store_for(Script()).delete_documents("i", "a")


def test_long_id_lists_are_split_across_requests(project, real, direct):
    ids = [f"document-number-{n:05d}" for n in range(2000)]
    stored = snapshot_of("i", len(ids), dim=2)
    stored.ids = ids
    direct.write(stored)

    def answer(request):
        assert len(str(request.url)) < 8000
        return real(request)

    script = Script(*[answer] * 20)
    docs = store_for(script, project).get_documents("i", ids)
    assert [d.id for d in docs] == ids and len(script.requests) > 5
    assert [d.text for d in docs[:2]] == ["text 0", "text 1"]
    assert store_for(Script(), project).get_documents("i", []) == []


def test_an_unwritable_download_cache_degrades_to_no_cache(tmp_path, monkeypatch, project, real, direct):
    direct.write(snapshot())
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    transport = httpx.MockTransport(real)
    store = HttpStore("http://lichen.test", project.project_id, project.project_key, transport=transport,
                      async_transport=transport, cache_dir=blocker, retries=FAST)
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
