"""Compaction: the server gives a big index a freshly built graph, off the request path.

A server's merges and deletes keep a stored graph with the edits its next readers apply
(:mod:`lichen.format.graph_edits`), until the edits outgrow it (a quarter of the index, or
50,000 keys) and the graph is dropped. Every reader then rebuilt it: after server-side
deletes of a third of a 200k index, each client load took 28-44 s instead of 0.34 s. And
pending edits cost every load too (10,000 of them add ~5 s to a 1M index's).

So after each write the server looks at the new manifest (:meth:`CompactionPolicy.wants`)
and, for a big index (:attr:`CompactionPolicy.min_docs`, the size from which clients
search a graph) without a graph, with pending edits beyond
:attr:`CompactionPolicy.edit_fraction` of its documents, or with so many removed nodes
that clients would drop the graph, queues a compaction. One worker thread per server
process builds the graph with :meth:`lichen.engine.graph.VectorGraph.build` from the stored
vectors, read in chunks. The server never opens a graph a client uploaded (usearch
trusts what it maps); this one it built itself. The worker runs at a lower CPU priority
(``nice`` 10) on every core, so requests go first.

The new artifact is the current one with the new graph, streamed
(:func:`lichen.server.rewrite.plan_regraph`) and published in its place under the *same*
version, conditionally on that version and ETag (``Storage.publish(replacing=...)``):
clients see a new ETag and download it, a client holding that version can still write
to it, and a newer version is never overwritten. If a write got in while the graph was
being built (a 1M build takes minutes), the graph is *rebased* on the newer version:
documents that kept their id and vector keep their nodes, the others become graph edits
(as a merge would have written them); when those are not worth deferring, the graph is
built again, at most :attr:`CompactionPolicy.max_builds` times, after which the next
write asks again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from .._errors import NotFoundError
from ..engine.core import APPROXIMATE_THRESHOLD, REBUILD_TOMBSTONE_FRACTION
from ..engine.graph import VectorGraph
from ..format.artifact import ArtifactManifest
from ..format.graph_edits import GraphEdits
from .merge_queue import MergeQueue, ServerBusyError, release_memory
from .rewrite import StoredIndex, open_stored, plan_regraph, write_rewrite
from .storage import IndexConflict, IndexHead, Storage

__all__ = ["CompactionPolicy", "Compactor"]

logger = logging.getLogger(__name__)

_PUBLISH_ATTEMPTS = 5
_BUSY_PAUSE_S = 1.0
_WORKER_NICE = 10

PUBLISHED, NOT_NEEDED, REBUILD, GAVE_UP = "published", "not needed", "rebuild", "gave up"


@dataclass(frozen=True)
class CompactionPolicy:
    """When a server rebuilds an index's graph (``lichen serve --compact-*``)."""

    min_docs: int = APPROXIMATE_THRESHOLD
    """Indexes with fewer documents are never compacted (clients scan them: no graph)."""
    edit_fraction: float = 0.01
    """Compact once the graph edits pending exceed this share of the documents (each one
    costs every reader a little at load: 10,000 add ~5 s to a 1M index's)."""
    threads: int = 0
    """Threads the build uses (0: every core; the worker runs at a low priority)."""
    max_builds: int = 2
    """Builds per compaction before giving up (each new one after writes outpaced it)."""
    enabled: bool = True

    def wants(self, manifest: ArtifactManifest) -> bool:
        """Whether the index ``manifest`` describes needs a fresh graph."""
        n = manifest.doc_count
        if not self.enabled or n < self.min_docs or not manifest.dimension:
            return False
        if not manifest.has_graph:
            return True
        removals, insertions = len(manifest.graph_removals), len(manifest.graph_insertions)
        if removals + insertions > self.edit_fraction * n:
            return True
        removed = manifest.graph_tombstones + removals  # nodes left as tombstones once applied
        return removed > REBUILD_TOMBSTONE_FRACTION * (n + removed)


@dataclass
class _Built:
    """A graph built from one stored version: over keys ``0..n-1`` (the rows), with a
    digest of each row's vector to tell, later, which documents still match their node."""

    head: IndexHead
    keys: np.ndarray
    graph: bytes
    digests: np.ndarray


def _row_digests(block: np.ndarray) -> np.ndarray:
    rows = block.view(np.uint8)
    return np.fromiter((xxhash.xxh3_64_intdigest(row) for row in rows), dtype=np.uint64, count=len(rows))


def _build(stored: StoredIndex, head: IndexHead, threads: int) -> _Built:
    n = stored.doc_count
    keys = np.arange(n, dtype=np.uint64)
    digests = np.empty(n, dtype=np.uint64)
    graph: VectorGraph | None = None
    for first, block in stored.matrix_blocks():
        rows = slice(first, first + len(block))
        digests[rows] = _row_digests(block)
        if graph is None:
            graph = VectorGraph.build(block, keys[rows], threads=threads)
        else:
            graph.add(keys[rows], block, threads=threads)
    assert graph is not None  # CompactionPolicy.wants refuses empty indexes
    data = graph.to_bytes()
    del graph
    return _Built(head, keys, data, digests)


