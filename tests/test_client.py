"""Client over the embedded store: resume by name, long-term indexes, and what a bad
call leaves behind (nothing)."""

from __future__ import annotations

import asyncio
import io
import sys

import numpy as np
import pytest

from lichen import (
    Client,
    ConflictError,
    CorruptDataError,
    DocumentInfo,
    IndexNotLoadedError,
    InvalidArgumentError,
    NotFoundError,
    QueryOptions,
)
from lichen.stores import LocalStore

DOCS = [
    DocumentInfo(id="a", text="The refund arrives in 3-5 business days.", metadata={"kind": "billing"}),
    DocumentInfo(id="b", text="Passwords can be reset from the sign-in page.", metadata={"kind": "account"}),
]


def stored_bytes(client: Client, name: str) -> bytes:
    assert isinstance(client.store, LocalStore)
    return client.store.index_path(name).read_bytes()


async def test_resume_adopts_stored_vectors_without_reembedding(monkeypatch):
    client = Client()
    session = await client.session("idx")
    await session.add_docs(DOCS)
    await session.push_index()
    pushed = session.core.matrix.copy()

    from lichen.models._onnx import OnnxEmbedder

    monkeypatch.setattr(OnnxEmbedder, "embed", lambda self, texts: pytest.fail("resume must not re-embed"))
    resumed = await Client().session("idx")
    assert resumed.doc_count == 2 and resumed.model_id == "lichen-minilm"
    assert resumed.core.matrix.tobytes() == pushed.tobytes()
    assert [d.metadata for d in await resumed.get_docs()] == [d.metadata for d in DOCS]


async def test_resuming_with_another_model_is_a_value_error_and_stores_nothing():
    client = Client()
    session = await client.session("idx")
    await session.add_docs(DOCS)
    await session.push_index()
    before = stored_bytes(client, "idx")
    with pytest.raises(ValueError, match="built with model_id 'lichen-minilm'; resuming it with 'custom'"):
        await client.session("idx", model_id="custom")
    assert stored_bytes(client, "idx") == before


async def test_corrupt_stored_index_is_refused_at_session_and_load():
    client = Client()
    await client.create_index("idx", DOCS)
    path = client.store.index_path("idx")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip a byte inside the matrix
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="checksum"):
        await client.session("idx")
    with pytest.raises(CorruptDataError):
        await client.load_index("idx")


async def test_stale_push_conflicts_and_keeps_the_newer_version():
    client = Client()
    first = await client.session("shared")
    second = await client.session("shared")
    await first.add_docs([DOCS[0]])
    await second.add_docs([DOCS[1]])
    await first.push_index()
    with pytest.raises(ConflictError):
        await second.push_index()
    assert [d.id for d in await client.get_docs("shared")] == ["a"]
    await second.push_index(overwrite=True)
    assert [d.id for d in await client.get_docs("shared")] == ["b"]


async def test_long_term_index_lifecycle():
    client = Client()
    await client.create_index("faqs", DOCS)
    with pytest.raises(IndexNotLoadedError, match="load_index"):
        await client.query("faqs", "refund")
    await client.load_index("faqs")
    result = await client.query("faqs", "how long does a refund take", QueryOptions(top_k=1))
    assert result.docs[0].id == "a" and result.index_name == "faqs"
    filtered = await client.query("faqs", "refund", QueryOptions(top_k=2, filter={"kind": "account"}))
    assert [d.id for d in filtered.docs] == ["b"]
    assert await client.unload_index("faqs") is True
    with pytest.raises(IndexNotLoadedError):
        await client.query("faqs", "refund")


async def test_loaded_index_is_read_only():
    client = Client()
    await client.create_index("faqs", DOCS)
    loaded = await client.load_index("faqs")
    with pytest.raises(InvalidArgumentError, match="read-only"):
        await loaded.add_docs([DocumentInfo(id="c", text="x")])
    assert loaded.doc_count == 2


