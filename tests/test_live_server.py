"""Issue 25, the server's side, against real ``lichen serve`` processes (file system and
S3 through a moto process): the routes a load balancer and Prometheus probe without a
key, the OpenAPI description checked against docs/protocol.md and the app's routes,
long-polls (at once, on a change from another process or replica, 304, 404, the bound),
and the changes route (a delta that chains from the client's copy, 410 otherwise)."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_helpers import Deployment, LichenServer, auth, shared_moto, snapshot_of

from lichen.format.artifact import encode_artifact, read_artifact
from lichen.protocol import CHANGES_EXTRA_KEY, HEADER_CONTENT

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(f"live-{request.param}"), moto)
    yield deployed
    deployed.stop()


def _push(url: str, credentials, snapshot, **headers) -> httpx.Response:
    response = httpx.put(
        f"{url}/v1/indexes/{snapshot.name}/artifact", content=encode_artifact(snapshot).to_bytes(),
        headers={**auth(credentials), **headers}, timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return response


def _info(url: str, credentials, name: str) -> dict:
    response = httpx.get(f"{url}/v1/indexes/{name}", headers=auth(credentials), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------ probes, metrics
def test_probes_and_metrics_need_no_key_and_count_by_route(deployment):
    server = deployment.server
    credentials = server.create_project()
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert str(server.data_dir) not in ready.text and "lichen-" not in ready.text  # no path, no bucket
    assert httpx.get(f"{server.url}/v1/project").status_code == 401  # the API still needs its key
    _push(server.url, credentials, snapshot_of("metrics-secret-name", 5))
    assert httpx.get(f"{server.url}/v1/indexes/nope", headers=auth(credentials)).status_code == 404
    text = httpx.get(f"{server.url}/metrics").text
    assert 'lichen_http_requests_total{method="PUT",route="/v1/indexes/{name}/artifact",status="201"}' in text
    assert 'route="/v1/indexes/{name}",status="404"' in text
    assert "lichen_http_request_duration_seconds_bucket" in text
    assert re.search(r'lichen_http_request_bytes_total\{route="/v1/indexes/\{name\}/artifact"\} [1-9]', text)
    assert re.search(r'lichen_http_response_bytes_total\{route="/healthz"\} [1-9]', text)
    for gauge in ("lichen_merges_running", "lichen_merges_waiting", "lichen_long_polls_open"):
        assert re.search(rf"^{gauge} \d", text, re.M)
    assert "metrics-secret-name" not in text  # labels are route templates, never names


def test_readyz_says_503_while_the_storage_is_gone(tmp_path):
    server = LichenServer(tmp_path / "data").start()
    try:
        projects = server.data_dir / "projects"
        shutil.move(projects, tmp_path / "moved")
        answer = httpx.get(f"{server.url}/readyz")
        assert answer.status_code == 503 and answer.json()["status"] == "unavailable"
        assert answer.headers["retry-after"].isdigit()
        assert str(tmp_path) not in answer.text
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # up, not ready
        shutil.move(tmp_path / "moved", projects)
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()


# ------------------------------------------------------------------ the protocol's description
def _documented_routes() -> set[tuple[str, str]]:
    """Every ``| `METHOD /path...` |`` row of docs/protocol.md's route tables."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    routes = set()
    for method, path in re.findall(r"^\| `(GET|PUT|POST|DELETE) (/[^`?\s]*)[^`]*` \|", text, re.M):
        routes.add((method, path))
    return routes


def test_openapi_matches_protocol_md_and_the_app(deployment):
    server = deployment.server
    document = httpx.get(f"{server.url}/v1/openapi.json").json()  # no key needed
    assert document["openapi"].startswith("3.1") and document["info"]["version"] == "1"
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert described == _documented_routes()
    from lichen.server.app import ServerConfig, create_app

    app = create_app(ServerConfig(storage=server.open_storage()))
    served = {(method, route.path) for route in app.routes for method in route.methods if method != "HEAD"}
    assert served == described
    schemas = document["components"]["schemas"]
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["responses"], operation
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    ref = media.get("schema", {}).get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[-1] in schemas
    assert "features" in schemas["ProjectModel"]["properties"]
    public = {path for path, item in document["paths"].items() if item.get("get", {}).get("security") == []}
    assert public == {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}


# ------------------------------------------------------------------ long-polls
def _long_poll(url: str, credentials, name: str, etag: str, wait: float) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/indexes/{name}", params={"wait": wait}, headers={**auth(credentials), "If-None-Match": f'"{etag}"'},
        timeout=wait + 30,
    )


def _until_polls_open(url: str, poll: threading.Thread) -> None:
    """Wait until the server holds the poll (so that what follows happens during it)."""
    while "lichen_long_polls_open 1.0" not in httpx.get(f"{url}/metrics").text:
        assert poll.is_alive()
        time.sleep(0.01)


