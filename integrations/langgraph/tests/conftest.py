"""Fixtures for langgraph-store-lichen's tests: an isolated embedded store per test."""

from __future__ import annotations

import pytest
from langgraph.store.lichen import LichenStore
from lichen import Client


def pytest_configure(config: pytest.Config) -> None:
    # Async tests are plain ``async def``: they need pytest-asyncio's auto mode, which the
    # monorepo's root config sets; this keeps the package's tests runnable on their own.
    try:
        mode = config.getoption("asyncio_mode") or config.getini("asyncio_mode")
    except ValueError:  # pytest-asyncio is not installed: nothing to configure
        return
    if mode != "auto":
        config.option.asyncio_mode = "auto"


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
def store(client) -> LichenStore:
    """A store that embeds the ``text`` field of each value with Lichen's shipped model."""
    return LichenStore.open(client, "memories", index={"fields": ["text"]})


@pytest.fixture
def stored_state():
    """``stored_state(store)``: everything the index holds (ids, texts, metadata and
    vectors), to show that a refused call changed nothing."""

    def read(store: LichenStore) -> list[tuple]:
        return [(d.id, d.text, d.metadata, d.embedding) for d in store.session.get_docs_sync(include_embeddings=True)]

    return read