async def test_query_many_tags_each_hit_with_its_index():
    client = Client()
    await client.create_index("billing", [DOCS[0]])
    await client.create_index("account", [DOCS[1]])
    await client.load_index("billing")
    await client.load_index("account")
    result = await client.query_many(["billing", "account"], "reset my password", QueryOptions(top_k=2))
    assert [(d.id, d.index_name) for d in result.docs] == [("b", "account"), ("a", "billing")]


async def test_stored_index_crud():
    client = Client()
    with pytest.raises(NotFoundError):
        await client.get_index("nope")
    await client.create_index("idx", DOCS)
    with pytest.raises(ConflictError):
        await client.create_index("idx", DOCS)
    assert await client.add_docs("idx", [DocumentInfo(id="c", text="Shipping takes a week.")]) == (1, 0)
    assert await client.delete_docs("idx", ["a"]) == 1
    info = await client.get_index("idx")
    assert (info.doc_count, info.version, info.dimension) == (2, 3, 384)
    assert [i.name for i in await client.list_indexes()] == ["idx"]
    assert [d.id for d in await client.get_docs("idx", ["c"])] == ["c"]
    assert await client.delete_index("idx") is True
    assert await client.list_indexes() == []


async def test_failed_add_to_stored_index_changes_nothing():
    client = Client()
    await client.create_index("idx", DOCS)
    before = stored_bytes(client, "idx")
    with pytest.raises(InvalidArgumentError, match="duplicate ids"):
        await client.add_docs("idx", [DocumentInfo(id="x", text="1"), DocumentInfo(id="x", text="2")])
    with pytest.raises(InvalidArgumentError, match="NaN"):
        await client.add_docs("idx", [DocumentInfo(id="y", text="1", embedding=[float("nan")] * 384)])
    assert stored_bytes(client, "idx") == before


def test_sync_twins_match_async():
    client = Client()
    session = client.session_sync("s")
    session.add_docs_sync(DOCS)
    session.push_index_sync()
    client.load_index_sync("s")
    hits = client.query_sync("s", "refund", QueryOptions(top_k=1)).docs
    assert hits[0].id == "a"
    assert np.isclose(hits[0].score, session.query_sync("refund", QueryOptions(top_k=1)).docs[0].score)


async def test_query_many_keeps_the_same_id_from_different_indexes():
    client = Client()
    await client.create_index("a", [DocumentInfo(id="doc-1", text="refunds take five days")])
    await client.create_index("b", [DocumentInfo(id="doc-1", text="refunds take five business days")])
    await client.load_index("a")
    await client.load_index("b")
    result = await client.query_many(["a", "b"], "refund time", QueryOptions(top_k=5))
    assert sorted((d.id, d.index_name) for d in result.docs) == [("doc-1", "a"), ("doc-1", "b")]


async def test_reading_stored_docs_needs_no_model():
    """An index built elsewhere with a model this machine lacks can still be read."""
    from lichen.format import IndexSnapshot

    client = Client()
    client.store.write(IndexSnapshot(
        name="foreign", model_id="bge-large-not-installed", dimension=2, ids=["x"], texts=["t"],
        metadata=[{"k": 1}], matrix=np.array([[1.0, 0.0]], dtype=np.float32),
    ))
    assert [d.id for d in await client.get_docs("foreign")] == ["x"]
    assert [d.id for d in client.get_docs_sync("foreign", filter={"k": 1})] == ["x"]


async def test_client_is_a_context_manager_in_both_faces():
    with Client() as client:
        client.create_index_sync("ctx", DOCS)
    async with Client() as client:
        assert (await client.get_index("ctx")).doc_count == 2


# ---------------------------------------------------------------- progress while embedding
class _Terminal(io.StringIO):
    """Standard error as a terminal would present it (what tqdm and Lichen look at)."""

    def isatty(self) -> bool:
        return True


