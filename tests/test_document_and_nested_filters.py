"""Filters on the document text (``$document``, Chroma's ``where_document``) and on nested
metadata by dotted path, through a real session (custom vectors: the tests are about
filtering, not embedding)."""

from __future__ import annotations

import re

import pytest

from lichen import Client, DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex
from lichen.engine.filters import compile_filter, where_document_filter

TEXTS = {
    "a": "Refunds reach the card within 5 business days.",
    "b": "Reset your password from the login page.",
    "c": "A duplicate REFUND is reversed in two days.",
    "d": "Shipping is free over fifty dollars.",
}
META = {
    "a": {"topic": "billing", "user": {"tier": "gold", "since": 2019, "tags": ["vip", "eu"]}},
    "b": {"topic": "account", "user": {"tier": "silver", "since": 2022}},
    "c": {"topic": "billing", "user": {"tier": "silver", "prefs": {"lang": "fr"}}},
    "d": {"topic": "shipping"},
}


def vector(i: int) -> list[float]:
    return [1.0 if j == i else 0.1 for j in range(4)]


@pytest.fixture
def session() -> SessionIndex:
    s = SessionIndex("filters", model_id="custom")
    s.add_docs_sync(
        [DocumentInfo(id=k, text=TEXTS[k], metadata=META[k], embedding=vector(i)) for i, k in enumerate(TEXTS)]
    )
    return s


def ids(session: SessionIndex, spec) -> list[str]:
    return [d.id for d in session.get_docs_sync(filter=spec)]


def state(session: SessionIndex) -> list:
    return [(d.id, d.text, d.metadata, d.embedding) for d in session.get_docs_sync(include_embeddings=True)]


# -- document text ---------------------------------------------------------------------


def test_document_contains_icontains_and_regex(session):
    assert ids(session, {"$document": {"$contains": "Refund"}}) == ["a"]
    assert ids(session, {"$document": {"$icontains": "refund"}}) == ["a", "c"]
    assert ids(session, {"$document": {"$regex": r"\b(two|5) (business )?days"}}) == ["a", "c"]
    assert ids(session, {"$document": {"$not": {"$icontains": "refund"}}}) == ["b", "d"]
    assert ids(session, {"$document": {"$icontains": "days", "$contains": "card"}}) == ["a"]


def test_document_filters_combine_with_metadata(session):
    assert ids(session, {"topic": "billing", "$document": {"$contains": "REFUND"}}) == ["c"]
    assert ids(session, {"$or": [{"$document": {"$contains": "password"}}, {"topic": "shipping"}]}) == ["b", "d"]
    assert ids(session, {"$and": [{"user.tier": "silver"}, {"$document": {"$regex": "^A "}}]}) == ["c"]


def test_document_filter_in_vector_and_hybrid_queries(session):
    hits = session.query_sync("", QueryOptions(top_k=4, embedding=vector(0), filter={"$document": {"$icontains": "refund"}}))
    assert [h.id for h in hits.docs] == ["a", "c"]
    hybrid = session.query_sync(
        "duplicate refund", QueryOptions(top_k=4, alpha=0.5, embedding=vector(0), filter={"$document": {"$contains": "days"}})
    )
    assert {h.id for h in hybrid.docs} == {"a", "c"}


def test_document_filter_sees_updates_and_deletes(session):
    assert ids(session, {"$document": {"$icontains": "refund"}}) == ["a", "c"]  # builds the casefolded cache
    session.add_docs_sync([DocumentInfo(id="a", text="No money back here.", embedding=vector(0))])
    assert ids(session, {"$document": {"$icontains": "refund"}}) == ["c"]
    session.delete_docs_sync(["b"])
    session.add_docs_sync([DocumentInfo(id="e", text="refund requested", embedding=vector(1))])
    assert ids(session, {"$document": {"$icontains": "REFUND"}}) == ["c", "e"]
    assert ids(session, {"$document": {"$contains": "money"}}) == ["a"]


def test_document_filter_on_a_stored_index(tmp_path):
    client = Client(home=tmp_path)
    client.create_index_sync("kb", [DocumentInfo(id=k, text=TEXTS[k], metadata=META[k]) for k in TEXTS])
    assert [d.id for d in client.get_docs_sync("kb", filter={"$document": {"$icontains": "refund"}})] == ["a", "c"]
    client.load_index_sync("kb")
    hits = client.query_sync("kb", "refund", QueryOptions(top_k=4, filter={"$document": {"$contains": "card"}}))
    assert [h.id for h in hits.docs] == ["a"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"$document": {"$regex": "(unclosed"}}, "not a valid regular expression"),
        ({"$document": {"$contains": 5}}, "expected a string"),
        ({"$document": {"$eq": "x"}}, "unknown text operator"),
        ({"$document": "refund"}, "expected text operators"),
        ({"$document": {}}, "expected text operators"),
        ({"$or": [{"$document": {"$not": "x"}}]}, r"filter.\$or\[0\].\$document.\$not"),
    ],
)
def test_bad_document_filters_raise_and_change_nothing(session, spec, message):
    before = state(session)
    with pytest.raises(InvalidArgumentError, match=message):
        session.get_docs_sync(filter=spec)
    with pytest.raises(InvalidArgumentError, match=message):
        session.query_sync("", QueryOptions(embedding=vector(0), filter=spec))
    with pytest.raises(InvalidArgumentError, match=message):
        session.delete_docs_sync(filter=spec)
    assert state(session) == before


