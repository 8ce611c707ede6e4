"""Where an index's documents live, row by row, so that writes cost what they change.

A loaded index's rows sit in its artifact, memory-mapped and read-only: the matrix, and
the ids, texts and metadata as encoded JSON decoded one row at a time. Copying all that
into memory at the first write (the old way) cost a 1M-document index ~10 s and 4 GB for
one added document, and compacting every column on each delete cost O(n). Here:

* a row's place is *physical*: rows of the adopted *base* (the artifact's), then rows
  written since, appended to an in-memory *tail*; a row never moves;
* a delete only marks its row *dead* (a bit), and reads skip dead rows; rows are compacted
  (in memory, amortised) once the dead are a quarter of them;
* a replaced document keeps its row: a tail row is rewritten, a base row (read-only) gets
  an *override* that reads of that row see instead (a few, next to a million base rows).

The matrix is :class:`Vectors`, each column a :class:`Column`; keys and the dead mask are
plain arrays kept by :class:`~lichen.engine.core.IndexCore`, which owns the rules above.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from ..format.columns import EncodedColumn, decoded
from ..format.file import FileMatrix

__all__ = ["Column", "Vectors", "INITIAL_CAPACITY"]

INITIAL_CAPACITY = 64


class Column(Sequence[Any]):
    """One document column by physical row: a base (an encoded artifact column decoded row
    by row, read-only, with overrides for rewritten rows; or an owned list) followed by a
    tail list."""

    def __init__(self, base: Sequence[Any] | None = None) -> None:
        self.base: Sequence[Any] = base if base is not None else []
        self.tail: list[Any] = []
        self.overrides: dict[int, Any] = {}  # base rows rewritten while the base is encoded

    def __len__(self) -> int:
        return len(self.base) + len(self.tail)

    @overload
    def __getitem__(self, row: int) -> Any: ...
    @overload
    def __getitem__(self, row: slice) -> list[Any]: ...
    def __getitem__(self, row: int | slice) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        nb = len(self.base)
        if row >= nb:
            return self.tail[row - nb]
        if self.overrides and row in self.overrides:
            return self.overrides[row]
        return self.base[row]

    def __iter__(self) -> Iterator[Any]:
        yield from self.all()

    def set(self, row: int, value: Any) -> None:
        """Overwrite a row in place."""
        nb = len(self.base)
        if row >= nb:
            self.tail[row - nb] = value
        elif isinstance(self.base, list):
            self.base[row] = value
        else:
            self.overrides[row] = value

    def append(self, value: Any) -> None:
        self.tail.append(value)

    def decode(self) -> None:
        """Decode an encoded base whole (once) into an owned list, for reads of every
        row; overrides are folded into it."""
        if isinstance(self.base, EncodedColumn):
            base = decoded(self.base)
            for row, value in self.overrides.items():
                base[row] = value
            self.base, self.overrides = base, {}

    def all(self) -> list[Any]:
        """Every row as one list (the base decoded once; a new list when there is a base)."""
        self.decode()
        return list(self.base) + self.tail if len(self.base) else self.tail

    def compact(self, keep: np.ndarray) -> None:
        """Keep the rows ``keep`` marks (the whole column becomes the tail)."""
        values = self.all()
        self.base, self.tail = [], [value for value, kept in zip(values, keep.tolist()) if kept]


class Vectors:
    """The float32 matrix by physical row: a read-only base (a loaded artifact's mapped
    matrix, its single rows read with ``pread`` through ``file`` when given) followed by a
    growable in-memory tail."""

    def __init__(self, dimension: int, base: np.ndarray | None = None, file: FileMatrix | None = None) -> None:
        self.dimension = dimension
        self.base = base if base is not None else np.zeros((0, dimension), dtype=np.float32)
        self.file = file
        self.tail = np.zeros((INITIAL_CAPACITY, dimension), dtype=np.float32)
        self.tail_rows = 0
        # Base rows rewritten (the base is read-only): row -> vector, and the same as two
        # arrays for vectorised patching, rebuilt on change.
        self.overrides: dict[int, np.ndarray] = {}
        self._patch: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def base_rows(self) -> int:
        return self.base.shape[0]

    def __len__(self) -> int:
        return self.base_rows + self.tail_rows

    def append(self, vectors: np.ndarray) -> int:
        """Add rows at the end; returns the first new physical row."""
        start = self.tail_rows
        needed = start + len(vectors)
        if needed > self.tail.shape[0]:
            grown = np.zeros((max(needed, self.tail.shape[0] * 3 // 2, INITIAL_CAPACITY), self.dimension), np.float32)
            grown[:start] = self.tail[:start]
            self.tail = grown
        self.tail[start:needed] = vectors
        self.tail_rows = needed
        return self.base_rows + start

    def set(self, rows: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Overwrite rows in place (a base row gets an override)."""
        nb = self.base_rows
        for row, vector in zip(np.asarray(rows, dtype=np.int64).tolist(), vectors):
            if row >= nb:
                self.tail[row - nb] = vector
            else:
                self.overrides[row] = np.array(vector, dtype=np.float32)
                self._patch = None

    def _patches(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.overrides:
            return None
        if self._patch is None:
            rows = np.fromiter(self.overrides, dtype=np.int64, count=len(self.overrides))
            self._patch = (rows, np.vstack([self.overrides[row] for row in rows.tolist()]))
        return self._patch

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """``matrix[positions]``, a new array. Base rows of a big artifact come through
        ``pread`` (mapping them would soon leave the whole matrix resident)."""
        positions = np.asarray(positions, dtype=np.int64)
        nb = self.base_rows
        if not nb or (positions.size and positions.min() >= nb):
            return self.tail[positions - nb]
        in_base = positions < nb
        if in_base.all():
            out = self._base_rows(positions)
        else:
            out = np.empty((positions.size, self.dimension), dtype=np.float32)
            out[in_base] = self._base_rows(positions[in_base])
            out[~in_base] = self.tail[positions[~in_base] - nb]
        if self.overrides:
            for i, row in enumerate(positions.tolist()):
                vector = self.overrides.get(row)
                if vector is not None:
                    out[i] = vector
        return out

    def _base_rows(self, positions: np.ndarray) -> np.ndarray:
        if positions.size > 1 and positions[-1] - positions[0] == positions.size - 1 and (np.diff(positions) == 1).all():
            return np.array(self.base[positions[0] : positions[-1] + 1])  # a run: one read of the mapping
        return self.file.rows(positions) if self.file is not None else np.array(self.base[positions])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """``matrix @ query`` over every physical row (one product per part)."""
        tail = self.tail[: self.tail_rows] @ query
        if not self.base_rows:
            return tail
        base = self.base @ query
        patch = self._patches()
        if patch is not None:
            base[patch[0]] = patch[1] @ query
        return np.concatenate([base, tail]) if self.tail_rows else base

    def gather_scores(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        return self.rows(positions) @ query

    def all(self) -> np.ndarray:
        """The whole matrix, a view when it is one part as stored, else one new array."""
        patch = self._patches()
        if not self.base_rows:
            return self.tail[: self.tail_rows]
        if not self.tail_rows and patch is None:
            return self.base
        out = np.vstack([self.base, self.tail[: self.tail_rows]])
        if patch is not None:
            out[patch[0]] = patch[1]
        return out

    def compact(self, keep: np.ndarray) -> None:
        """Keep the rows ``keep`` marks, all in the tail from now on."""
        kept = self.all()[keep]
        self.base = np.zeros((0, self.dimension), dtype=np.float32)
        self.file = None
        self.overrides, self._patch = {}, None
        self.tail = np.ascontiguousarray(kept) if len(kept) else np.zeros((INITIAL_CAPACITY, self.dimension), np.float32)
        self.tail_rows = len(kept)
        if not self.tail.flags.writeable:
            self.tail = self.tail.copy()
