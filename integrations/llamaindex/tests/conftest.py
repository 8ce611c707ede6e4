"""Fixtures for the llama-index-lichen tests.

Every test gets its own embedded Lichen store and no server settings, and never touches
the network: models are always passed explicitly (``LichenEmbedding`` runs the ONNX
model shipped inside Lichen; the LLM is ``MockLLM``), because LlamaIndex's ``Settings``
default to OpenAI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.llms import MockLLM
from llama_index.embeddings.lichen import LichenEmbedding

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "lichen-home"
    monkeypatch.setenv("LICHEN_HOME", str(home))
    for name in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def embed_model() -> LichenEmbedding:
    return LichenEmbedding()


@pytest.fixture
def llm() -> MockLLM:
    return MockLLM()


@pytest.fixture(scope="session")
def handbook_text() -> str:
    return (DATA / "support_handbook.md").read_text(encoding="utf-8")
