"""A document column (ids, texts or metadata) kept as the artifact's JSON, decoded per row.

Decoding a 1M-document index's columns whole takes most of a second and holds them as
~0.7 GB of Python objects, yet a loaded index that only answers queries reads ten rows a
query. Format 3 artifacts store where each element of the JSON arrays starts (the
``offsets`` section), so an element is one ``orjson.loads`` of its own bytes. The engine
(:class:`~lichen.engine.core.IndexCore`) decodes a whole column only when it needs all of it:
a write, a lookup by id, a filter, a keyword search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import orjson

from .._errors import CorruptDataError, corrupt_artifact

__all__ = ["EncodedColumn", "check_element_starts", "decode_column", "decoded"]

ReadBytes = Callable[[int, int], Any]
"""``read(offset, length)`` -> that many bytes of the artifact (bytes or a memoryview)."""


def decode_column(data: Any, count: int, kind: type, name: str, label: str) -> list[Any]:
    """A whole JSON array section as a list of ``count`` values of type ``kind``; raises
    :class:`CorruptDataError` naming what is wrong (``name``: ids, texts or metadata)."""
    try:
        column = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise corrupt_artifact(label, f"{name} section is not valid JSON: {exc}") from None
    if not isinstance(column, list) or len(column) != count:
        found = len(column) if isinstance(column, list) else type(column).__name__
        raise corrupt_artifact(label, f"{name} section holds {found} entries, doc_count is {count}")
    # set(map(type, ...)) runs in C: a third of the cost of a generator at 100k rows.
    if not set(map(type, column)) <= {kind}:
        what = "an entry that is not an object" if kind is dict else f"a non-string {name[:-1]}"
        raise corrupt_artifact(label, f"{name} section holds {what}")
    return column


def check_element_starts(section: Any, starts: np.ndarray, count: int) -> str | None:
    """What is wrong with ``starts`` as the element starts of the JSON array ``section``
    (a bytes-like or a callable reading it), or ``None``.

    The layout a writer produces: ``starts[i]`` is the byte where element ``i`` begins,
    ``starts[count]`` the section's length; a comma precedes every element but the first,
    ``[`` and ``]`` enclose them. Checked in one vectorised pass; whether each element is
    a whole JSON value of the right type is checked when it is decoded."""
    view = np.frombuffer(section, dtype=np.uint8)
    length = view.size
    if starts.shape != (count + 1,):
        return f"holds {starts.size} offsets, expected {count + 1}"
    if length < 2 or view[0] != ord("[") or view[-1] != ord("]") or int(starts[-1]) != length:
        return "does not delimit a JSON array"
    if count == 0:
        return None if length == 2 else "does not delimit an empty array"
    if int(starts[0]) != 1 or not (np.diff(starts.astype(np.int64)) >= 2).all():
        return "offsets are not ascending element starts"
    if not (view[starts[1:-1].astype(np.int64) - 1] == ord(",")).all():
        return "an offset does not follow a comma"
    return None


class EncodedColumn(Sequence[Any]):
    """Read-only column of ``count`` JSON values, each decoded when indexed. Iterating,
    :meth:`to_list` or :func:`decoded` decodes the whole column at once (one
    ``orjson.loads``). It is a ``Sequence``, not a ``list``: code that needs a list (a JSON
    encoder, ``isinstance(x, list)``) calls :meth:`to_list`."""

    def __init__(self, read: ReadBytes, offset: int, length: int, starts: np.ndarray, kind: type, name: str, label: str) -> None:
        self._read = read
        self._offset = offset
        self._length = length
        self._starts = starts
        self._kind = kind
        self._name = name
        self._label = label

    def __len__(self) -> int:
        return self._starts.size - 1

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"{self._name} index {index} out of range")
        start = int(self._starts[index])
        raw = self._read(self._offset + start, int(self._starts[index + 1]) - 1 - start)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._corrupt(f"element {index} is not valid JSON: {exc}") from None
        if type(value) is not self._kind:
            raise self._corrupt(f"element {index} is not a {self._kind.__name__}")
        return value

    def __iter__(self) -> Iterator[Any]:
        return iter(self.decode_all())

    def __eq__(self, other: object) -> bool:
        """Equal to a list (or another column) holding the same values, as the list it
        stands for would be."""
        if isinstance(other, EncodedColumn):
            other = other.decode_all()
        return isinstance(other, list) and self.decode_all() == other

    __hash__ = None  # type: ignore[assignment]  # unhashable, like the list

    def __repr__(self) -> str:
        return f"<EncodedColumn {self._name}: {len(self)} rows, decoded when read>"

    def to_list(self) -> list[Any]:
        """The whole column as a new list (what the snapshot would hold if read eagerly)."""
        return self.decode_all()

    def decode_all(self) -> list[Any]:
        return decode_column(self._read(self._offset, self._length), len(self), self._kind, self._name, self._label)

    def _corrupt(self, problem: str) -> CorruptDataError:
        return corrupt_artifact(self._label, f"{self._name} section {problem}")


def decoded(column: Sequence[Any]) -> list[Any]:
    """``column`` as a list: an :class:`EncodedColumn` decoded whole, a list as is."""
    return column.decode_all() if isinstance(column, EncodedColumn) else column
