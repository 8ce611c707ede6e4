"""Whether a decoded :class:`~lichen.format.IndexSnapshot` holds what a Lichen
writer would have stored.

The artifact reader (:func:`lichen.format.artifact.read_artifact`) proves that an artifact is
intact and well formed: checksums, layout, section lengths, column types. It cannot prove
the content is sane, because whoever computes the checksums decides what they cover: a
buggy or hostile client can upload an artifact whose every checksum is right and whose
ids are empty, whose vectors are NaN or whose metadata no filter can read. A server
stores one upload for every client of a project, so before it publishes one it runs
:func:`check_snapshot`: the rules a client applies to documents as they are added
(:mod:`lichen._validation`), applied to a whole snapshot, so that whatever is published
every client can load, query and filter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._errors import CorruptDataError, InvalidArgumentError, LimitExceededError
from .._validation import MAX_ID_LENGTH, MAX_TEXT_BYTES, check_metadata
from .graph_edits import GraphEdits
from .graph_layout import read_graph_layout
from .snapshot import IndexSnapshot

__all__ = ["check_snapshot"]

_FINITE_CHECK_ROWS = 16_384  # rows per np.isfinite pass: bounded scratch memory


def check_snapshot(snapshot: IndexSnapshot) -> None:
    """Raise :class:`~lichen.InvalidArgumentError` (:class:`~lichen.LimitExceededError`
    for an oversized id or text) naming the first problem found, or return ``None``.

    Checked: the index fields (``name``, a non-empty ``model_id``, ``dimension``,
    ``version``, timestamps, ``extra``), columns of one length, ids that are non-empty
    unique strings of at most :data:`~lichen._validation.MAX_ID_LENGTH` characters,
    texts that are strings of at most 1 MiB, metadata that are dicts of the supported
    value types, a ``(doc_count, dimension)`` matrix of finite numbers, and the structure
    of the approximate-search graph when there is one, with its pending edits.
    Costs one pass over the columns (about 2 s per million documents, mostly metadata).
    """
    _check_fields(snapshot)
    ids, texts, metadata = snapshot.ids, snapshot.texts, snapshot.metadata
    _check_ids(ids)
    _check_texts(ids, texts)
    _check_metadata(ids, metadata)
    _check_matrix(snapshot)
    _check_graph(snapshot)


def _check_graph(snapshot: IndexSnapshot) -> None:
    """The graph's whole structure and its fit with the index, pending edits included:
    exactly what a reader proves before usearch maps it (the server itself never opens a
    graph), so that a stored index is always one every client can load."""
    if snapshot.graph is None:
        return
    try:
        layout = snapshot.graph_layout
        if layout is None or not layout.proves(snapshot.graph):
            layout = read_graph_layout(snapshot.graph, snapshot.dimension, label="the index")
        keys = np.asarray(snapshot.keys, dtype=np.uint64)
        GraphEdits.of(snapshot).check(layout.live_keys, keys, label="the index")
    except CorruptDataError as exc:
        raise InvalidArgumentError(str(exc)) from None


def _first(values: Sequence[Any], wrong: Callable[[Any], bool]) -> int:
    return next(i for i, value in enumerate(values) if wrong(value))


def _document(ids: Sequence[Any], position: int) -> str:
    doc_id = ids[position] if position < len(ids) else None
    return f"document {position} ({doc_id!r})" if isinstance(doc_id, str) else f"document {position}"


def _check_fields(snapshot: IndexSnapshot) -> None:
    for label in ("name", "model_id", "created_at", "updated_at"):
        value = getattr(snapshot, label)
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{label} must be a string, got {type(value).__name__}")
    if not snapshot.model_id:
        raise InvalidArgumentError("model_id is empty: every index names the model its vectors come from")
    for label in ("dimension", "version"):
        value = getattr(snapshot, label)
        if type(value) is not int or value < 0:
            raise InvalidArgumentError(f"{label} must be a non-negative integer, got {value!r}")
    if not isinstance(snapshot.extra, dict):
        raise InvalidArgumentError(f"extra must be an object, got {type(snapshot.extra).__name__}")
    columns = {"ids": snapshot.ids, "texts": snapshot.texts, "metadata": snapshot.metadata}
    for label, column in columns.items():
        if not isinstance(column, list):
            raise InvalidArgumentError(f"{label} must be a list, got {type(column).__name__}")
    lengths = {label: len(column) for label, column in columns.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidArgumentError(f"columns disagree in length: {lengths}")
    if snapshot.ids and snapshot.dimension == 0:
        raise InvalidArgumentError(f"{len(snapshot.ids)} documents but dimension 0: every document needs a vector")


def _check_ids(ids: list[Any]) -> None:
    if not set(map(type, ids)) <= {str}:
        position = _first(ids, lambda x: type(x) is not str)
        raise InvalidArgumentError(f"id of document {position} must be a string, got {type(ids[position]).__name__}")
    if not ids:
        return
    if min(map(len, ids)) == 0:
        raise InvalidArgumentError(f"id of document {ids.index('')} is empty")
    if max(map(len, ids)) > MAX_ID_LENGTH:
        position = _first(ids, lambda x: len(x) > MAX_ID_LENGTH)
        raise LimitExceededError(f"id of document {position} is longer than {MAX_ID_LENGTH} characters")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = next(x for x in ids if x in seen or seen.add(x))
        raise InvalidArgumentError(f"duplicate document id {repeated!r}")


def _check_texts(ids: list[str], texts: list[Any]) -> None:
    if not set(map(type, texts)) <= {str}:
        position = _first(texts, lambda x: type(x) is not str)
        raise InvalidArgumentError(
            f"{_document(ids, position)}: text must be a string, got {type(texts[position]).__name__}"
        )
    # Characters first (in C), bytes only for the few texts that could be too long.
    if texts and max(map(len, texts)) > MAX_TEXT_BYTES // 4:
        for position, text in enumerate(texts):
            if len(text) > MAX_TEXT_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
                raise LimitExceededError(f"{_document(ids, position)}: text is longer than {MAX_TEXT_BYTES} bytes")


def _check_metadata(ids: list[str], metadata: list[Any]) -> None:
    if not set(map(type, metadata)) <= {dict}:
        position = _first(metadata, lambda x: type(x) is not dict)
        raise InvalidArgumentError(
            f"{_document(ids, position)}: metadata must be an object, got {type(metadata[position]).__name__}"
        )
    for doc_id, row in zip(ids, metadata):
        if row:
            check_metadata(row, doc_id)  # the rule documents are added under, word for word


def _check_matrix(snapshot: IndexSnapshot) -> None:
    matrix = snapshot.matrix
    expected = (len(snapshot.ids), snapshot.dimension)
    if not isinstance(matrix, np.ndarray) or matrix.shape != expected:
        shape = getattr(matrix, "shape", type(matrix).__name__)
        raise InvalidArgumentError(f"matrix has shape {shape}, expected {expected}")
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise InvalidArgumentError(f"matrix has dtype {matrix.dtype}, expected float32")
    for start in range(0, len(matrix), _FINITE_CHECK_ROWS):
        finite = np.isfinite(matrix[start : start + _FINITE_CHECK_ROWS]).all(axis=1)
        if not finite.all():
            position = start + int(np.flatnonzero(~finite)[0])
            raise InvalidArgumentError(f"the vector of {_document(snapshot.ids, position)} holds NaN or infinity")
