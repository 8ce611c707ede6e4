"""A plain-Python, one-document-at-a-time reading of the filter language.

Written from the semantics in ``lichen.filters``'s docstring (not from its code), to be
obviously right rather than fast; the property tests check the vectorised engine against
it. It assumes a valid spec: validation is tested separately.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["reference_match", "MISSING"]

MISSING = object()
EARTH_RADIUS_M = 6371008.8


def reference_match(doc_metadata: dict, spec: Any) -> bool:
    if spec is None:
        return True
    if set(spec) == {"field", "condition"}:
        return _condition(doc_metadata.get(spec["field"], MISSING), spec["condition"])
    for key, value in spec.items():
        if key == "$and":
            ok = all(reference_match(doc_metadata, sub) for sub in value)
        elif key == "$or":
            ok = any(reference_match(doc_metadata, sub) for sub in value)
        elif key == "$nor":
            ok = not any(reference_match(doc_metadata, sub) for sub in value)
        elif key == "$not":
            ok = not reference_match(doc_metadata, value)
        else:
            ok = _condition(doc_metadata.get(key, MISSING), value)
        if not ok:
            return False
    return True


def _condition(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict):
        return all(_operator(value, op, arg) for op, arg in condition.items())
    return _operator(value, "$eq", condition)


def _type(x: Any) -> str:
    if x is MISSING:
        return "missing"
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, (list, tuple)):
        return "list"
    return "other"


def _same(a: Any, b: Any) -> bool:
    """Type-strict scalar equality."""
    ta, tb = _type(a), _type(b)
    if ta != tb or ta in ("missing", "list", "other"):
        return False
    if ta == "null":
        return True
    return a == b


def _ordered(a: Any, op: str, b: Any) -> bool:
    ta, tb = _type(a), _type(b)
    if ta != tb or ta not in ("number", "string"):
        return False
    if op == "$gt":
        return a > b
    if op == "$gte":
        return a >= b
    if op == "$lt":
        return a < b
    return a <= b


def _candidates(value: Any) -> list:
    """What element-wise operators look at: a list's elements, or the value itself."""
    if value is MISSING:
        return []
    if _type(value) == "list":
        return list(value)
    return [value]


def _parse_point(text: str):
    pieces = text.split(",")
    if len(pieces) != 2:
        return None
    try:
        lat = float(pieces[0])
        lng = float(pieces[1])
    except ValueError:
        return None
    if math.isnan(lat) or math.isnan(lng) or abs(lat) > 90 or abs(lng) > 180:
        return None
    return lat, lng


def _haversine(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lng2 - lng1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        if isinstance(arg, (list, tuple)):
            return (
                _type(value) == "list"
                and len(value) == len(arg)
                and all(_same(x, y) for x, y in zip(value, arg))
            )
        return any(_same(x, arg) for x in _candidates(value))
    if op == "$ne":
        return not _operator(value, "$eq", arg)
    if op == "$in":
        return any(_operator(value, "$eq", a) for a in arg)
    if op == "$nin":
        return not _operator(value, "$in", arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return any(_ordered(x, op, arg) for x in _candidates(value))
    if op == "$all":
        return len(arg) > 0 and all(_operator(value, "$eq", a) for a in arg)
    if op == "$exists":
        return (value is not MISSING) == arg
    if op == "$empty":
        empty = value is MISSING or value is None
        empty = empty or (_type(value) == "string" and value == "")
        empty = empty or (_type(value) == "list" and len(value) == 0)
        return empty == arg
    if op == "$not":
        return not _condition(value, arg)
    if op == "$contains":
        if _type(value) == "list":
            return any(_same(x, arg) for x in value)
        if _type(value) == "string" and _type(arg) == "string":
            return arg in value
        return False
    if op == "$icontains":
        return any(_type(x) == "string" and arg.casefold() in x.casefold() for x in _candidates(value))
    if op == "$near":
        lat, lng, limit = (float(p) for p in arg.split(","))
        for x in _candidates(value):
            if _type(x) == "string":
                point = _parse_point(x)
                if point is not None and _haversine(lat, lng, point[0], point[1]) <= limit:
                    return True
        return False
    raise AssertionError(f"reference does not know {op}")
