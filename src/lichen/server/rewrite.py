"""Rewriting a stored index without decoding it: how a server merges a document batch
into an index, deletes documents from it, or gives it a freshly built graph.

Decoding a stored 200k x 384 index into Python objects, merging, and encoding it again
peaked at 1.6 GB for a one-document add (5x its 317 MB artifact). Here the new artifact
is streamed from the stored one, section by section:

- only the ids column is decoded, to find the documents a batch replaces or a delete
  removes;
- the texts and metadata columns are spliced byte-wise at the element starts their
  offsets section records: documents that do not change are copied as stored, never
  decoded;
- the matrix and the graph are copied in chunks read with ``pread`` (nothing is mapped,
  so nothing of the stored file stays resident), replaced rows patched on the way;
- every new section's checksum is computed while it is written, and every stored
  section's checksum is verified while it is read: a damaged stored artifact is refused
  (:class:`CorruptDataError`) before anything is published.

The manifest precedes the body, but its length is known before the checksums are (each
is 32 hex digits), so the body is written first, at its final offset, and the header and
manifest last, into the same file: one pass, no second spool file.

A rewrite thus holds the change, the ids column, the offsets section and one chunk in
memory, whatever the size of the index. The bytes it writes are exactly those
:func:`lichen.format.artifact.encode_artifact` writes for the same snapshot, whenever the stored
artifact is itself as a Lichen writer makes it (``tests/test_server_merge.py`` compares
them). Artifacts of formats 1 and 2 have no offsets section: :func:`open_stored` tells
the caller to merge those by decoding them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import orjson
import xxhash

from .._errors import InvalidArgumentError, LimitExceededError, corrupt_artifact
from ..format.artifact import (
    _GRAPH_EDITS_FORMAT_VERSION,
    _HEADER,
    _KEY_DTYPE,
    _MATRIX_DTYPE,
    _OFFSET_DTYPE,
    _OFFSETS,
    _PLAIN_FORMAT_VERSION,
    ALIGNMENT,
    HEADER_SIZE,
    MAGIC,
    ArtifactManifest,
    _manifest_from_json,
    read_manifest,
)
from ..format.graph_edits import GraphEdits
from ..format.snapshot import IndexSnapshot

__all__ = [
    "CHUNK_BYTES",
    "StoredIndex",
    "Rewrite",
    "RowChanges",
    "open_stored",
    "plan_upsert",
    "plan_delete",
    "plan_regraph",
    "write_rewrite",
    "element_starts",
]

CHUNK_BYTES = 8 << 20
"""How much of a stored section one read brings in: the memory a rewrite streams through."""

_COLUMNS = ("ids", "texts", "metadata")
_PLACEHOLDER = "0" * 32  # a checksum's width: the manifest's length does not depend on them
_EMPTY_KEYS = np.zeros(0, dtype=np.uint64)

Emit = Callable[[Any], None]


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def element_starts(lengths: np.ndarray) -> np.ndarray:
    """Where each element of a JSON array of elements ``lengths`` bytes long starts, then
    the array's length: the offsets section's layout (``[``, commas between, ``]``)."""
    starts = np.empty(len(lengths) + 1, dtype=np.uint64)
    if not len(lengths):
        starts[0] = 2  # "[]"
        return starts
    starts[0] = 1
    np.cumsum(np.asarray(lengths, dtype=np.int64) + 1, out=starts[1:].view(np.int64))
    starts[1:] += 1
    return starts


class StoredIndex:
    """A stored artifact of format 3 or later, read at absolute offsets with ``pread``."""

    def __init__(self, fileobj: BinaryIO, label: str = "") -> None:
        self._fd = fileobj.fileno()
        self.label = label
        fileobj.seek(0)
        self.manifest: ArtifactManifest = read_manifest(fileobj)

    @property
    def doc_count(self) -> int:
        return self.manifest.doc_count

    def read(self, offset: int, length: int) -> bytes:
        parts = []
        while length:
            data = os.pread(self._fd, min(length, 1 << 30), offset)
            if not data:
                raise corrupt_artifact(self.label, f"truncated: nothing to read at offset {offset}")
            parts.append(data)
            offset += len(data)
            length -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def section(self, key: str) -> bytes:
        """One whole section, its checksum verified (for the small ones: ids, offsets, keys)."""
        sec = self.manifest.sections[key]
        data = self.read(sec.offset, sec.length)
        if xxhash.xxh3_128_hexdigest(data) != sec.checksum:
            raise corrupt_artifact(self.label, f"{key} section checksum mismatch")
        return data

    def ids(self) -> list[str]:
        ids = orjson.loads(self.section("ids"))
        if not isinstance(ids, list) or len(ids) != self.doc_count or not set(map(type, ids)) <= {str}:
            raise corrupt_artifact(self.label, f"ids section is not a list of {self.doc_count} strings")
        return ids

    def starts(self) -> np.ndarray:
        """The offsets section: ``(3, doc_count + 1)`` element starts of ids, texts, metadata."""
        data = self.section(_OFFSETS)
        return np.frombuffer(data, dtype=_OFFSET_DTYPE).reshape(3, self.doc_count + 1).astype(np.int64)

    def keys(self) -> np.ndarray:
        return np.frombuffer(self.section("keys"), dtype=_KEY_DTYPE).astype(np.uint64)

    def edits(self) -> GraphEdits:
        m = self.manifest
        return GraphEdits(np.asarray(m.graph_removals, dtype=np.uint64), np.asarray(m.graph_insertions, dtype=np.uint64))

    def cursor(self, key: str) -> _Cursor:
        return _Cursor(self, key)

    def matrix_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, rows)`` of the matrix front to back, each block a fresh writable
        array of about :data:`CHUNK_BYTES`; the section's checksum is verified once the
        last block has been read (a mismatch raises then)."""
        m = self.manifest
        sec = m.sections["matrix"]
        row_bytes = m.dimension * _MATRIX_DTYPE.itemsize
        hasher = xxhash.xxh3_128()
        if row_bytes:
            per_block = max(1, CHUNK_BYTES // row_bytes)
            for first in range(0, m.doc_count, per_block):
                count = min(per_block, m.doc_count - first)
                buffer = bytearray(self.read(sec.offset + first * row_bytes, count * row_bytes))
                hasher.update(buffer)
                yield first, np.frombuffer(buffer, dtype=_MATRIX_DTYPE).reshape(count, m.dimension)
        if hasher.hexdigest() != sec.checksum:
            raise corrupt_artifact(self.label, "matrix section checksum mismatch")


class _Cursor:
    """One stored section read front to back in chunks: ``copy`` passes bytes on, ``skip``
    drops them; ``finish`` checks the checksum of everything read."""

    def __init__(self, stored: StoredIndex, key: str) -> None:
        sec = stored.manifest.sections[key]
        self._stored, self._key = stored, key
        self._offset, self.length, self._checksum = sec.offset, sec.length, sec.checksum
        self._hasher = xxhash.xxh3_128()
        self._block = memoryview(b"")
        self._block_start = 0
        self.position = 0

    def copy(self, count: int, emit: Emit) -> None:
        self._advance(count, emit)

    def copy_to(self, position: int, emit: Emit) -> None:
        self._advance(position - self.position, emit)

    def skip(self, count: int) -> None:
        self._advance(count, None)

    def finish(self, emit: Emit | None = None) -> None:
        """Pass on (or drop) the rest of the section, then verify its checksum."""
        self._advance(self.length - self.position, emit)
        if self._hasher.hexdigest() != self._checksum:
            raise corrupt_artifact(self._stored.label, f"{self._key} section checksum mismatch")

    def _advance(self, count: int, emit: Emit | None) -> None:
        end = self.position + count
        if count < 0 or end > self.length:
            raise corrupt_artifact(self._stored.label, f"{self._key} section does not match its offsets")
        while self.position < end:
            block_end = self._block_start + len(self._block)
            if self.position >= block_end:
                size = min(CHUNK_BYTES, self.length - block_end)
                data = self._stored.read(self._offset + block_end, size)
                self._hasher.update(data)
                self._block, self._block_start = memoryview(data), block_end
                continue
            stop = min(end, block_end)
            if emit is not None:
                emit(self._block[self.position - self._block_start : stop - self._block_start])
            self.position = stop


@dataclass
class Section:
    """One section of the artifact being written: its length and how to produce it."""

    name: str
    length: int
    write: Callable[[Emit], None]


@dataclass
class RowChanges:
    """What a rewrite does to the documents, for the change record that lets clients
    refresh by delta (:mod:`lichen.server.changes`): the ids it removed, then the rows it
    replaced in place and the rows it appended, in order, each as ``(id, batch, row of
    the batch)`` (the values the new artifact stores)."""

    deleted: list[str] = field(default_factory=list)
    updated: list[tuple[str, IndexSnapshot, int]] = field(default_factory=list)
    appended: list[tuple[str, IndexSnapshot, int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.deleted) + len(self.updated) + len(self.appended)


@dataclass
class Rewrite:
    """A new artifact, described section by section (in body order) for
    :func:`write_rewrite`, with the manifest fields it carries."""

    name: str
    model_id: str
    dimension: int
    doc_count: int
    extra: dict[str, Any]
    sections: list[Section]
    graph_tombstones: int = 0
    graph_removals: np.ndarray = field(default_factory=lambda: _EMPTY_KEYS)
    graph_insertions: np.ndarray = field(default_factory=lambda: _EMPTY_KEYS)
    changes: RowChanges | None = None
    """The documents' change (``None``: the documents do not change, e.g. a new graph)."""

    @property
    def has_graph(self) -> bool:
        return any(s.name == "graph" for s in self.sections)


def open_stored(fileobj: BinaryIO, label: str = "") -> StoredIndex | None:
    """The stored artifact in ``fileobj`` ready to rewrite, or ``None`` when it predates
    the offsets section (formats 1 and 2): those are merged by decoding them."""
    stored = StoredIndex(fileobj, label)
    return stored if _OFFSETS in stored.manifest.sections else None


# ------------------------------------------------------------------ sections
def _copied(stored: StoredIndex, key: str) -> Section:
    return Section(key, stored.manifest.sections[key].length, lambda emit: stored.cursor(key).finish(emit))


def _spliced(stored: StoredIndex, key: str, edits: Sequence[tuple[int, int, bytes]], length: int) -> Section:
    """The stored section ``key`` with each ``(start, end, replacement)`` applied (sorted,
    disjoint byte ranges of the stored section)."""

    def write(emit: Emit) -> None:
        cursor = stored.cursor(key)
        for start, end, replacement in edits:
            cursor.copy_to(start, emit)
            cursor.skip(end - start)
            if replacement:
                emit(replacement)
        cursor.finish(emit)

    return Section(key, length, write)


def _byte_view(data: Any) -> memoryview:
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8))
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _bytes_section(key: str, data: Any) -> Section:
    view = _byte_view(data)
    return Section(key, view.nbytes, lambda emit: emit(view))


