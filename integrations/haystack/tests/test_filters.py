"""The filter translation: what each Haystack form becomes, what it refuses, and, over
random documents and filters, the same answers as Haystack's in-memory store."""

from __future__ import annotations

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.errors import FilterError
from haystack_integrations.document_stores.lichen import LichenDocumentStore, to_lichen_filter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("haystack", "lichen"),
    [
        (None, None),
        ({}, None),
        ({"field": "meta.year", "operator": "==", "value": 2020}, {"year": {"$eq": 2020}}),
        ({"field": "meta.user.tier", "operator": "!=", "value": "gold"}, {"user.tier": {"$ne": "gold"}}),
        ({"field": "year", "operator": ">", "value": 1}, {"year": {"$gt": 1}}),  # a bare name is metadata
        ({"field": "meta.d", "operator": "<=", "value": "2024-01-31"}, {"d": {"$lte": "2024-01-31"}}),
        ({"field": "meta.tag", "operator": "in", "value": ["a", "b"]}, {"tag": {"$in": ["a", "b"]}}),
        ({"field": "meta.tag", "operator": "not in", "value": []}, {"tag": {"$nin": []}}),
        ({"field": "meta.x", "operator": "==", "value": None}, {"$or": [{"x": {"$exists": False}}, {"x": {"$eq": None}}]}),
        ({"field": "meta.x", "operator": "!=", "value": None}, {"x": {"$exists": True, "$ne": None}}),
        ({"field": "meta.x", "operator": ">=", "value": None}, {"$or": []}),
        ({"field": "content", "operator": "==", "value": "a.b"}, {"$document": {"$regex": r"\Aa\.b\Z"}}),
        ({"field": "content", "operator": "!=", "value": "x"}, {"$document": {"$not": {"$regex": r"\Ax\Z"}}}),
        (
            {"field": "content", "operator": "not in", "value": ["x"]},
            {"$nor": [{"$document": {"$regex": r"\Ax\Z"}}]},
        ),
        (
            {
                "operator": "NOT",
                "conditions": [
                    {"field": "meta.a", "operator": "==", "value": 1},
                    {"operator": "OR", "conditions": [{"field": "meta.b", "operator": "<", "value": 2}]},
                ],
            },
            {"$not": {"$and": [{"a": {"$eq": 1}}, {"$or": [{"b": {"$lt": 2}}]}]}},
        ),
        ({"operator": "AND", "conditions": []}, {"$and": []}),
    ],
)
def test_translation(haystack, lichen):
    assert to_lichen_filter(haystack) == lichen


@pytest.mark.parametrize(
    ("haystack", "complaint"),
    [
        ({"meta.year": 2020}, "invalid filter"),  # Haystack 1.x syntax
        ({"conditions": []}, "'operator' key missing"),
        ({"operator": "AND"}, "'conditions' key missing"),
        ({"operator": "XOR", "conditions": []}, "unknown logical operator"),
        ({"operator": "AND", "conditions": {"field": "meta.a"}}, "must be a list"),
        ({"field": "meta.a", "value": 1}, "'operator' key missing"),
        ({"field": "meta.a", "operator": "=="}, "'value' key missing"),
        ({"field": "meta.a", "operator": "~", "value": 1}, "unknown comparison operator"),
        ({"field": "meta.a", "operator": "in", "value": "ab"}, "needs a list"),
        ({"field": "meta.a", "operator": "not in", "value": (1, 2)}, "needs a list"),
        ({"field": "meta.a", "operator": ">", "value": [1]}, "cannot compare with a list"),
        ({"field": "meta.a", "operator": "<", "value": "yesterday"}, "ISO 8601"),
        ({"field": "id", "operator": "==", "value": "1"}, "cannot filter on the document's 'id'"),
        ({"field": "embedding", "operator": "==", "value": [0.1]}, "cannot filter on"),
        ({"field": "content", "operator": ">", "value": "a"}, "'content' supports"),
        ({"field": "content", "operator": "in", "value": ["a", 1]}, "compares with strings"),
        ({"field": "", "operator": "==", "value": 1}, "non-empty string"),
    ],
)
def test_malformed_filters_raise_filter_error(haystack, complaint):
    with pytest.raises(FilterError, match=complaint):
        to_lichen_filter(haystack)


def test_values_lichen_refuses_are_filter_errors(store):
    """A value Lichen cannot compare (a dict) reaches the engine and comes back as the
    FilterError Haystack callers catch, naming the path."""
    store.write_documents([Document(content="x", meta={"a": 1})])
    with pytest.raises(FilterError, match=r"filter\.a"):
        store.filter_documents({"field": "meta.a", "operator": "==", "value": {"b": 1}})


def test_content_filters_compare_the_whole_text(store):
    store.write_documents([Document(id="1", content="refund policy"), Document(id="2", content="refund")])
    assert [d.id for d in store.filter_documents({"field": "content", "operator": "==", "value": "refund"})] == ["2"]
    assert [d.id for d in store.filter_documents({"field": "content", "operator": "!=", "value": "refund"})] == ["1"]
    in_filter = {"field": "content", "operator": "in", "value": ["refund policy", "nope"]}
    assert [d.id for d in store.filter_documents(in_filter)] == ["1"]


# ---- the same answers as Haystack's reference store, over random documents and filters
#
# Generated within the documented common ground: numbers compared with numbers, ISO
# dates of one format with each other, scalar fields (Lichen reads a list field as
# "some element", Haystack as the whole list), no booleans (Python's True == 1).
NUMBERS = st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.0, 2.5]))
WORDS = st.sampled_from(["alpha", "beta", "gamma"])
DATES = st.sampled_from(["1969-07-21T20:17:40", "1972-12-11T19:54:58", "1989-11-09T17:53:00"])
FIELDS = {"n": NUMBERS, "s": WORDS, "d": DATES}
MISSING = object()


@st.composite
def metadata(draw):
    meta = {}
    for field, values in FIELDS.items():
        value = draw(st.one_of(st.just(MISSING), st.none(), values))
        if value is not MISSING:
            meta[field] = value
    return meta


@st.composite
def comparison(draw):
    field = draw(st.sampled_from(sorted(FIELDS)))
    values = FIELDS[field]
    operators = ["==", "!=", "in", "not in"] + ([">", ">=", "<", "<="] if field != "s" else [])
    operator = draw(st.sampled_from(operators))
    if operator in ("in", "not in"):
        value = draw(st.lists(values, max_size=3))
    else:
        value = draw(st.one_of(st.none(), values))
    return {"field": f"meta.{field}", "operator": operator, "value": value}


FILTERS = st.recursive(
    comparison(),
    lambda children: st.builds(
        lambda operator, conditions: {"operator": operator, "conditions": conditions},
        st.sampled_from(["AND", "OR", "NOT"]),
        st.lists(children, max_size=3),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metas=st.lists(metadata(), min_size=1, max_size=8), filters=FILTERS)
def test_same_matches_as_haystacks_in_memory_store(client, metas, filters):
    docs = [Document(id=str(i), content=f"doc {i}", meta=meta) for i, meta in enumerate(metas)]
    reference = InMemoryDocumentStore(shared=False)
    reference.write_documents(docs)
    store = LichenDocumentStore(session=client.session_sync("differential"))
    store.session.clear_sync()
    store.write_documents(docs)
    expected = [d.id for d in reference.filter_documents(filters)]
    assert [d.id for d in store.filter_documents(filters)] == expected
