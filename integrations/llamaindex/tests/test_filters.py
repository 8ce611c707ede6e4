"""Every LlamaIndex FilterOperator and FilterCondition, checked three ways.

For each case the nodes the store returns must equal (1) the nodes whose metadata
satisfies the root reference evaluator (``tests/filter_reference.py``) on the spec the
adapter produced, and (2) the nodes the intended LlamaIndex semantics select, written
out by hand below. Neither the adapter nor these tests evaluate filters for the store:
Lichen's engine does.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from filter_reference import reference_match
from lichen import InvalidArgumentError
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.vector_stores.lichen import OPERATOR_MAP, LichenVectorStore, to_lichen_filter

MISSING = object()

CATALOGUE: dict[str, dict[str, Any]] = {
    "n01": {"author": "Ada Lovelace", "year": 1843, "rating": 4.5, "tags": ["math", "history"],
            "title": "Notes on the Analytical Engine", "note": "first program"},
    "n02": {"author": "Alan Turing", "year": 1936, "rating": 5.0, "tags": ["math", "computing"],
            "title": "On Computable Numbers", "note": ""},
    "n03": {"author": "Grace Hopper", "year": 1952, "rating": 4.0, "tags": ["computing", "compilers"],
            "title": "The Education of a Computer", "note": None},
    "n04": {"author": "Claude Shannon", "year": 1948, "rating": 4.8, "tags": ["information", "math"],
            "title": "A Mathematical Theory of Communication"},
    "n05": {"author": "Edsger Dijkstra", "year": 1968, "rating": 3.9, "tags": [],
            "title": "Go To Statement Considered Harmful", "note": "letter"},
    "n06": {"author": "Barbara Liskov", "year": 1987, "rating": 4.2, "tags": ["computing", "types"],
            "title": "Data Abstraction and Hierarchy", "note": "keynote"},
    "n07": {"author": "Donald Knuth", "year": 1968, "rating": 4.9, "tags": ["computing", "algorithms", "math"],
            "title": "The Art of Computer Programming", "note": "book"},
    "n08": {"author": "Ada Lovelace", "year": 1842, "rating": 3.5, "tags": "history",
            "title": "Sketch of the Analytical Engine (translation)", "note": "translation"},
    "n09": {"year": "unknown", "tags": ["history"], "title": "anonymous pamphlet"},
    "n10": {"author": "Frances Allen", "year": 2006, "rating": 4.6, "tags": ["compilers"],
            "title": "Program Optimization", "note": "TURING award lecture"},
}


def get(meta: dict, key: str) -> Any:
    return meta.get(key, MISSING)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def elements(v: Any) -> list:
    """A list field's elements, or a scalar on its own (MISSING: nothing)."""
    if v is MISSING:
        return []
    return list(v) if isinstance(v, list) else [v]


# -- the intended LlamaIndex semantics of each operator, by hand ---------------------------

OPERATOR_CASES: list[tuple[FilterOperator, str, Any, Callable[[dict], bool]]] = [
    (FilterOperator.EQ, "author", "Ada Lovelace", lambda m: get(m, "author") == "Ada Lovelace"),
    (FilterOperator.NE, "author", "Ada Lovelace", lambda m: get(m, "author") != "Ada Lovelace"),
    (FilterOperator.GT, "year", 1950, lambda m: is_number(get(m, "year")) and m["year"] > 1950),
    (FilterOperator.GTE, "year", 1968, lambda m: is_number(get(m, "year")) and m["year"] >= 1968),
    (FilterOperator.LT, "rating", 4.0, lambda m: is_number(get(m, "rating")) and m["rating"] < 4.0),
    (FilterOperator.LTE, "rating", 4.0, lambda m: is_number(get(m, "rating")) and m["rating"] <= 4.0),
    (FilterOperator.IN, "author", ["Alan Turing", "Grace Hopper", "Nobody"],
     lambda m: get(m, "author") in ("Alan Turing", "Grace Hopper", "Nobody")),
    (FilterOperator.NIN, "author", ["Alan Turing", "Grace Hopper", "Nobody"],
     lambda m: get(m, "author") not in ("Alan Turing", "Grace Hopper", "Nobody")),
    # "contains any": the list field holds at least one of the values
    (FilterOperator.ANY, "tags", ["compilers", "information"],
     lambda m: any(t in ("compilers", "information") for t in elements(get(m, "tags")))),
    # "contains all": the list field holds every value
    (FilterOperator.ALL, "tags", ["math", "computing"],
     lambda m: all(t in elements(get(m, "tags")) for t in ("math", "computing"))),
    # a list field holds the value (a string field: the value is a substring of it)
    (FilterOperator.CONTAINS, "tags", "history",
     lambda m: ("history" in get(m, "tags")) if isinstance(get(m, "tags"), (list, str)) else False),
    (FilterOperator.TEXT_MATCH, "title", "Analytical",
     lambda m: isinstance(get(m, "title"), str) and "Analytical" in m["title"]),
    (FilterOperator.TEXT_MATCH_INSENSITIVE, "title", "the",
     lambda m: isinstance(get(m, "title"), str) and "the" in m["title"].lower()),
    # missing, None, "" or []
    (FilterOperator.IS_EMPTY, "note", None, lambda m: get(m, "note") in (MISSING, None, "", [])),
]