MANY = [DocumentInfo(id=f"n{i}", text=f"note number {i}") for i in range(300)]


@pytest.mark.parametrize(
    ("stream", "env", "progress", "docs", "shown"),
    [
        (_Terminal, None, None, MANY, True),            # a terminal, a long batch: a bar
        (io.StringIO, None, None, MANY, False),         # piped or logged: never
        (_Terminal, "0", None, MANY, False),            # LICHEN_PROGRESS=0 silences it
        (_Terminal, None, False, MANY, False),          # so does progress=False
        (_Terminal, None, None, MANY[:100], False),     # a short batch finishes before a bar helps
    ],
    ids=["tty", "not-a-tty", "env-off", "option-off", "short-batch"],
)
def test_embedding_a_long_batch_shows_a_bar_only_on_a_terminal(monkeypatch, stream, env, progress, docs, shown):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    if env is not None:
        monkeypatch.setenv("LICHEN_PROGRESS", env)
    session = Client(progress=progress).session_sync("notes")
    assert session.add_docs_sync(docs) == (len(docs), 0)
    assert ("embedding" in err.getvalue() and f"/{len(docs)}" in err.getvalue()) is shown
    if not shown:
        assert err.getvalue() == ""


async def test_an_oversized_query_is_refused_like_an_oversized_document():
    from lichen import LimitExceededError
    from lichen._validation import MAX_TEXT_BYTES

    client = Client()
    await client.create_index("faqs", DOCS)
    await client.load_index("faqs")
    session = await client.session("faqs")
    huge = "refund " * (10 * MAX_TEXT_BYTES // 7)  # 10 MiB: seconds of tokenising, for 256 tokens used
    for query in (lambda: session.query(huge), lambda: client.query("faqs", huge),
                  lambda: session.query(huge, QueryOptions(alpha=0.0))):
        with pytest.raises(LimitExceededError, match=f"query text is .* bytes; the limit is {MAX_TEXT_BYTES}"):
            await query()
    with pytest.raises(LimitExceededError):
        session.query_sync("\u00e9" * (MAX_TEXT_BYTES // 2 + 1))  # the cap counts UTF-8 bytes, not characters
    assert session.query_sync("é" * 1000).docs  # long but reasonable queries still answer
    assert (await client.query("faqs", "refund", QueryOptions(top_k=1))).docs[0].id == "a"


async def test_querying_an_unloaded_index_says_whether_it_exists():
    client = Client()
    for query in (lambda name: client.query(name, "refund"), lambda name: client.query_many([name], "refund")):
        with pytest.raises(IndexNotLoadedError, match="'nowhere' does not exist in the embedded store: create it"):
            await query("nowhere")
    with pytest.raises(IndexNotLoadedError, match="'nowhere' does not exist"):
        client.query_sync("nowhere", "refund")
    await client.create_index("faqs", DOCS)
    with pytest.raises(IndexNotLoadedError, match=r"'faqs' exists but is not loaded: call client.load_index\('faqs'\)"):
        await client.query("faqs", "refund")
    with pytest.raises(IndexNotLoadedError, match="'faqs' exists but is not loaded"):
        client.query_sync("faqs", "refund")


async def test_creating_an_existing_index_says_it_exists_and_how_to_replace_it():
    client = Client()
    await client.create_index("faqs", DOCS)
    before = stored_bytes(client, "faqs")
    for create in (lambda: client.create_index("faqs", DOCS[:1]), lambda: asyncio.to_thread(client.create_index_sync, "faqs", DOCS[:1])):
        with pytest.raises(ConflictError) as raised:
            await create()
        message = str(raised.value)
        assert "index 'faqs' already exists (version 1)" in message
        assert "delete_index('faqs')" in message and "overwrite=True" in message and "client.session('faqs')" in message
        assert "expected 0" not in message
    assert stored_bytes(client, "faqs") == before
