"""The metadata filter language: parsed and validated once, evaluated as numpy masks.

``compile_filter(spec)`` checks the whole spec up front (raising
:class:`~lichen.InvalidArgumentError` with the path of the problem, e.g.
``filter.$or[1].year.$gt``) and returns a :class:`CompiledFilter`, whose ``evaluate``
turns :class:`~lichen.engine.columns.MetadataColumns` into a bool mask without a Python loop
over documents.

Forms (nestable and mixable; ``None`` or ``{}`` matches everything)::

    {"field": "city", "condition": {"$eq": "Paris"}}        # seed form (exactly these two keys)
    {"city": "Paris"}                                       # Mongo form, implicit $eq
    {"year": {"$gte": 2020}, "tags": {"$in": ["a", "b"]}}   # several keys: all must hold
    {"$and": [f, ...]}  {"$or": [f, ...]}  {"$nor": [f, ...]}  {"$not": f}

``$and: []`` matches everything, ``$or: []`` nothing. Field names may not start with
``$``. A dotted name reaches into nested metadata dicts: ``{"user.tier": "gold"}`` matches
``metadata={"user": {"tier": "gold"}}`` (a literal key ``"user.tier"`` is the same field);
the dict itself is a value of its own key (``$exists`` sees it, ``$eq`` never matches it).

The document text is filtered with ``$document`` (Chroma's ``where_document``), anywhere a
field could appear and combinable with metadata conditions::

    {"$document": {"$contains": "refund"}}                   # substring, case-sensitive
    {"$document": {"$icontains": "Refund"}}                  # casefolded substring
    {"$document": {"$regex": "ref(und|unded)\\b"}}          # Python re.search
    {"year": 2024, "$document": {"$not": {"$contains": "x"}}}

:func:`where_document_filter` translates Chroma's ``where_document`` form
(``$contains $not_contains $regex $not_regex $and $or``) into this one. Text tests run
over every candidate's text (no index), so they cost more than metadata tests.

Operators on a field (several on one field must all hold, e.g. ``{"$gte": 1, "$lt": 10}``):

* ``$eq v`` / ``$ne v``: type-strict equality: numbers compare with numbers (``1 == 1.0``),
  strings with strings, ``True`` never equals ``1``. ``$eq: None`` matches an explicit
  ``None`` (not a missing field). ``$eq`` with a list value means exact list equality.
* ``$gt $gte $lt $lte`` (number or string): numbers numerically, strings by code point;
  a value of another type never matches.
* ``$in [..]`` / ``$nin [..]``: equal to one of / none of the values.
* ``$all [..]``: equal to every value (for a list field: holds them all); ``[]`` matches
  nothing.
* ``$exists bool``: the field is present (an explicit ``None`` is present).
* ``$empty bool``: the field is missing, ``None``, ``""`` or ``[]`` (or is not).
* ``$contains v``: a list field holds ``v``, or a string field contains the string ``v``.
* ``$icontains "s"``: case-insensitive (``str.casefold``) substring of a string field, or
  of any string element of a list field.
* ``$near "lat,lng,maxMeters"``: the field is a ``"lat,lng"`` string (or a list holding
  one) within ``maxMeters`` by haversine distance (earth radius 6371008.8 m); values that
  do not parse as ``"lat,lng"`` never match.
* ``$not {ops}``: negates the operator expression.

List-valued fields follow MongoDB: ``$eq``, ``$in``, ranges, ``$all`` and ``$contains``
match when *some* element matches (each operator separately); ``$ne`` and ``$nin`` are the
negations of ``$eq`` and ``$in``. A missing field never matches ``$eq``, ``$in``, ranges,
``$all``, ``$contains``, ``$icontains`` or ``$near``, so it does match ``$ne``, ``$nin``
and ``$not``. Numbers are compared as float64. Filter values must be ``str``, ``int``,
``float`` (not NaN), ``bool`` or ``None``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .columns import FieldColumn, MetadataColumns, ValueSet, list_key

__all__ = [
    "CompiledFilter",
    "compile_filter",
    "where_document_filter",
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "DOCUMENT_KEY",
    "DOCUMENT_OPERATORS",
]

FIELD_OPERATORS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not",
    "$near", "$all", "$contains", "$icontains", "$empty",
)
LOGICAL_OPERATORS = ("$and", "$or", "$nor", "$not")
#: The pseudo-field whose condition tests the document text rather than metadata.
DOCUMENT_KEY = "$document"
DOCUMENT_OPERATORS = ("$contains", "$icontains", "$regex", "$not")
_RANGE_OPERATORS = ("$gt", "$gte", "$lt", "$lte")


# -- field tests: one operator applied to one column ------------------------------------


class _Test:
    """An operator on a field. ``on_missing`` is its answer for a document without it."""

    on_missing = False

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        raise NotImplementedError


class _In(_Test):
    def __init__(self, values: list[Any]):
        self.values = ValueSet(values)

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_in(n, self.values)

    def __repr__(self) -> str:
        return f"$in {self.values!r}"


class _ListEqual(_Test):
    def __init__(self, key: tuple):
        self.key = key

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_list_equal(n, self.key)

    def __repr__(self) -> str:
        return f"$eq list {self.key!r}"


class _Range(_Test):
    def __init__(self, op: str, bound: float | str):
        self.op, self.bound = op, bound

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_range(n, self.op, self.bound)

    def __repr__(self) -> str:
        return f"{self.op} {self.bound!r}"


class _Contains(_Test):
    def __init__(self, value: Any):
        self.value, self.values = value, ValueSet([value])

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_contains(n, self.value, self.values)

    def __repr__(self) -> str:
        return f"$contains {self.value!r}"


class _IContains(_Test):
    def __init__(self, needle: str):
        self.needle = needle

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_icontains(n, self.needle)

    def __repr__(self) -> str:
        return f"$icontains {self.needle!r}"


class _Near(_Test):
    def __init__(self, lat: float, lng: float, max_meters: float):
        self.lat, self.lng, self.max_meters = lat, lng, max_meters

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_near(n, self.lat, self.lng, self.max_meters)

    def __repr__(self) -> str:
        return f"$near {self.lat},{self.lng},{self.max_meters}"


class _Exists(_Test):
    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_exists(n)

    def __repr__(self) -> str:
        return "$exists"


class _Empty(_Test):
    on_missing = True

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return column.match_empty(n)

    def __repr__(self) -> str:
        return "$empty"


class _Never(_Test):
    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return np.zeros(n, dtype=bool)

    def __repr__(self) -> str:
        return "never"


class _AllOf(_Test):
    def __init__(self, tests: list[_Test]):
        self.tests = tests
        self.on_missing = all(t.on_missing for t in tests)

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        result = self.tests[0].mask(column, n)
        for test in self.tests[1:]:
            result &= test.mask(column, n)
        return result

    def __repr__(self) -> str:
        return f"all{self.tests!r}"


class _Negated(_Test):
    def __init__(self, test: _Test):
        self.test = test
        self.on_missing = not test.on_missing

    def mask(self, column: FieldColumn, n: int) -> np.ndarray:
        return np.logical_not(self.test.mask(column, n))

    def __repr__(self) -> str:
        return f"not {self.test!r}"


# -- filter nodes: masks over all rows ---------------------------------------------------


class _Node:
    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        raise NotImplementedError


class _MatchAll(_Node):
    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        return np.ones(n, dtype=bool)

    def __repr__(self) -> str:
        return "all"


class _MatchNone(_Node):
    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        return np.zeros(n, dtype=bool)

    def __repr__(self) -> str:
        return "none"


class _Field(_Node):
    def __init__(self, field: str, test: _Test):
        self.field, self.test = field, test

    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        column = columns.column(self.field)
        if column is None:
            return np.full(n, self.test.on_missing, dtype=bool)
        return self.test.mask(column, n)

    def __repr__(self) -> str:
        return f"({self.field} {self.test!r})"


class _Text(_Node):
    """A test on the document text (``$document``)."""

    def __init__(self, op: str, argument: str, test: Any, casefold: bool = False):
        self.op, self.argument, self.test, self.casefold = op, argument, test, casefold

    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        return columns.match_text(self.test, casefold=self.casefold)

    def __repr__(self) -> str:
        return f"($document {self.op} {self.argument!r})"


class _And(_Node):
    def __init__(self, children: list[_Node]):
        self.children = children

    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        result = self.children[0].mask(columns, n)
        for child in self.children[1:]:
            if not result.any():
                break
            result &= child.mask(columns, n)
        return result

    def __repr__(self) -> str:
        return "and" + repr(self.children)


class _Or(_Node):
    def __init__(self, children: list[_Node]):
        self.children = children

    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        result = self.children[0].mask(columns, n)
        for child in self.children[1:]:
            if result.all():
                break
            result |= child.mask(columns, n)
        return result

    def __repr__(self) -> str:
        return "or" + repr(self.children)


class _Not(_Node):
    def __init__(self, child: _Node):
        self.child = child

    def mask(self, columns: MetadataColumns, n: int) -> np.ndarray:
        return np.logical_not(self.child.mask(columns, n))

    def __repr__(self) -> str:
        return f"not {self.child!r}"


_ALL, _NONE = _MatchAll(), _MatchNone()


def _and(children: list[_Node]) -> _Node:
    children = [c for c in children if c is not _ALL]
    if any(c is _NONE for c in children):
        return _NONE
    return children[0] if len(children) == 1 else _And(children) if children else _ALL


def _or(children: list[_Node]) -> _Node:
    children = [c for c in children if c is not _NONE]
    if any(c is _ALL for c in children):
        return _ALL
    return children[0] if len(children) == 1 else _Or(children) if children else _NONE


def _not(child: _Node) -> _Node:
    if child is _ALL:
        return _NONE
    if child is _NONE:
        return _ALL
    if isinstance(child, _Not):
        return child.child
    return _Not(child)


class CompiledFilter:
    """A validated filter, ready to evaluate against any :class:`MetadataColumns`.

    Immutable and reusable across queries and threads.
    """

    __slots__ = ("_root",)

    def __init__(self, root: _Node):
        self._root = root

    @property
    def matches_all(self) -> bool:
        """True when the filter cannot exclude anything (``None``, ``{}``, ``$and: []``)."""
        return self._root is _ALL

    def evaluate(self, columns: MetadataColumns) -> np.ndarray:
        """A fresh bool mask of ``len(columns)``: True where the row matches."""
        return self._root.mask(columns, len(columns))

    def __repr__(self) -> str:
        return f"CompiledFilter({self._root!r})"


MAX_FILTER_DEPTH = 64
"""Deepest nesting of dicts and lists a filter may have. Real filters stay under ten
levels; the cap keeps parsing and evaluation (both recursive) far from Python's
recursion limit, so a hostile filter is an :class:`InvalidArgumentError`, not a crash."""
_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})


def compile_filter(spec: Mapping[str, Any] | CompiledFilter | None) -> CompiledFilter:
    """Validate ``spec`` and compile it; see the module docstring for the language."""
    if isinstance(spec, CompiledFilter):
        return spec
    if spec is None:
        return CompiledFilter(_ALL)
    _check_depth(spec)
    return CompiledFilter(_parse_filter(spec, "filter"))


def _check_depth(spec: Any, root: str = "filter") -> None:
    """Refuse a filter nested deeper than :data:`MAX_FILTER_DEPTH` before the recursive
    parser sees it; an explicit stack, so this check cannot overflow itself (nor loop on a
    filter that contains itself)."""
    nested = (Mapping, list, tuple)

    def inner(child: Any) -> bool:  # cheap for the plain values of long $in lists
        return type(child) not in _PLAIN_VALUES and isinstance(child, nested)

    stack = [(spec, 1, root)]
    while stack:
        value, depth, path = stack.pop()
        if not isinstance(value, nested):
            continue
        if depth > MAX_FILTER_DEPTH:
            where = path if len(path) <= 80 else f"{path[:40]}...{path[-36:]}"
            raise _fail(where, f"nested more than {MAX_FILTER_DEPTH} levels deep; flatten it (e.g. one $and list)")
        if isinstance(value, Mapping):
            stack.extend((child, depth + 1, f"{path}.{key}") for key, child in value.items() if inner(child))
        else:
            stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(value) if inner(child))


# -- parsing ---------------------------------------------------------------------------


def _fail(path: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid filter at {path}: {message}")


def _type_name(value: Any) -> str:
    return type(value).__name__


def _parse_filter(spec: Any, path: str) -> _Node:
    if not isinstance(spec, Mapping):
        raise _fail(path, f"expected a filter dict, got {_type_name(spec)} {spec!r}")
    if "field" in spec and "condition" in spec:
        if len(spec) != 2:
            others = sorted(map(str, spec.keys() - {"field", "condition"}))
            raise _fail(path, f"the seed form takes exactly 'field' and 'condition', also got {others}; "
                              "combine filters with $and / $or")
        field = spec["field"]
        _check_field_name(field, f"{path}.field")
        return _Field(field, _parse_condition(spec["condition"], f"{path}.condition"))
    children: list[_Node] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise _fail(path, f"keys must be field names or operators, got {key!r}")
        here = f"{path}.{key}"
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, (list, tuple)):
                raise _fail(here, f"expected a list of filters, got {_type_name(value)} {value!r}")
            parsed = [_parse_filter(sub, f"{here}[{i}]") for i, sub in enumerate(value)]
            node = _and(parsed) if key == "$and" else _or(parsed)
            children.append(_not(node) if key == "$nor" else node)
        elif key == "$not":
            children.append(_not(_parse_filter(value, here)))
        elif key == DOCUMENT_KEY:
            children.append(_parse_document(value, here))
        elif key.startswith("$"):
            if key in FIELD_OPERATORS:
                raise _fail(here, f"{key} applies to a field, e.g. {{'year': {{'{key}': ...}}}}")
            known = ", ".join(LOGICAL_OPERATORS + (DOCUMENT_KEY,))
            raise _fail(here, f"unknown operator {key!r}; logical operators are {known}")
        else:
            _check_field_name(key, here)
            children.append(_Field(key, _parse_condition(value, here)))
    return _and(children)


def _check_field_name(field: Any, path: str) -> None:
    if not isinstance(field, str):
        raise _fail(path, f"field name must be a string, got {_type_name(field)} {field!r}")
    if not field:
        raise _fail(path, "field name is empty")
    if field.startswith("$"):
        raise _fail(path, f"field name {field!r} cannot start with '$'")


def _parse_condition(condition: Any, path: str) -> _Test:
    """A field's condition: an operator dict, or a bare value meaning ``$eq``."""
    if not isinstance(condition, Mapping):
        return _parse_operator("$eq", condition, path)
    if not condition:
        raise _fail(path, "empty condition; give an operator such as {'$eq': value}")
    tests = []
    for op, argument in condition.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise _fail(
                path,
                f"{op!r} is not an operator; a field's condition is a value or a dict of "
                f"operators such as {{'$eq': value}}; reach into nested metadata with a dotted "
                f"field name such as 'user.tier'",
            )
        tests.append(_parse_operator(op, argument, f"{path}.{op}"))
    return tests[0] if len(tests) == 1 else _AllOf(tests)