def F(key: str, value: Any, operator: FilterOperator | str = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=operator)


CONDITION_CASES: list[tuple[str, MetadataFilters, Callable[[dict], bool]]] = [
    (
        "and",
        MetadataFilters(
            condition=FilterCondition.AND,
            filters=[F("year", 1900, ">="), F("tags", "math", "contains")],
        ),
        lambda m: is_number(get(m, "year")) and m["year"] >= 1900 and "math" in elements(get(m, "tags")),
    ),
    (
        "or",
        MetadataFilters(
            condition=FilterCondition.OR,
            filters=[F("author", "Ada Lovelace"), F("rating", 4.9, ">=")],
        ),
        lambda m: get(m, "author") == "Ada Lovelace" or (is_number(get(m, "rating")) and m["rating"] >= 4.9),
    ),
    (
        "not",  # none of the filters holds, as llama-index-core's own filter function reads NOT
        MetadataFilters(
            condition=FilterCondition.NOT,
            filters=[F("tags", ["math"], "any"), F("note", None, "is_empty")],
        ),
        lambda m: not ("math" in elements(get(m, "tags")) or get(m, "note") in (MISSING, None, "", [])),
    ),
    (
        "or[and, not]",
        MetadataFilters(
            condition=FilterCondition.OR,
            filters=[
                MetadataFilters(
                    condition=FilterCondition.AND,
                    filters=[F("year", 1900, "<"), F("title", "engine", "text_match_insensitive")],
                ),
                MetadataFilters(
                    condition=FilterCondition.NOT,
                    filters=[F("tags", ["math", "history", "compilers", "information"], "any")],
                ),
            ],
        ),
        lambda m: (
            (is_number(get(m, "year")) and m["year"] < 1900 and "engine" in m["title"].lower())
            or not any(t in ("math", "history", "compilers", "information") for t in elements(get(m, "tags")))
        ),
    ),
    (
        "and[not, or]",
        MetadataFilters(
            condition=FilterCondition.AND,
            filters=[
                MetadataFilters(condition=FilterCondition.NOT, filters=[F("author", ["Ada Lovelace"], "in")]),
                MetadataFilters(
                    condition=FilterCondition.OR,
                    filters=[F("year", 1960, ">"), F("tags", ["math", "history"], "all")],
                ),
            ],
        ),
        lambda m: get(m, "author") != "Ada Lovelace"
        and (
            (is_number(get(m, "year")) and m["year"] > 1960)
            or all(t in elements(get(m, "tags")) for t in ("math", "history"))
        ),
    ),
    (
        "not[not]",
        MetadataFilters(
            condition=FilterCondition.NOT,
            filters=[MetadataFilters(condition=FilterCondition.NOT, filters=[F("author", "Grace Hopper")])],
        ),
        lambda m: get(m, "author") == "Grace Hopper",
    ),
    (
        "and[filter, or[not, filter]] mixed",
        MetadataFilters(
            filters=[
                F("rating", 3.5, ">"),
                MetadataFilters(
                    condition=FilterCondition.OR,
                    filters=[
                        MetadataFilters(condition=FilterCondition.NOT, filters=[F("note", None, "is_empty")]),
                        F("tags", "computing", "contains"),
                    ],
                ),
                F("author", "Donald Knuth", "!="),
            ],
        ),
        lambda m: is_number(get(m, "rating")) and m["rating"] > 3.5
        and (get(m, "note") not in (MISSING, None, "", []) or "computing" in elements(get(m, "tags")))
        and get(m, "author") != "Donald Knuth",
    ),
]


@pytest.fixture(scope="module")
def store() -> LichenVectorStore:
    store = LichenVectorStore()
    # No embeddings given: Lichen embeds the text with its built-in model.
    store.add([TextNode(id_=node_id, text=meta["title"], metadata=meta) for node_id, meta in CATALOGUE.items()])
    return store


