"""The graph kept current on other threads while its index keeps answering and changing.

Building the HNSW graph of a big index takes tens of seconds per 100k documents on two
cores. A session that grows past the approximate-search threshold, a graph worn out by
deletes, or a loaded graph with a server's edits to apply must not make the query that
notices it wait for that: the query answers by the exact scan, and the graph is built
here, beside it.

The build starts from the keys the index holds when it begins and reads their current
rows chunk by chunk (briefly under the index's lock, as a query does), so it never holds
a copy of the whole matrix. Writes that land meanwhile are written down in a *journal*
(by the index, under its lock); once the chunks are in, the journal is replayed onto the
new graph in rounds outside the lock, and the last short round under it, just before the
index switches to the new graph. Every journalled document is re-inserted whole (its key
removed, then added), so a write seen both by a chunk and by the journal ends up once.

Between builds, rows the graph does not hold yet (written since it was built, or a
server's insertions into a loaded graph) are inserted by a :class:`GraphIndexer`, a few
at a time under the index's lock: usearch blocks a graph's searches while it inserts into
that graph, so a long batch would stall queries. Until then queries score those rows
exactly beside the graph's candidates (:class:`~lichen.engine.core.IndexCore`).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .calibration import Calibrator, GraphCalibration, sample_for_calibration
from .graph import VectorGraph

__all__ = ["GraphBuild", "GraphIndexer", "BUILD_CHUNK_ROWS", "INDEXER_CHUNK_ROWS"]

#: Rows read and inserted per step: small enough that reading a chunk under the index's
#: lock is as short as a query, and that a cancelled build stops within a few seconds;
#: big enough that each insert batch keeps the threads busy.
BUILD_CHUNK_ROWS = 4_096
#: The journal is replayed outside the lock until fewer than this many documents remain;
#: the rest is replayed under it, the moment before the switch (a few tens of ms).
_FINAL_REPLAY_ROWS = 32
#: Rows the indexer inserts per turn of the lock: each turn holds off queries for a few
#: tens of milliseconds at most (an insert costs ~1-2 ms on two busy cores).
INDEXER_CHUNK_ROWS = 16
_SERIAL_SEED = 2_048  # as VectorGraph.build: the first nodes one at a time


_live: weakref.WeakSet[GraphBuild | GraphIndexer] = weakref.WeakSet()


@atexit.register
def _stop_builds() -> None:
    """A build thread killed inside usearch at interpreter exit aborts the process
    (``terminate called``): builds still running are cancelled and waited for (each
    stops at its next chunk) before the interpreter goes down."""
    for build in list(_live):
        build.cancel()
        build.wait(60)


def build_threads() -> int:
    """Every core but one: the build must leave a core to the queries it runs beside."""
    return max(1, (os.cpu_count() or 1) - 1)


class GraphBuild:
    """One background build; see the module docstring.

    ``rows_of(keys)`` returns ``(keys_found, vectors)`` of the documents among ``keys``
    the index still holds (called under ``lock``); ``adopt(graph, calibration)`` installs
    the finished graph (called under ``lock``, after the last replay) with its
    :class:`~lichen.engine.calibration.GraphCalibration`, measured on the way (the exact
    answers of its sampled queries are folded in as the chunks are read).
    """

    def __init__(
        self,
        keys: np.ndarray,
        rows_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        adopt: Callable[[VectorGraph, GraphCalibration | None], None],
        lock: Any,
        *,
        dimension: int,
        threads: int | None = None,
    ) -> None:
        self._keys = np.asarray(keys, dtype=np.uint64)
        self._rows_of = rows_of
        self._adopt = adopt
        self._lock = lock
        self._dimension = dimension
        self._threads = threads or build_threads()
        self.calibration: GraphCalibration | None = None
        self._journal: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self.error: BaseException | None = None
        """What stopped the build, if it failed (the index keeps scanning exactly)."""
        self._thread = threading.Thread(target=self._run, name="lichen-graph-build", daemon=True)
        _live.add(self)
        self._thread.start()

    # ------------------------------------------------------------------ the index's side (under its lock)
    def record_upsert(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._journal.append((np.array(keys, dtype=np.uint64), np.array(vectors, dtype=np.float32)))

    def record_removal(self, keys: np.ndarray) -> None:
        self._journal.append((np.array(keys, dtype=np.uint64), None))

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (without the index's lock) until the build is done; whether it is."""
        return self._finished.wait(timeout)

    # ------------------------------------------------------------------ the build thread
    def _run(self) -> None:
        try:
            graph = self._start()
            if graph is not None and not self._cancelled.is_set():
                self._finish(graph)
        except BaseException as exc:  # noqa: BLE001 - reported on the build; the index scans exactly
            self.error = exc
        finally:
            self._finished.set()

    def _start(self) -> VectorGraph | None:
        graph = None
        with self._lock:
            calibrator = Calibrator(*sample_for_calibration(self._keys, self._rows_of))
        for start in range(0, max(1, len(self._keys)), BUILD_CHUNK_ROWS):
            if self._cancelled.is_set():
                return None
            chunk = self._keys[start : start + BUILD_CHUNK_ROWS]
            with self._lock:
                keys, vectors = self._rows_of(chunk)
            calibrator.observe(keys, vectors)
            kept = ~calibrator.holds_out(keys)  # the sampled rows join once measured
            keys, vectors = keys[kept], vectors[kept]
            if graph is None:
                seed = min(len(keys), _SERIAL_SEED)
                graph = VectorGraph.build(vectors[:seed], keys[:seed], threads=1)
                graph.add(keys[seed:], vectors[seed:], threads=self._threads)
            else:
                graph.add(keys, vectors, threads=self._threads)
        if graph is not None and len(graph) and not self._cancelled.is_set():
            self.calibration = calibrator.measure(graph)
        if graph is not None and not self._cancelled.is_set():
            # As they are now: a write since the sample was read is in the journal too,
            # whose replay removes and re-inserts it, in order.
            with self._lock:
                keys, vectors = self._rows_of(calibrator.sample_keys)
            graph.add(keys, vectors, threads=self._threads)
        return graph

    def _finish(self, graph: VectorGraph) -> None:
        while not self._cancelled.is_set():
            with self._lock:
                if self._cancelled.is_set():
                    return
                batch, self._journal = self._journal, []
                if sum(len(keys) for keys, _ in batch) <= _FINAL_REPLAY_ROWS:
                    _replay(graph, batch)
                    self._adopt(graph, self.calibration)
                    return
            _replay(graph, batch, self._cancelled)


