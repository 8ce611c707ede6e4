"""Fixtures for llama-index-tools-lichen's tests: an isolated embedded store per test.

No test calls a model: agents run on llama-index-core's MockFunctionCallingLLM with a
scripted response generator (LlamaIndex's Settings default to OpenAI, so the LLM is
always passed explicitly)."""

from __future__ import annotations

import pytest
from lichen import Client


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
