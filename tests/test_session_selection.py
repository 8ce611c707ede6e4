"""Delete by filter, paging through documents, and the query result controls
(``min_score``, ``include_embeddings``, ``include_text``) on a session, a stored index
through the client, and the async faces."""

from __future__ import annotations

import math

import pytest

from lichen import Client, DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex


def vector(i: int) -> list[float]:
    return [1.0 if j == i % 3 else 0.2 * (i % 2) for j in range(3)]


def docs(n: int) -> list[DocumentInfo]:
    return [
        DocumentInfo(id=f"d{i}", text=f"document {i}", metadata={"parity": i % 2, "user": {"tier": "gold" if i < 3 else "free"}}, embedding=vector(i))
        for i in range(n)
    ]


@pytest.fixture
def session() -> SessionIndex:
    s = SessionIndex("sel", model_id="custom")
    s.add_docs_sync(docs(10))
    return s


def state(session: SessionIndex) -> list:
    return [(d.id, d.text, d.metadata, d.embedding) for d in session.get_docs_sync(include_embeddings=True)]


def ids_of(items) -> list[str]:
    return [d.id for d in items]


# -- delete by filter --------------------------------------------------------------------


def test_delete_by_filter_returns_how_many(session):
    assert session.delete_docs_sync(filter={"parity": 1}) == 5
    assert ids_of(session.get_docs_sync()) == ["d0", "d2", "d4", "d6", "d8"]
    assert session.delete_docs_sync(filter={"parity": 1}) == 0
    assert session.delete_docs_sync(filter={"user.tier": "gold", "$document": {"$contains": "2"}}) == 1
    assert ids_of(session.get_docs_sync()) == ["d0", "d4", "d6", "d8"]


def test_delete_by_ids_and_filter_deletes_the_ids_that_match(session):
    assert session.delete_docs_sync(["d0", "d1", "d2", "nope"], filter={"parity": 0}) == 2
    assert ids_of(session.get_docs_sync())[:3] == ["d1", "d3", "d4"]
    # The deleted rows are gone from search too.
    hits = session.query_sync("", QueryOptions(top_k=10, embedding=vector(0)))
    assert {"d0", "d2"}.isdisjoint(ids_of(hits.docs)) and len(hits.docs) == 8


async def test_async_delete_by_filter(session):
    assert await session.delete_docs(filter={"parity": {"$in": [0]}}) == 5
    assert session.doc_count == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs ids, filter"),
        ({"filter": {}}, "matches every document; clear"),
        ({"filter": {"$and": []}}, "matches every document"),
        ({"filter": {"parity": {"$bad": 1}}}, "unknown operator"),
        ({"ids": "d1"}, "list of strings"),
    ],
)
def test_bad_deletes_raise_and_change_nothing(session, kwargs, message):
    before = state(session)
    with pytest.raises(InvalidArgumentError, match=message):
        session.delete_docs_sync(**kwargs)
    assert state(session) == before


def test_read_only_index_refuses_delete_by_filter(tmp_path):
    client = Client(home=tmp_path)
    client.create_index_sync("kb", [DocumentInfo(id="a", text="alpha", metadata={"k": 1})])
    loaded = client.load_index_sync("kb")
    with pytest.raises(InvalidArgumentError, match="read-only"):
        loaded.delete_docs_sync(filter={"k": 1})
    assert loaded.doc_count == 1


def test_client_deletes_from_a_stored_index_by_filter(tmp_path):
    client = Client(home=tmp_path)
    client.create_index_sync("kb", [DocumentInfo(id=f"k{i}", text=f"text {i}", metadata={"n": i}) for i in range(5)])
    assert client.delete_docs_sync("kb", filter={"n": {"$gte": 3}}) == 2
    assert ids_of(client.get_docs_sync("kb")) == ["k0", "k1", "k2"]
    assert client.delete_docs_sync("kb", ["k0", "k1"], filter={"n": 1}) == 1
    assert ids_of(client.get_docs_sync("kb")) == ["k0", "k2"]
    assert client.get_index_sync("kb").doc_count == 2
    with pytest.raises(InvalidArgumentError, match="matches every document"):
        client.delete_docs_sync("kb", filter={})
    assert client.get_index_sync("kb").doc_count == 2


async def test_async_client_delete_by_filter_and_paging(tmp_path):
    client = Client(home=tmp_path)
    await client.create_index("kb", [DocumentInfo(id=f"k{i}", text=f"text {i}", metadata={"n": i}) for i in range(6)])
    assert await client.delete_docs("kb", filter={"n": 0}) == 1
    assert ids_of(await client.get_docs("kb", limit=2, offset=1)) == ["k2", "k3"]


# -- paging --------------------------------------------------------------------------------


def test_pages_cover_everything_once_in_insertion_order(session):
    pages = [session.get_docs_sync(limit=3, offset=offset) for offset in range(0, 12, 3)]
    assert [ids_of(p) for p in pages] == [["d0", "d1", "d2"], ["d3", "d4", "d5"], ["d6", "d7", "d8"], ["d9"]]
    assert session.get_docs_sync(offset=8) == session.get_docs_sync()[8:]
    assert session.get_docs_sync(limit=0) == []
    assert session.get_docs_sync(offset=100) == []