def _parse_operator(op: str, argument: Any, path: str) -> _Test:
    if op in ("$eq", "$ne"):
        if isinstance(argument, (list, tuple)):
            key = list_key(_scalar(v, f"{path}[{i}]") for i, v in enumerate(argument))
            test: _Test = _ListEqual(key)  # type: ignore[arg-type]  # NaN is rejected above
        else:
            test = _In([_scalar(argument, path)])
        return _Negated(test) if op == "$ne" else test
    if op in _RANGE_OPERATORS:
        return _Range(op, _orderable(argument, path))
    if op in ("$in", "$nin"):
        test = _In(_scalars(argument, path))
        return _Negated(test) if op == "$nin" else test
    if op == "$all":
        values = _scalars(argument, path)
        if not values:
            return _Never()
        return _AllOf([_In([v]) for v in values])  # no set(): 1 == True in Python
    if op in ("$exists", "$empty"):
        if not isinstance(argument, (bool, np.bool_)):
            raise _fail(path, f"expected true or false, got {_type_name(argument)} {argument!r}")
        test = _Exists() if op == "$exists" else _Empty()
        return test if argument else _Negated(test)
    if op == "$not":
        if not isinstance(argument, Mapping) or not argument:
            raise _fail(path, f"expected an operator expression such as {{'$gt': 5}}, got {argument!r}")
        return _Negated(_parse_condition(argument, path))
    if op == "$contains":
        if isinstance(argument, (list, tuple, Mapping)):
            raise _fail(path, f"expected a single value, got {_type_name(argument)}; use $all for several")
        return _Contains(_scalar(argument, path))
    if op == "$icontains":
        if not isinstance(argument, str):
            raise _fail(path, f"expected a string, got {_type_name(argument)} {argument!r}")
        return _IContains(str(argument))
    if op == "$near":
        return _Near(*_parse_near(argument, path))
    raise _fail(path, f"unknown operator {op!r}; field operators are {', '.join(FIELD_OPERATORS)}")


