"""Filter input that is not a filter: hostile nesting, self-reference, numpy arrays.
Whatever is passed, the answer is an ``InvalidArgumentError`` naming the problem, never a
``RecursionError`` or numpy's "truth value of an array is ambiguous"."""

from __future__ import annotations

import numpy as np
import pytest

from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex
from lichen.engine.filters import MAX_FILTER_DEPTH, compile_filter, where_document_filter


def nested_and(levels: int, inner: dict | None = None) -> dict:
    spec = inner or {"tag": "a"}
    for _ in range(levels):
        spec = {"$and": [spec]}
    return spec


@pytest.fixture
def session() -> SessionIndex:
    index = SessionIndex("filters", "custom")
    index.add_docs_sync([
        DocumentInfo(id=f"d{i}", text=f"text {i}", metadata={"tag": "ab"[i % 2], "i": i}, embedding=np.eye(4)[i % 4])
        for i in range(8)
    ])
    return index


def query(session: SessionIndex, spec) -> list[str]:
    options = QueryOptions(top_k=8, filter=spec, embedding=[1.0, 0.0, 0.0, 0.0])
    return sorted(doc.id for doc in session.query_sync("x", options).docs)


@pytest.mark.parametrize("levels", [500, 10_000])
def test_a_filter_nested_too_deep_is_an_invalid_argument(session, levels):
    with pytest.raises(InvalidArgumentError, match=f"nested more than {MAX_FILTER_DEPTH} levels deep"):
        compile_filter(nested_and(levels))
    with pytest.raises(InvalidArgumentError, match="nested more than"):
        query(session, nested_and(levels))
    with pytest.raises(InvalidArgumentError, match="nested more than"):
        session.get_docs_sync(filter=nested_and(levels))


def test_deep_negations_and_conditions_are_capped_too():
    spec: dict = {"tag": "a"}
    for _ in range(300):
        spec = {"$not": spec}
    with pytest.raises(InvalidArgumentError, match="nested more than"):
        compile_filter(spec)
    condition: dict = {"$eq": "a"}
    for _ in range(300):
        condition = {"$not": condition}
    with pytest.raises(InvalidArgumentError, match="nested more than"):
        compile_filter({"tag": condition})


def test_a_where_document_nested_too_deep_is_an_invalid_argument():
    spec: dict = {"$contains": "refund"}
    for _ in range(2000):
        spec = {"$or": [spec]}
    with pytest.raises(InvalidArgumentError, match=r"at where_document\.\$or\[0\].*nested more than"):
        where_document_filter(spec)


def test_a_filter_that_contains_itself_is_an_invalid_argument():
    spec: dict = {"$or": []}
    spec["$or"].append(spec)
    with pytest.raises(InvalidArgumentError, match="nested more than"):
        compile_filter(spec)


def test_filters_within_the_cap_still_work(session):
    # Each $and level is a dict and a list: half the cap in $and levels, less the leaf.
    deepest = nested_and(MAX_FILTER_DEPTH // 2 - 1)
    assert query(session, deepest) == ["d0", "d2", "d4", "d6"]
    assert query(session, {"i": {"$in": list(range(100_000))}, "tag": "b"}) == ["d1", "d3", "d5", "d7"]


@pytest.mark.parametrize("spec", [
    np.array({"tag": "a"}),
    {"$and": np.array([{"tag": "a"}, {"i": 1}])},
    {"tag": {"$in": np.array(["a", "b"])}},
    {"tag": np.array(["a", "b"])},
])
def test_numpy_arrays_inside_a_filter_are_invalid_arguments(session, spec):
    with pytest.raises(InvalidArgumentError, match="invalid filter"):
        compile_filter(spec)
    with pytest.raises(InvalidArgumentError, match="invalid filter"):
        query(session, spec)


def test_a_numpy_array_as_the_whole_filter_is_an_invalid_argument(session):
    with pytest.raises(InvalidArgumentError, match="expected a filter dict"):
        query(session, np.array([{"tag": "a"}, {"i": 1}]))
