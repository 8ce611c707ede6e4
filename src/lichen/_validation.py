"""Checks on documents and vectors, done before anything is mutated so a rejected batch
leaves the index exactly as it was."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import InvalidArgumentError, LimitExceededError
from ._types import DocumentInfo, QueryOptions

MAX_TEXT_BYTES = 1 << 20  # 1 MiB: far beyond what embeds (256 tokens) or reads well.
MAX_ID_LENGTH = 512
_SCALARS = (str, int, float, bool)
#: Nested metadata dicts deeper than this are refused (they would only be filtered by very
#: long dotted paths, and the limit keeps recursion far from Python's stack limit).
MAX_METADATA_DEPTH = 8
# Integers are stored as 64-bit (JSON via orjson); larger ones could be added but never pushed.
_INT_RANGE = (-(2**63), 2**64 - 1)


def check_documents(docs: Sequence[DocumentInfo]) -> None:
    if isinstance(docs, (str, bytes, DocumentInfo)) or not isinstance(docs, Sequence):
        raise InvalidArgumentError("docs must be a list of DocumentInfo")
    seen: set[str] = set()
    duplicates: list[str] = []
    for position, doc in enumerate(docs):
        if not isinstance(doc, DocumentInfo):
            raise InvalidArgumentError(f"docs[{position}] is {type(doc).__name__}, expected DocumentInfo")
        if not isinstance(doc.id, str) or not doc.id:
            raise InvalidArgumentError(f"docs[{position}].id must be a non-empty string, got {doc.id!r}")
        if len(doc.id) > MAX_ID_LENGTH:
            raise LimitExceededError(f"docs[{position}].id is longer than {MAX_ID_LENGTH} characters")
        if not isinstance(doc.text, str):
            raise InvalidArgumentError(f"docs[{position}] ({doc.id!r}): text must be a string, got {type(doc.text).__name__}")
        # ASCII (a flag CPython keeps, so free to ask) is valid UTF-8 of its own length;
        # only other strings are encoded, once for both the Unicode check and the limit.
        if not doc.id.isascii():
            utf8_size(doc.id, "docs[{}].id {!r}", position, doc.id)
        size = len(doc.text) if doc.text.isascii() else utf8_size(doc.text, "document {!r} text", doc.id)
        if size > MAX_TEXT_BYTES:
            raise LimitExceededError(
                f"document {doc.id!r} text is {size} bytes; the limit is {MAX_TEXT_BYTES}: split it into chunks"
            )
        if doc.metadata is not None:
            check_metadata(doc.metadata, doc.id)
        if doc.id in seen:
            duplicates.append(doc.id)
        seen.add(doc.id)
    if duplicates:
        raise InvalidArgumentError(
            f"duplicate ids in one batch: {sorted(set(duplicates))[:10]}; each id may appear once per add_docs call"
        )


#: What other libraries call a QueryOptions field (LangChain's ``k``, LlamaIndex's
#: ``similarity_top_k`` and ``filters``), suggested when a dict uses one.
_OPTION_ALIASES = {"k": "top_k", "similarity_top_k": "top_k", "filters": "filter", "where": "filter"}
_OPTION_NAMES = {f.name: None for f in dataclasses.fields(QueryOptions)}  # ordered, O(1) lookup


def as_query_options(options: QueryOptions | Mapping[str, Any] | None) -> QueryOptions:
    """``options`` as a :class:`QueryOptions`: ``None`` gives the defaults, a dict (what
    LangChain and LlamaIndex users pass around) is ``QueryOptions(**options)``; a dict
    with a key QueryOptions does not have, or anything else, raises
    :class:`InvalidArgumentError` naming it. Values are checked where they are used."""
    if isinstance(options, QueryOptions):
        return options
    if options is None:
        return QueryOptions()
    if not isinstance(options, Mapping):
        raise InvalidArgumentError(f"options must be a QueryOptions or a dict, got {type(options).__name__}")
    unknown = [key for key in options if key not in _OPTION_NAMES]
    if unknown:
        names = list(_OPTION_NAMES)
        hints = []
        for key in unknown:
            close = _OPTION_ALIASES.get(key) or next(iter(difflib.get_close_matches(str(key), names, 1)), None)
            hints.append(f"{key!r} (did you mean {close!r}?)" if close else repr(key))
        raise InvalidArgumentError(f"unknown query options {', '.join(hints)}; QueryOptions takes {', '.join(names)}")
    return QueryOptions(**options)


def check_query_text(text: str) -> None:
    """Refuse a query that is not valid Unicode (see :func:`utf8_size`), or longer than a
    document may be: embedding reads only the first 256 tokens anyway, but tokenising
    (and keyword-scoring) 10 MB of text takes seconds."""
    size = len(text) if text.isascii() else utf8_size(text, "query text")
    if size > MAX_TEXT_BYTES:
        raise LimitExceededError(
            f"query text is {size} bytes; the limit is {MAX_TEXT_BYTES} "
            "(the same as a document's): query with a short passage instead"
        )


def utf8_size(value: str, what: str, *what_args: Any) -> int:
    """Bytes of ``value`` in UTF-8, or :class:`InvalidArgumentError` naming it as
    ``what.format(*what_args)`` (formatted only on failure) if it has none.

    A string that cannot be encoded holds a lone surrogate (``"\\ud800"``, what
    ``errors="surrogateescape"`` decoding leaves for bad bytes): a valid Python string but
    not Unicode text, which could be embedded and searched but never pushed, saved or
    sent. Callers skip ASCII strings (``str.isascii`` is free); for the rest the encoding
    costs ~0.5 us per 1,000 characters."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"{what.format(*what_args)} is not valid Unicode: it holds the lone surrogate {value[exc.start]!r} "
            f"at character {exc.start}, which UTF-8 cannot encode (decode the source with errors='replace', or fix it)"
        ) from None