def _offsets_section(starts: Sequence[np.ndarray]) -> Section:
    return _bytes_section(_OFFSETS, np.ascontiguousarray(np.stack(starts), dtype=_OFFSET_DTYPE))


def _graph_sections(stored: StoredIndex, keys: np.ndarray) -> list[Section]:
    return [_bytes_section("keys", np.ascontiguousarray(keys, dtype=_KEY_DTYPE)), _copied(stored, "graph")]


def _column_lengths(starts: np.ndarray) -> np.ndarray:
    """Byte length of each element of a column, from its starts (each start is one past
    the previous element's comma)."""
    return np.diff(starts) - 1


# ------------------------------------------------------------------ plans
Outcome = Any
"""Of one batch in :func:`plan_upsert`: ``(added, updated)``, or the error refusing it."""


def _checked(stored: StoredIndex, batches: Sequence[IndexSnapshot], max_docs: int | None) -> tuple[dict[str, int], list[Outcome]]:
    """Where the batches' ids sit in ``stored`` (only those), and each batch's outcome as if
    the batches were upserted one after the other: a batch that does not fit (model,
    dimension, ``max_docs``) is refused alone and the others go on without it."""
    m = stored.manifest
    wanted = {doc_id for batch in batches for doc_id in batch.ids}
    found: dict[str, int] = {}
    for row, doc_id in enumerate(stored.ids()):
        if doc_id in wanted:
            found[doc_id] = row
            if len(found) == len(wanted):
                break
    present = set(found)
    count, dimension = m.doc_count, m.dimension if m.doc_count else None
    outcomes: list[Outcome] = []
    for batch in batches:
        new = [doc_id for doc_id in batch.ids if doc_id not in present]
        if not batch.doc_count:
            outcomes.append((0, 0))
        elif batch.model_id != m.model_id:
            outcomes.append(InvalidArgumentError(
                f"index {m.name!r} uses model {m.model_id!r}; the documents were embedded with {batch.model_id!r}"
            ))
        elif dimension is not None and batch.dimension != dimension:
            outcomes.append(InvalidArgumentError(
                f"index {m.name!r} has dimension {dimension}; the documents have {batch.dimension}"
            ))
        elif max_docs is not None and count + len(new) > max_docs:
            outcomes.append(LimitExceededError(
                f"index {m.name!r} would hold {count + len(new)} documents; this server allows {max_docs} per index"
            ))
        else:
            present.update(new)
            count += len(new)
            dimension = batch.dimension if dimension is None and batch.doc_count else dimension
            outcomes.append((len(new), batch.doc_count - len(new)))
    return found, outcomes