def _rebased(built: _Built, built_from: StoredIndex, current: StoredIndex) -> tuple[np.ndarray, GraphEdits] | None:
    """Keys and graph edits that fit ``built`` (a graph of ``built_from``'s rows) to
    ``current``, a later version; ``None`` when the edits are not worth deferring.

    Documents keep their order through merges and deletes, and new ones are appended, so
    ``current`` is the documents of ``built_from`` that survived, in their order, then
    the ones added since. The survivors keep their node's key (their row in
    ``built_from``), replaced in the graph when their vector changed; the rest get fresh
    keys and are inserted; nodes of documents gone are removed. A document deleted and
    added again (appended) counts as new, and so does everything after it."""
    position = {doc_id: row for row, doc_id in enumerate(built_from.ids())}
    ids = current.ids()
    rows = np.fromiter((position.get(doc_id, -1) for doc_id in ids), dtype=np.int64, count=len(ids))
    del position, ids
    highest_before = np.maximum.accumulate(np.concatenate([[-1], rows[:-1]])) if len(rows) else rows
    in_order = rows > highest_before
    survivors = len(rows) if in_order.all() else int(np.argmin(in_order))
    kept = rows[:survivors]
    digests = np.empty(len(rows), dtype=np.uint64)
    for first, block in current.matrix_blocks():
        digests[first : first + len(block)] = _row_digests(block)
    changed = kept[digests[:survivors] != built.digests[kept]].astype(np.uint64)
    n_built = len(built.keys)
    fresh = np.arange(n_built, n_built + len(rows) - survivors, dtype=np.uint64)
    gone = np.setdiff1d(np.arange(n_built, dtype=np.int64), kept, assume_unique=True).astype(np.uint64)
    edits = GraphEdits(np.union1d(gone, changed), np.union1d(changed, fresh))
    keys = np.concatenate([kept.astype(np.uint64), fresh])
    if not edits.worth_deferring(len(keys)):
        return None
    return keys, edits


class Compactor:
    """Queues compactions (:meth:`consider`) and runs them on one worker thread;
    :meth:`compact` runs one in the calling thread."""

    def __init__(self, storage: Storage, queue: MergeQueue, policy: CompactionPolicy | None = None) -> None:
        self.storage = storage
        self.queue = queue
        self.policy = policy or CompactionPolicy()
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, str], None] = {}  # an ordered set
        self._active = False
        self._thread: threading.Thread | None = None
        self.outcomes: list[tuple[str, str, str]] = []
        """``(project_id, name, outcome)`` of each compaction run, oldest first."""

    def consider(self, project_id: str, name: str, manifest: ArtifactManifest) -> bool:
        """Queue a compaction of the index if ``manifest`` (its new version) needs one."""
        if not self.policy.wants(manifest):
            return False
        with self._cond:
            self._pending[(project_id, name)] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="lichen-compaction", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no compaction is queued or running; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._active:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _work(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # a lower priority where the OS has one per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _WORKER_NICE)
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                key = next(iter(self._pending))
                del self._pending[key]
                self._active = True
            try:
                self.compact(*key)
            except Exception:  # noqa: BLE001 - a failed compaction leaves the index as it was
                logger.exception("compaction of index %r failed", key[1])
            finally:
                with self._cond:
                    self._active = False
                    self._cond.notify_all()
                release_memory()

    def compact(self, project_id: str, name: str) -> str:
        """Build and publish a fresh graph for the index if it needs one; returns the
        outcome (``"published"``, ``"not needed"``, ``"gave up"``)."""
        outcome = GAVE_UP
        for _ in range(self.policy.max_builds):
            outcome = self._compact_once(project_id, name)
            if outcome != REBUILD:
                break
        else:
            outcome = GAVE_UP
        logger.info("compaction of index %r: %s", name, outcome)
        self.outcomes.append((project_id, name, outcome))
        return outcome

    def _compact_once(self, project_id: str, name: str) -> str:
        try:
            opened = self.storage.open_artifact(project_id, name)
        except NotFoundError:
            return NOT_NEEDED
        with opened as stored:
            source = open_stored(stored.seekable(), f"(index {name!r})")
            if source is None or not self.policy.wants(source.manifest):
                return NOT_NEEDED
            started = time.perf_counter()
            built = _build(source, stored.head, self.policy.threads)
            logger.info(
                "built a graph for index %r (%d documents) in %.1f s", name, source.doc_count, time.perf_counter() - started
            )
            return self._publish(project_id, name, built, source)

    def _publish(self, project_id: str, name: str, built: _Built, built_from: StoredIndex) -> str:
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                with self.queue.slot((project_id, name)):
                    return self._publish_once(project_id, name, built, built_from)
            except IndexConflict:
                continue  # a write got in between reading the head and publishing: rebase again
            except NotFoundError:
                return NOT_NEEDED
            except ServerBusyError:
                time.sleep(_BUSY_PAUSE_S)
        return GAVE_UP

    def _publish_once(self, project_id: str, name: str, built: _Built, built_from: StoredIndex) -> str:
        with self.storage.open_artifact(project_id, name) as stored:
            current = open_stored(stored.seekable(), f"(index {name!r})")
            if current is None or not self.policy.wants(current.manifest):
                return NOT_NEEDED  # e.g. a client pushed it with a graph of its own meanwhile
            edits: GraphEdits | None = None
            keys: Any = built.keys
            if stored.head.etag != built.head.etag:
                rebased = _rebased(built, built_from, current)
                if rebased is None:
                    return REBUILD
                keys, edits = rebased
            plan = plan_regraph(current, keys, built.graph, edits)
            upload = self.storage.new_upload()
            try:
                m = current.manifest
                manifest = write_rewrite(plan, upload.file, version=m.version, created_at=m.created_at, updated_at=m.updated_at)
                self.storage.publish(
                    project_id, name, upload, manifest, expected_version=stored.head.version,
                    job_id=stored.head.job_id, replacing=stored.head,
                )
            finally:
                upload.discard()
        return PUBLISHED

    # For tests and the app: the set of index keys still queued.
    def pending(self) -> list[Hashable]:
        with self._cond:
            return list(self._pending)
