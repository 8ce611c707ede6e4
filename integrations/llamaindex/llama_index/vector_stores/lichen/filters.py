"""LlamaIndex ``MetadataFilters`` translated into Lichen's filter language.

This module only translates: every operator is evaluated by Lichen's engine
(:mod:`lichen.filters`), never here. The translation is total over the
``FilterOperator`` and ``FilterCondition`` members of llama-index-core 0.14; anything
else raises :class:`lichen.InvalidArgumentError` instead of being ignored.

=========================  =====================================  =========================
LlamaIndex                 Lichen (Mongo form)                    meaning
=========================  =====================================  =========================
``EQ``  ``==``             ``{key: {"$eq": v}}``                  equal (a list field: some element)
``NE``  ``!=``             ``{key: {"$ne": v}}``                  not equal; a missing field matches
``GT GTE LT LTE``          ``{key: {"$gt" ...: v}}``              numbers with numbers, strings with strings
``IN``                     ``{key: {"$in": [..]}}``               equal to one of
``NIN``                    ``{key: {"$nin": [..]}}``              equal to none of; a missing field matches
``ANY``                    ``{key: {"$in": [..]}}``               a list field holds at least one of
``ALL``                    ``{key: {"$all": [..]}}``              a list field holds every one of
``CONTAINS``               ``{key: {"$contains": v}}``            a list field holds ``v`` (a string field: substring)
``TEXT_MATCH``             ``{key: {"$contains": "s"}}``          substring of a string field
``TEXT_MATCH_INSENSITIVE`` ``{key: {"$icontains": "s"}}``         case-insensitive substring
``IS_EMPTY``               ``{key: {"$empty": true}}``            missing, ``None``, ``""`` or ``[]``
``AND``                    ``{"$and": [...]}``                    all hold (``[]``: everything)
``OR``                     ``{"$or": [...]}``                     one holds
``NOT``                    ``{"$not": {"$or": [...]}}``           none holds (as llama-index-core's own filter)
=========================  =====================================  =========================

``IN``, ``NIN``, ``ANY`` and ``ALL`` given a single value treat it as a one-element list.
An empty ``MetadataFilters`` restricts nothing, whatever its condition.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from lichen import InvalidArgumentError
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

__all__ = ["to_lichen_filter", "OPERATOR_MAP"]

#: The Lichen operator each LlamaIndex operator becomes.
OPERATOR_MAP: dict[FilterOperator, str] = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in",
    FilterOperator.ALL: "$all",
    FilterOperator.CONTAINS: "$contains",
    FilterOperator.TEXT_MATCH: "$contains",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "$icontains",
    FilterOperator.IS_EMPTY: "$empty",
}

_LIST_OPERATORS = {FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL}
_TEXT_OPERATORS = {FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE}
_MATCH_ALL: dict[str, Any] = {"$and": []}


def to_lichen_filter(filters: Optional[MetadataFilters]) -> Optional[dict[str, Any]]:
    """The Lichen filter spec for ``filters``; ``None`` when nothing is restricted.

    Example::

        to_lichen_filter(MetadataFilters(filters=[
            MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
            MetadataFilter(key="tags", value=["faq"], operator=FilterOperator.ANY),
        ]))
        # {"$and": [{"year": {"$gte": 2020}}, {"tags": {"$in": ["faq"]}}]}
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise InvalidArgumentError(
            f"filters must be llama_index MetadataFilters, got {type(filters).__name__}"
        )
    spec = _translate_filters(filters, "filters")
    return None if spec == _MATCH_ALL else spec


def _translate_filters(filters: MetadataFilters, path: str) -> dict[str, Any]:
    parts = [
        _translate(item, f"{path}.filters[{i}]") for i, item in enumerate(filters.filters)
    ]
    if not parts:
        return _MATCH_ALL
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"$and": parts}
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": parts}}
    raise InvalidArgumentError(
        f"{path}.condition: {condition!r} is not supported by Lichen; use "
        + ", ".join(c.name for c in FilterCondition)
    )


def _translate(item: Union[MetadataFilter, MetadataFilters], path: str) -> dict[str, Any]:
    if isinstance(item, MetadataFilters):
        return _translate_filters(item, path)
    if not isinstance(item, MetadataFilter):
        raise InvalidArgumentError(f"{path}: expected MetadataFilter or MetadataFilters, got {type(item).__name__}")
    try:
        operator = FilterOperator(item.operator)
        lichen_op = OPERATOR_MAP[operator]
    except (ValueError, KeyError):
        raise InvalidArgumentError(
            f"{path}: filter operator {item.operator!r} on {item.key!r} is not supported by Lichen; "
            f"supported: {', '.join(op.name for op in OPERATOR_MAP)}"
        ) from None
    value = item.value
    if operator == FilterOperator.IS_EMPTY:
        value = True  # LlamaIndex ignores the value of IS_EMPTY
    elif operator in _LIST_OPERATORS:
        value = list(value) if isinstance(value, (list, tuple)) else [value]
    elif operator == FilterOperator.CONTAINS and isinstance(value, (list, tuple)):
        raise InvalidArgumentError(
            f"{path}: CONTAINS takes one value, got a list {value!r}; use ALL (every value) or ANY (one of them)"
        )
    elif operator in _TEXT_OPERATORS and not isinstance(value, str):
        raise InvalidArgumentError(
            f"{path}: {operator.name} matches a substring and needs a string value, got {value!r}"
        )
    return {item.key: {lichen_op: value}}
