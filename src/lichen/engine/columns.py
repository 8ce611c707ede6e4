"""Columnar per-document metadata, aligned with the engine's row positions ``0..n-1``.

This module owns how metadata is stored and the vectorised primitives the filter
language (:mod:`lichen.filters`) is compiled onto. Each field is a :class:`FieldColumn`
of typed numpy arrays, maintained incrementally: ``append`` writes at the end (with
capacity doubling), ``replace`` writes in place and ``keep`` compacts, so a query never
rebuilds a column from Python dicts.

Per field and row the column stores:

* ``kind``: what the value is (missing, ``None``, ``False``, ``True``, number, string,
  list, other). Booleans are their own kinds, so ``True`` never equals ``1``.
* ``num``: the value as float64 for numbers (``NaN`` for everything else, bools too).
* ``sid``: strings dictionary-encoded into a per-field :class:`StringPool` (``-1`` when not
  a string). String predicates (substring, ranges, ``"lat,lng"`` distance) run once per
  *distinct* string and are gathered onto rows with one fancy-index.
* ``lid``: a code for the whole list (exact list equality and ``[]``), ``-1`` otherwise.

List values are also exploded into element arrays (``e_kind``, ``e_num``, ``e_sid``,
``e_row``) so that "some element matches" is one vectorised test plus a scatter onto rows.
Numbers are compared as float64: integers beyond 2**53 lose precision.

A nested dict is a value of kind "other" under its own key and, recursively, each of its
entries is a column under its dotted path: ``{"user": {"tier": "gold"}}`` fills the
columns ``user`` and ``user.tier``.

The document text is not metadata, but filters may test it (``$document``): the owner
passes a ``texts`` callable returning the live texts, aligned with the rows, and the
columns answer substring and regex tests over them (:meth:`MetadataColumns.match_text`).
"""

from __future__ import annotations

import itertools
import math
import numbers
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .._util import copy_metadata

__all__ = ["MetadataColumns", "FieldColumn", "StringPool", "ValueSet", "list_key", "parse_lat_lng"]

# Value kinds. MISSING must stay 0 (fresh arrays are zero-filled) and NONE 1 (``$empty``
# tests ``kind <= NONE``).
MISSING, NONE, FALSE, TRUE, NUM, STR, LIST, OTHER = range(8)

EARTH_RADIUS_M = 6_371_008.8
_NAN = math.nan
_MIN_CAPACITY = 256
# Dictionaries (strings, list codes) are rebuilt when garbage dominates them.
_POOL_SLACK = 256


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float still orders correctly as +-inf
        return math.inf if value > 0 else -math.inf


def parse_lat_lng(text: str) -> tuple[float, float] | None:
    """``"lat,lng"`` -> ``(lat, lng)``, or ``None`` unless it is two finite numbers
    within [-90, 90] and [-180, 180]."""
    parts = text.split(",")
    if len(parts) != 2:
        return None
    try:
        lat, lng = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):  # also rejects NaN / inf
        return None
    return lat, lng


def _encode_scalar(value: Any, pool: StringPool) -> tuple[int, float, int]:
    """(kind, num, sid) of one scalar; lists and other objects inside lists are OTHER."""
    t = type(value)
    if t is str:
        return STR, _NAN, pool.code(value)
    if t is bool:
        return (TRUE if value else FALSE), _NAN, -1
    if t is int or t is float:
        return NUM, _to_float(value), -1
    if value is None:
        return NONE, _NAN, -1
    if isinstance(value, str):
        return STR, _NAN, pool.code(str(value))
    if isinstance(value, (bool, np.bool_)):
        return (TRUE if value else FALSE), _NAN, -1
    if isinstance(value, numbers.Real):
        return NUM, _to_float(value), -1
    return OTHER, _NAN, -1


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def list_key(values: Iterable[Any]) -> tuple | None:
    """A hashable key equal for two lists exactly when they are element-wise equal under
    filter equality (type-strict, ``1 == 1.0``, ``True != 1``). ``None`` for a list that
    can equal nothing (it holds NaN, a nested list or another object)."""
    key: list[Any] = []
    for value in values:
        t = type(value)
        if t is str or isinstance(value, str):
            key += (STR, str(value))
        elif t is bool or isinstance(value, (bool, np.bool_)):
            key += (TRUE if value else FALSE, None)
        elif value is None:
            key += (NONE, None)
        elif isinstance(value, numbers.Real):
            number = _to_float(value)
            if number != number:
                return None
            key += (NUM, number)
        else:
            return None
    return tuple(key)