def test_long_poll_answers_at_once_when_behind_and_304_when_nothing_moves(deployment):
    server = deployment.server
    credentials = server.create_project()
    _push(server.url, credentials, snapshot_of("lp-now", 4))
    info = _info(server.url, credentials, "lp-now")
    assert info["content"]
    behind = _long_poll(server.url, credentials, "lp-now", "0" * 32, 30)
    assert behind.status_code == 200 and behind.json()["etag"] == info["etag"]
    still = _long_poll(server.url, credentials, "lp-now", info["etag"], 0.3)
    assert still.status_code == 304 and still.headers["etag"] == f'"{info["etag"]}"'
    assert still.headers[HEADER_CONTENT] == info["content"]
    bad = httpx.get(f"{server.url}/v1/indexes/lp-now", params={"wait": "soon"}, headers=auth(credentials))
    assert bad.status_code == 400 and "wait" in bad.json()["error"]["message"]


@pytest.mark.parametrize("on_replica", [False, True], ids=["same-server", "other-replica"])
def test_long_poll_wakes_on_a_write_from_another_process(deployment, on_replica):
    """The poll waits on one server; the write lands on the same one or on a replica over
    the same storage (file system or bucket): either way the poll answers 200 with the new
    version, not 304 at the end of its wait."""
    server = deployment.server
    writer = deployment.replica if on_replica else server
    credentials = server.create_project()
    name = f"lp-wake-{on_replica}"
    _push(server.url, credentials, snapshot_of(name, 4))
    etag = _info(server.url, credentials, name)["etag"]
    answers: list[httpx.Response] = []
    poll = threading.Thread(target=lambda: answers.append(_long_poll(server.url, credentials, name, etag, 40)))
    poll.start()
    _until_polls_open(server.url, poll)
    added = httpx.post(
        f"{writer.url}/v1/indexes/{name}/docs", content=encode_artifact(snapshot_of(name, 1, prefix="x")).to_bytes(),
        headers=auth(credentials), timeout=30,
    )
    assert added.status_code == 200, added.text
    poll.join(60)
    assert answers[0].status_code == 200
    assert answers[0].json()["version"] == 2 and answers[0].json()["doc_count"] == 5


def test_a_long_poll_whose_client_hangs_up_frees_its_place(deployment):
    server = deployment.server
    credentials = server.create_project()
    _push(server.url, credentials, snapshot_of("lp-hangup", 3))
    etag = _info(server.url, credentials, "lp-hangup")["etag"]
    with pytest.raises(httpx.ReadTimeout):  # the client gives up long before the 50 s wait
        httpx.get(
            f"{server.url}/v1/indexes/lp-hangup", params={"wait": 50},
            headers={**auth(credentials), "If-None-Match": f'"{etag}"'}, timeout=httpx.Timeout(5, read=0.5),
        )
    deadline = time.monotonic() + 30
    while "lichen_long_polls_open 0.0" not in httpx.get(f"{server.url}/metrics").text:
        assert time.monotonic() < deadline, "the server kept the abandoned long-poll open"
        time.sleep(0.02)


def test_long_poll_of_a_deleted_index_is_404(deployment):
    server = deployment.server
    credentials = server.create_project()
    _push(server.url, credentials, snapshot_of("lp-gone", 3))
    etag = _info(server.url, credentials, "lp-gone")["etag"]
    answers: list[httpx.Response] = []
    poll = threading.Thread(target=lambda: answers.append(_long_poll(server.url, credentials, "lp-gone", etag, 40)))
    poll.start()
    _until_polls_open(server.url, poll)
    assert httpx.delete(f"{server.url}/v1/indexes/lp-gone", headers=auth(credentials)).status_code == 200
    poll.join(60)
    assert answers[0].status_code == 404


def test_long_polls_beyond_the_bound_get_503_with_retry_after(tmp_path):
    server = LichenServer(tmp_path / "data")
    server.limits = {**server.limits, "max_long_polls": 1}
    server.start()
    try:
        credentials = server.create_project()
        _push(server.url, credentials, snapshot_of("lp-bound", 3))
        etag = _info(server.url, credentials, "lp-bound")["etag"]
        first = threading.Thread(target=_long_poll, args=(server.url, credentials, "lp-bound", etag, 30))
        first.start()
        _until_polls_open(server.url, first)
        refused = _long_poll(server.url, credentials, "lp-bound", etag, 30)
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        assert "long-polls" in refused.json()["error"]["message"]
        server.stop()  # answers the first poll at once
        first.join(60)
    finally:
        server.stop()


def test_a_stopping_server_answers_its_long_polls_at_once(tmp_path):
    """SIGTERM: the waiting poll gets its 304 now (its client goes on elsewhere) instead
    of holding the shutdown until its wait ends."""
    server = LichenServer(tmp_path / "data").start()
    try:
        credentials = server.create_project()
        _push(server.url, credentials, snapshot_of("lp-stop", 3))
        etag = _info(server.url, credentials, "lp-stop")["etag"]
        answers: list[httpx.Response] = []
        poll = threading.Thread(target=lambda: answers.append(_long_poll(server.url, credentials, "lp-stop", etag, 50)))
        poll.start()
        _until_polls_open(server.url, poll)
        server.stop()
        poll.join(60)
        assert answers and answers[0].status_code == 304
        assert answers[0].headers["etag"] == f'"{etag}"'
    finally:
        server.stop()


