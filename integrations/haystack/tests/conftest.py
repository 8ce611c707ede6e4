"""Fixtures for lichen-haystack's tests: an isolated embedded store per test, no telemetry.

Haystack sends anonymous usage events from ``Pipeline.run`` unless
``HAYSTACK_TELEMETRY_ENABLED`` is off; it is switched off here, before Haystack is
imported, so no test (and no README snippet run from here) reaches the network.
"""

from __future__ import annotations

import os

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

import pytest  # noqa: E402
from haystack_integrations.document_stores.lichen import LichenDocumentStore  # noqa: E402
from lichen import Client  # noqa: E402


@pytest.fixture(autouse=True)
def lichen_home(tmp_path, monkeypatch):
    """A fresh embedded store directory, and no server settings from the environment."""
    home = tmp_path / "lichen-home"
    monkeypatch.setenv("LICHEN_HOME", str(home))
    for name in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def client(lichen_home) -> Client:
    return Client(home=lichen_home)


@pytest.fixture
def store(client) -> LichenDocumentStore:
    return LichenDocumentStore("haystack-tests", client=client)