def plan_upsert(
    stored: StoredIndex, batches: Sequence[IndexSnapshot], max_docs: int | None = None
) -> tuple[Rewrite | None, list[Outcome]]:
    """Upsert ``batches`` into ``stored`` by id, one after the other, in one rewrite:
    existing ids are replaced in place, new ids appended in order of first appearance,
    the last batch holding an id giving its values; the same as
    :func:`lichen.server.service.merge_upsert` of the batches combined. Returns the
    rewrite (``None`` when no batch adds anything) and each batch's outcome: ``(added,
    updated)``, or the error that refuses it (a model or dimension other than the
    index's, or more than ``max_docs`` documents), checked before anything is written."""
    found, outcomes = _checked(stored, batches, max_docs)
    # Each id's last values (batch, row), and the order new ids are appended in.
    latest: dict[str, tuple[IndexSnapshot, int]] = {}
    for batch, outcome in zip(batches, outcomes):
        if isinstance(outcome, tuple):
            for j, doc_id in enumerate(batch.ids):
                latest[doc_id] = (batch, j)
    if not latest:
        return None, outcomes
    m = stored.manifest
    n = m.doc_count
    updated = sorted((row, doc_id) for doc_id, row in found.items() if doc_id in latest)
    appended = [doc_id for doc_id in latest if doc_id not in found]
    count = n + len(appended)
    starts = stored.starts()
    new_starts = []
    sections: list[Section] = []
    for index, key in enumerate(_COLUMNS):
        def value(doc_id: str, index: int = index) -> Any:
            batch, j = latest[doc_id]
            return (batch.ids, batch.texts, batch.metadata)[index][j]

        replaced = [] if key == "ids" else [(row, _dumps(value(doc_id))) for row, doc_id in updated]
        tail = [_dumps(value(doc_id)) for doc_id in appended]
        lengths = _column_lengths(starts[index])
        for row, data in replaced:
            lengths[row] = len(data)
        lengths = np.concatenate([lengths, np.fromiter(map(len, tail), dtype=np.int64, count=len(tail))])
        column_starts = element_starts(lengths)
        edits = [(int(starts[index][row]), int(starts[index][row + 1]) - 1, data) for row, data in replaced]
        if tail:
            end = int(starts[index][n])
            edits.append((end - 1, end, (b"," if n else b"") + b",".join(tail) + b"]"))
        sections.append(_spliced(stored, key, edits, int(column_starts[-1])))
        new_starts.append(column_starts)
    dimension = m.dimension if n else next(b for b, _ in latest.values()).dimension

    def vectors(doc_ids: Sequence[str]) -> np.ndarray:
        out = np.empty((len(doc_ids), dimension), dtype=_MATRIX_DTYPE)
        for i, doc_id in enumerate(doc_ids):
            batch, j = latest[doc_id]
            out[i] = batch.matrix[j]
        return out

    rows = np.array([row for row, _ in updated], dtype=np.int64)
    replacements = vectors([doc_id for _, doc_id in updated])

    def write_matrix(emit: Emit) -> None:
        for first, block in stored.matrix_blocks():
            lo, hi = np.searchsorted(rows, [first, first + len(block)])
            if hi > lo:
                block[rows[lo:hi] - first] = replacements[lo:hi]
            emit(block)
        if appended:
            emit(vectors(appended))

    sections.append(Section("matrix", count * dimension * _MATRIX_DTYPE.itemsize, write_matrix))
    sections.append(_offsets_section(new_starts))
    rewrite = Rewrite(m.name, m.model_id, dimension, count, dict(m.extra), sections)
    rewrite.changes = RowChanges(
        updated=[(doc_id, *latest[doc_id]) for _, doc_id in updated],
        appended=[(doc_id, *latest[doc_id]) for doc_id in appended],
    )
    if m.has_graph:
        old_keys = stored.keys()
        edits = stored.edits()
        first = edits.first_free_key(old_keys)
        added_keys = np.arange(first, first + len(appended), dtype=np.uint64)
        edits = edits.after_upsert(replaced=old_keys[rows], added=added_keys)
        _keep_graph(rewrite, stored, np.concatenate([old_keys, added_keys]), edits)
    return rewrite, outcomes


