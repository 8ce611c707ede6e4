"""Fixtures for langchain-lichen's tests: an isolated embedded store per test and a small
live-call scenario (a session of call turns plus a long-term FAQ index)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.embeddings import Embeddings
from lichen import Client, DocumentInfo, SessionIndex


def pytest_configure(config: pytest.Config) -> None:
    # LangChain's standard suites are plain ``async def`` tests: they need pytest-asyncio's
    # auto mode. The monorepo's root config sets it; this keeps the package's tests
    # runnable on their own too.
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


CALL_TURNS = [
    DocumentInfo(id="turn-1", text="Customer: I was charged twice for my subscription this month.", metadata={"speaker": "customer", "turn": 1}),
    DocumentInfo(id="turn-2", text="Agent: I can see two payments of 12 euros on the 3rd.", metadata={"speaker": "agent", "turn": 2}),
    DocumentInfo(id="turn-3", text="Customer: My card number ends in 4242.", metadata={"speaker": "customer", "turn": 3}),
]

FAQS = [
    DocumentInfo(id="faq-refund", text="Duplicate charges are refunded to the original card within 5 business days.", metadata={"topic": "billing"}),
    DocumentInfo(id="faq-password", text="You can reset your password from the login page.", metadata={"topic": "account"}),
    DocumentInfo(id="faq-invoice", text="Invoices are emailed on the first day of each month.", metadata={"topic": "billing"}),
    DocumentInfo(id="faq-cancel", text="Cancel your subscription at any time from the account settings.", metadata={"topic": "account"}),
]


@pytest.fixture
def client(lichen_home) -> Client:
    return Client(home=lichen_home)


@pytest.fixture
def faq_client(client) -> Client:
    """A client with the long-term index ``support-faqs`` stored and loaded."""
    client.create_index_sync("support-faqs", FAQS)
    client.load_index_sync("support-faqs")
    return client


@pytest.fixture
def call_session(client) -> SessionIndex:
    """The live session of a call, holding three turns."""
    session = client.session_sync("call-123")
    session.add_docs_sync(CALL_TURNS)
    return session


class TableEmbeddings(Embeddings):
    """Embeddings read from a table (unknown texts map to a fixed vector), so tests can
    place documents exactly where they want them."""

    def __init__(self, table: dict[str, Sequence[float]], default: Sequence[float]) -> None:
        self.table = table
        self.default = list(default)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(self.table.get(text, self.default)) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(self.table.get(text, self.default))


@pytest.fixture
def table_embeddings():
    return TableEmbeddings
