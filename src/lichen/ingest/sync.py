"""Keeping an index in step with its sources: replace one source's chunks, or sync a
whole folder.

The state lives in the index itself, in each chunk's metadata (see
:mod:`lichen.ingest.chunks`): ``source`` says which file a chunk came from,
``source_hash`` what that file (and the chunking settings) hashed to, ``chunk_count`` how
many chunks it had. A sync hashes every file, compares with what the index holds, and
only reads, chunks and embeds the files that are new or changed; it deletes the chunks
of files that are gone and the stale tail of files that shrank. A second run finds every
hash equal and writes nothing.

Everything here works on any object with ``add_docs_sync``, ``delete_docs_sync`` and
``get_docs_sync(ids=None, filter=None, *, limit=None, offset=0)``
(:class:`~lichen.ingest.pipeline.IngestIndex`; ``SessionIndex`` is one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidArgumentError
from .._types import DocumentInfo
from .chunking import Chunker
from .errors import SkippedSource, SourceError
from .pipeline import IngestIndex, Ingestion, PreparedSource, fitting_documents, source_documents
from .sources import SourceFile, default_prefix, walk_directory
from .truncation import known_to_fit

__all__ = [
    "IndexedSource",
    "indexed_sources",
    "SyncPlan",
    "plan_sync",
    "RefreshResult",
    "plan_refresh",
    "refresh_source",
    "SyncReport",
    "sync_directory",
    "Progress",
]

#: ``progress(stage, done, total)``: stage is ``"hashing"``, ``"chunking"``, ``"writing"``
#: (chunks embedded and stored) or ``"deleting"``.
Progress = Callable[[str, int, int], None]
PAGE_SIZE = 1000
#: Chunks per ``add_docs`` call during a sync: large enough to embed in full batches,
#: small enough that progress moves and an interruption loses little.
WRITE_BATCH = 512


# ---------------------------------------------------------------------------- what the index holds
@dataclass(frozen=True)
class IndexedSource:
    """What an index holds of one source: its chunks' ids, the hashes they carry (one,
    unless a write was interrupted) and the chunk count they declare."""

    source: str
    ids: tuple[str, ...]
    hashes: frozenset[str]
    chunk_count: int | None

    @property
    def complete(self) -> bool:
        """Every chunk is there and all carry the same hash."""
        return len(self.hashes) == 1 and self.chunk_count == len(self.ids)

    @property
    def source_hash(self) -> str | None:
        return next(iter(self.hashes)) if len(self.hashes) == 1 else None


def indexed_sources(index: IngestIndex, *, prefix: str = "", page_size: int = PAGE_SIZE) -> dict[str, IndexedSource]:
    """The sources ingestion wrote into ``index`` (chunks carrying ``source_hash``) whose
    id starts with ``prefix``, read page by page."""
    ids: dict[str, list[str]] = {}
    hashes: dict[str, set[str]] = {}
    counts: dict[str, set[Any]] = {}
    offset = 0
    while True:
        page = index.get_docs_sync(filter={"source_hash": {"$exists": True}}, limit=page_size, offset=offset)
        for doc in page:
            meta = doc.metadata or {}
            source = meta.get("source")
            if not isinstance(source, str) or not source.startswith(prefix):
                continue
            ids.setdefault(source, []).append(doc.id)
            hashes.setdefault(source, set()).add(str(meta.get("source_hash")))
            counts.setdefault(source, set()).add(meta.get("chunk_count"))
        if len(page) < page_size:
            break
        offset += page_size
    return {
        source: IndexedSource(source, tuple(found), frozenset(hashes[source]), _single_count(counts[source]))
        for source, found in ids.items()
    }


def _single_count(counts: set[Any]) -> int | None:
    """The chunk count all of a source's chunks declare, or ``None`` if they disagree."""
    if len(counts) != 1:
        return None
    (count,) = counts
    return count if isinstance(count, int) and not isinstance(count, bool) else None