def check_metadata(metadata: Any, doc_id: str) -> None:
    """Values are scalars, lists of scalars, or nested dicts of those (filtered by dotted
    path, ``{"user.tier": "gold"}``) at most :data:`MAX_METADATA_DEPTH` deep; a dotted
    path must name one value only, so ``{"a.b": 1, "a": {"b": 2}}`` is refused."""
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"document {doc_id!r}: metadata must be a dict, got {type(metadata).__name__}")
    _check_mapping(metadata, "", doc_id, set(), 1)


def _check_mapping(metadata: Mapping, prefix: str, doc_id: str, paths: set[str], depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidArgumentError(f"document {doc_id!r}: metadata {prefix[:-1]!r} nests deeper than {MAX_METADATA_DEPTH} levels")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"document {doc_id!r}: metadata keys must be strings, got {key!r}")
        if not key.isascii():
            utf8_size(key, "document {!r}: metadata key {!r}", doc_id, prefix + key)
        path = prefix + key
        if path in paths:
            raise InvalidArgumentError(
                f"document {doc_id!r}: metadata path {path!r} is given twice (a dotted key and a nested dict)"
            )
        paths.add(path)
        if value is None or isinstance(value, _SCALARS):
            _check_scalar(value, path, doc_id)
            continue
        if isinstance(value, (list, tuple)) and all(item is None or isinstance(item, _SCALARS) for item in value):
            for item in value:
                _check_scalar(item, path, doc_id)
            continue
        if isinstance(value, Mapping):
            _check_mapping(value, path + ".", doc_id, paths, depth + 1)
            continue
        raise InvalidArgumentError(
            f"document {doc_id!r}: metadata {path!r} has type {type(value).__name__}; "
            "values must be str, int, float, bool, None, a list of those or a dict of those"
        )


def _check_scalar(value: Any, key: str, doc_id: str) -> None:
    if isinstance(value, str):
        if not value.isascii():
            utf8_size(value, "document {!r}: metadata {!r} value", doc_id, key)
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"document {doc_id!r}: metadata {key!r} is {value}, which cannot be stored")
    if type(value) is int and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise InvalidArgumentError(f"document {doc_id!r}: metadata {key!r} integer {value} does not fit in 64 bits")


#: A squared norm at or below this is recomputed from rescaled elements (see
#: :func:`as_vectors`): squares of elements under ~1e-19 are subnormal or zero in float32,
#: so such a sum may have lost the vector's direction. Far above float32's smallest
#: normal number (1.2e-38), so whatever underflowed in a larger sum cannot matter.
_MIN_SQUARED_NORM = 1e-24