class ValueSet:
    """Normalised scalars for an equality test: numbers as a float64 array (bools
    excluded), strings, and the kinds ``None`` / ``False`` / ``True``."""

    __slots__ = ("nums", "strs", "kinds")

    def __init__(self, values: Iterable[Any]):
        nums: list[float] = []
        strs: list[str] = []
        kinds: set[int] = set()
        for value in values:
            if isinstance(value, str):
                strs.append(value)
            elif isinstance(value, (bool, np.bool_)):
                kinds.add(TRUE if value else FALSE)
            elif value is None:
                kinds.add(NONE)
            else:
                nums.append(_to_float(value))
        self.nums = np.unique(np.asarray(nums, dtype=np.float64))
        self.strs = tuple(dict.fromkeys(strs))
        self.kinds = tuple(sorted(kinds))

    def __repr__(self) -> str:
        return f"ValueSet(nums={self.nums.tolist()}, strs={list(self.strs)}, kinds={list(self.kinds)})"


class StringPool:
    """Dictionary encoding of one field's strings, with lazily extended per-string caches
    (sort ranks, casefolded text, parsed ``"lat,lng"``). Codes only grow until the owning
    column rebuilds the pool; caches are replaced whole, never mutated, so a reader racing
    a cache refresh at worst computes it twice."""

    __slots__ = ("strings", "index", "_sorted", "_folded", "_geo")

    def __init__(self, strings: Iterable[str] = ()):
        self.strings: list[str] = list(strings)
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.strings)}
        self._sorted: tuple[int, list[str], np.ndarray] | None = None
        self._folded: list[str] = []
        self._geo: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))

    def __len__(self) -> int:
        return len(self.strings)

    def code(self, text: str) -> int:
        code = self.index.get(text)
        if code is None:
            code = len(self.strings)
            self.strings.append(text)
            self.index[text] = code
        return code

    # Tables have one entry per code plus a trailing False, so that ``table[sid]`` maps
    # ``sid == -1`` (not a string) to no match.

    def codes_table(self, codes: Sequence[int]) -> np.ndarray:
        table = np.zeros(len(self.strings) + 1, dtype=bool)
        table[list(codes)] = True
        return table

    def range_table(self, op: str, bound: str) -> np.ndarray:
        size = len(self.strings)
        cached = self._sorted
        if cached is None or cached[0] != size:
            order = sorted(range(size), key=self.strings.__getitem__)
            ranks = np.empty(size, dtype=np.int64)
            ranks[order] = np.arange(size)
            cached = (size, [self.strings[i] for i in order], ranks)
            self._sorted = cached
        _, ordered, ranks = cached
        if op == "$gt":
            table = ranks >= bisect_right(ordered, bound)
        elif op == "$gte":
            table = ranks >= bisect_left(ordered, bound)
        elif op == "$lt":
            table = ranks < bisect_left(ordered, bound)
        else:  # $lte
            table = ranks < bisect_right(ordered, bound)
        return np.append(table, False)

    def contains_table(self, needle: str) -> np.ndarray:
        table = np.zeros(len(self.strings) + 1, dtype=bool)
        table[:-1] = np.fromiter((needle in s for s in self.strings), dtype=bool, count=len(self.strings))
        return table

    def icontains_table(self, needle: str) -> np.ndarray:
        folded = self._folded
        if len(folded) < len(self.strings):
            folded = folded + [s.casefold() for s in self.strings[len(folded):]]
            self._folded = folded
        needle = needle.casefold()
        table = np.zeros(len(folded) + 1, dtype=bool)
        table[:-1] = np.fromiter((needle in s for s in folded), dtype=bool, count=len(folded))
        return table

    def near_table(self, lat: float, lng: float, max_meters: float) -> np.ndarray:
        lats, lngs = self._geo
        if len(lats) < len(self.strings):
            points = [parse_lat_lng(s) or (_NAN, _NAN) for s in self.strings[len(lats):]]
            new = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            lats, lngs = np.concatenate([lats, new[:, 0]]), np.concatenate([lngs, new[:, 1]])
            self._geo = (lats, lngs)
        phi1, phi2 = math.radians(lat), np.radians(lats)
        half_dphi = (phi2 - phi1) / 2.0
        half_dlambda = np.radians(lngs - lng) / 2.0
        a = np.sin(half_dphi) ** 2 + math.cos(phi1) * np.cos(phi2) * np.sin(half_dlambda) ** 2
        distance = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        return np.append(distance <= max_meters, False)  # NaN (unparseable) -> False


