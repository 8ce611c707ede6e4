"""Adversarial input against a real ``lichen serve``, over each storage backend (file
system; S3 through a real moto server process): uploads that are checksum-valid but hold
the wrong things, malformed conditional headers, deletes racing pushes, abandoned spool
files. Whatever arrives, the server answers 4xx (never 5xx), names the problem without
revealing its own paths, and leaves what it stores exactly as it was.
"""

from __future__ import annotations

import math
import socket
import threading
from collections import Counter
from collections.abc import Callable

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import (
    Credentials,
    Deployment,
    auth,
    forge_artifact,
    shared_moto,
    snapshot_of,
    with_offsets_changed,
)

from lichen.format.artifact import encode_artifact
from lichen.stores.http import HttpStore

NAME = "target"
DIM = 4


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(request.param), moto)
    yield deployed
    deployed.stop()


@pytest.fixture(scope="module")
def project(deployment) -> Credentials:
    return deployment.server.create_project()


@pytest.fixture
def seeded(deployment, project) -> dict[str, str]:
    """A fresh version 1 of ``NAME`` (3 documents); returns what the storage holds for it."""
    store = HttpStore(deployment.server.url, project.project_id, project.project_key, cache=False)
    store.write(snapshot_of(NAME, 3, dim=DIM))
    store.delete(NAME)
    assert store.write(snapshot_of(NAME, 3, dim=DIM), expected_version=0).version == 1
    return deployment.stored_objects(project, NAME)


def valid_columns() -> dict:
    matrix = np.eye(3, DIM, dtype="<f4")
    return {
        "ids": ["n0", "n1", "n2"], "texts": ["alpha", "beta", "gamma"],
        "metadata": [{"i": 0}, {"i": 1, "tags": ["x", "y"]}, {}],
        "matrix": matrix.tobytes(), "doc_count": 3, "dimension": DIM,
    }


def forged(**changes) -> bytes:
    return forge_artifact(NAME, **{**valid_columns(), **changes})


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def matrix_with(value: float) -> bytes:
    matrix = np.eye(3, DIM, dtype="<f4")
    matrix[1, 2] = value
    return matrix.tobytes()


def url(deployment: Deployment, route: str) -> str:
    return f"{deployment.server.url}/v1/indexes/{NAME}{route}"


def assert_no_server_paths(deployment: Deployment, response: httpx.Response) -> None:
    text = response.text
    for secret in (str(deployment.server.data_dir), ".upload-", "/tmp/", "/home/", ".lix"):
        assert secret not in text, f"error body reveals a server path ({secret!r}): {text}"


def assert_unchanged(deployment: Deployment, project: Credentials, before: dict[str, str]) -> None:
    """Still version 1, the same stored bytes, and loadable (served docs, client read)."""
    assert deployment.stored_objects(project, NAME) == before
    info = httpx.get(url(deployment, ""), headers=auth(project))
    assert info.status_code == 200 and info.json()["version"] == 1, info.text
    docs = httpx.get(url(deployment, "/docs"), headers=auth(project))
    assert docs.status_code == 200 and len(docs.json()["docs"]) == 3, docs.text
    snapshot = HttpStore(deployment.server.url, project.project_id, project.project_key, cache=False).read(NAME)
    assert snapshot.version == 1 and snapshot.ids == ["d0", "d1", "d2"]