def as_vectors(vectors: Any, dimension: int | None, what: str) -> np.ndarray:
    """Validate and L2-normalise vectors so that a dot product is the cosine similarity.

    Returns a C-contiguous float32 matrix, one unit row per vector. Refuses a vector of
    the wrong length, one holding NaN or infinity, and an all-zero one (it has no
    direction: it would score 0 against everything). A vector whose elements are tiny
    (1e-30) or huge (1e38) is still a direction: its squared norm underflows or overflows,
    so it is rescaled by its largest element (in float64) before it is squared."""
    if type(vectors) is np.ndarray and vectors.dtype == np.float32 and vectors.shape == (dimension,):
        # One float32 query vector, every search's case: its squared norm is finite only if
        # every element is (NaN and infinity propagate), so one dot product replaces the
        # general path's passes (a fifth of an exact 10k scan). A vector with NaN or
        # infinity, an all-zero one, or one whose squared norm under- or overflows takes
        # the general path below. vdot rather than dot: as fast, and an overflow raises
        # no RuntimeWarning (an error under ``-W error``).
        square = float(np.vdot(vectors, vectors))
        if _MIN_SQUARED_NORM < square < math.inf:
            return (vectors / math.sqrt(square))[None, :]
    array = _float_matrix(vectors, what)
    if dimension is not None and array.shape[1] != dimension:
        raise InvalidArgumentError(f"{what}: dimension {array.shape[1]} does not match the index dimension {dimension}")
    # A non-finite squared norm flags NaN, infinity and overflow alike; the rows it flags
    # (usually none) are sorted out by _rescaled. One vector (a document's own, a list
    # given as a query) takes one dot product; a batch einsum: one pass, no temporary
    # matrix. Neither warns when a square overflows.
    if array.shape[0] == 1:
        square = float(np.vdot(array, array))
        if _MIN_SQUARED_NORM < square < math.inf:
            return (array / math.sqrt(square)).astype(np.float32)
        return _rescaled(array, [what]).astype(np.float32)
    squares = np.einsum("ij,ij->i", array, array)
    safe = (squares > _MIN_SQUARED_NORM) & (squares < math.inf)
    norms = np.sqrt(squares, where=safe, out=np.ones_like(squares))
    normalised = array / norms[:, None]
    if not safe.all():
        unsafe = np.flatnonzero(~safe)
        normalised[unsafe] = _rescaled(array[unsafe], [f"{what}: vector {i}" for i in unsafe.tolist()])
    return np.ascontiguousarray(normalised, dtype=np.float32)


def _float_matrix(vectors: Any, what: str) -> np.ndarray:
    """``vectors`` as a 2-D float array: float32 arrays as they are (the embedder's
    output), anything else (lists of Python floats above all) in float64, so a value
    beyond float32's range (1e-50, 1e39) is normalised before it is narrowed."""
    if isinstance(vectors, np.ndarray) and vectors.dtype in (np.float32, np.float64):
        array = vectors
    else:
        try:
            array = np.asarray(vectors, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgumentError(f"{what}: not a numeric vector ({exc})") from exc
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidArgumentError(f"{what}: expected vectors of one fixed length, got shape {array.shape}")
    return array


def _rescaled(rows: np.ndarray, names: list[str]) -> np.ndarray:
    """Unit vectors along ``rows`` (named ``names`` in errors), whose squared norms were
    not usable: refuse the first holding NaN or infinity or all zeros, and divide the
    others by their largest absolute element before squaring, so the sum of squares lies
    between 1 and the dimension whatever the elements' magnitude."""
    rows = rows.astype(np.float64)
    peaks = np.abs(rows).max(axis=1)  # NaN for a row holding NaN
    bad = ~np.isfinite(peaks) | (peaks == 0.0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        if peaks[first] == 0.0:
            raise InvalidArgumentError(f"{names[first]} is all zeros: it has no direction, so no cosine similarity")
        raise InvalidArgumentError(f"{names[first]} contains NaN or infinity")
    rows /= peaks[:, None]
    rows /= np.sqrt(np.einsum("ij,ij->i", rows, rows))[:, None]
    return rows