class FieldColumn:
    """One metadata field over all rows: typed row arrays plus exploded list elements.

    Row arrays have the shared capacity of the owning :class:`MetadataColumns`; only
    ``[:n]`` is meaningful and ``[n:]`` always holds the "missing" defaults. The
    ``match_*`` methods return a fresh bool mask of length ``n``.
    """

    __slots__ = (
        "kind", "num", "sid", "lid", "pool", "list_codes",
        "e_kind", "e_num", "e_sid", "e_row", "e_count", "e_dead", "_live_strings", "_live_lists",
    )

    def __init__(self, capacity: int):
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.num = np.full(capacity, _NAN)
        self.sid = np.full(capacity, -1, dtype=np.int32)
        self.lid = np.full(capacity, -1, dtype=np.int32)
        self.pool = StringPool()
        self.list_codes: dict[tuple, int] = {}
        self.e_kind = np.zeros(0, dtype=np.int8)
        self.e_num = np.zeros(0)
        self.e_sid = np.zeros(0, dtype=np.int32)
        self.e_row = np.zeros(0, dtype=np.int64)
        self.e_count = 0  # used slots in the element arrays, dead ones included
        self.e_dead = 0  # elements of overwritten rows, kind MISSING until compacted
        # Live entry counts at the last garbage check: checks are amortised against growth.
        self._live_strings = 0
        self._live_lists = 0

    # -- storage -------------------------------------------------------------------

    def grow(self, n: int, capacity: int) -> None:
        def grown(array: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(capacity, fill, dtype=array.dtype)
            out[:n] = array[:n]
            return out

        self.kind = grown(self.kind, MISSING)
        self.num = grown(self.num, _NAN)
        self.sid = grown(self.sid, -1)
        self.lid = grown(self.lid, -1)

    def _list_code(self, values: Sequence[Any]) -> int:
        key = list_key(values)
        if key is None:
            return -1
        code = self.list_codes.get(key)
        if code is None:
            code = self.list_codes[key] = len(self.list_codes)
        return code

    def write(self, positions: Sequence[int], values: Sequence[Any]) -> None:
        """Set the value at each (currently missing) position."""
        types = set(map(type, values))
        if types == {str} or types <= {int, float}:
            self._write_uniform(np.asarray(positions, dtype=np.int64), values, types)
        else:
            self._write_mixed(positions, values)

    def _write_uniform(self, index: np.ndarray, values: Sequence[Any], types: set[type]) -> None:
        """Fast path for the common all-strings or all-numbers column: no call per value."""
        if types == {str}:
            for text in dict.fromkeys(values):
                self.pool.code(text)
            self.kind[index] = STR
            self.sid[index] = np.fromiter(map(self.pool.index.__getitem__, values), np.int32, len(values))
            return
        try:
            numbers_ = np.fromiter(values, np.float64, len(values))
        except OverflowError:  # an int beyond float range
            self._write_mixed(index.tolist(), values)
            return
        self.kind[index] = NUM
        self.num[index] = numbers_

    def _write_mixed(self, positions: Sequence[int], values: Sequence[Any]) -> None:
        pool = self.pool
        kinds: list[int] = []
        nums: list[float] = []
        sids: list[int] = []
        lids: list[int] = []
        e_rows: list[int] = []
        e_values: list[tuple[int, float, int]] = []
        for position, value in zip(positions, values):
            if _is_list(value):
                kinds.append(LIST)
                nums.append(_NAN)
                sids.append(-1)
                lids.append(self._list_code(value))
                for element in value:
                    e_rows.append(position)
                    e_values.append(_encode_scalar(element, pool))
            else:
                kind, num, sid = _encode_scalar(value, pool)
                kinds.append(kind)
                nums.append(num)
                sids.append(sid)
                lids.append(-1)
        index = np.asarray(positions, dtype=np.int64)
        self.kind[index] = kinds
        self.num[index] = nums
        self.sid[index] = sids
        self.lid[index] = lids
        if e_rows:
            self._append_elements(e_rows, e_values)

    def _append_elements(self, rows: list[int], values: list[tuple[int, float, int]]) -> None:
        start, end = self.e_count, self.e_count + len(rows)
        if end > len(self.e_kind):
            capacity = max(end, 2 * len(self.e_kind), _MIN_CAPACITY)
            for name in ("e_kind", "e_num", "e_sid", "e_row"):
                old = getattr(self, name)
                new = np.zeros(capacity, dtype=old.dtype)
                new[:start] = old[:start]
                setattr(self, name, new)
        table = np.array(values, dtype=np.float64).reshape(-1, 3)  # exact: codes < 2**53
        self.e_kind[start:end] = table[:, 0]
        self.e_num[start:end] = table[:, 1]
        self.e_sid[start:end] = table[:, 2]
        self.e_row[start:end] = rows
        self.e_count = end

    def clear(self, positions: np.ndarray) -> None:
        """Make the value at each position missing (before an overwrite)."""
        if len(positions) == 0:
            return
        had_list = positions[self.kind[positions] == LIST]
        if len(had_list) and self.e_count:
            e = self.e_count
            dead = (self.e_kind[:e] != MISSING) & np.isin(self.e_row[:e], had_list)
            self.e_kind[:e][dead] = MISSING
            self.e_num[:e][dead] = _NAN
            self.e_sid[:e][dead] = -1
            self.e_dead += int(dead.sum())
        self.kind[positions] = MISSING
        self.num[positions] = _NAN
        self.sid[positions] = -1
        self.lid[positions] = -1

    def keep(self, mask: np.ndarray, n: int, m: int) -> None:
        """Keep the rows where ``mask`` (length ``n``, ``m`` True) holds, in order."""
        for array, fill in ((self.kind, MISSING), (self.num, _NAN), (self.sid, -1), (self.lid, -1)):
            array[:m] = array[:n][mask]
            array[m:n] = fill
        e = self.e_count
        if e:
            alive = self.e_kind[:e] != MISSING
            alive[alive] = mask[self.e_row[:e][alive]]
            new_position = np.cumsum(mask) - 1
            count = int(alive.sum())
            self.e_row[:count] = new_position[self.e_row[:e][alive]]
            for array in (self.e_kind, self.e_num, self.e_sid):
                array[:count] = array[:e][alive]
            self.e_count, self.e_dead = count, 0
        # Deleting rows bounds how many dictionary entries can still be live.
        self._live_strings = min(self._live_strings, m + self.e_count)
        self._live_lists = min(self._live_lists, m)
        self.compact_dictionaries(m)

    def compact_dictionaries(self, n: int) -> None:
        """Rebuild the string pool / list codes once they have grown to over twice their
        live entries (checked only after such growth, so the cost is amortised)."""
        e = self.e_count
        if len(self.pool) > 2 * self._live_strings + _POOL_SLACK:
            live = np.unique(np.concatenate([self.sid[:n], self.e_sid[:e]]))
            live = live[live >= 0]
            self._live_strings = len(live)
            if len(live) < len(self.pool):
                remap = np.full(len(self.pool) + 1, -1, dtype=np.int32)  # [-1] stays -1
                remap[live] = np.arange(len(live), dtype=np.int32)
                self.sid[:n] = remap[self.sid[:n]]
                self.e_sid[:e] = remap[self.e_sid[:e]]
                self.pool = StringPool(self.pool.strings[i] for i in live.tolist())
        if len(self.list_codes) > 2 * self._live_lists + _POOL_SLACK:
            live = np.unique(self.lid[:n])
            live = live[live >= 0]
            self._live_lists = len(live)
            if len(live) < len(self.list_codes):
                remap = np.full(len(self.list_codes) + 1, -1, dtype=np.int32)
                remap[live] = np.arange(len(live), dtype=np.int32)
                self.lid[:n] = remap[self.lid[:n]]
                keys = sorted(self.list_codes, key=self.list_codes.__getitem__)
                self.list_codes = {keys[old]: new for new, old in enumerate(live.tolist())}

    def compact_elements(self) -> None:
        e = self.e_count
        alive = self.e_kind[:e] != MISSING
        count = int(alive.sum())
        for array in (self.e_kind, self.e_num, self.e_sid, self.e_row):
            array[:count] = array[:e][alive]
        self.e_count, self.e_dead = count, 0

    def has_values(self, n: int) -> bool:
        return bool(np.any(self.kind[:n] != MISSING))

    # -- vectorised predicates -------------------------------------------------------

    def _scalar_in(self, kind: np.ndarray, num: np.ndarray, sid: np.ndarray, values: ValueSet) -> np.ndarray:
        mask = None
        if values.nums.size == 1:
            mask = num == values.nums[0]
        elif values.nums.size:
            mask = np.isin(num, values.nums)
        codes = [c for c in map(self.pool.index.get, values.strs) if c is not None]
        if codes:
            hit = sid == codes[0] if len(codes) == 1 else self.pool.codes_table(codes)[sid]
            mask = hit if mask is None else mask | hit
        for k in values.kinds:
            hit = kind == k
            mask = hit if mask is None else mask | hit
        return np.zeros(len(kind), dtype=bool) if mask is None else mask

    def _scalar_range(self, num: np.ndarray, sid: np.ndarray, op: str, bound: float | str) -> np.ndarray:
        if isinstance(bound, str):
            return self.pool.range_table(op, bound)[sid]
        if op == "$gt":
            return num > bound
        if op == "$gte":
            return num >= bound
        if op == "$lt":
            return num < bound
        return num <= bound

    def _with_elements(self, mask: np.ndarray, element_mask_of) -> np.ndarray:
        """OR onto ``mask`` the rows having a live list element that satisfies the test."""
        e = self.e_count
        if e > self.e_dead:
            hits = element_mask_of(self.e_kind[:e], self.e_num[:e], self.e_sid[:e])
            mask[self.e_row[:e][hits]] = True
        return mask

    def match_in(self, n: int, values: ValueSet) -> np.ndarray:
        """Scalar equal to one of ``values``, or a list holding one of them."""
        mask = self._scalar_in(self.kind[:n], self.num[:n], self.sid[:n], values)
        return self._with_elements(mask, lambda k, x, s: self._scalar_in(k, x, s, values))

    def match_list_equal(self, n: int, key: tuple) -> np.ndarray:
        code = self.list_codes.get(key)
        if code is None:
            return np.zeros(n, dtype=bool)
        return self.lid[:n] == code

    def match_range(self, n: int, op: str, bound: float | str) -> np.ndarray:
        mask = self._scalar_range(self.num[:n], self.sid[:n], op, bound)
        return self._with_elements(mask, lambda k, x, s: self._scalar_range(x, s, op, bound))

    def match_contains(self, n: int, value: Any, values: ValueSet) -> np.ndarray:
        """String field containing ``value`` as a substring, or list holding ``value``."""
        if isinstance(value, str):
            mask = self.pool.contains_table(value)[self.sid[:n]]
        else:
            mask = np.zeros(n, dtype=bool)
        return self._with_elements(mask, lambda k, x, s: self._scalar_in(k, x, s, values))

    def match_icontains(self, n: int, needle: str) -> np.ndarray:
        table = self.pool.icontains_table(needle)
        return self._with_elements(table[self.sid[:n]], lambda k, x, s: table[s])

    def match_near(self, n: int, lat: float, lng: float, max_meters: float) -> np.ndarray:
        table = self.pool.near_table(lat, lng, max_meters)
        return self._with_elements(table[self.sid[:n]], lambda k, x, s: table[s])

    def match_exists(self, n: int) -> np.ndarray:
        return self.kind[:n] != MISSING

    def match_empty(self, n: int) -> np.ndarray:
        """Missing, ``None``, ``""`` or ``[]``."""
        mask = self.kind[:n] <= NONE
        empty_string = self.pool.index.get("")
        if empty_string is not None:
            mask |= self.sid[:n] == empty_string
        empty_list = self.list_codes.get(())
        if empty_list is not None:
            mask |= self.lid[:n] == empty_list
        return mask


class MetadataColumns:
    """Per-document metadata of one index, column by column, aligned with row positions.

    ``row(i)`` gives back the metadata exactly as it was given; :meth:`column` gives the
    :class:`FieldColumn` the filter compiler evaluates against (``None`` when no row has
    that field). Not locked: the engine serialises calls.
    """

    __slots__ = ("_rows", "_columns", "_n", "_capacity", "_texts", "_folded_texts")

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any] | None] = (),
        *,
        texts: Callable[[], Sequence[str]] | None = None,
    ):
        self._rows: list[dict[str, Any]] = []
        self._columns: dict[str, FieldColumn] = {}
        self._n = 0
        self._capacity = 0
        # A callable, not a list: the owner may replace its text list wholesale.
        self._texts = texts
        self._folded_texts: list[str] | None = None  # casefolded texts, dropped on any write
        if rows:
            self.append(rows)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"MetadataColumns(rows={self._n}, fields={sorted(self._columns)})"

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the fields at least one row has (or had before the last ``keep``)."""
        return tuple(self._columns)

    def column(self, field: str) -> FieldColumn | None:
        return self._columns.get(field)

    def match_text(self, test: Callable[[str], bool], *, casefold: bool = False) -> np.ndarray:
        """A bool mask: ``test`` applied to each row's document text (casefolded first
        when asked; the casefolded copy is cached until the next write)."""
        if self._texts is None:
            raise InvalidArgumentError("$document filters need the document texts; this index has none attached")
        texts = self._texts()
        if len(texts) != self._n:
            raise InvalidArgumentError(f"{len(texts)} document texts for {self._n} metadata rows")
        if casefold:
            if self._folded_texts is None:
                self._folded_texts = [text.casefold() for text in texts]
            texts = self._folded_texts
        return np.fromiter(map(test, texts), dtype=bool, count=self._n)

    def row(self, position: int) -> dict[str, Any]:
        """A copy of the metadata stored at ``position``, exactly as given."""
        if not 0 <= position < self._n:
            raise IndexError(f"row {position} out of range for {self._n} rows")
        return copy_metadata(self._rows[position])

    def rows(self) -> Iterator[dict[str, Any]]:
        """Copies of every row's metadata, in position order."""
        return map(copy_metadata, self._rows)

    # -- mutation --------------------------------------------------------------------

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = max(needed, 2 * self._capacity, _MIN_CAPACITY)
        for column in self._columns.values():
            column.grow(self._n, capacity)
        self._capacity = capacity

    def _column_for_write(self, field: str) -> FieldColumn:
        column = self._columns.get(field)
        if column is None:
            column = self._columns[field] = FieldColumn(self._capacity)
        return column

    def append(self, rows: Sequence[Mapping[str, Any] | None]) -> None:
        """Add rows at positions ``len(self)...``."""
        copies = _validated_rows(rows)
        if not copies:
            return
        self._folded_texts = None
        start = self._n
        self._ensure_capacity(start + len(copies))
        for field, (positions, values) in _by_field(range(start, start + len(copies)), copies).items():
            self._column_for_write(field).write(positions, values)
        self._rows.extend(copies)
        self._n += len(copies)

    def replace(self, positions: Sequence[int], rows: Sequence[Mapping[str, Any] | None]) -> None:
        """Overwrite the rows at ``positions`` (if a position repeats, the last row wins)."""
        copies = _validated_rows(rows)
        positions = [_position(p, self._n) for p in positions]
        if len(positions) != len(copies):
            raise InvalidArgumentError(f"replace got {len(positions)} positions but {len(copies)} rows")
        latest = dict(zip(positions, copies))
        if not latest:
            return
        self._folded_texts = None
        old_fields: dict[str, list[int]] = {}
        for position in latest:
            for field in dict(_fields(self._rows[position])):
                old_fields.setdefault(field, []).append(position)
        for field, cleared in old_fields.items():
            self._columns[field].clear(np.asarray(cleared, dtype=np.int64))
        for field, (where, values) in _by_field(latest.keys(), latest.values()).items():
            self._column_for_write(field).write(where, values)
        for position, copy in latest.items():
            self._rows[position] = copy
        for column in self._columns.values():
            if column.e_dead > _MIN_CAPACITY and column.e_dead * 2 > column.e_count:
                column.compact_elements()
            column.compact_dictionaries(self._n)

    def keep(self, mask: np.ndarray) -> None:
        """Compact to the rows where ``mask`` is True, preserving order (deletion)."""
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self._n,):
            raise InvalidArgumentError(
                f"keep needs a bool mask of shape ({self._n},), got {mask.dtype} {mask.shape}"
            )
        m = int(np.count_nonzero(mask))
        if m == self._n:
            return
        self._folded_texts = None
        for field in list(self._columns):
            column = self._columns[field]
            column.keep(mask, self._n, m)
            if not column.has_values(m):
                del self._columns[field]
        self._rows = list(itertools.compress(self._rows, mask.tolist()))
        self._n = m