# ---------------------------------------------------------------------------- planning
@dataclass
class SyncPlan:
    """Sources by what a sync must do with them (each list sorted)."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def plan_sync(found: Mapping[str, str], indexed: Mapping[str, IndexedSource], *, keep: Iterable[str] = ()) -> SyncPlan:
    """Compare ``found`` (source -> hash of the file now) with what the index holds.
    Sources in ``keep`` (files that exist but could not be read) are never deleted."""
    plan = SyncPlan()
    for source in sorted(found):
        held = indexed.get(source)
        if held is None:
            plan.new.append(source)
        elif held.complete and held.source_hash == found[source]:
            plan.unchanged.append(source)
        else:
            plan.changed.append(source)
    kept = set(keep)
    plan.deleted = sorted(source for source in indexed if source not in found and source not in kept)
    return plan


def plan_refresh(source: str, documents: Sequence[DocumentInfo], existing_ids: Iterable[str]) -> tuple[list[DocumentInfo], list[str]]:
    """The documents to upsert for ``source`` (each stamped with ``metadata["source"]``;
    one naming another source is refused) and the ids to delete: those the index holds
    for the source that the new documents do not reuse (the stale tail)."""
    stamped = []
    for position, doc in enumerate(documents):
        if not isinstance(doc, DocumentInfo):
            raise InvalidArgumentError(f"chunks[{position}] is {type(doc).__name__}, expected DocumentInfo")
        meta = dict(doc.metadata or {})
        named = meta.get("source", source)
        if named != source:
            raise InvalidArgumentError(f"chunk {doc.id!r} belongs to source {named!r}, not {source!r}")
        meta["source"] = source
        stamped.append(DocumentInfo(id=doc.id, text=doc.text, metadata=meta, embedding=doc.embedding))
    kept = {doc.id for doc in stamped}
    stale = [doc_id for doc_id in existing_ids if doc_id not in kept]
    return stamped, stale


@dataclass(frozen=True)
class RefreshResult:
    """What :func:`refresh_source` did: chunks added, updated (same id) and deleted."""

    added: int
    updated: int
    deleted: int


def refresh_source(index: IngestIndex, source: str, documents: Sequence[DocumentInfo] | None = None) -> RefreshResult:
    """Make ``documents`` the whole of ``source`` in ``index``: upsert them, then delete
    every other document whose ``metadata["source"]`` is ``source`` (a file that shrank
    from 21 chunks to 6 leaves nothing of chunks 6-20). ``None`` or ``[]`` removes the
    source. The upsert comes first, so a failure leaves the old chunks in place."""
    if not isinstance(source, str) or not source:
        raise InvalidArgumentError(f"source must be a non-empty string, got {source!r}")
    if isinstance(documents, (str, bytes, DocumentInfo)):
        raise InvalidArgumentError("chunks must be a list of DocumentInfo (or None to remove the source)")
    existing = source_documents(index, [source])[source]
    upsert, stale = plan_refresh(source, list(documents or []), existing)
    added, updated = index.add_docs_sync(upsert) if upsert else (0, 0)
    deleted = index.delete_docs_sync(stale) if stale else 0
    return RefreshResult(added, updated, deleted)


# ---------------------------------------------------------------------------- syncing a folder
@dataclass
class SyncReport:
    """What a sync did (or, with ``dry_run``, would do): sources by outcome, chunk counts,
    and seconds per stage (``hashing``, ``chunking``, ``writing`` = embedding and storing,
    ``deleting``, ``listing`` the index, ``total``)."""

    directory: str
    prefix: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    skipped: list[SkippedSource] = field(default_factory=list)
    chunks_written: int = 0
    chunks_deleted: int = 0
    chunks_per_source: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def changes(self) -> int:
        """Sources added, changed or deleted (0: the index already matched the folder)."""
        return len(self.added) + len(self.changed) + len(self.deleted)

    def summary(self) -> str:
        verb = "would sync" if self.dry_run else "synced"
        parts = [f"{len(self.added)} added", f"{len(self.changed)} changed", f"{len(self.deleted)} deleted",
                 f"{len(self.unchanged)} unchanged"]
        if self.empty:
            parts.append(f"{len(self.empty)} without text")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        chunks = "" if self.dry_run else (
            f"; {self.chunks_written} chunks written, {self.chunks_deleted} removed in {self.seconds.get('total', 0.0):.2f} s"
        )
        return f"{verb} {self.directory}: {', '.join(parts)}{chunks}"

    def lines(self) -> list[str]:
        """One line per source that changed (``+`` added, ``~`` changed, ``-`` deleted,
        ``!`` skipped, ``0`` no text), then the summary."""
        out = [f"+ {s} ({self._chunks(s)})" for s in self.added]
        out += [f"~ {s} ({self._chunks(s)})" for s in self.changed]
        out += [f"- {s}" for s in self.deleted]
        out += [f"0 {s} (no text)" for s in self.empty]
        out += [f"! {item}" for item in self.skipped]
        return [*out, self.summary()]

    def _chunks(self, source: str) -> str:
        count = self.chunks_per_source.get(source)
        return "? chunks" if count is None else f"{count} chunk{'' if count == 1 else 's'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory, "prefix": self.prefix, "dry_run": self.dry_run,
            "added": self.added, "changed": self.changed, "deleted": self.deleted,
            "unchanged": len(self.unchanged), "empty": self.empty,
            "skipped": [{"source": item.source, "reason": item.reason} for item in self.skipped],
            "chunks_written": self.chunks_written, "chunks_deleted": self.chunks_deleted,
            "seconds": {key: round(value, 4) for key, value in self.seconds.items()},
        }


def sync_directory(
    index: IngestIndex,
    directory: str | os.PathLike,
    *,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    prefix: str | None = None,
    chunker: str | Chunker | Callable[[str], Iterable[Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    skip_errors: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_size: int = WRITE_BATCH,
) -> SyncReport:
    """Bring ``index`` in step with the files under ``directory``.

    New files are added, changed ones (by content hash, chunking settings and
    ``metadata``) re-chunked with their stale tail deleted, deleted ones removed, unchanged
    ones only hashed. Sources are ``{prefix}{relative path}`` (prefix default: the
    folder's name and ``/``); only indexed sources under that prefix are considered, so
    other documents of the index are left alone (``prefix=""`` claims every source
    ingestion wrote into the index: any not in the folder is deleted). Files that cannot be read raise one
    :class:`SourceError` before anything is written, unless ``skip_errors`` (they are then
    reported, and their chunks kept). ``progress(stage, done, total)`` is called as work
    advances."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    started = time.perf_counter()
    settings = Ingestion(chunker, model_id=getattr(index, "model_id", None), metadata=metadata)
    prefix = default_prefix(directory) if prefix is None else prefix
    report = SyncReport(directory=os.fspath(directory), prefix=prefix, dry_run=dry_run)
    notify = progress or (lambda stage, done, total: None)

    files = walk_directory(directory, include=include, exclude=exclude, prefix=prefix)
    mark = time.perf_counter()
    indexed = indexed_sources(index, prefix=prefix)
    report.seconds["listing"] = time.perf_counter() - mark

    mark = time.perf_counter()
    found: dict[str, str] = {}
    by_source: dict[str, SourceFile] = {}
    failures: list[SkippedSource] = []
    for done, file in enumerate(files, start=1):
        try:
            found[file.source] = settings.source_hash(settings.read(file), file.path.suffix)
            by_source[file.source] = file
        except SourceError as exc:
            failures.extend(exc.failures)
        notify("hashing", done, len(files))
    report.seconds["hashing"] = time.perf_counter() - mark
    unreadable = [file.source for file in files if file.source not in found]
    plan = plan_sync(found, indexed, keep=unreadable)
    report.unchanged = plan.unchanged
    report.deleted = plan.deleted

    mark = time.perf_counter()
    built: list[PreparedSource] = []
    pending = plan.new + plan.changed
    if dry_run:
        report.added, report.changed = plan.new, plan.changed
    else:
        for done, source in enumerate(pending, start=1):
            try:
                built.append(settings.build(by_source[source]))
            except SourceError as exc:
                failures.extend(exc.failures)
            notify("chunking", done, len(pending))
    report.seconds["chunking"] = time.perf_counter() - mark
    if failures and not skip_errors:
        raise SourceError(failures, total=len(files))
    report.skipped = failures
    if dry_run:
        report.seconds["total"] = time.perf_counter() - started
        return report

    new = set(plan.new)
    for source in built:
        report.chunks_per_source[source.source] = len(source.documents)
        if not source.documents and source.source in new:
            report.empty.append(source.source)
        else:
            (report.added if source.source in new else report.changed).append(source.source)

    mark = time.perf_counter()
    total = sum(len(source.documents) for source in built)
    written = 0
    batch: list[DocumentInfo] = []
    with known_to_fit(fitting_documents(built)):  # sized in tokens when chunked: not counted again
        for source in built:
            batch.extend(source.documents)
            if len(batch) >= batch_size:
                index.add_docs_sync(batch)
                written += len(batch)
                batch = []
                notify("writing", written, total)
        if batch:
            index.add_docs_sync(batch)
            written += len(batch)
            notify("writing", written, total)
    report.chunks_written = written
    report.seconds["writing"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stale: list[str] = []
    for source in built:
        held = indexed.get(source.source)
        if held is not None:
            kept = {doc.id for doc in source.documents}
            stale.extend(doc_id for doc_id in held.ids if doc_id not in kept)
    for source in plan.deleted:
        stale.extend(indexed[source].ids)
    if stale:
        report.chunks_deleted = index.delete_docs_sync(stale)
        notify("deleting", len(stale), len(stale))
    report.seconds["deleting"] = time.perf_counter() - mark
    report.seconds["total"] = time.perf_counter() - started
    return report