def selected_by_store(store: LichenVectorStore, filters: MetadataFilters) -> set[str]:
    queried = store.query(VectorStoreQuery(query_str="computing history", similarity_top_k=100, filters=filters))
    fetched = {node.node_id for node in store.get_nodes(filters=filters)}
    assert set(queried.ids) == fetched
    return fetched


def check(store: LichenVectorStore, filters: MetadataFilters, intended: Callable[[dict], bool]) -> None:
    spec = to_lichen_filter(filters)
    by_reference = {node_id for node_id, meta in CATALOGUE.items() if reference_match(meta, spec)}
    by_hand = {node_id for node_id, meta in CATALOGUE.items() if intended(meta)}
    assert 0 < len(by_hand) < len(CATALOGUE), "a case that selects nothing or everything proves little"
    assert by_reference == by_hand, spec
    assert selected_by_store(store, filters) == by_hand, spec


def test_every_operator_has_a_case():
    assert {case[0] for case in OPERATOR_CASES} == set(FilterOperator)
    assert set(OPERATOR_MAP) == set(FilterOperator)


@pytest.mark.parametrize(("operator", "key", "value", "intended"), OPERATOR_CASES, ids=[c[0].name for c in OPERATOR_CASES])
def test_operator(store, operator, key, value, intended):
    check(store, MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=operator)]), intended)


@pytest.mark.parametrize(("filters", "intended"), [c[1:] for c in CONDITION_CASES], ids=[c[0] for c in CONDITION_CASES])
def test_conditions_nested(store, filters, intended):
    check(store, filters, intended)


def test_every_condition_is_exercised():
    seen: set[FilterCondition] = set()

    def walk(filters: MetadataFilters) -> None:
        seen.add(filters.condition)
        for item in filters.filters:
            if isinstance(item, MetadataFilters):
                walk(item)

    for _, filters, _ in CONDITION_CASES:
        walk(filters)
    assert seen == set(FilterCondition)


def test_spec_shapes():
    assert to_lichen_filter(None) is None
    assert to_lichen_filter(MetadataFilters(filters=[])) is None
    assert to_lichen_filter(MetadataFilters(filters=[], condition=FilterCondition.OR)) is None
    assert to_lichen_filter(MetadataFilters(filters=[F("year", 2020, ">="), F("tags", ["faq"], "any")])) == {
        "$and": [{"year": {"$gte": 2020}}, {"tags": {"$in": ["faq"]}}]
    }
    assert to_lichen_filter(MetadataFilters(filters=[F("a", 1)], condition=FilterCondition.NOT)) == {
        "$not": {"$or": [{"a": {"$eq": 1}}]}
    }
    # A single value given to a list operator is a one-element list.
    assert to_lichen_filter(MetadataFilters(filters=[F("a", "x", "in")])) == {"$and": [{"a": {"$in": ["x"]}}]}


def test_empty_filters_restrict_nothing(store):
    for condition in FilterCondition:
        assert len(store.get_nodes(filters=MetadataFilters(filters=[], condition=condition))) == len(CATALOGUE)


def test_bool_values_are_matched_strictly():
    # MetadataFilter refuses bool values; a constructed one still reaches Lichen intact.
    store = LichenVectorStore()
    store.add([
        TextNode(id_="t", text="x", metadata={"flag": True}),
        TextNode(id_="one", text="y", metadata={"flag": 1}),
        TextNode(id_="f", text="z", metadata={"flag": False}),
    ])
    flag_true = MetadataFilter.model_construct(key="flag", value=True, operator=FilterOperator.EQ)
    assert [n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[flag_true]))] == ["t"]
    assert store.get_nodes(filters=MetadataFilters(filters=[F("flag", 1)]))[0].node_id == "one"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (F("tags", ["a", "b"], "contains"), "use ALL"),
        (F("title", 3, "text_match"), "needs a string"),
        (F("title", 3, "text_match_insensitive"), "needs a string"),
        (MetadataFilter.model_construct(key="a", value=1, operator="near"), "not supported by Lichen"),
    ],
)
def test_unsupported_filters_raise(store, bad, message):
    with pytest.raises(InvalidArgumentError, match=message):
        store.get_nodes(filters=MetadataFilters(filters=[bad]))


def test_unsupported_condition_raises(store):
    filters = MetadataFilters.model_construct(filters=[F("a", 1)], condition="xor")
    with pytest.raises(InvalidArgumentError, match="not supported by Lichen"):
        store.query(VectorStoreQuery(query_str="x", filters=filters))


def test_invalid_values_are_rejected_by_lichen(store):
    with pytest.raises(InvalidArgumentError, match=r"\$gt"):
        store.get_nodes(filters=MetadataFilters(filters=[F("year", [1, 2], ">")]))
