"""Issue 25, item 5: the LangChain and LlamaIndex context retrievers and the LangGraph
store take ``auto_refresh`` and pass it on; the combined short + long retriever keeps
answering, from a thread that never stops asking, while its long-term index is replaced
underneath, and sees the new version without being rebuilt. On the embedded store, with
the writes made through another client of the same home (the file is replaced, as by
another process)."""

from __future__ import annotations

import threading
import time

import pytest

from lichen import Client, DocumentInfo, InvalidArgumentError

DEADLINE_S = 60.0


def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


FAQ = [
    DocumentInfo(id="faq-1", text="Duplicate charges are refunded within 5 business days."),
    DocumentInfo(id="faq-2", text="You can reset your password from the login page."),
]
NEW = DocumentInfo(id="faq-9", text="Refunds for double charges now arrive within 24 hours.")


def _replace_faq(home) -> None:
    writer = Client(home=home)
    session = writer.session_sync("faqs")
    session.add_docs_sync([NEW])
    session.delete_docs_sync(["faq-1"])
    session.push_index_sync()


def test_langchain_context_retriever_keeps_answering_while_its_index_refreshes(tmp_path):
    from langchain_lichen import LichenContextRetriever

    home = tmp_path / "home"
    Client(home=home).create_index_sync("faqs", FAQ)
    client = Client(home=home)
    session = client.session_sync("call-1")
    session.add_docs_sync([DocumentInfo(id="turn-1", text="Customer: I was charged twice.")])
    retriever = LichenContextRetriever(
        session=session, client=client, indexes=["faqs"], k=3, auto_refresh=True, refresh_interval=0.05
    )
    assert client.index_status("faqs").auto_refresh
    answers: list[set[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                answers.append({doc.id for doc in retriever.invoke("refund for a double charge")})
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        until(lambda: len(answers) >= 3, "answers before the change")
        _replace_faq(home)
        until(lambda: bool(answers) and "faq-9" in answers[-1], "the new version in an answer")
    finally:
        stop.set()
        asker.join()
        client.close()
    assert not errors, errors[:3]
    assert all("turn-1" in ids for ids in answers)  # the session answered throughout
    assert {"faq-1" in ids for ids in answers} == {True, False}
    assert not any("faq-1" in ids and "faq-9" in ids for ids in answers)  # one version at a time


def test_llamaindex_context_retriever_refreshes_an_index_loaded_before(tmp_path):
    from llama_index.retrievers.lichen import LichenContextRetriever

    home = tmp_path / "home"
    Client(home=home).create_index_sync("faqs", FAQ)
    client = Client(home=home)
    client.load_index_sync("faqs")  # loaded without auto_refresh: the retriever starts it
    retriever = LichenContextRetriever(client=client, indexes=["faqs"], k=2, auto_refresh=True, refresh_interval=0.05)
    assert client.index_status("faqs").auto_refresh
    assert "faq-9" not in {n.node.id_ for n in retriever.retrieve("double charge refund")}
    _replace_faq(home)
    until(lambda: "faq-9" in {n.node.id_ for n in retriever.retrieve("double charge refund")}, "the new version")
    client.close()


def test_langgraph_store_opened_live_follows_another_writer_and_refuses_writes(tmp_path):
    from langgraph.store.lichen import LichenStore

    home = tmp_path / "home"
    writer = LichenStore.open(Client(home=home), "memory")
    writer.put(("users", "u1"), "food", {"text": "Allergic to peanuts"})
    writer.push()
    client = Client(home=home)
    live = LichenStore.open(client, "memory", auto_refresh=True, refresh_interval=0.05)
    assert live.get(("users", "u1"), "food").value == {"text": "Allergic to peanuts"}
    writer.put(("users", "u2"), "city", {"text": "Lives in Lyon"})
    writer.push()
    until(lambda: live.get(("users", "u2"), "city") is not None, "the second item")
    assert live.list_namespaces() == [("users", "u1"), ("users", "u2")]
    assert live.search(("users",), query="where does the user live?", limit=1)[0].key == "city"
    with pytest.raises(InvalidArgumentError, match="read-only"):
        live.put(("users", "u3"), "pet", {"text": "Has a cat"})
    with pytest.raises(InvalidArgumentError, match="ttl"):
        LichenStore.open(client, "memory", auto_refresh=True, ttl={"default_ttl": 5})
    client.close()