def _replay(
    graph: VectorGraph, journal: list[tuple[np.ndarray, np.ndarray | None]], cancelled: threading.Event | None = None
) -> None:
    """Journalled writes, in order: removals remove; upserts re-insert whole."""
    for keys, vectors in journal:
        if cancelled is not None and cancelled.is_set():
            return
        graph.remove(keys)
        if vectors is not None:
            graph.add(keys, vectors, threads=1)


class _Indexed(Protocol):
    """What :class:`GraphIndexer` needs of the index (all called under ``_lock``)."""

    _lock: Any
    _graph: VectorGraph | None

    def unindexed_keys(self) -> np.ndarray: ...
    def rows_of_keys(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def take_unindexed(self, keys: np.ndarray) -> None: ...


class GraphIndexer:
    """Inserts into ``graph`` the rows the index has that it lacks, a few at a time under
    the index's lock, on another thread, until none are left or the index switches to
    another graph; copies a viewed (memory-mapped) graph first, outside the lock."""

    def __init__(self, index: _Indexed, graph: VectorGraph) -> None:
        self._index = index
        self._graph = graph
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lichen-graph-indexer", daemon=True)
        _live.add(self)
        self._thread.start()

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def _run(self) -> None:
        index, graph = self._index, self._graph
        try:
            copy = graph.copy_of_view()  # None for a graph already owned
            if copy is not None:
                with index._lock:
                    if index._graph is not graph or self._cancelled.is_set():
                        return
                    graph.adopt_copy(copy)
            while not self._cancelled.is_set():
                with index._lock:
                    if index._graph is not graph or self._cancelled.is_set():
                        return
                    keys = index.unindexed_keys()[:INDEXER_CHUNK_ROWS]
                    if not len(keys):
                        return
                    found, vectors = index.rows_of_keys(keys)
                    graph.add(found, vectors, threads=1)
                    index.take_unindexed(keys)
                time.sleep(0.001)  # let a waiting query take the lock
        except BaseException as exc:  # noqa: BLE001 - the rows stay scored exactly
            self.error = exc
        finally:
            self._finished.set()