# ------------------------------------------------------------------ 1, 2: invalid uploads
INVALID = {
    "text is an int": (dict(texts=[1, "beta", "gamma"]), "text"),
    "text is null": (dict(texts=[None, "beta", "gamma"]), "text"),
    "text is an object": (dict(texts=[{"a": 1}, "beta", "gamma"]), "text"),
    "text over 1 MiB": (dict(texts=["a" * ((1 << 20) + 1), "beta", "gamma"]), "text"),
    "texts count differs": (dict(texts=["alpha", "beta"]), "texts"),
    "metadata entry is a list": (dict(metadata=[[1], {}, {}]), "metadata"),
    "metadata entry is null": (dict(metadata=[None, {}, {}]), "metadata"),
    "metadata entry is a string": (dict(metadata=["i", {}, {}]), "metadata"),
    "metadata list holds an object": (dict(metadata=[{"k": [{"nested": 1}]}, {}, {}]), "metadata"),
    "metadata nests 20 deep": (dict(metadata=[nested(20), {}, {}]), "metadata"),
    "metadata list holds a list": (dict(metadata=[{"k": [[1]]}, {}, {}]), "metadata"),
    "id is an int": (dict(ids=[7, "n1", "n2"]), "id"),
    "id is null": (dict(ids=[None, "n1", "n2"]), "id"),
    "id is empty": (dict(ids=["", "n1", "n2"]), "id"),
    "id is too long": (dict(ids=["x" * 600, "n1", "n2"]), "id"),
    "ids repeat": (dict(ids=["n0", "n0", "n2"]), "duplicate"),
    "vector holds NaN": (dict(matrix=matrix_with(math.nan)), "NaN"),
    "vector holds infinity": (dict(matrix=matrix_with(-math.inf)), "infinity"),
    "documents without dimension": (dict(dimension=0, matrix=b""), "dimension"),
    "model id is empty": (dict(model_id=""), "model"),
    "model id is not a string": (dict(model_id=3), "model_id"),
    "version is negative": (dict(version=-1), "version"),
    "extra is a list": (dict(extra=[1]), "extra"),
    "doc count disagrees": (dict(doc_count=4), "doc_count"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_an_invalid_upload_is_refused_by_both_routes_and_changes_nothing(deployment, project, seeded, case):
    changes, problem = INVALID[case]
    body = forged(**changes)
    for method, route in (("PUT", "/artifact"), ("POST", "/docs")):
        response = httpx.request(method, url(deployment, route), headers=auth(project), content=body)
        assert response.status_code == 422, f"{method} {route}: {response.status_code} {response.text}"
        message = response.json()["error"]["message"]
        assert problem.lower() in message.lower(), f"{method} {route}: {message}"
        assert_no_server_paths(deployment, response)
    assert_unchanged(deployment, project, seeded)
    assert not deployment.spooled_files()


def test_an_upload_whose_graph_is_not_a_graph_is_refused(deployment, project, seeded):
    # Checksums are right (the encoder computes them), the graph section is garbage: the
    # server must refuse it without ever handing it to usearch, which trusts what it maps.
    snapshot = snapshot_of(NAME, 3, dim=DIM)
    snapshot.keys = np.arange(3, dtype=np.uint64)
    for graph in (b"\xff" * 64, b"\x03\x00\x00\x00\x04\x00\x00\x00" + b"\x01" * 4):
        snapshot.graph = graph
        for method, route in (("PUT", "/artifact"), ("POST", "/docs")):
            body = encode_artifact(snapshot).to_bytes()
            response = httpx.request(method, url(deployment, route), headers=auth(project), content=body)
            assert response.status_code == 422, f"{method} {route}: {response.status_code} {response.text}"
            assert "graph" in response.json()["error"]["message"]
            assert_no_server_paths(deployment, response)
    assert_unchanged(deployment, project, seeded)


def test_an_upload_whose_graph_edits_name_documents_it_lacks_is_refused(deployment, project, seeded):
    # Graph edits (format 4) come from servers; an upload carrying edits that insert a key
    # the index does not hold would make every client refuse the index: refused at once.
    from lichen.engine.core import IndexCore

    plain = snapshot_of(NAME, 3, dim=DIM)
    snapshot = IndexCore.from_snapshot(plain, approximate=True).snapshot(NAME, plain.model_id)
    assert snapshot.graph is not None
    snapshot.graph_insertions = np.array([99], dtype=np.uint64)
    body = encode_artifact(snapshot).to_bytes()
    for method, route in (("PUT", "/artifact"), ("POST", "/docs")):
        response = httpx.request(method, url(deployment, route), headers=auth(project), content=body)
        assert response.status_code == 422, f"{method} {route}: {response.status_code} {response.text}"
        assert "graph_insertions" in response.json()["error"]["message"]
        assert_no_server_paths(deployment, response)
    assert_unchanged(deployment, project, seeded)


def test_an_upload_whose_offsets_split_an_element_is_refused(deployment, project, seeded):
    # Clients read rows by these offsets; a text split at its inner comma would only fail
    # when that row is read, on every client. The server proves each element's span first.
    snapshot = snapshot_of(NAME, 3, dim=DIM)
    snapshot.texts = ["alpha, beta", "gamma", "delta"]

    def split_the_first_text(offsets: np.ndarray) -> None:
        offsets[1, 1] = offsets[1, 0] + len('"alpha,')

    body = with_offsets_changed(encode_artifact(snapshot).to_bytes(), split_the_first_text)
    for method, route in (("PUT", "/artifact"), ("POST", "/docs")):
        response = httpx.request(method, url(deployment, route), headers=auth(project), content=body)
        assert response.status_code == 422, f"{method} {route}: {response.status_code} {response.text}"
        assert "texts section offsets do not match its elements" in response.json()["error"]["message"]
        assert_no_server_paths(deployment, response)
    assert_unchanged(deployment, project, seeded)


# ------------------------------------------------------------------ 3: malformed headers
MALFORMED_IF_MATCH = [b'"' + b"9" * 5000 + b'"', b"9" * 5000, b'"\xb2"', b"\xb2", b'W/"1\xb2"', b'"1"x']


@pytest.mark.parametrize("value", MALFORMED_IF_MATCH, ids=lambda v: v[:12].decode("latin-1"))
def test_a_malformed_if_match_is_a_400_on_every_write(deployment, project, seeded, value):
    writes = [
        ("PUT", "/artifact", encode_artifact(snapshot_of(NAME, 2, dim=DIM)).to_bytes()),
        ("POST", "/docs", encode_artifact(snapshot_of(NAME, 1, dim=DIM, prefix="new")).to_bytes()),
        ("POST", "/docs/delete", b'{"ids": ["d0"]}'),
        ("DELETE", "", None),
    ]
    for method, route, body in writes:
        response = httpx.request(method, url(deployment, route), headers={**auth(project), "If-Match": value}, content=body)
        assert response.status_code == 400, f"{method} {route}: {response.status_code} {response.text}"
        error = response.json()["error"]
        assert error["code"] == "invalid_argument" and "If-Match" in error["message"]
        assert len(error["message"]) < 200, "the message should not echo a huge header back"
    assert_unchanged(deployment, project, seeded)


def test_odd_if_none_match_on_reads_and_writes(deployment, project, seeded):
    for value in (b"\xb2", b'"' + b"9" * 5000 + b'"'):
        read = httpx.get(url(deployment, "/artifact"), headers={**auth(project), "If-None-Match": value})
        assert read.status_code == 200
        write = httpx.put(
            url(deployment, "/artifact"), headers={**auth(project), "If-None-Match": value},
            content=encode_artifact(snapshot_of(NAME, 2, dim=DIM)).to_bytes(),
        )
        assert write.status_code == 400 and "If-None-Match" in write.json()["error"]["message"]
    assert_unchanged(deployment, project, seeded)


# ------------------------------------------------------------------ 4: delete racing put
def test_deletes_racing_pushes_never_answer_5xx(deployment, project):
    """Two pushers and two deleters on one name, across two server processes, with a
    document writer and a reader alongside: every PUT publishes or gets a 4xx, every
    DELETE deletes or finds nothing, and no write or read in between answers 5xx."""
    servers = [deployment.server, deployment.replica]
    body = encode_artifact(snapshot_of("raced", 3, dim=DIM)).to_bytes()
    batch = encode_artifact(snapshot_of("raced", 1, dim=DIM, prefix="extra")).to_bytes()
    statuses: dict[str, Counter] = {"PUT": Counter(), "DELETE": Counter(), "POST": Counter(), "GET": Counter()}
    errors: list[str] = []
    pushes_done = threading.Event()
    lock = threading.Lock()

    def record(method: str, response: httpx.Response) -> None:
        with lock:
            statuses[method][response.status_code] += 1
            if response.status_code >= 500:
                errors.append(f"{method} {response.status_code} {response.text}")

    def pusher(k: int) -> None:
        with httpx.Client(base_url=servers[k % 2].url, headers=auth(project), timeout=30) as http:
            for _ in range(40):
                record("PUT", http.put("/v1/indexes/raced/artifact", content=body))

    def deleter(k: int) -> None:
        with httpx.Client(base_url=servers[(k + 1) % 2].url, headers=auth(project), timeout=30) as http:
            while not pushes_done.is_set():
                record("DELETE", http.delete("/v1/indexes/raced"))

    def bystander() -> None:
        with httpx.Client(base_url=servers[0].url, headers=auth(project), timeout=30) as http:
            while not pushes_done.is_set():
                record("POST", http.post("/v1/indexes/raced/docs", content=batch))
                record("GET", http.get("/v1/indexes/raced/docs"))
                record("GET", http.get("/v1/indexes/raced/artifact"))

    pushers = [threading.Thread(target=pusher, args=(k,)) for k in range(2)]
    others = [threading.Thread(target=deleter, args=(k,)) for k in range(2)] + [threading.Thread(target=bystander)]
    for thread in pushers + others:
        thread.start()
    for thread in pushers:
        thread.join(120)
    pushes_done.set()
    for thread in others:
        thread.join(60)

    assert not errors, f"{len(errors)} server errors, e.g. {errors[:3]}; statuses {statuses}"
    assert set(statuses["PUT"]) <= {200, 201, 409} and statuses["PUT"][200] + statuses["PUT"][201] > 0, statuses
    assert set(statuses["DELETE"]) <= {200, 404} and statuses["DELETE"][200] > 0, statuses
    assert set(statuses["POST"]) <= {200, 404, 409} and set(statuses["GET"]) <= {200, 404, 409}, statuses
    store = HttpStore(deployment.server.url, project.project_id, project.project_key, cache=False)
    store.write(snapshot_of("raced", 3, dim=DIM))  # whatever the race left, the name works
    assert store.read("raced").ids == ["d0", "d1", "d2"]


# ------------------------------------------------------------------ 6: abandoned spool files
def _stalled_upload(server_url: str, project: Credentials, declared: int, sent: bytes) -> socket.socket:
    """A PUT that declares ``declared`` bytes, sends ``sent`` and then stalls (a client or
    a server killed mid-push leaves exactly this behind)."""
    host, port = server_url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)))
    head = (
        f"PUT /v1/indexes/stalled/artifact HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {project.project_id}:{project.project_key}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    conn.sendall(head.encode() + sent)
    return conn


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        threading.Event().wait(0.025)
    raise AssertionError(f"timed out waiting until {what}")


def test_a_start_sweeps_spool_files_no_live_process_owns(deployment, project):
    spool_owner = deployment.new_server()  # not started yet: its spool is ours to set up
    spool_owner.data_dir.mkdir(parents=True, exist_ok=True)
    live = spool_owner.open_storage().new_upload()  # owned by this (live) test process
    live.write(b"still arriving")
    try:
        doomed = deployment.new_server()
        doomed.data_dir = spool_owner.data_dir
        doomed.start()
        conn = _stalled_upload(doomed.url, project, 1 << 20, b"x" * 4096)
        try:
            _wait_for(lambda: len(deployment.spooled_files(doomed)) == 2, "the server spooled the upload")
            doomed.kill()  # SIGKILL mid-upload: no cleanup of any kind
        finally:
            conn.close()
        abandoned = [p for p in deployment.spooled_files(doomed) if p != live.path]
        assert len(abandoned) == 1, "the killed server left no spool file: nothing to sweep"

        restarted = deployment.new_server()
        restarted.data_dir = spool_owner.data_dir
        restarted.start()
        try:
            assert deployment.spooled_files(restarted) == [live.path], "the abandoned spool file survived a start"
        finally:
            restarted.stop()
    finally:
        live.discard()


def test_the_spool_is_bounded(deployment, project, tmp_path):
    """Uploads in flight may hold at most 4 x max_body_bytes of spool; beyond that the
    server answers 503 (clients retry) instead of filling the disk."""
    server = deployment.new_server(limits={"max_body_bytes": 1 << 20, "max_docs": 1000}).start()
    stalled: list[socket.socket] = []
    try:
        for _ in range(4):
            stalled.append(_stalled_upload(server.url, project, 1 << 20, b"x" * 1024))
        _wait_for(lambda: len(deployment.spooled_files(server)) == 4, "four uploads are spooling")
        body = encode_artifact(snapshot_of("bounded", 3, dim=DIM)).to_bytes()
        refused = httpx.put(f"{server.url}/v1/indexes/bounded/artifact", headers=auth(project), content=body)
        assert refused.status_code == 503 and "retry" in refused.json()["error"]["message"], refused.text
        assert refused.headers.get("retry-after")
        assert_no_server_paths(deployment, refused)
        stalled.pop().close()  # one upload gives up: its reservation is released
        _wait_for(lambda: len(deployment.spooled_files(server)) == 3, "the abandoned upload is discarded")
        accepted = httpx.put(f"{server.url}/v1/indexes/bounded/artifact", headers=auth(project), content=body)
        assert accepted.status_code == 201, accepted.text
    finally:
        for conn in stalled:
            conn.close()
        server.stop()


# ------------------------------------------------------------------ the server's checks as a property
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
not_a_string = json_values.filter(lambda v: not isinstance(v, str))
not_an_object = json_values.filter(lambda v: not isinstance(v, dict))
not_a_list = json_values.filter(lambda v: not isinstance(v, list))
bad_metadata_value = st.lists(json_values, min_size=1, max_size=3).filter(
    lambda v: any(isinstance(x, (list, dict)) for x in v)
) | st.integers(21, 40).map(nested)
not_a_count = st.integers(max_value=-1) | st.floats(allow_nan=False) | st.text(max_size=3) | st.none() | st.booleans()


@st.composite
def invalid_artifacts(draw) -> bytes:
    """A structurally valid artifact (right magic, layout and checksums) with at least one
    wrong field type or value."""
    columns = valid_columns()
    columns["ids"], columns["texts"] = list(columns["ids"]), list(columns["texts"])
    columns["metadata"] = [dict(m) for m in columns["metadata"]]
    row = draw(st.integers(0, 2))
    mutation = draw(st.sampled_from([
        "id", "text", "metadata entry", "metadata value", "vector", "string field", "count field",
        "extra", "column length", "column type",
    ]))
    manifest: dict = {}
    if mutation == "id":
        columns["ids"][row] = draw(not_a_string | st.just("") | st.just("i" * 513) | st.just(columns["ids"][row - 1]))
    elif mutation == "text":
        columns["texts"][row] = draw(not_a_string)
    elif mutation == "metadata entry":
        columns["metadata"][row] = draw(not_an_object)
    elif mutation == "metadata value":
        columns["metadata"][row][draw(st.text(max_size=3))] = draw(bad_metadata_value)
    elif mutation == "vector":
        matrix = np.frombuffer(columns["matrix"], dtype="<f4").copy()
        matrix[draw(st.integers(0, matrix.size - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        columns["matrix"] = matrix.tobytes()
    elif mutation == "string field":
        manifest[draw(st.sampled_from(["name", "model_id", "created_at", "updated_at"]))] = draw(not_a_string)
    elif mutation == "count field":
        manifest[draw(st.sampled_from(["dimension", "doc_count", "version"]))] = draw(not_a_count)
    elif mutation == "extra":
        manifest["extra"] = draw(not_an_object.filter(lambda v: v is not None))
    elif mutation == "column length":
        key = draw(st.sampled_from(["ids", "texts", "metadata"]))
        columns[key] = columns[key][:-1] if draw(st.booleans()) else columns[key] + columns[key][:1]
    else:
        columns[draw(st.sampled_from(["ids", "texts", "metadata"]))] = draw(not_a_list)
    return forge_artifact(NAME, **{**columns, **manifest})


@settings(
    max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=invalid_artifacts())
def test_no_invalid_artifact_gets_past_either_route(deployment, project, seeded, body):
    for method, route in (("PUT", "/artifact"), ("POST", "/docs")):
        response = httpx.request(method, url(deployment, route), headers=auth(project), content=body)
        assert 400 <= response.status_code < 500, f"{method} {route}: {response.status_code} {response.text}"
        assert orjson.loads(response.content)["error"]["message"]
        assert_no_server_paths(deployment, response)
    assert_unchanged(deployment, project, seeded)
