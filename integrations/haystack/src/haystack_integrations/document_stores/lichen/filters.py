"""Haystack's filter syntax, translated into Lichen's filter language.

Haystack writes filters as nested comparison and logic dicts
(``{"field": "meta.year", "operator": ">=", "value": 2020}``,
``{"operator": "AND", "conditions": [...]}``); Lichen evaluates a Mongo-style dict
(``{"year": {"$gte": 2020}}``, ``{"$and": [...]}``). :func:`to_lichen_filter` only
rewrites one into the other and refuses, with Haystack's ``FilterError``, what Haystack
itself calls malformed; Lichen's engine does the matching.

Where the two languages differ, the translation keeps Haystack's meaning:

* A missing field reads as ``None`` in Haystack, so ``== None`` matches documents
  without the field as well as an explicit ``None``, and ``!= None`` needs a value.
* ``>``, ``>=``, ``<``, ``<=`` with ``None`` match nothing; with a list they are an
  error; with a string they are date comparisons, so the string must be an ISO 8601
  date (Lichen then compares the strings, which orders ISO dates of one format and
  timezone chronologically).
* ``in`` / ``not in`` need a list.
* ``NOT`` negates the conjunction of its conditions.
* ``content`` is the document text (Lichen's ``$document``): ``==``, ``!=``, ``in`` and
  ``not in`` compare the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from haystack.errors import FilterError
from lichen import InvalidArgumentError

__all__ = ["to_lichen_filter", "lichen_filter_errors", "COMPARISON_OPERATORS", "LOGICAL_OPERATORS"]

COMPARISON_OPERATORS = ("==", "!=", ">", ">=", "<", "<=", "in", "not in")
LOGICAL_OPERATORS = ("AND", "OR", "NOT")

_RANGES = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
_MATCH_NOTHING: dict[str, Any] = {"$or": []}
# Fields of haystack.Document that are not metadata; only ``content`` has a Lichen twin.
_DOCUMENT_FIELDS = ("id", "content", "blob", "meta", "score", "embedding", "sparse_embedding")


def to_lichen_filter(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Lichen's form of a Haystack filter, or ``None`` for no filter (``None`` or ``{}``).

    Raises ``haystack.errors.FilterError`` for a filter Haystack calls malformed (a
    missing ``operator`` / ``conditions`` / ``field`` / ``value`` key, an unknown
    operator, ``in`` without a list, a range with a list or a non-date string) and for
    fields Lichen cannot filter on (``id``, ``embedding``, ``score``, ``blob``).
    """
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise FilterError(f"filters must be a dict, got {type(filters).__name__}")
    if not {"field", "operator", "conditions"} & filters.keys():
        raise FilterError(
            f"invalid filter {filters!r}: expected a comparison (field, operator, value) or a logic "
            "condition (operator, conditions); see https://docs.haystack.deepset.ai/docs/metadata-filtering"
        )
    return _condition(filters)


@contextmanager
def lichen_filter_errors() -> Iterator[None]:
    """Report Lichen's refusal of a translated filter (a value of a type it cannot
    compare, a ``$``-prefixed field name) as the ``FilterError`` Haystack callers catch."""
    try:
        yield
    except InvalidArgumentError as exc:
        raise FilterError(str(exc)) from exc


def _condition(condition: Any) -> dict[str, Any]:
    if not isinstance(condition, dict):
        raise FilterError(f"a filter condition must be a dict, got {condition!r}")
    if "field" in condition:
        return _comparison(condition)
    return _logic(condition)


def _logic(condition: dict[str, Any]) -> dict[str, Any]:
    if "operator" not in condition:
        raise FilterError(f"'operator' key missing in {condition}")
    if "conditions" not in condition:
        raise FilterError(f"'conditions' key missing in {condition}")
    operator, conditions = condition["operator"], condition["conditions"]
    if operator not in LOGICAL_OPERATORS:
        raise FilterError(f"unknown logical operator {operator!r}; valid operators are {', '.join(LOGICAL_OPERATORS)}")
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list, got {type(conditions).__name__}")
    parts = [_condition(c) for c in conditions]
    if operator == "AND":
        return {"$and": parts}
    if operator == "OR":
        return {"$or": parts}
    return {"$not": {"$and": parts}}


def _comparison(condition: dict[str, Any]) -> dict[str, Any]:
    if "operator" not in condition:
        raise FilterError(f"'operator' key missing in {condition}")
    if "value" not in condition:
        raise FilterError(f"'value' key missing in {condition}")
    field, operator, value = condition["field"], condition["operator"], condition["value"]
    if operator not in COMPARISON_OPERATORS:
        raise FilterError(f"unknown comparison operator {operator!r}; valid operators are {', '.join(COMPARISON_OPERATORS)}")
    if operator in ("in", "not in") and not isinstance(value, list):
        raise FilterError(f"operator {operator!r} needs a list value, got {type(value).__name__}")
    if field == "content":
        return _content_comparison(operator, value)
    return _metadata_comparison(_metadata_path(field), operator, value)


def _metadata_path(field: Any) -> str:
    if not isinstance(field, str) or not field:
        raise FilterError(f"'field' must be a non-empty string, got {field!r}")
    if field.startswith("meta."):
        return field[len("meta.") :]
    if field in _DOCUMENT_FIELDS:
        raise FilterError(
            f"cannot filter on the document's {field!r}: Lichen filters test metadata ('meta.<key>') "
            "and the text ('content')"
        )
    return field  # Haystack reads a bare name that is not a Document field as metadata


def _metadata_comparison(path: str, operator: str, value: Any) -> dict[str, Any]:
    if operator == "==":
        if value is None:  # a missing field reads as None
            return {"$or": [{path: {"$exists": False}}, {path: {"$eq": None}}]}
        return {path: {"$eq": value}}
    if operator == "!=":
        if value is None:
            return {path: {"$exists": True, "$ne": None}}
        return {path: {"$ne": value}}
    if operator == "in":
        return {path: {"$in": value}}
    if operator == "not in":
        return {path: {"$nin": value}}
    return _range(path, operator, value)


def _range(path: str, operator: str, value: Any) -> dict[str, Any]:
    if value is None:
        return _MATCH_NOTHING
    if isinstance(value, list):
        raise FilterError(f"operator {operator!r} cannot compare with a list")
    if isinstance(value, str) and not _is_iso_date(value):
        raise FilterError(
            f"operator {operator!r} compares strings only as ISO 8601 dates, and {value!r} is not one"
        )
    return {path: {_RANGES[operator]: value}}


def _is_iso_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _content_comparison(operator: str, value: Any) -> dict[str, Any]:
    texts = value if isinstance(value, list) else [value]
    if not all(isinstance(text, str) for text in texts):
        raise FilterError(f"'content' compares with strings, got {value!r}")
    if operator == "==":
        return _whole_text(value)
    if operator == "!=":
        return {"$document": {"$not": {"$regex": _whole_text_pattern(value)}}}
    if operator == "in":
        return {"$or": [_whole_text(text) for text in texts]}
    if operator == "not in":
        return {"$nor": [_whole_text(text) for text in texts]}
    raise FilterError(f"'content' supports ==, !=, in and not in, not {operator!r}")


def _whole_text(text: str) -> dict[str, Any]:
    return {"$document": {"$regex": _whole_text_pattern(text)}}


def _whole_text_pattern(text: str) -> str:
    return r"\A" + re.escape(text) + r"\Z"