def _parse_document(condition: Any, path: str) -> _Node:
    """``$document``'s condition: a dict of text operators, all of which must hold."""
    if not isinstance(condition, Mapping) or not condition:
        raise _fail(path, f"expected text operators such as {{'$contains': 'refund'}}, got {condition!r}")
    children: list[_Node] = []
    for op, argument in condition.items():
        here = f"{path}.{op}"
        if op == "$not":
            children.append(_not(_parse_document(argument, here)))
            continue
        if op not in DOCUMENT_OPERATORS:
            raise _fail(here, f"unknown text operator {op!r}; $document takes {', '.join(DOCUMENT_OPERATORS)}")
        if not isinstance(argument, str):
            raise _fail(here, f"expected a string, got {_type_name(argument)} {argument!r}")
        argument = str(argument)
        if op == "$contains":
            children.append(_Text(op, argument, lambda t, a=argument: a in t))
        elif op == "$icontains":
            folded = argument.casefold()
            children.append(_Text(op, argument, lambda t, a=folded: a in t, casefold=True))
        else:
            try:
                pattern = re.compile(argument)
            except re.error as exc:
                raise _fail(here, f"not a valid regular expression ({exc})") from None
            children.append(_Text(op, argument, lambda t, p=pattern: p.search(t) is not None))
    return _and(children)


