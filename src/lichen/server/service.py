"""What the server does with indexes, independent of HTTP: checking uploads against the
limits, the artifact format and :mod:`lichen.snapshot_checks`, publishing them, merging
document batches, answering reads. Blocking code, run by the app in worker threads; it
raises :mod:`lichen` errors that the app turns into status codes.

The server never embeds: pushed artifacts are stored byte for byte as uploaded, and
document batches arrive with their vectors already computed by the client.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConflictError, CorruptDataError, InvalidArgumentError, LimitExceededError, NotFoundError
from .._graph_edits import GraphEdits
from ..artifact import HEADER_SIZE, MAGIC, ArtifactManifest, ArtifactSource, encode_artifact, read_artifact, read_manifest
from ..snapshot_checks import check_snapshot
from ..stores._base import IndexSnapshot
from ..stores.local import validate_index_name
from .protocol import AddDocsResultModel, DeleteDocsResultModel, DocsModel, DocumentModel, JobModel
from .storage import IndexConflict, IndexHead, Storage, StoredArtifact, Upload, utc_now

__all__ = ["Limits", "IndexService", "InvalidUploadError", "merge_upsert"]

logger = logging.getLogger(__name__)

_MERGE_ATTEMPTS = 5


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

    @property
    def spool_budget(self) -> int:
        return self.max_spool_bytes if self.max_spool_bytes is not None else 4 * self.max_body_bytes


class InvalidUploadError(CorruptDataError):
    """An uploaded body is not a valid artifact (the client's fault: 422, not 500)."""


# The server never opens a stored approximate-search graph (usearch trusts what it maps,
# and a graph comes from a client). A merge or delete writes down the graph edits it
# implies for the next reader to apply (_graph_edits), or drops the graph once the edits
# outgrow it, and the next client to load the index builds a fresh one.
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


class IndexService:
    def __init__(self, storage: Storage, limits: Limits | None = None) -> None:
        self.storage = storage
        self.limits = limits or Limits()

    # ---- checks
    def inspect_upload(self, upload: Upload, name: str) -> tuple[ArtifactManifest, IndexSnapshot]:
        """Decode an uploaded artifact exactly as a client's reader will (every checksum,
        every section) and check its content (:func:`~lichen.snapshot_checks.check_snapshot`)
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
        manifest, _ = self.inspect_upload(upload, name)
        head = self.storage.publish(
            project_id, name, upload, manifest, expected_version=expected_version, job_id=uuid.uuid4().hex
        )
        self._record_job(project_id, "push", head)
        return head

    def add_docs(
        self, project_id: str, name: str, upload: Upload, *, expected_version: int | None
    ) -> AddDocsResultModel:
        validate_index_name(name)
        _, batch = self.inspect_upload(upload, name)

        def change(current: IndexSnapshot) -> tuple[IndexSnapshot, tuple[int, int]] | None:
            if batch.doc_count == 0:
                return None
            if batch.model_id != current.model_id:
                raise InvalidArgumentError(
                    f"index {name!r} uses model {current.model_id!r}; the documents were embedded with {batch.model_id!r}"
                )
            if current.doc_count and batch.dimension != current.dimension:
                raise InvalidArgumentError(
                    f"index {name!r} has dimension {current.dimension}; the documents have {batch.dimension}"
                )
            merged, added, updated = merge_upsert(current, batch)
            self.check_doc_count(name, merged.doc_count)
            return merged, (added, updated)

        head, outcome = self._rewrite(project_id, name, "add_docs", change, expected_version)
        added, updated = outcome or (0, 0)
        return AddDocsResultModel(
            job_id=head.job_id, index_name=name, added=added, updated=updated,
            doc_count=head.doc_count, version=head.version,
        )

    def delete_docs(
        self, project_id: str, name: str, ids: Sequence[str], *, expected_version: int | None
    ) -> DeleteDocsResultModel:
        validate_index_name(name)
        doomed = set(ids)

        def change(current: IndexSnapshot) -> tuple[IndexSnapshot, int] | None:
            kept, deleted = remove_docs(current, doomed)
            return (kept, deleted) if deleted else None

        head, deleted = self._rewrite(project_id, name, "delete_docs", change, expected_version)
        return DeleteDocsResultModel(
            job_id=head.job_id, index_name=name, deleted=deleted or 0, doc_count=head.doc_count, version=head.version
        )

    def delete_index(self, project_id: str, name: str, *, expected_version: int | None) -> bool:
        validate_index_name(name)
        return self.storage.delete(project_id, name, expected_version=expected_version)

    def _rewrite(self, project_id: str, name: str, kind: str, change: Any, expected_version: int | None) -> tuple[IndexHead, Any]:
        """Read-modify-publish with optimistic concurrency: conditional on the version read,
        retried when another writer got in first (unless the caller pinned a version)."""
        for attempt in range(_MERGE_ATTEMPTS):
            head, current = self.read(project_id, name)
            if expected_version is not None and head.version != expected_version:
                raise IndexConflict(f"index {name!r} is at version {head.version}, expected {expected_version}", head)
            current.version = head.version
            changed = change(current)
            if changed is None:
                return head, None  # nothing to do: no new version
            snapshot, outcome = changed
            snapshot = dataclasses.replace(
                snapshot, version=head.version + 1, created_at=head.created_at, updated_at=utc_now()
            )
            encoded = encode_artifact(snapshot)
            upload = self.storage.new_upload()
            try:
                for chunk in encoded:
                    upload.write(chunk)
                new_head = self.storage.publish(
                    project_id, name, upload, encoded.manifest, expected_version=head.version,
                    job_id=uuid.uuid4().hex,
                )
            except IndexConflict:
                if expected_version is not None or attempt == _MERGE_ATTEMPTS - 1:
                    raise
                continue
            finally:
                upload.discard()
            self._record_job(project_id, kind, new_head)
            return new_head, outcome
        raise ConflictError(f"index {name!r} is being written by others; retry")  # pragma: no cover

    # ---- reads
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