def test_paging_order_is_stable_across_updates_and_deletes(session):
    session.add_docs_sync([DocumentInfo(id="d1", text="updated", embedding=vector(1)), DocumentInfo(id="new", text="n", embedding=vector(2))])
    assert ids_of(session.get_docs_sync(limit=3)) == ["d0", "d1", "d2"]
    session.delete_docs_sync(["d0"])
    assert ids_of(session.get_docs_sync(limit=2, offset=8)) == ["d9", "new"]


def test_paging_with_filter_and_ids(session):
    assert ids_of(session.get_docs_sync(filter={"parity": 1}, limit=2, offset=1)) == ["d3", "d5"]
    assert ids_of(session.get_docs_sync(["d9", "d1", "d4"], limit=2)) == ["d9", "d1"]
    assert ids_of(session.get_docs_sync(["d9", "d1", "d4"], filter={"parity": 1}, offset=1)) == ["d1"]
    page = session.get_docs_sync(filter={"user.tier": "gold"}, limit=1, offset=2, include_embeddings=True)
    assert ids_of(page) == ["d2"] and page[0].embedding is not None


async def test_async_paging(session):
    assert ids_of(await session.get_docs(limit=2, offset=4)) == ["d4", "d5"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": -1}, "limit must be a non-negative integer"),
        ({"limit": 2.5}, "limit must be"),
        ({"limit": True}, "limit must be"),
        ({"offset": -3}, "offset must be a non-negative integer"),
        ({"offset": None}, "offset must be"),
    ],
)
def test_bad_paging_arguments_raise(session, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        session.get_docs_sync(**kwargs)


# -- query result controls ----------------------------------------------------------------


def test_min_score_is_a_floor_on_the_returned_score(session):
    everything = session.query_sync("", QueryOptions(top_k=10, embedding=vector(0))).docs
    floor = everything[3].score
    kept = session.query_sync("", QueryOptions(top_k=10, embedding=vector(0), min_score=floor)).docs
    assert ids_of(kept) == [d.id for d in everything if d.score >= floor] and len(kept) < 10
    assert session.query_sync("", QueryOptions(top_k=10, embedding=vector(0), min_score=1.01)).docs == []
    hybrid = session.query_sync("document 4", QueryOptions(top_k=10, alpha=0.5, embedding=vector(0), min_score=0.01)).docs
    assert hybrid and all(d.score >= 0.01 for d in hybrid)


def test_include_embeddings_and_text(session):
    (hit,) = session.query_sync("", QueryOptions(top_k=1, embedding=vector(0))).docs
    assert hit.embedding is None and hit.text == "document 0"
    (hit,) = session.query_sync("", QueryOptions(top_k=1, embedding=vector(0), include_embeddings=True, include_text=False)).docs
    stored = session.get_docs_sync([hit.id], include_embeddings=True)[0]
    assert hit.embedding == stored.embedding and math.isclose(sum(x * x for x in hit.embedding), 1.0, rel_tol=1e-5)
    assert hit.text == "" and hit.metadata == stored.metadata
    assert session.get_docs_sync([hit.id])[0].text == "document 0"  # only the result was trimmed


async def test_query_controls_through_async_and_client(tmp_path):
    client = Client(home=tmp_path)
    client.create_index_sync("kb", [DocumentInfo(id="a", text="refund policy"), DocumentInfo(id="b", text="shipping rates")])
    client.load_index_sync("kb")
    hits = (await client.query("kb", "refund", QueryOptions(top_k=2, min_score=0.5, include_embeddings=True))).docs
    assert ids_of(hits) == ["a"] and len(hits[0].embedding) == 384


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (QueryOptions(min_score="0.5"), "min_score must be a number"),
        (QueryOptions(min_score=float("nan")), "min_score must be a number"),
        (QueryOptions(min_score=True), "min_score must be a number"),
        (QueryOptions(include_embeddings="yes"), "include_embeddings must be True or False"),
        (QueryOptions(include_text=None), "include_text must be True or False"),
    ],
)
def test_bad_query_controls_raise(session, options, message):
    options.embedding = vector(0)
    with pytest.raises(InvalidArgumentError, match=message):
        session.query_sync("", options)
    with pytest.raises(InvalidArgumentError, match=message):
        SessionIndex("empty", model_id="custom").query_sync("", options)


def test_client_delete_by_filter_and_paging_against_a_real_server(tmp_path):
    from server_helpers import LichenServer, running

    server = LichenServer(tmp_path / "data")
    (tmp_path / "data").mkdir()
    with running(server):
        credentials = server.create_project()
        client = server.client(credentials, cache=False)
        client.create_index_sync("kb", [DocumentInfo(id=f"k{i}", text=f"text {i}", metadata={"n": i}) for i in range(5)])
        assert client.delete_docs_sync("kb", filter={"n": {"$gte": 3}, "$document": {"$contains": "text"}}) == 2
        assert client.delete_docs_sync("kb", ["k0"]) == 1  # by id: the server deletes itself
        assert ids_of(client.get_docs_sync("kb", limit=1, offset=1)) == ["k2"]
        assert client.get_index_sync("kb").doc_count == 2
        with pytest.raises(InvalidArgumentError, match="needs ids, filter"):
            client.delete_docs_sync("kb")
        assert client.get_index_sync("kb").doc_count == 2
        client.close()