def where_document_filter(where_document: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chroma's ``where_document`` (``{"$contains": "x"}``, ``$not_contains``, ``$regex``,
    ``$not_regex``, and ``$and`` / ``$or`` lists of those; Lichen's ``$icontains`` too)
    as a Lichen filter on ``$document``. ``None`` or ``{}`` restricts nothing. Validation
    is :func:`compile_filter`'s, with paths under ``where_document``."""
    if where_document is None:
        return None
    _check_depth(where_document, "where_document")
    spec = _where_document(where_document, "where_document")
    return None if spec == _MATCH_EVERYTHING else spec


def _where_document(spec: Any, path: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise _fail(path, f"expected a dict such as {{'$contains': 'refund'}}, got {_type_name(spec)} {spec!r}")
    parts: list[dict[str, Any]] = []
    for key, value in spec.items():
        here = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)):
                raise _fail(here, f"expected a list, got {_type_name(value)} {value!r}")
            parts.append({key: [_where_document(sub, f"{here}[{i}]") for i, sub in enumerate(value)]})
        elif key in ("$contains", "$icontains", "$regex"):
            parts.append({DOCUMENT_KEY: {key: value}})
        elif key in ("$not_contains", "$not_regex"):
            parts.append({DOCUMENT_KEY: {"$not": {key.replace("$not_", "$"): value}}})
        else:
            raise _fail(here, f"unknown where_document operator {key!r}; use $contains, $not_contains, "
                              "$icontains, $regex, $not_regex, $and, $or")
    return parts[0] if len(parts) == 1 else {"$and": parts}