# ------------------------------------------------------------------ the changes route
def _changes(url: str, credentials, name: str, since: int, content: str) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/indexes/{name}/changes", params={"since": since, "content": content}, headers=auth(credentials),
        timeout=30,
    )


def test_changes_compose_writes_since_a_version_on_any_replica(deployment):
    server = deployment.server
    credentials = server.create_project()
    _push(server.url, credentials, snapshot_of("ch", 6))
    base = _info(server.url, credentials, "ch")
    for url, body in ((server.url, snapshot_of("ch", 2, prefix="n", seed=1)), (deployment.replica.url, snapshot_of("ch", 1, prefix="d", seed=2))):
        response = httpx.post(f"{url}/v1/indexes/ch/docs", content=encode_artifact(body).to_bytes(), headers=auth(credentials))
        assert response.status_code == 200, response.text
    deleted = httpx.post(f"{server.url}/v1/indexes/ch/docs/delete", json={"ids": ["d3", "n0"]}, headers=auth(credentials))
    assert deleted.json()["version"] == 4
    # Asked of either replica: d0 replaced in place, n1 appended, d3 deleted; n0 came and went.
    for url in (server.url, deployment.replica.url):
        response = _changes(url, credentials, "ch", 1, base["content"])
        assert response.status_code == 200, response.text
        assert response.headers["lichen-version"] == "4" and response.headers["lichen-base-version"] == "1"
        delta = read_artifact(response.content)
        assert delta.ids == ["d0", "n1"]
        assert delta.extra[CHANGES_EXTRA_KEY] == {"since": 1, "version": 4, "deleted": ["d3"], "updated": 1}
        assert len(response.content) < 4096
    now = _info(server.url, credentials, "ch")
    empty = _changes(server.url, credentials, "ch", 4, now["content"])
    assert empty.status_code == 200 and read_artifact(empty.content).doc_count == 0


def test_changes_refused_with_410_when_no_delta_leads_there(deployment):
    server = deployment.server
    credentials = server.create_project()
    _push(server.url, credentials, snapshot_of("ch-410", 6))
    base = _info(server.url, credentials, "ch-410")
    wrong = _changes(server.url, credentials, "ch-410", 1, "f" * 32)
    assert wrong.status_code == 410 and wrong.json()["error"]["code"] == "gone"
    assert _changes(server.url, credentials, "ch-410", 9, base["content"]).status_code == 410
    _push(server.url, credentials, snapshot_of("ch-410", 3, seed=5))  # a push replaces everything
    replaced = _changes(server.url, credentials, "ch-410", 1, base["content"])
    assert replaced.status_code == 410 and "push" in replaced.json()["error"]["message"]
    malformed = httpx.get(f"{server.url}/v1/indexes/ch-410/changes", params={"since": "x"}, headers=auth(credentials))
    assert malformed.status_code == 400
    assert _changes(server.url, credentials, "no-such", 1, "a").status_code == 404


def test_a_damaged_change_record_means_download_the_artifact(tmp_path):
    server = LichenServer(tmp_path / "data").start()
    try:
        credentials = server.create_project()
        _push(server.url, credentials, snapshot_of("dmg", 4))
        base = _info(server.url, credentials, "dmg")
        body = encode_artifact(snapshot_of("dmg", 1, prefix="n")).to_bytes()
        assert httpx.post(f"{server.url}/v1/indexes/dmg/docs", content=body, headers=auth(credentials)).status_code == 200
        (record,) = (server.data_dir / "changes").rglob("*.chg")
        data = bytearray(record.read_bytes())
        data[-1] ^= 0xFF
        record.write_bytes(bytes(data))
        answer = _changes(server.url, credentials, "dmg", 1, base["content"])
        assert answer.status_code == 410 and "damaged" in answer.json()["error"]["message"]
    finally:
        server.stop()


def test_change_records_are_pruned_to_the_configured_count(tmp_path):
    server = LichenServer(tmp_path / "data")
    server.limits = {**server.limits, "change_records": 2}
    server.start()
    try:
        credentials = server.create_project()
        _push(server.url, credentials, snapshot_of("pr", 4))
        base = _info(server.url, credentials, "pr")
        for i in range(9):  # versions 2 to 10; records are pruned at every 8th version
            body = encode_artifact(snapshot_of("pr", 1, prefix=f"p{i}-", seed=i)).to_bytes()
            assert httpx.post(f"{server.url}/v1/indexes/pr/docs", content=body, headers=auth(credentials)).status_code == 200
        assert _changes(server.url, credentials, "pr", 1, base["content"]).status_code == 410  # 9 behind, 2 kept
        now = _info(server.url, credentials, "pr")
        assert _changes(server.url, credentials, "pr", 10, now["content"]).status_code == 200
        records = sorted(p.name.split("-")[0] for p in (server.data_dir / "changes").rglob("*.chg"))
        assert [int(v) for v in records] == [7, 8, 9, 10]  # at version 8, those below 7 went
    finally:
        server.stop()