def test_where_document_translates_chroma_form(session):
    assert where_document_filter(None) is None and where_document_filter({}) is None
    assert where_document_filter({"$contains": "x"}) == {"$document": {"$contains": "x"}}
    assert where_document_filter({"$not_contains": "x"}) == {"$document": {"$not": {"$contains": "x"}}}
    spec = where_document_filter({"$or": [{"$contains": "password"}, {"$regex": "free"}]})
    assert ids(session, spec) == ["b", "d"]
    spec = where_document_filter({"$and": [{"$icontains": "refund"}, {"$not_regex": "^A"}]})
    assert ids(session, spec) == ["a"]
    with pytest.raises(InvalidArgumentError, match=re.escape("where_document.$like")):
        where_document_filter({"$like": "x"})
    with pytest.raises(InvalidArgumentError, match="expected a list"):
        where_document_filter({"$or": {"$contains": "x"}})
    with pytest.raises(InvalidArgumentError, match="expected a dict"):
        where_document_filter("refund")


# -- nested metadata -------------------------------------------------------------------


def test_nested_metadata_round_trips_and_cannot_be_reached_through_copies(session):
    (doc,) = session.get_docs_sync(["a"])
    assert doc.metadata == META["a"]
    doc.metadata["user"]["tier"] = "changed"
    doc.metadata["user"]["tags"].append("x")
    assert session.get_docs_sync(["a"])[0].metadata == META["a"]
    hit = session.query_sync("", QueryOptions(top_k=1, embedding=vector(0))).docs[0]
    hit.metadata["user"]["tier"] = "changed"
    assert session.get_docs_sync(["a"])[0].metadata == META["a"]


def test_dotted_paths_filter_nested_metadata(session):
    assert ids(session, {"user.tier": "gold"}) == ["a"]
    assert ids(session, {"user.since": {"$gte": 2020}}) == ["b"]
    assert ids(session, {"user.tags": {"$in": ["eu"]}}) == ["a"]
    assert ids(session, {"user.prefs.lang": "fr"}) == ["c"]
    assert ids(session, {"field": "user.tier", "condition": {"$ne": "gold"}}) == ["b", "c", "d"]
    assert ids(session, {"user": {"$exists": True}}) == ["a", "b", "c"]
    assert ids(session, {"user.prefs": {"$exists": True}}) == ["c"]
    assert ids(session, {"user.tier": {"$exists": False}}) == ["d"]
    hits = session.query_sync("", QueryOptions(top_k=4, embedding=vector(1), filter={"user.tier": "silver"}))
    assert [h.id for h in hits.docs] == ["b", "c"]


def test_nested_columns_follow_updates_and_deletes(session):
    session.add_docs_sync([DocumentInfo(id="a", text=TEXTS["a"], metadata={"user": {"tier": "bronze"}}, embedding=vector(0))])
    assert ids(session, {"user.tier": "gold"}) == []
    assert ids(session, {"user.tier": "bronze"}) == ["a"]
    assert ids(session, {"user.tags": {"$in": ["vip"]}}) == []
    session.add_docs_sync([DocumentInfo(id="c", text=TEXTS["c"], metadata={"user.tier": "gold"}, embedding=vector(2))])
    assert ids(session, {"user.tier": "gold"}) == ["c"]  # a literal dotted key is the same field
    assert ids(session, {"user.prefs.lang": "fr"}) == []
    session.delete_docs_sync(["b"])
    assert ids(session, {"user.tier": {"$in": ["silver", "bronze"]}}) == ["a"]


def test_nested_metadata_survives_push_and_resume(tmp_path):
    client = Client(home=tmp_path)
    s = client.session_sync("nested")
    s.add_docs_sync([DocumentInfo(id="a", text="hello", metadata=META["a"])])
    s.push_index_sync()
    resumed = client.session_sync("nested")
    assert resumed.get_docs_sync(filter={"user.tags": {"$all": ["vip", "eu"]}})[0].metadata == META["a"]
    s.save(tmp_path / "nested.lichen")
    assert SessionIndex.open(tmp_path / "nested.lichen").get_docs_sync(filter={"user.tier": "gold"})[0].id == "a"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"user": {"tier": {1, 2}}}, "'user.tier' has type set"),
        ({"user": {"tiers": [{"a": 1}]}}, "'user.tiers' has type list"),
        ({"user": {3: "x"}}, "keys must be strings"),
        ({"user": {"since": float("nan")}}, "'user.since' is nan"),
        ({"a.b": 1, "a": {"b": 2}}, "'a.b' is given twice"),
        ({"l1": {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": {"l8": {"l9": 1}}}}}}}}}, "deeper than 8 levels"),
    ],
)
def test_bad_nested_metadata_is_refused_and_changes_nothing(session, metadata, message):
    before = state(session)
    with pytest.raises(InvalidArgumentError, match=message):
        session.add_docs_sync([DocumentInfo(id="z", text="t", metadata=metadata, embedding=vector(0))])
    assert state(session) == before


def test_a_nested_condition_points_to_dotted_paths():
    with pytest.raises(InvalidArgumentError, match="dotted field name such as 'user.tier'"):
        compile_filter({"user": {"tier": "gold"}})