_MATCH_EVERYTHING: dict[str, Any] = {"$and": []}


def _scalar(value: Any, path: str) -> Any:
    """A filter value normalised to ``None``, ``bool``, ``str`` or ``float``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Real):
        number = float(value) if not isinstance(value, numbers.Integral) else value
        if isinstance(number, float) and math.isnan(number):
            raise _fail(path, "NaN never equals or orders against anything; it is not a valid filter value")
        return number
    raise _fail(path, f"expected a string, number, boolean or null, got {_type_name(value)} {value!r}")


def _scalars(values: Any, path: str) -> list[Any]:
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise _fail(path, f"expected a list of values, got {_type_name(values)} {values!r}")
    return [_scalar(v, f"{path}[{i}]") for i, v in enumerate(values)]


def _orderable(value: Any, path: str) -> float | str:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        number = _scalar(value, path)
        try:
            return float(number)
        except OverflowError:
            return math.inf if number > 0 else -math.inf
    raise _fail(path, f"expected a number or a string to compare with, got {_type_name(value)} {value!r}")


def _parse_near(argument: Any, path: str) -> tuple[float, float, float]:
    if not isinstance(argument, str):
        raise _fail(path, f"expected a string 'lat,lng,maxMeters', got {_type_name(argument)} {argument!r}")
    parts = argument.split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        lat, lng, max_meters = (float(p) for p in parts)
    except ValueError:
        raise _fail(
            path, f"expected 'lat,lng,maxMeters' (three comma-separated numbers), got {argument!r}"
        ) from None
    if not all(math.isfinite(x) for x in (lat, lng, max_meters)):
        raise _fail(path, f"numbers must be finite in {argument!r}")
    if not -90.0 <= lat <= 90.0:
        raise _fail(path, f"latitude {lat} is outside [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise _fail(path, f"longitude {lng} is outside [-180, 180]")
    if max_meters < 0:
        raise _fail(path, f"distance {max_meters} must not be negative")
    return lat, lng, max_meters
