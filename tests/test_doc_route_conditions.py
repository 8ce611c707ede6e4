"""Conditional writes on the document routes (``docs/protocol.md``, "Versions and
conditional writes"): ``POST /v1/indexes/{name}/docs`` and ``.../docs/delete`` take an
optional ``If-Match: "<version>"``. Against a real ``lichen serve`` over each storage
backend (file system; S3 through a real moto server process): a condition that does not
hold is ``412`` with the current version and changes nothing stored; the current version
applies, once; no condition applies unconditionally. Then the same through ``HttpStore``,
which must send the condition it is given.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from server_helpers import Credentials, Deployment, auth, shared_moto, snapshot_of

from lichen import ConflictError
from lichen.format.artifact import encode_artifact
from lichen.stores.http import HttpStore

DIM = 4


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(f"conditions-{request.param}"), moto)
    yield deployed
    deployed.stop()


@pytest.fixture(scope="module")
def project(deployment) -> Credentials:
    return deployment.server.create_project()


@pytest.fixture
def store(deployment, project) -> HttpStore:
    return HttpStore(deployment.server.url, project.project_id, project.project_key, cache=False)


@pytest.fixture
def name(store) -> str:
    """A fresh index at version 2: pushed with d0..d2 (version 1), then d3 added by a
    document batch, so "1" is a version it really had."""
    name = f"cond-{uuid.uuid4().hex[:8]}"
    assert store.write(snapshot_of(name, 3, dim=DIM), expected_version=0).version == 1
    assert store.add_documents(batch(name, ["d3"])) == (1, 0)
    assert version_of(store, name) == 2
    return name


def version_of(store: HttpStore, name: str) -> int:
    return store.get_info(name).version


def batch(name: str, ids: list[str]):
    """A document batch for ``name`` holding ``ids`` (vectors of the index's model and dimension)."""
    snapshot = snapshot_of(name, len(ids), dim=DIM, seed=7)
    snapshot.ids = list(ids)
    return snapshot


# The two document routes, each with the change it makes when it applies.
ROUTES = {
    "add": ("/docs", lambda name: encode_artifact(batch(name, ["new"])).to_bytes()),
    "delete": ("/docs/delete", lambda name: b'{"ids": ["d0"]}'),
}


def post(deployment: Deployment, project: Credentials, name: str, route: str, headers: dict[str, str]) -> httpx.Response:
    path, body = ROUTES[route]
    return httpx.post(
        f"{deployment.server.url}/v1/indexes/{name}{path}", headers={**auth(project), **headers}, content=body(name),
        timeout=30,
    )


def ids_of(store: HttpStore, name: str) -> list[str]:
    return [doc.id for doc in store.get_documents(name, None)]


def applied(route: str, ids: list[str]) -> bool:
    if route == "add":
        return ids == ["d0", "d1", "d2", "d3", "new"]
    return ids == ["d1", "d2", "d3"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "condition",
    [{"If-Match": '"1"'}, {"If-Match": '"3"'}, {"If-Match": '"0"'}, {"If-None-Match": "*"}],
    ids=["older", "newer", "zero", "none-match-star"],
)
def test_a_condition_that_does_not_hold_is_412_and_changes_nothing(deployment, project, store, name, route, condition):
    before = deployment.stored_objects(project, name)
    response = post(deployment, project, name, route, condition)
    assert response.status_code == 412, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict" and error["current_version"] == 2
    assert deployment.stored_objects(project, name) == before
    assert version_of(store, name) == 2
    assert ids_of(store, name) == ["d0", "d1", "d2", "d3"]


@pytest.mark.parametrize("route", ROUTES)
def test_the_current_version_applies_once(deployment, project, store, name, route):
    response = post(deployment, project, name, route, {"If-Match": '"2"'})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 3
    assert version_of(store, name) == 3 and applied(route, ids_of(store, name))
    after = deployment.stored_objects(project, name)
    # The same request again (a client retrying after a lost response) no longer holds.
    again = post(deployment, project, name, route, {"If-Match": '"2"'})
    assert again.status_code == 412 and again.json()["error"]["current_version"] == 3
    assert deployment.stored_objects(project, name) == after


@pytest.mark.parametrize("route", ROUTES)
def test_no_condition_applies_unconditionally(deployment, project, store, name, route):
    response = post(deployment, project, name, route, {})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 3
    assert version_of(store, name) == 3 and applied(route, ids_of(store, name))


def test_the_client_sends_the_condition_it_is_given(deployment, project, store, name):
    before = deployment.stored_objects(project, name)
    with pytest.raises(ConflictError):
        store.add_documents(batch(name, ["new"]), expected_version=1)
    with pytest.raises(ConflictError):
        store.delete_documents(name, ["d0"], expected_version=1)
    assert deployment.stored_objects(project, name) == before
    assert store.add_documents(batch(name, ["new"]), expected_version=2) == (1, 0)
    assert store.delete_documents(name, ["d0"], expected_version=3) == 1
    assert version_of(store, name) == 4 and ids_of(store, name) == ["d1", "d2", "d3", "new"]
