"""What the server does with indexes, independent of HTTP: checking uploads against the
limits, the artifact format and :mod:`lichen.format.checks`, publishing them, merging
document batches, answering reads. Blocking code, run by the app in worker threads; it
raises :mod:`lichen` errors that the app turns into status codes.

The server never embeds: pushed artifacts are stored byte for byte as uploaded, and
document batches arrive with their vectors already computed by the client. Merges and
deletes stream the new artifact from the stored one (:mod:`lichen.server.rewrite`),
one at a time per index and a few at a time per server (:mod:`lichen.server.merge_queue`),
and queue a compaction when the index needs a fresh graph
(:mod:`lichen.server.compaction`). Each merge or delete also stores a change record, so
that clients holding an earlier version refresh by delta (:mod:`lichen.server.changes`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import mmap
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import (
    ConflictError,
    CorruptDataError,
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
)
from ..format.artifact import (
    HEADER_SIZE,
    MAGIC,
    ArtifactManifest,
    ArtifactSource,
    encode_artifact,
    read_artifact,
    read_manifest,
)
from ..format.checks import check_snapshot
from ..format.graph_edits import GraphEdits
from ..format.snapshot import IndexSnapshot
from ..protocol import (
    AddDocsResultModel,
    DeleteDocsResultModel,
    DocsModel,
    DocumentModel,
    JobModel,
    validate_index_name,
)
from .changes import ChangeLog, ChangePolicy
from .compaction import CompactionPolicy, Compactor
from .merge_queue import MergeQueue, ServerBusyError
from .rewrite import (
    Rewrite,
    StoredIndex,
    open_stored,
    plan_delete,
    plan_upsert,
    write_rewrite,
)
from .storage import IndexConflict, IndexHead, Storage, StoredArtifact, Upload, utc_now

__all__ = ["Limits", "IndexService", "InvalidUploadError", "merge_upsert"]

logger = logging.getLogger(__name__)

# An unconditional write that keeps losing the race to publish (to other replicas: within
# one process, writes to an index queue for each other) tries again, with jittered
# exponential backoff, until this deadline.
_RETRY_DEADLINE_S = 30.0
_BACKOFF_S, _MAX_BACKOFF_S = 0.02, 1.0


@dataclass(frozen=True)
class Limits:
    """Server limits (``lichen serve --max-body-bytes / --max-docs``)."""

    max_body_bytes: int = 1 << 30
    """Largest request body accepted (413 beyond)."""
    max_docs: int = 1_000_000
    """Most documents one index may hold after a push or merge (422 beyond)."""
    max_docs_per_read: int = 10_000
    """Most documents ``GET .../docs`` returns without explicit ids (422 beyond)."""
    max_spool_bytes: int | None = None
    """Most bytes the uploads in flight in one server process may hold in its spool at
    once (503 with ``Retry-After`` beyond, which clients retry); ``None``: four bodies
    of ``max_body_bytes``."""

    max_running_merges: int = 2
    """Index rewrites (merges, deletes, pushes' checks, compactions' publishing) that run
    at once in one server process; each holds a bounded amount of memory."""
    max_queued_merges: int = 32
    """Rewrites that may wait for their turn (503 with ``Retry-After`` beyond)."""
    max_merge_wait_s: float = 30.0
    """Longest a rewrite waits for its turn before it is refused with 503."""

    @property
    def spool_budget(self) -> int:
        return self.max_spool_bytes if self.max_spool_bytes is not None else 4 * self.max_body_bytes


class InvalidUploadError(CorruptDataError):
    """An uploaded body is not a valid artifact (the client's fault: 422, not 500)."""


# The server never opens a stored approximate-search graph (usearch trusts what it maps,
# and a graph comes from a client). A merge or delete writes down the graph edits it
# implies for the next reader to apply (_graph_edits), or drops the graph once the edits
# outgrow it; a compaction (lichen.server.compaction) then builds a fresh one. These two
# functions are the decoding form of what lichen.server.rewrite streams: formats 1 and 2
# are merged with them, and tests compare the two byte for byte.
_WITHOUT_GRAPH: dict[str, Any] = {
    "keys": None, "graph": None, "graph_tombstones": 0, "graph_removals": None, "graph_insertions": None,
    "graph_release": None,
}


def _graph_fields(keys: np.ndarray, edits: GraphEdits) -> dict[str, Any]:
    """The changed index's graph fields: the same graph with ``edits`` pending, or none
    once they outgrow it."""
    if not edits.worth_deferring(len(keys)):
        return _WITHOUT_GRAPH
    return {"keys": keys, **edits.as_fields()}


def merge_upsert(current: IndexSnapshot, batch: IndexSnapshot) -> tuple[IndexSnapshot, int, int]:
    """Upsert ``batch`` into ``current`` by id, like ``IndexCore.upsert``: existing ids are
    replaced in place, new ids appended in batch order. Returns ``(merged, added, updated)``."""
    positions = {doc_id: i for i, doc_id in enumerate(current.ids)}
    ids, texts, metadata = list(current.ids), list(current.texts), list(current.metadata)
    updated_at: list[int] = []
    updated_from: list[int] = []
    added_from: list[int] = []
    for j, doc_id in enumerate(batch.ids):
        position = positions.get(doc_id)
        if position is None:
            positions[doc_id] = len(ids)
            ids.append(doc_id)
            texts.append(batch.texts[j])
            metadata.append(batch.metadata[j])
            added_from.append(j)
        else:
            texts[position] = batch.texts[j]
            metadata[position] = batch.metadata[j]
            updated_at.append(position)
            updated_from.append(j)
    dimension = current.dimension if current.doc_count else batch.dimension
    n = current.doc_count
    matrix = np.empty((len(ids), dimension), dtype=np.float32)
    if n:  # an empty index may have no dimension yet: its matrix is (0, 0)
        matrix[:n] = current.matrix
    if updated_at:
        matrix[updated_at] = batch.matrix[updated_from]
    if added_from:
        matrix[n:] = batch.matrix[added_from]
    graph: dict[str, Any] = _WITHOUT_GRAPH
    if current.graph is not None and current.keys is not None:
        old_keys = np.asarray(current.keys, dtype=np.uint64)
        edits = GraphEdits.of(current)
        first = edits.first_free_key(old_keys)
        added_keys = np.arange(first, first + len(added_from), dtype=np.uint64)
        edits = edits.after_upsert(replaced=old_keys[updated_at], added=added_keys)
        graph = _graph_fields(np.concatenate([old_keys, added_keys]), edits)
    merged = dataclasses.replace(
        current, dimension=dimension, ids=ids, texts=texts, metadata=metadata, matrix=matrix, **graph
    )
    return merged, len(added_from), len(updated_at)


def remove_docs(current: IndexSnapshot, doomed: set[str]) -> tuple[IndexSnapshot, int]:
    """``current`` without the documents whose ids are in ``doomed``; returns
    ``(kept, deleted)`` (``current`` itself when nothing matched)."""
    keep = np.fromiter((doc_id not in doomed for doc_id in current.ids), dtype=bool, count=current.doc_count)
    deleted = int(current.doc_count - keep.sum())
    if not deleted:
        return current, 0
    graph: dict[str, Any] = _WITHOUT_GRAPH
    if current.graph is not None and current.keys is not None:
        keys = np.asarray(current.keys, dtype=np.uint64)
        graph = _graph_fields(keys[keep], GraphEdits.of(current).after_delete(keys[~keep]))
    kept = dataclasses.replace(
        current,
        ids=[x for x, k in zip(current.ids, keep) if k],
        texts=[x for x, k in zip(current.texts, keep) if k],
        metadata=[x for x, k in zip(current.metadata, keep) if k],
        matrix=np.ascontiguousarray(current.matrix[keep]),
        **graph,
    )
    return kept, deleted


def _merge_checked(current: IndexSnapshot, batch: IndexSnapshot, max_docs: int) -> tuple[IndexSnapshot, int, int]:
    """:func:`merge_upsert` after the checks :func:`lichen.server.rewrite.plan_upsert`
    makes (same messages), for artifacts of formats 1 and 2."""
    if not batch.doc_count:
        return current, 0, 0
    name = current.name
    if batch.model_id != current.model_id:
        raise InvalidArgumentError(
            f"index {name!r} uses model {current.model_id!r}; the documents were embedded with {batch.model_id!r}"
        )
    if current.doc_count and batch.dimension != current.dimension:
        raise InvalidArgumentError(f"index {name!r} has dimension {current.dimension}; the documents have {batch.dimension}")
    merged, added, updated = merge_upsert(current, batch)
    if merged.doc_count > max_docs:
        raise LimitExceededError(
            f"index {name!r} would hold {merged.doc_count} documents; this server allows {max_docs} per index"
        )
    return merged, added, updated


def _add_result(name: str, head: IndexHead, outcome: Any) -> AddDocsResultModel:
    if isinstance(outcome, BaseException):
        raise outcome
    added, updated = outcome
    return AddDocsResultModel(
        job_id=head.job_id, index_name=name, added=added, updated=updated, doc_count=head.doc_count,
        version=head.version,
    )


@dataclass(eq=False)
class _QueuedBatch:
    """An unconditional document batch waiting for its index's turn, and then what
    became of it (whoever had the turn may have merged it along with its own)."""

    batch: IndexSnapshot
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outcome: Any = None

    def result(self) -> AddDocsResultModel:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class IndexService:
    def __init__(
        self,
        storage: Storage,
        limits: Limits | None = None,
        compaction: CompactionPolicy | None = None,
        changes: ChangePolicy | None = None,
    ) -> None:
        self.storage = storage
        self.changes = ChangeLog(storage, changes)
        self.limits = limits = limits or Limits()
        self.merges = MergeQueue(limits.max_running_merges, limits.max_queued_merges, limits.max_merge_wait_s)
        self.compactor = Compactor(storage, self.merges, compaction)
        self._queued: dict[tuple[str, str], list[_QueuedBatch]] = {}
        self._queued_lock = threading.Lock()

    # ---- checks
    def inspect_upload(self, upload: Upload, name: str) -> tuple[ArtifactManifest, IndexSnapshot]:
        """Decode an uploaded artifact exactly as a client's reader will (every checksum,
        every section) and check its content (:func:`~lichen.format.checks.check_snapshot`)
        before anything refers to it: whatever a server publishes, every client can load.
        Refusals name the problem and never the spool file."""
        upload.finish()
        source = _readable(upload.path)
        try:
            manifest = read_manifest(source)
        except CorruptDataError as exc:
            raise InvalidUploadError(f"uploaded body is not a valid Lichen index artifact: {_plain(exc)}") from None
        if manifest.name != name:
            raise InvalidArgumentError(f"the artifact holds index {manifest.name!r} but was sent to {name!r}")
        self.check_doc_count(name, manifest.doc_count)  # refused before paying for decoding
        try:
            snapshot = read_artifact(source, verify=True, strict=True)
        except CorruptDataError as exc:
            raise InvalidUploadError(f"uploaded body is not a valid Lichen index artifact: {_plain(exc)}") from None
        try:
            check_snapshot(snapshot)
        except InvalidArgumentError as exc:
            raise type(exc)(f"uploaded index {name!r} is invalid: {exc}") from None
        return manifest, snapshot

    def check_doc_count(self, name: str, doc_count: int) -> None:
        if doc_count > self.limits.max_docs:
            raise LimitExceededError(
                f"index {name!r} would hold {doc_count} documents; this server allows {self.limits.max_docs} per index"
            )

    # ---- writes
    def push(self, project_id: str, name: str, upload: Upload, *, expected_version: int | None) -> IndexHead:
        validate_index_name(name)
        # Checking an upload decodes it whole: it takes a turn like a merge, which bounds
        # how many are decoded at once.
        with self.merges.slot((project_id, name)):
            manifest, _ = self.inspect_upload(upload, name)
            head = self.storage.publish(
                project_id, name, upload, manifest, expected_version=expected_version, job_id=uuid.uuid4().hex
            )
        self._record_job(project_id, "push", head)
        self.compactor.consider(project_id, name, manifest)
        return head

    def add_docs(
        self, project_id: str, name: str, upload: Upload, *, expected_version: int | None
    ) -> AddDocsResultModel:
        """Upsert the uploaded batch. Conditional batches are merged alone; unconditional
        ones queue for the index's turn, and whoever gets it merges every batch queued
        for the index by then, in arrival order, in one rewrite and one publish (their
        callers share its version): under contention, throughput grows with the queue
        instead of each write copying the index once."""
        validate_index_name(name)
        _, batch = self.inspect_upload(upload, name)
        if expected_version is not None:
            head, outcomes = self._merge_batches(project_id, name, [batch], expected_version)
            return _add_result(name, head, outcomes[0])
        key = (project_id, name)
        queued = _QueuedBatch(batch)
        with self._queued_lock:
            self._queued.setdefault(key, []).append(queued)
        try:
            with self.merges.slot(key):
                if not queued.done.is_set():  # nobody merged it yet: merge every batch queued
                    with self._queued_lock:
                        group = self._queued.pop(key)
                    self._merge_group(project_id, name, group)
        except ServerBusyError:
            with self._queued_lock:
                waiting = self._queued.get(key, [])
                if queued in waiting:  # nobody took it: it is refused, nothing was written
                    waiting.remove(queued)
                    if not waiting:
                        del self._queued[key]
                    raise
            queued.done.wait()  # whoever holds the turn took it along: its outcome stands
        return queued.result()

    def _merge_group(self, project_id: str, name: str, group: list[_QueuedBatch]) -> None:
        try:
            head, outcomes = self._merge_batches(project_id, name, [q.batch for q in group], None, in_turn=True)
            for queued, outcome in zip(group, outcomes):
                queued.outcome = outcome if isinstance(outcome, BaseException) else _add_result(name, head, outcome)
        except BaseException as exc:
            for queued in group:
                queued.outcome = exc
            raise
        finally:
            for queued in group:
                queued.done.set()

    def _merge_batches(
        self, project_id: str, name: str, batches: list[IndexSnapshot], expected_version: int | None,
        *, in_turn: bool = False,
    ) -> tuple[IndexHead, list[Any]]:
        """Upsert ``batches`` in one rewrite: the head after it and each batch's outcome,
        ``(added, updated)`` or the error refusing that batch alone."""

        def streamed(stored: StoredIndex) -> tuple[Rewrite | None, list[Any]]:
            return plan_upsert(stored, batches, max_docs=self.limits.max_docs)

        def decoded(current: IndexSnapshot) -> tuple[IndexSnapshot | None, list[Any]]:
            outcomes: list[Any] = []
            merged: IndexSnapshot | None = None
            for batch in batches:
                try:
                    merged_now, added, updated = _merge_checked(merged or current, batch, self.limits.max_docs)
                except InvalidArgumentError as exc:
                    outcomes.append(exc)
                    continue
                merged = merged_now if batch.doc_count else merged
                outcomes.append((added, updated))
            return merged, outcomes

        return self._rewrite(project_id, name, "add_docs", streamed, decoded, expected_version, in_turn=in_turn)

    def delete_docs(
        self, project_id: str, name: str, ids: Sequence[str], *, expected_version: int | None
    ) -> DeleteDocsResultModel:
        validate_index_name(name)
        doomed = set(ids)

        def decoded(current: IndexSnapshot) -> tuple[IndexSnapshot | None, int]:
            kept, deleted = remove_docs(current, doomed)
            return (kept if deleted else None), deleted

        def streamed(stored: StoredIndex) -> tuple[Rewrite | None, int]:
            return plan_delete(stored, doomed) or (None, 0)

        head, deleted = self._rewrite(project_id, name, "delete_docs", streamed, decoded, expected_version)
        return DeleteDocsResultModel(
            job_id=head.job_id, index_name=name, deleted=deleted or 0, doc_count=head.doc_count, version=head.version
        )

    def delete_index(self, project_id: str, name: str, *, expected_version: int | None) -> bool:
        validate_index_name(name)
        return self.storage.delete(project_id, name, expected_version=expected_version)

    def _rewrite(
        self, project_id: str, name: str, kind: str, streamed: Any, decoded: Any, expected_version: int | None,
        *, in_turn: bool = False,
    ) -> tuple[IndexHead, Any]:
        """Read-modify-publish of one index, in its turn (:class:`MergeQueue`; ``in_turn``:
        the caller has it), conditional on the version read. ``streamed(stored)`` plans the
        new artifact from the stored one (:mod:`lichen.server.rewrite`);
        ``decoded(snapshot)`` changes an artifact of format 1 or 2, decoded whole. Either
        returns ``(new, outcome)``, ``new`` being ``None`` when nothing changes (no new
        version); returns the head after the write and ``outcome``.

        A caller who pinned a version gets :class:`IndexConflict` if it moved. A write
        without a condition is never refused for contention alone: within this process,
        writes to the index wait for each other; a race lost to another replica is run
        again, with backoff, until a deadline, and only then refused with a message that
        says so."""
        deadline = time.monotonic() + _RETRY_DEADLINE_S
        lost = 0
        with contextlib.nullcontext() if in_turn else self.merges.slot((project_id, name)):
            while True:
                try:
                    return self._rewrite_once(project_id, name, kind, streamed, decoded, expected_version)
                except IndexConflict:
                    if expected_version is not None:
                        raise
                    lost += 1
                    if time.monotonic() >= deadline:
                        raise ConflictError(
                            f"index {name!r} kept changing while this write was being applied: it lost the race "
                            f"to publish {lost} times in {_RETRY_DEADLINE_S:g} s to other servers sharing the "
                            "storage; nothing was written, retry"
                        ) from None
                    time.sleep(min(_MAX_BACKOFF_S, _BACKOFF_S * 2 ** min(lost, 10)) * random.uniform(0.5, 1.5))

    def _rewrite_once(
        self, project_id: str, name: str, kind: str, streamed: Any, decoded: Any, expected_version: int | None
    ) -> tuple[IndexHead, Any]:
        with self.storage.open_artifact(project_id, name) as stored:
            head = stored.head
            if expected_version is not None and head.version != expected_version:
                raise IndexConflict(f"index {name!r} is at version {head.version}, expected {expected_version}", head)
            upload = self.storage.new_upload()
            record = None
            try:
                try:
                    source = open_stored(stored.seekable())
                    if source is not None:
                        rewrite, outcome = streamed(source)
                        if rewrite is None:
                            return head, outcome  # nothing to do: no new version
                        manifest = write_rewrite(
                            rewrite, upload.file, version=head.version + 1, created_at=head.created_at,
                            updated_at=utc_now(),
                        )
                        # Stored before the publish: there the moment the head moves.
                        record = self.changes.record(project_id, name, rewrite.changes, head, manifest)
                    else:
                        current = read_artifact(stored.seekable())
                        current.version = head.version
                        snapshot, outcome = decoded(current)
                        if snapshot is None:
                            return head, outcome
                        encoded = encode_artifact(dataclasses.replace(
                            snapshot, version=head.version + 1, created_at=head.created_at, updated_at=utc_now()
                        ))
                        for chunk in encoded:
                            upload.write(chunk)
                        manifest = encoded.manifest
                except CorruptDataError as exc:
                    raise CorruptDataError(f"stored index {name!r} is corrupt: {_plain(exc)}") from None
                try:
                    new_head = self.storage.publish(
                        project_id, name, upload, manifest, expected_version=head.version, job_id=uuid.uuid4().hex
                    )
                except BaseException:
                    self.changes.discard(project_id, name, record)
                    raise
            finally:
                upload.discard()
        self.changes.published(project_id, name, new_head.version)
        self._record_job(project_id, kind, new_head)
        self.compactor.consider(project_id, name, manifest)
        return new_head, outcome

    # ---- reads
    def changes_since(self, project_id: str, name: str, since: int, content: str) -> tuple[IndexHead, bytes]:
        """The head and the changes body from the client's copy (version ``since``,
        content digest ``content``) to it; :class:`~lichen.server.changes.ChangesGone`
        when the client must download the artifact instead."""
        head = self.info(project_id, name)
        delta = self.changes.since(project_id, name, head, since, content)
        return head, self.changes.body(delta)

    def info(self, project_id: str, name: str) -> IndexHead:
        validate_index_name(name)
        head = self.storage.head(project_id, name)
        if head is None:
            raise NotFoundError(f"index {name!r} not found")
        return head

    def list(self, project_id: str) -> list[IndexHead]:
        return self.storage.list_heads(project_id)

    def read(self, project_id: str, name: str) -> tuple[IndexHead, IndexSnapshot]:
        validate_index_name(name)
        with self.storage.open_artifact(project_id, name) as stored:
            try:
                snapshot = read_artifact(stored.seekable())
            except CorruptDataError as exc:
                raise CorruptDataError(f"stored index {name!r} is corrupt: {_plain(exc)}") from None
            return stored.head, snapshot

    def open_download(self, project_id: str, name: str) -> tuple[StoredArtifact, Iterator[bytes]]:
        """Open the current artifact for streaming, after checking that its header still
        matches the head's record (so a damaged object fails here with a clear error,
        not as a mysterious failure on the client). The client verifies every checksum."""
        validate_index_name(name)
        stored = self.storage.open_artifact(project_id, name)
        try:
            head = stored.head
            chunks = stored.chunks()
            first = next(chunks, b"")
            problem = None
            if len(first) < min(HEADER_SIZE, head.size) or first[: len(MAGIC)] != MAGIC[: len(first)]:
                problem = "it does not start with a Lichen artifact header"
            elif head.size >= HEADER_SIZE and first[24:40].hex() != head.etag:
                problem = "its manifest digest does not match the published version"
            elif stored.size is not None and stored.size != head.size:
                problem = f"it is {stored.size} bytes, the published version has {head.size}"
            if problem:
                raise CorruptDataError(f"stored index {name!r} (version {head.version}) is corrupt: {problem}")
        except BaseException:
            stored.close()
            raise

        def body() -> Iterator[bytes]:
            yield first
            yield from chunks

        return stored, body()

    def get_docs(
        self, project_id: str, name: str, ids: Sequence[str] | None, *, include_embeddings: bool
    ) -> DocsModel:
        head, snapshot = self.read(project_id, name)
        if ids is None:
            if snapshot.doc_count > self.limits.max_docs_per_read:
                raise LimitExceededError(
                    f"index {name!r} holds {snapshot.doc_count} documents; list at most "
                    f"{self.limits.max_docs_per_read} without ids, or download the artifact"
                )
            rows = range(snapshot.doc_count)
        else:
            positions = {doc_id: i for i, doc_id in enumerate(snapshot.ids)}
            rows = [positions[doc_id] for doc_id in dict.fromkeys(ids) if doc_id in positions]
        docs = [
            DocumentModel(
                id=snapshot.ids[i],
                text=snapshot.texts[i],
                metadata=snapshot.metadata[i],
                embedding=snapshot.matrix[i].tolist() if include_embeddings else None,
            )
            for i in rows
        ]
        return DocsModel(index_name=name, version=head.version, docs=docs)

    # ---- jobs
    def _record_job(self, project_id: str, kind: str, head: IndexHead) -> None:
        record = JobModel(
            job_id=head.job_id, kind=kind, index_name=head.name, status="completed",
            doc_count=head.doc_count, version=head.version, created_at=head.updated_at,
        )
        try:
            self.storage.put_job(project_id, record.model_dump())
        except Exception:  # noqa: BLE001 - the write itself succeeded; the record is a courtesy
            logger.warning("could not record job %s", head.job_id, exc_info=True)

    def job(self, project_id: str, job_id: str) -> JobModel:
        record = self.storage.get_job(project_id, job_id)
        if record is None:
            raise NotFoundError(f"job {job_id!r} not found")
        return JobModel.model_validate(record)


def _readable(path: Path) -> ArtifactSource:
    """An upload to decode: memory-mapped on POSIX, so its vectors are checked in place
    rather than copied (the mapping outlives the file's rename into storage)."""
    if os.name != "posix":
        return path
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""  # mmap refuses empty files: let the reader explain
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _plain(exc: Exception) -> str:
    """The message of a format error without the temporary file name it was read from."""
    text = str(exc)
    prefix = "corrupt Lichen index artifact"
    if text.startswith(prefix):
        text = text.split(": ", 1)[-1]
    return text