def _position(position: Any, n: int) -> int:
    if isinstance(position, (bool, np.bool_)) or not isinstance(position, (int, np.integer)):
        raise InvalidArgumentError(f"row positions must be integers, got {position!r}")
    if not 0 <= position < n:
        raise InvalidArgumentError(f"row position {position} out of range for {n} rows")
    return int(position)


def _validated_rows(rows: Sequence[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    copies = []
    for row in rows:
        if row is None:
            copies.append({})
            continue
        if not isinstance(row, Mapping):
            raise InvalidArgumentError(f"metadata must be a dict, got {type(row).__name__}")
        for key in row:
            if not isinstance(key, str):
                raise InvalidArgumentError(f"metadata keys must be strings, got {key!r}")
        copies.append(copy_metadata(row))
    return copies


def _fields(row: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(field, value)`` for every key, and for every entry of a nested dict under its
    dotted path (the dict itself stays a value of its own key)."""
    for key, value in row.items():
        field = prefix + key if prefix else key
        yield field, value
        if type(value) is dict:
            yield from _fields(value, field + ".")


def _by_field(
    positions: Iterable[int], rows: Iterable[dict[str, Any]]
) -> dict[str, tuple[list[int], list[Any]]]:
    grouped: dict[str, tuple[list[int], list[Any]]] = {}
    for position, row in zip(positions, rows):
        # Plain keys first-class; only rows holding a nested dict pay for the walk.
        items = _fields(row) if any(type(v) is dict for v in row.values()) else row.items()
        for field, value in items:
            entry = grouped.get(field)
            if entry is None:
                entry = grouped[field] = ([], [])
            elif entry[0][-1] == position:
                continue  # a dotted key and a nested path naming the same field: the first wins
            entry[0].append(position)
            entry[1].append(value)
    return grouped
