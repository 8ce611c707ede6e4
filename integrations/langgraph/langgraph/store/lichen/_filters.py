"""LangGraph's search filter, translated into Lichen's filter language.

LangGraph filters name top-level fields of an item's value: ``{"status": "active"}`` or
``{"score": {"$gt": 4.99}}``. Each becomes a clause on that field's ``v:<field>`` column,
and the engine evaluates it; nothing is filtered here. Operators are Lichen's (a superset
of LangGraph's ``$eq $ne $gt $gte $lt $lte``: also ``$in $nin $exists $contains ...``),
with Lichen's semantics: type-strict comparisons like PostgreSQL's JSONB, and a scalar
matches a list field holding it (MongoDB's rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lichen import InvalidArgumentError

from ._records import VALUE_FIELD


def filter_clauses(filter: Any) -> list[dict[str, Any]]:
    """One Lichen clause per filtered field (all must hold); ``[]`` for no filter."""
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise InvalidArgumentError(f"filter must be a dict of field: value, got {type(filter).__name__}")
    clauses: list[dict[str, Any]] = []
    for field, condition in filter.items():
        if not isinstance(field, str) or not field:
            raise InvalidArgumentError(f"filter field names must be non-empty strings, got {field!r}")
        column = VALUE_FIELD.format(field)
        if isinstance(condition, Mapping):
            if condition and all(isinstance(op, str) and op.startswith("$") for op in condition):
                clauses.append({column: dict(condition)})  # the engine checks operators and values
                continue
            raise InvalidArgumentError(
                f"filter[{field!r}] = {condition!r}: nested-object filters are not supported; filter on "
                "top-level fields of the value, with a value or {'$op': value}"
            )
        clauses.append({column: {"$eq": list(condition) if isinstance(condition, tuple) else condition}})
    return clauses