def plan_delete(stored: StoredIndex, doomed: set[str]) -> tuple[Rewrite, int] | None:
    """``stored`` without the documents whose ids are in ``doomed``, as
    :func:`lichen.server.service.remove_docs` makes it: ``(rewrite, deleted)``, or ``None``
    when no id matched."""
    m = stored.manifest
    n = m.doc_count
    ids = stored.ids()
    keep = np.fromiter((doc_id not in doomed for doc_id in ids), dtype=bool, count=n)
    deleted = int(n - keep.sum())
    if not deleted:
        return None
    removed = [ids[row] for row in np.flatnonzero(~keep).tolist()]
    del ids
    flags = np.diff(np.concatenate([[0], (~keep).astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(flags == 1).tolist(), np.flatnonzero(flags == -1).tolist()))
    starts = stored.starts()
    sections: list[Section] = []
    new_starts = []
    for index, key in enumerate(_COLUMNS):
        column = starts[index]
        end = int(column[n])
        edits = []
        for first, stop in runs:
            if first:  # from the comma before the run to the end of its last element
                edits.append((int(column[first]) - 1, int(column[stop]) - 1, b""))
            else:  # the first elements: up to the next one (or the closing bracket)
                edits.append((1, int(column[stop]) if stop < n else end - 1, b""))
        column_starts = element_starts(_column_lengths(column)[keep])
        sections.append(_spliced(stored, key, edits, int(column_starts[-1])))
        new_starts.append(column_starts)
    count = n - deleted

    def write_matrix(emit: Emit) -> None:
        for first, block in stored.matrix_blocks():
            emit(np.ascontiguousarray(block[keep[first : first + len(block)]]))

    sections.append(Section("matrix", count * m.dimension * _MATRIX_DTYPE.itemsize, write_matrix))
    sections.append(_offsets_section(new_starts))
    rewrite = Rewrite(m.name, m.model_id, m.dimension, count, dict(m.extra), sections)
    rewrite.changes = RowChanges(deleted=removed)
    if m.has_graph:
        keys = stored.keys()
        _keep_graph(rewrite, stored, keys[keep], stored.edits().after_delete(keys[~keep]))
    return rewrite, deleted


def _keep_graph(rewrite: Rewrite, stored: StoredIndex, keys: np.ndarray, edits: GraphEdits) -> None:
    """Keep the stored graph with ``edits`` pending, while they are worth deferring (see
    :mod:`lichen.format.graph_edits`); beyond, the rewrite leaves the graph out and the index
    waits for a compaction (:mod:`lichen.server.compaction`)."""
    if not edits.worth_deferring(len(keys)):
        return
    rewrite.sections += _graph_sections(stored, keys)
    rewrite.graph_tombstones = stored.manifest.graph_tombstones
    rewrite.graph_removals, rewrite.graph_insertions = edits.removals, edits.insertions


def plan_regraph(stored: StoredIndex, keys: np.ndarray, graph: Any, edits: GraphEdits | None = None) -> Rewrite:
    """``stored`` with a new graph over ``keys`` (built by the server itself), and the
    edits that bring it up to date with the documents (``None``: it is)."""
    m = stored.manifest
    sections = [_copied(stored, key) for key in (*_COLUMNS, "matrix", _OFFSETS)]
    sections += [_bytes_section("keys", np.ascontiguousarray(keys, dtype=_KEY_DTYPE)), _bytes_section("graph", graph)]
    rewrite = Rewrite(m.name, m.model_id, m.dimension, m.doc_count, dict(m.extra), sections)
    if edits is not None:
        rewrite.graph_removals, rewrite.graph_insertions = edits.removals, edits.insertions
    return rewrite


# ------------------------------------------------------------------ writing
class _Sink:
    """Where a section's bytes go: the file, and its checksum."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hasher = xxhash.xxh3_128()
        self.produced = 0

    def __call__(self, data: Any) -> None:
        view = _byte_view(data)
        self.hasher.update(view)
        self.out.write(view)
        self.produced += view.nbytes


def _manifest_json(
    rewrite: Rewrite, offsets: dict[str, int], checksums: dict[str, str], body_length: int, fields: dict[str, Any]
) -> dict[str, Any]:
    """The manifest exactly as ``encode_artifact`` lays it out (same keys, same order)."""
    edits = {
        key: np.asarray(value, dtype=np.uint64).tolist()
        for key, value in (("graph_removals", rewrite.graph_removals), ("graph_insertions", rewrite.graph_insertions))
        if len(value)
    }
    manifest = {
        "format_version": _GRAPH_EDITS_FORMAT_VERSION if edits else _PLAIN_FORMAT_VERSION,
        "name": rewrite.name,
        "model_id": rewrite.model_id,
        "dimension": rewrite.dimension,
        "doc_count": rewrite.doc_count,
        "version": fields["version"],
        "created_at": fields["created_at"],
        "updated_at": fields["updated_at"],
        "dtype": "float32",
        "byte_order": "little",
        "body_length": body_length,
        "sections": {
            s.name: {"offset": offsets[s.name], "length": s.length, "xxh3_128": checksums.get(s.name, _PLACEHOLDER)}
            for s in rewrite.sections
        },
        "extra": rewrite.extra,
    }
    if rewrite.has_graph:
        manifest["graph_tombstones"] = int(rewrite.graph_tombstones)
        manifest.update(edits)
    return manifest


def write_rewrite(rewrite: Rewrite, out: BinaryIO, *, version: int, created_at: str, updated_at: str) -> ArtifactManifest:
    """Write the artifact ``rewrite`` describes into the empty, seekable file ``out``:
    the body first, at its final offset, then the header and the manifest (whose length
    the checksums do not change). Returns its manifest."""
    fields = {"version": version, "created_at": created_at, "updated_at": updated_at}
    offsets: dict[str, int] = {}
    position = 0
    for section in rewrite.sections:
        # Documents are packed; the matrix and every later section start 64-byte aligned.
        if section.name not in _COLUMNS:
            position = _align(position)
        offsets[section.name] = position
        position += section.length
    body_length = position
    draft = _dumps(_manifest_json(rewrite, offsets, {}, body_length, fields))
    body_offset = _align(HEADER_SIZE + len(draft))
    checksums: dict[str, str] = {}
    out.seek(body_offset)
    written = 0
    for section in rewrite.sections:
        out.write(bytes(offsets[section.name] - written))
        sink = _Sink(out)
        section.write(sink)
        if sink.produced != section.length:  # a planning error, never the stored artifact's
            raise AssertionError(f"{section.name} section came out {sink.produced} bytes, planned {section.length}")
        checksums[section.name] = sink.hasher.hexdigest()
        written = offsets[section.name] + section.length
    raw = _manifest_json(rewrite, offsets, checksums, body_length, fields)
    manifest = _dumps(raw)
    assert len(manifest) == len(draft)
    digest = xxhash.xxh3_128_digest(manifest)
    out.seek(0)
    out.write(_HEADER.pack(MAGIC, raw["format_version"], 0, len(manifest), digest))
    out.write(manifest + bytes(body_offset - HEADER_SIZE - len(manifest)))
    out.seek(0, os.SEEK_END)
    out.flush()
    return _manifest_from_json(raw, body_offset, digest.hex())
