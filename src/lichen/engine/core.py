"""The in-memory index: documents column by column, embeddings in one float32 matrix.

:class:`IndexCore` owns storage and search and nothing else: it never embeds text (the
session hands it vectors) and never touches disk or network. Every public method takes
the core's lock, so one core can be shared by threads (LangChain runs sync methods in a
thread pool) and by the async faces of a session.

Search is exact (one matrix-vector product) until the index reaches
:data:`APPROXIMATE_THRESHOLD` documents; from there a :class:`~lichen.engine.graph.VectorGraph`
proposes candidates and the exact float32 cosine re-ranks them, so returned scores stay
exact and only recall can differ. The threshold, the candidate counts and the filter
planner's cut-off were chosen by measurement (``benchmarks/bench_scale.py``, RESULTS.md).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import CorruptDataError, InvalidArgumentError
from .._types import DocumentInfo, QueryResultDocument
from .._util import copy_metadata
from .._validation import as_vectors
from ..format.columns import EncodedColumn
from ..format.graph_edits import GraphEdits
from ..format.snapshot import IndexSnapshot
from .calibration import (
    DEFAULT_RECALL_TARGET,
    EXTRA_KEY,
    Calibrator,
    GraphCalibration,
    check_recall_target,
    sample_for_calibration,
)
from .columns import MetadataColumns
from .filters import CompiledFilter, compile_filter
from .fusion import DEFAULT_FUSION, fuse_rankings, rank_window_size
from .graph import VectorGraph
from .graph_build import BUILD_CHUNK_ROWS, GraphBuild, GraphIndexer
from .keyword import KeywordIndex
from .rows import INITIAL_CAPACITY, Column, Vectors

__all__ = ["IndexCore", "top_k_indices", "APPROXIMATE_THRESHOLD"]

#: From this many documents on, queries go through the graph (unless forced either way).
#: Measured (RESULTS.md, "Scale"): at 10k the scan (0.16-0.27 ms) beats the graph, at 50k
#: the graph (~0.5-0.8 ms) beats the scan (1.5-2.8 ms); below the threshold a graph would
#: only cost build time and memory for no gain, and exact results are worth keeping.
APPROXIMATE_THRESHOLD = 50_000
#: Graph candidates fetched: ``max(CANDIDATE_FLOOR, CANDIDATE_FACTOR * top_k)`` (more under
#: a filter). 128 held recall@10 above 0.98 at 1M documents for ~0.45 ms with an M=16 graph
#: (96: 0.981, 256: 0.987); with M=32 it gives 0.984 on msmarco queries at 1M, 1.000 at 100k.
CANDIDATE_FLOOR = 128
CANDIDATE_FACTOR = 4
#: Of those, the best ``max(RERANK_FLOOR, CANDIDATE_FACTOR * top_k)`` by the graph's own
#: (int8) distance are re-ranked in float32. The graph orders its candidates well enough
#: that re-ranking 64 (or even 40) rather than 128 changed no top-10 at 50k-1M, on real
#: queries or synthetic probes (``bench_graph_beam.py``, RESULTS.md), while it halves the
#: rows read: a loaded 1M index reads each with a ``pread`` (2.62 -> 2.30 ms a search).
RERANK_FLOOR = 64
#: A filter letting through at most this many rows is answered by an exact scan of those
#: rows: gathering 20k rows costs about as much as a graph search that over-fetches.
EXACT_FILTER_ROWS = 20_000
#: Most graph candidates fetched for a filtered query before giving up and scanning.
MAX_FILTERED_FETCH = 4_096
#: A graph over at most this many documents is built inline (well under a second); a
#: bigger one on another thread while queries scan exactly (see graph_build).
SYNC_BUILD_ROWS = 2_048
#: Deleted or replaced keys still in the graph beyond this fraction trigger a rebuild.
REBUILD_TOMBSTONE_FRACTION = 0.25
#: A graph that came from outside is trusted only if this many randomly drawn stored rows
#: find themselves (or an identical twin) among its first GRAPH_SELF_CHECK_DEPTH
#: candidates of a GRAPH_SELF_CHECK_BEAM-wide search, missing at most this share of them.
#: Sound graphs of msmarco-blend vectors missed 0-1 rows at 100k and 0-2 at 1M in 200
#: draws each, never more (RESULTS.md, "Untrusted graphs"); one with random links misses
#: nearly every row. A narrow beam is enough to find a stored row: 3 ms at 100k, 6 ms at
#: 1M, where the query beam (128) took 7 and 13.
GRAPH_SELF_CHECK_ROWS = 24
GRAPH_SELF_CHECK_DEPTH = 10
GRAPH_SELF_CHECK_BEAM = 32
GRAPH_SELF_CHECK_MISSES = 0.25
#: A read of more rows than this from a lazily loaded index decodes its columns whole
#: (one ``orjson.loads`` each) rather than row by row (a ``pread`` and a decode each).
DECODE_WHOLE_ROWS = 2_048
#: Deleted rows are compacted away once they are this share of an index's rows (and at
#: least COMPACT_MIN_DEAD of them): until then a delete marks a row, an O(1) write. Rows
#: of a loaded artifact are never compacted (that would copy the mapped matrix).
COMPACT_DEAD_FRACTION = 0.25
COMPACT_MIN_DEAD = 64
#: A memory-mapped graph lacking at most this many rows is left mapped: those rows are
#: scored exactly beside its candidates (a few hundred microseconds), where inserting them
#: would first copy the whole graph into memory (a second and ~1 GB at 1M rows).
VIEWED_GRAPH_SLACK_ROWS = 1_024


def _check_page(limit: Any, offset: Any) -> None:
    if limit is not None and (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 0):
        raise InvalidArgumentError(f"limit must be a non-negative integer or None, got {limit!r}")
    if not isinstance(offset, (int, np.integer)) or isinstance(offset, bool) or offset < 0:
        raise InvalidArgumentError(f"offset must be a non-negative integer, got {offset!r}")


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first, ties broken by position.

    ``argpartition`` makes this O(n) rather than a full sort; only the ``k`` winners are
    sorted.
    """
    n = scores.shape[0]
    if k >= n:
        chosen = np.arange(n)
    else:
        chosen = np.argpartition(-scores, k - 1)[:k]
    order = np.lexsort((chosen, -scores[chosen]))
    return chosen[order]


class IndexCore:
    """Columnar store plus exact top-k search; see the module docstring for its scope."""

    def __init__(self, dimension: int | None = None, *, approximate: bool | None = None) -> None:
        self._lock = threading.RLock()
        self.approximate = approximate
        """``None``: approximate search from :data:`APPROXIMATE_THRESHOLD` documents on;
        ``True`` / ``False``: always / never (``QueryOptions(exact=True)`` still scans)."""
        self._dimension = dimension
        # Rows are physical and never move (see rows.py): a loaded artifact's rows (its
        # encoded columns, decoded row by row, and its mapped matrix) then rows written
        # since; a delete marks its row dead; the dead are compacted away now and then.
        self._ids = Column()
        self._texts = Column()
        self._metadata = Column()
        self._vectors = Vectors(dimension or 0)
        self._dead: np.ndarray | None = None  # per physical row; None: none dead
        self._dead_count = 0
        self._position_map: dict[str, int] | None = {}  # id -> physical row of live ids
        # Both derived structures are built on first use: a loaded 100k-document index
        # that is never filtered (or never searched by keyword) never pays for them.
        self._columns: MetadataColumns | None = None
        self._keywords: KeywordIndex | None = None
        # Stable uint64 key per physical row, ascending with the rows (new rows get fresh,
        # larger keys; compaction keeps the order), so key -> row is a binary search.
        # The graph knows documents by key because rows shift when compacted.
        self._keys = np.zeros(INITIAL_CAPACITY, dtype=np.uint64)
        self._next_key = 0
        self._graph: VectorGraph | None = None
        # Keys of rows the graph does not hold (yet): added or replaced since it was built,
        # or a server's insertions into a loaded graph. Graph queries score them exactly
        # beside the graph's candidates; a background indexer inserts them a few at a time.
        self._unindexed: set[int] = set()
        self._unindexed_keys: np.ndarray | None = np.zeros(0, dtype=np.uint64)  # sorted, cached
        self._indexer: GraphIndexer | None = None
        # The graph being built on another thread (see graph_build), if any.
        self._build: GraphBuild | None = None
        # How wide the graph's searches must be for the recall it promises (measured when
        # it was built, see calibration); None: the historical defaults.
        self._calibration: GraphCalibration | None = None
        self.graph_fallback: str | None = None
        """Why a stored graph was set aside (it failed its self-check after loading, so
        queries scanned exactly until a new one was built), or why building one failed;
        ``None`` while no graph has been refused."""

    # ------------------------------------------------------------------ properties
    @property
    def dimension(self) -> int | None:
        return self._dimension

    def __len__(self) -> int:
        """Live documents (rows not deleted)."""
        return len(self._ids) - self._dead_count

    @property
    def _phys(self) -> int:
        """Physical rows, dead ones included."""
        return len(self._ids)

    def _live(self) -> np.ndarray | None:
        """Which physical rows are live, or ``None`` when all are (the caller holds the
        lock)."""
        return None if not self._dead_count else ~self._dead[: self._phys]

    def __contains__(self, doc_id: object) -> bool:
        with self._lock:
            return doc_id in self._positions

    @property
    def _positions(self) -> dict[str, int]:
        """id -> row, built on first use: a loaded index that only answers queries never
        needs it (a third of a second per million ids). The caller holds the lock."""
        if self._position_map is None:
            ids = self._ids.all()
            if self._dead_count:
                live = self._live()
                positions = {doc_id: row for row, doc_id in enumerate(ids) if live[row]}
            else:
                positions = dict(zip(ids, range(len(ids))))
            if len(positions) != len(self):
                raise CorruptDataError("the index holds duplicate ids")
            self._position_map = positions
        return self._position_map

    @property
    def has_graph(self) -> bool:
        """Whether the approximate-search graph is built (it is built on demand)."""
        return self._graph is not None

    def uses_graph(self, exact: bool = False) -> bool:
        """Whether a query would go through the graph: the planner's first decision."""
        if exact or self.approximate is False or len(self) == 0:
            return False
        return self.approximate is True or len(self) >= APPROXIMATE_THRESHOLD

    def prepare_graph(self) -> None:
        """Have the graph now if queries will use one (waiting for a build under way, or
        building it here: ~35 s per 100k documents, ~14 minutes per 1M on 2 cores)
        rather than let queries scan exactly until a background build is done."""
        self._await_build()
        with self._lock:
            if self.uses_graph():
                self._ensure_graph()

    def wait_for_graph(self, timeout: float | None = None) -> bool:
        """Start the graph's build if queries will use one and it is missing, and wait up
        to ``timeout`` seconds for it, without blocking queries; whether it is ready."""
        with self._lock:
            if not self.uses_graph():
                return False
            if self._graph is None:
                self._start_build()
            build = self._build
        if build is not None:
            build.wait(timeout)
        with self._lock:
            return self._graph is not None

    def _await_build(self) -> None:
        """Wait, outside the lock, until no build is under way (the build needs the lock
        to finish)."""
        while True:
            with self._lock:
                build = self._build
                if build is None or not build.running:
                    return
            build.wait()

    @property
    def matrix(self) -> np.ndarray:
        """The live embeddings, read-only, in the order :meth:`get` lists documents (a view
        where possible, else a copy)."""
        with self._lock:
            view = self._vectors.all()
            live = self._live()
            if live is not None:
                view = view[live]
            view = view.view()
            view.flags.writeable = False
            return view

    # ------------------------------------------------------------------ writes
    def upsert(self, docs: Sequence[DocumentInfo], vectors: np.ndarray) -> tuple[int, int]:
        """Insert new ids and overwrite existing ones; return ``(added, updated)``.

        ``docs`` must already be validated (unique, well-formed ids); ``vectors`` are
        checked here and normalised, so nothing is mutated if they are bad. Costs what it
        writes: a replaced document keeps its row (a loaded artifact's read-only row gets
        an override), new ones are appended (see rows.py).
        """
        if not docs:
            return 0, 0
        with self._lock:
            vectors = as_vectors(vectors, self._dimension, "embedding")
            if vectors.shape[0] != len(docs):
                raise InvalidArgumentError(f"got {vectors.shape[0]} vectors for {len(docs)} documents")
            if self._dimension is None:
                self._dimension = vectors.shape[1]
                self._vectors = Vectors(self._dimension)
            positions = self._positions
            existing = [positions.get(doc.id) for doc in docs]
            in_place = [i for i, row in enumerate(existing) if row is not None]
            new_rows = [i for i, row in enumerate(existing) if row is None]
            if in_place:
                rows = [existing[i] for i in in_place]
                self._vectors.set(rows, vectors[in_place])
                keys = self._keys[rows]
                if self._graph is not None:
                    # Same key, new vector: the old node becomes a tombstone, the row is
                    # scored exactly until the indexer re-inserts it.
                    self._graph.remove(keys)
                    self._mark_unindexed(keys)
                if self._build is not None:
                    self._build.record_upsert(keys, vectors[in_place])
                for i, row in zip(in_place, rows):
                    self._texts.set(row, docs[i].text)
                    self._metadata.set(row, copy_metadata(docs[i].metadata or {}))
                if self._columns is not None:
                    self._columns.replace(rows, [self._metadata[row] for row in rows])
                if self._keywords is not None:
                    self._keywords.replace(rows, [self._texts[row] for row in rows])
            if new_rows:
                self._append([docs[i] for i in new_rows], vectors[new_rows])
            self._drop_graph_if_worn()
            self._keep_graph_current()
            return len(new_rows), len(in_place)

    def _append(self, docs: Sequence[DocumentInfo], vectors: np.ndarray) -> None:
        """New physical rows at the end, with fresh keys (the caller holds the lock)."""
        start = self._vectors.append(vectors)
        count = len(docs)
        self._reserve(start + count)
        keys = np.arange(self._next_key, self._next_key + count, dtype=np.uint64)
        self._keys[start : start + count] = keys
        self._next_key += count
        if self._graph is not None:
            self._mark_unindexed(keys)
        if self._build is not None:
            self._build.record_upsert(keys, vectors)
        positions = self._positions
        for offset, doc in enumerate(docs):
            positions[doc.id] = start + offset
            self._ids.append(doc.id)
            self._texts.append(doc.text)
            self._metadata.append(copy_metadata(doc.metadata or {}))
        if self._columns is not None:
            self._columns.append(self._metadata[start:])
        if self._keywords is not None:
            self._keywords.append(self._texts[start:])

    def delete(self, ids: Sequence[str]) -> int:
        with self._lock:
            positions = self._positions
            doomed = sorted({positions[i] for i in ids if i in positions})
            if not doomed:
                return 0
            self._kill(np.asarray(doomed, dtype=np.int64))
            self._drop_graph_if_worn()
            self._compact_if_worth_it()
            return len(doomed)

    def _kill(self, rows: np.ndarray) -> None:
        """Mark live physical ``rows`` dead (the caller holds the lock): O(rows)."""
        self._reserve(self._phys)
        self._dead[rows] = True
        self._dead_count += len(rows)
        positions = self._positions
        for row in rows.tolist():
            del positions[self._ids[row]]
        removed = self._keys[rows]
        if self._graph is not None:
            self._graph.remove(removed)
        if self._unindexed:
            self._unindexed.difference_update(removed.tolist())
            self._unindexed_keys = None
        if self._build is not None:
            self._build.record_removal(removed)
        if self._keywords is not None:
            self._keywords.kill(rows)

    def _compact_if_worth_it(self) -> None:
        """Drop dead rows once they are a quarter of an index held in memory (amortised
        O(1) a delete); a loaded artifact's rows stay where they are."""
        if (
            self._dead_count < COMPACT_MIN_DEAD
            or self._dead_count < COMPACT_DEAD_FRACTION * self._phys
            or self._vectors.base_rows
        ):
            return
        keep = self._live()
        phys = self._phys
        self._vectors.compact(keep)
        for column in (self._ids, self._texts, self._metadata):
            column.compact(keep)
        self._keys = self._keys[:phys][keep].copy()
        self._dead, self._dead_count = None, 0
        self._position_map = None  # rows moved: rebuilt on next use
        if self._columns is not None:
            self._columns.keep(keep)
        if self._keywords is not None:
            self._keywords.keep(keep)

    def apply_changes(self, deletions: Sequence[str], docs: Sequence[DocumentInfo], vectors: np.ndarray) -> None:
        """Delete ``deletions``, then upsert ``docs`` with their ``vectors``, as one step:
        a concurrent query sees the index before or after, never between (another
        version's changes arriving, e.g. a refreshed long-term index). ``docs`` must be
        validated, as for :meth:`upsert`; nothing changes if ``vectors`` are bad. Costs
        what it changes, even on a loaded million-document index."""
        with self._lock:
            if len(docs):
                vectors = as_vectors(vectors, self._dimension, "embedding")
            self.delete(deletions)
            self.upsert(docs, vectors)

    def delete_matching(self, filter: dict[str, Any], ids: Sequence[str] | None = None) -> int:
        """Delete the documents matching ``filter`` (among ``ids`` when given) in one step
        under the lock, so a concurrent write cannot slip between the match and the
        delete; returns how many were deleted."""
        compiled = compile_filter(filter)
        with self._lock:
            doomed = [self._ids[p] for p in self._select(ids, compiled)]
            return self.delete(doomed) if doomed else 0

    def clear(self) -> int:
        with self._lock:
            return self.delete(list(self._positions))

    def _metadata_columns(self) -> MetadataColumns:
        """Filterable columns over every physical row (dead ones too: matches are ANDed
        with the live rows)."""
        if self._columns is None:
            # Texts by callable: $document filters read them only when they need them.
            self._columns = MetadataColumns(self._metadata.all(), texts=self._texts.all)
        return self._columns

    def _keyword_index(self) -> KeywordIndex:
        if self._keywords is None:
            self._keywords = KeywordIndex()
            self._keywords.append(self._texts.all())
            if self._dead_count:
                self._keywords.kill(np.flatnonzero(self._dead[: self._phys]))
        return self._keywords

    def _decode_documents(self) -> None:
        """Decode a loaded artifact's columns whole, before reading more rows than
        decoding one at a time is worth. The caller holds the lock."""
        for column in (self._ids, self._texts, self._metadata):
            column.decode()

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` physical keys and dead marks (amortised growth; also the
        copy of a loaded artifact's read-only keys at the first write)."""
        capacity = self._keys.shape[0]
        if rows <= capacity and self._keys.flags.writeable and self._dead is not None:
            return
        size = max(rows, capacity + capacity // 2, INITIAL_CAPACITY) if rows > capacity else capacity
        phys = self._phys
        keys = np.zeros(size, dtype=np.uint64)
        keys[:phys] = self._keys[:phys]
        self._keys = keys
        dead = np.zeros(size, dtype=bool)
        if self._dead is not None:
            dead[:phys] = self._dead[:phys]
        self._dead = dead

    # ------------------------------------------------------------------ keeping the graph current
    # No query waits for the graph: while it is missing or being rebuilt, queries scan
    # exactly; rows it does not hold yet are scored exactly beside its candidates. Builds
    # and insertions run on other threads (graph_build) and take the lock only briefly.

    def _mark_unindexed(self, keys: np.ndarray) -> None:
        self._unindexed.update(keys.tolist())
        self._unindexed_keys = None

    def unindexed_keys(self) -> np.ndarray:
        """Ascending keys of the rows the graph does not hold yet (the caller holds the
        lock)."""
        if self._unindexed_keys is None:
            self._unindexed_keys = np.fromiter(sorted(self._unindexed), dtype=np.uint64, count=len(self._unindexed))
        return self._unindexed_keys

    def take_unindexed(self, keys: np.ndarray) -> None:
        """The indexer inserted these (the caller holds the lock)."""
        self._unindexed.difference_update(keys.tolist())
        self._unindexed_keys = None

    def _keep_graph_current(self) -> None:
        """After a write: rows the graph lacks go in on another thread, a few at a time
        (a mapped graph waits until it lacks more than VIEWED_GRAPH_SLACK_ROWS), or, once
        they are as many as half the graph, a fresh graph is built."""
        graph = self._graph
        if graph is None or not self._unindexed or (self._build is not None and self._build.running):
            return
        if len(self._unindexed) > max(SYNC_BUILD_ROWS, len(graph) // 2):
            self._start_build(rebuild=True)
        elif graph.viewed and len(self._unindexed) <= VIEWED_GRAPH_SLACK_ROWS:
            return
        elif self._indexer is None or not self._indexer.running:
            self._indexer = GraphIndexer(self, graph)

    def _drop_graph_if_worn(self) -> None:
        """Forget the graph of an index that shrank below the threshold; rebuild, in the
        background, one mostly made of tombstones (queries keep it until the new one is
        in: its answers are exact, only its recall wears)."""
        graph = self._graph
        if graph is None:
            return
        if not self.uses_graph():
            self._set_graph(None)
            if self._build is not None:
                self._build.cancel()
                self._build = None
        elif graph.tombstone_fraction > REBUILD_TOMBSTONE_FRACTION:
            self._start_build(rebuild=True)

    def _set_graph(self, graph: VectorGraph | None) -> None:
        """Switch graphs (the caller holds the lock): a new graph holds every row."""
        if self._indexer is not None:
            self._indexer.cancel()
            self._indexer = None
        self._graph = graph
        self._unindexed = set()
        self._unindexed_keys = np.zeros(0, dtype=np.uint64)

    def _start_build(self, *, rebuild: bool = False) -> None:
        """Begin building the graph queries will use (the caller holds the lock): inline
        for a small index, else on another thread (:mod:`.graph_build`), while queries
        scan exactly, or keep the current graph when ``rebuild``."""
        if self._build is not None and (self._build.running or self._build.error is not None):
            return  # under way, or failed: queries scan; graph_fallback says why
        if len(self) <= SYNC_BUILD_ROWS:
            self._build_inline()
            return
        self._build = GraphBuild(
            self._live_keys(), self._rows_of_keys, self._adopt_built, self._lock, dimension=self._dimension or 0
        )

    def _live_keys(self) -> np.ndarray:
        """The live rows' keys, ascending (a copy)."""
        keys = self._keys[: self._phys]
        live = self._live()
        return (keys if live is None else keys[live]).copy()

    def _build_inline(self) -> None:
        """Build the graph here, over every live row (the caller holds the lock). Past
        :data:`SYNC_BUILD_ROWS` it is a push's (or ``prepare_graph``'s) build of a big
        index, calibrated like a background build so that the artifact carries what its
        queries need (a few seconds at 1M against minutes of building)."""
        keys = self._live_keys()
        matrix, live = self._vectors.all(), self._live()
        rows = matrix if live is None else matrix[live]
        if len(keys) <= SYNC_BUILD_ROWS:
            self._set_graph(VectorGraph.build(rows, keys))
            self._calibration = None
            return
        calibrator = Calibrator(*sample_for_calibration(keys, self.rows_of_keys))
        graph = None
        for start in range(0, len(keys), BUILD_CHUNK_ROWS):  # a chunk at a time: no copy of the matrix
            chunk_keys, chunk_rows = keys[start : start + BUILD_CHUNK_ROWS], rows[start : start + BUILD_CHUNK_ROWS]
            calibrator.observe(chunk_keys, chunk_rows)
            kept = ~calibrator.holds_out(chunk_keys)
            if graph is None:
                graph = VectorGraph.build(chunk_rows[kept], chunk_keys[kept])
            else:
                graph.add(chunk_keys[kept], chunk_rows[kept], threads=0)
        assert graph is not None
        self._calibration = calibrator.measure(graph)
        graph.add(calibrator.sample_keys, calibrator.sample_vectors, threads=0)
        calibration = self._calibration
        self._set_graph(graph)
        self._calibration = calibration

    def rows_of_keys(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys among ``keys`` the index holds, and their rows' vectors (copies); the
        caller holds the lock."""
        rows = self._rows_for_keys(keys)
        return self._keys[rows].copy(), np.array(self._pool_rows(rows), dtype=np.float32)

    _rows_of_keys = rows_of_keys

    def _adopt_built(self, graph: VectorGraph, calibration: GraphCalibration | None) -> None:
        """Called by the build, under the lock, with the journal replayed."""
        self._build = None
        if self.uses_graph():
            self._set_graph(graph)
            self._calibration = calibration

    def _graph_for_query(self) -> VectorGraph | None:
        """The graph to search now, or ``None``: scan exactly while one is being built.
        A build that failed is reported once in :attr:`graph_fallback`."""
        if self._graph is not None:
            if self._unindexed and (self._indexer is None or not self._indexer.running):
                self._keep_graph_current()  # e.g. a loaded graph's server insertions
        else:
            self._start_build()
            build = self._build
            if build is not None and build.error is not None and self.graph_fallback is None:
                self.graph_fallback = f"building the graph failed ({build.error}); queries scan every vector"
                warnings.warn(self.graph_fallback, RuntimeWarning, stacklevel=4)
        return self._graph

    def _ensure_graph(self) -> VectorGraph:
        """The graph, holding every row, built or completed here if need be (a push
        needs it whole). The caller holds the lock and has waited for any build."""
        if self._build is not None:
            self._build.cancel()  # started since the caller waited, or failed
            self._build = None
        if self._graph is None:
            self._build_inline()
        elif self._unindexed:
            if self._indexer is not None:
                self._indexer.cancel()
                self._indexer = None
            keys, vectors = self.rows_of_keys(self.unindexed_keys())
            self._graph.add(keys, vectors, threads=0)
            self.take_unindexed(keys)
        assert self._graph is not None
        return self._graph

    def _rows_for_keys(self, keys: np.ndarray) -> np.ndarray:
        """Live row of each key, in the keys' order; a key with no live row (a graph may
        still return a deleted one) is dropped rather than trusted."""
        n = self._phys
        if n == 0:
            return np.empty(0, np.int64)
        if int(self._keys[n - 1]) == n - 1:
            # n strictly ascending keys ending at n - 1 are 0..n-1 (nothing compacted
            # away but the last ones): key and row coincide. The binary search would cost
            # ~0.1 ms of cache misses a query over a 1M index's 8 MB of keys.
            rows = keys[keys < n].astype(np.int64)
        else:
            rows = np.minimum(np.searchsorted(self._keys[:n], keys), n - 1)
            rows = rows[self._keys[rows] == keys]
        if self._dead_count:
            rows = rows[~self._dead[rows]]
        return rows

    # ------------------------------------------------------------------ reads
    def get(
        self,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | CompiledFilter | None = None,
        *,
        include_embeddings: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        """Documents by id (in the order asked, unknown ids skipped), by filter, or all
        (in insertion order), then the page ``[offset : offset + limit]`` of those.

        Insertion order is stable for paging: replacing a document keeps its place and a
        delete closes the gap without reordering, so pages only shift by what was
        deleted before them."""
        _check_page(limit, offset)
        compiled = None if filter is None else compile_filter(filter)
        with self._lock:
            positions = self._select(ids, compiled, offset, None if limit is None else offset + limit)
            if len(positions) > DECODE_WHOLE_ROWS:
                self._decode_documents()
            return [
                DocumentInfo(
                    id=self._ids[p],
                    text=self._texts[p],
                    metadata=copy_metadata(self._metadata[p]),
                    embedding=self._pool_rows(np.asarray([p]))[0].tolist() if include_embeddings else None,
                )
                for p in positions
            ]

    def _select(
        self, ids: Sequence[str] | None, compiled: CompiledFilter | None, start: int = 0, end: int | None = None
    ) -> Sequence[int]:
        """Row positions of ``ids`` (or all rows) that pass ``compiled``, sliced; the
        caller holds the lock."""
        if compiled is not None and compiled.matches_all:
            compiled = None
        if ids is not None:
            known = self._positions
            positions = [known[i] for i in ids if i in known]
            if compiled is not None and positions:
                mask = compiled.evaluate(self._metadata_columns())
                positions = [p for p in positions if mask[p]]
            return positions[start:end]
        live = self._live()
        if compiled is not None:
            mask = compiled.evaluate(self._metadata_columns())
            return np.flatnonzero(mask if live is None else mask & live)[start:end].tolist()
        if live is None:
            return range(self._phys)[start:end]
        return np.flatnonzero(live)[start:end].tolist()

    def search(
        self,
        query_vector: np.ndarray | None,
        query_text: str,
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        alpha: float = 1.0,
        fusion: str = DEFAULT_FUSION,
        exact: bool = False,
        recall_target: float | None = None,
    ) -> list[QueryResultDocument]:
        """Top-k by cosine similarity, optionally fused with BM25 (``alpha < 1``).

        Exact below the threshold or when ``exact``; otherwise graph candidates re-ranked
        exactly (see the module docstring and :meth:`uses_graph`), as many as the graph's
        calibration says ``recall_target`` (default: the index's) needs, or an exact scan
        where the graph cannot promise it."""
        check_recall_target(recall_target)
        compiled = None if filter is None else compile_filter(filter)
        if compiled is not None and compiled.matches_all:
            compiled = None
        if query_vector is not None:
            query_vector = as_vectors(query_vector, self._dimension, "query embedding")[0]
        with self._lock:
            n = len(self)
            if n == 0 or top_k <= 0:
                return []
            live = self._live()
            mask = None if compiled is None else compiled.evaluate(self._metadata_columns())
            if mask is not None and live is not None:
                mask = mask & live
            passing = n if mask is None else int(np.count_nonzero(mask))
            if passing == 0:
                return []
            approximate = self.uses_graph(exact) and query_vector is not None and (
                mask is None or passing > EXACT_FILTER_ROWS
            )
            pool = None
            graph = self._graph_for_query() if approximate and alpha > 0.0 else None
            setting = None if graph is None else self._search_setting(top_k, recall_target)
            if graph is not None and setting is not None:
                count, rerank = setting
                if alpha < 1.0:  # fusion ranks the best rank_window_size(top_k) rows by vector
                    count = max(count, rank_window_size(top_k))
                pool = self._graph_candidates(graph, query_vector, mask, passing, count, top_k)
            allowed = None if mask is None else np.flatnonzero(mask)
            if alpha >= 1.0:
                if pool is not None:
                    pool = self._with_unindexed(pool[:rerank], query_vector, mask)
                    if self._vectors.file is not None:  # a loaded big artifact: read just these
                        return self._rank(pool, self._pool_rows(pool) @ query_vector, top_k)
                return self._vector_search(query_vector, allowed if pool is None else pool, top_k)
            if pool is not None:
                pool = self._with_unindexed(pool, query_vector, mask)
            return self._hybrid_search(query_vector, query_text, allowed, top_k, alpha, fusion, pool)

    def _search_setting(self, top_k: int, recall_target: float | None) -> tuple[int, int] | None:
        """``(candidates, rerank)`` for a graph query, or ``None``: the graph cannot
        promise ``recall_target`` within the latency budget, scan exactly (see
        :mod:`.calibration`). An uncalibrated graph gets the historical defaults."""
        floor = CANDIDATE_FACTOR * top_k
        if self._calibration is None:
            return max(CANDIDATE_FLOOR, floor), max(RERANK_FLOOR, floor)
        choice = self._calibration.choose(DEFAULT_RECALL_TARGET if recall_target is None else recall_target)
        if choice is None:
            return None
        candidates, rerank, _ = choice
        return max(candidates, floor), max(rerank, floor)

    def calibrate_graph(self) -> GraphCalibration | None:
        """Measure the current graph's recall at each search setting now (see
        :mod:`.calibration`) and use the result: for a graph built inline or loaded
        without a calibration. Reads every row once, a chunk at a time under the lock
        (a loaded index's mapped rows stay file-backed); ``None`` without a graph."""
        with self._lock:
            graph = self._graph
            if graph is None:
                return None
            keys = self._live_keys()
            calibrator = Calibrator(*sample_for_calibration(keys, self.rows_of_keys), held_out=False)
        for start in range(0, len(keys), BUILD_CHUNK_ROWS):
            with self._lock:
                found, vectors = self.rows_of_keys(keys[start : start + BUILD_CHUNK_ROWS])
            calibrator.observe(found, vectors)
        calibration = calibrator.measure(graph)
        with self._lock:
            if self._graph is graph:
                self._calibration = calibration
        return calibration

    def recall_estimate(self, recall_target: float | None = None) -> float | None:
        """The recall@10 queries can count on (1.0 when they scan exactly), from the
        graph's calibration; ``None`` for a graph never calibrated (built inline, or
        loaded from an index stored without one)."""
        with self._lock:
            if not self.uses_graph() or self._graph is None and self._build is None:
                return 1.0 if not self.uses_graph() else None
            if self._calibration is None:
                return None
            choice = self._calibration.choose(DEFAULT_RECALL_TARGET if recall_target is None else recall_target)
            return 1.0 if choice is None else choice[2]

    def _graph_candidates(
        self, graph: VectorGraph, query: np.ndarray, mask: np.ndarray | None, passing: int, count: int, needed: int
    ) -> np.ndarray | None:
        """Rows the graph proposes, restricted to the filter's ``mask`` (``passing`` rows
        pass it); ``None`` when a filtered fetch comes back with fewer than ``needed``
        rows (the caller then scans exactly).

        For a filter letting through a fraction ``s`` of the rows, ``count / s`` graph
        neighbours hold ~``count`` matching ones, so the fetch is over-sized by that much
        (capped at :data:`MAX_FILTERED_FETCH`)."""
        if mask is not None:
            count = min(MAX_FILTERED_FETCH, math.ceil(count * len(self) / passing))
        rows = self._rows_for_keys(graph.search(query, count))
        if mask is None:
            return rows
        rows = rows[mask[rows]]
        if rows.size < min(needed, passing):
            return None
        return rows

    def _with_unindexed(self, pool: np.ndarray, query: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """``pool`` plus the rows the graph does not hold yet (those the filter passes),
        the best ``len(pool)`` of them by exact score when they are more: the graph never
        hides a row it has not been given."""
        if not self._unindexed:
            return pool
        rows = self._rows_for_keys(self.unindexed_keys())
        if mask is not None:
            rows = rows[mask[rows]]
        if rows.size > pool.size:
            rows = rows[top_k_indices(self._pool_rows(rows) @ query, max(pool.size, 1))]
        return np.union1d(pool, rows)

    def _pool_rows(self, pool: np.ndarray) -> np.ndarray:
        """The float32 rows of ``pool`` (physical rows). A loaded artifact's come from the
        file (``pread``): mapping them would soon leave the whole matrix resident."""
        return self._vectors.rows(pool)

    def _vector_search(self, query: np.ndarray, candidates: np.ndarray | None, top_k: int) -> list[QueryResultDocument]:
        """Exact scores: of every live row, or of ``candidates`` (the rows a filter lets
        through)."""
        if candidates is None:
            scores = self._all_scores(query)
            positions = top_k_indices(scores, min(top_k, len(self)))
            return self._vector_results(positions, scores[positions])
        if candidates.size * 3 > self._phys:
            # A loose filter: gathering the rows costs more than scoring them all.
            return self._rank(candidates, self._vectors.scores(query)[candidates], top_k)
        return self._rank(candidates, self._pool_rows(candidates) @ query, top_k)

    def _all_scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine of every physical row; dead rows score ``-inf`` (never chosen)."""
        scores = self._vectors.scores(query)
        if self._dead_count:
            scores[self._dead[: self._phys]] = -np.inf
        return scores

    def _rank(self, candidates: np.ndarray, scores: np.ndarray, top_k: int) -> list[QueryResultDocument]:
        """The best ``top_k`` of ``candidates`` by their ``scores``."""
        winners = top_k_indices(scores, top_k)
        return self._vector_results(candidates[winners], scores[winners])

    def _vector_results(self, positions: np.ndarray, scores: np.ndarray) -> list[QueryResultDocument]:
        # Inlined rather than per-hit _result calls: at 10k documents this Python is a
        # tenth of an exact search (tolist() already yields Python floats).
        ids, texts, metadata = self._ids, self._texts, self._metadata
        return [
            QueryResultDocument(ids[p], texts[p], copy_metadata(metadata[p]), s, s)
            for p, s in zip(positions.tolist(), scores.tolist())
        ]

    def _hybrid_search(
        self,
        query: np.ndarray | None,
        text: str,
        candidates: np.ndarray | None,
        top_k: int,
        alpha: float,
        fusion: str,
        vector_pool: np.ndarray | None = None,
    ) -> list[QueryResultDocument]:
        """Fused ranking over ``candidates`` (all rows when ``None``). With a
        ``vector_pool`` (graph candidates) only those rows get a vector score and the
        fusion runs over them plus the best keyword matches: exact scores, approximate
        vector ranking."""
        n = self._phys
        keyword_scores = self._keyword_index().scores(text)
        live = self._live()
        if candidates is None and live is not None:
            candidates = np.flatnonzero(live)
        if vector_pool is not None:
            allowed = np.arange(n) if candidates is None else candidates
            matched = allowed[keyword_scores[allowed] > 0]
            best_keywords = matched[top_k_indices(keyword_scores[matched], rank_window_size(top_k))]
            candidates = np.union1d(vector_pool, best_keywords)
        if query is None:
            vector_scores = np.zeros(n, dtype=np.float32)
        elif vector_pool is not None:
            # Rows outside the pool never reach the fusion; pool rows get exact scores.
            vector_scores = np.full(n, -np.inf, dtype=np.float32)
            vector_scores[candidates] = self._pool_rows(candidates) @ query
        else:
            vector_scores = self._all_scores(query)
        if candidates is None:
            candidates = np.arange(n)
        if alpha <= 0.0:
            # Pure keyword search: a document sharing no term with the query is no hit.
            candidates = candidates[keyword_scores[candidates] > 0]
            if candidates.size == 0:
                return []
        positions, fused = fuse_rankings(vector_scores, keyword_scores, candidates, alpha, top_k, method=fusion)
        return [
            self._result(p, float(s), float(vector_scores[p]) if query is not None else None, float(keyword_scores[p]))
            for p, s in zip(positions.tolist(), fused.tolist())
        ]

    def _result(self, position: int, score: float, vector_score: float | None, keyword_score: float | None) -> QueryResultDocument:
        return QueryResultDocument(
            id=self._ids[position],
            text=self._texts[position],
            metadata=copy_metadata(self._metadata[position]),
            score=score,
            vector_score=vector_score,
            keyword_score=keyword_score,
        )

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, name: str, model_id: str) -> IndexSnapshot:
        """A copy to store. An index big enough for approximate search takes its graph
        along (built now if needed, or waited for if a build is under way), so whoever
        loads it never rebuilds it."""
        self._await_build()
        with self._lock:
            graph = self._ensure_graph() if self.uses_graph() else None
            live = self._live()
            rows = slice(None) if live is None else live
            matrix = self._vectors.all()[rows]
            return IndexSnapshot(
                name=name,
                model_id=model_id,
                dimension=self._dimension or 0,
                ids=self._live_column(self._ids),
                texts=self._live_column(self._texts),
                metadata=[copy_metadata(m) for m in self._live_column(self._metadata)],
                matrix=np.array(matrix, dtype=np.float32),
                keys=None if graph is None else self._live_keys(),
                graph=None if graph is None else graph.to_bytes(),
                graph_tombstones=0 if graph is None else graph.removed,
                extra={} if graph is None or self._calibration is None else {EXTRA_KEY: self._calibration.to_json()},
            )

    def _live_column(self, column: Column) -> list[Any]:
        values = column.all()
        live = self._live()
        return list(values) if live is None else [value for value, kept in zip(values, live.tolist()) if kept]

    @classmethod
    def from_snapshot(cls, snapshot: IndexSnapshot, *, approximate: bool | None = None) -> IndexCore:
        """Adopt stored embeddings as they are: no re-embedding, no renormalisation, so a
        resumed index holds bit-identical vectors. The snapshot's rows become the core's
        read-only base (a loaded artifact's mapped matrix and encoded columns are not
        copied, now or at a write); a stored graph is used in place."""
        core = cls(snapshot.dimension or None, approximate=approximate)
        n = snapshot.doc_count
        matrix = np.asarray(snapshot.matrix, dtype=np.float32)
        if matrix.shape != (n, snapshot.dimension):
            raise InvalidArgumentError(f"snapshot matrix has shape {matrix.shape}, expected ({n}, {snapshot.dimension})")
        file_matrix = snapshot.file_matrix if np.ascontiguousarray(matrix) is matrix else None
        core._vectors = Vectors(snapshot.dimension, np.ascontiguousarray(matrix), file_matrix)
        for column, values in ((core._ids, snapshot.ids), (core._texts, snapshot.texts), (core._metadata, snapshot.metadata)):
            # Lists are copied (their owner may change them); encoded columns are read-only.
            column.base = values if isinstance(values, EncodedColumn) else list(values)
        core._position_map = None  # built on first use by id; duplicates are refused then
        core._adopt_graph(snapshot)
        return core

    def _adopt_graph(self, snapshot: IndexSnapshot) -> None:
        n = snapshot.doc_count
        if snapshot.keys is None:
            self._keys = np.arange(max(n, INITIAL_CAPACITY), dtype=np.uint64)
            self._next_key = n
            if snapshot.graph is not None:
                raise CorruptDataError("the index has a graph section but no keys section")
            return
        keys = np.asarray(snapshot.keys, dtype=np.uint64)
        if keys.shape != (n,) or (n > 1 and not (keys[1:] > keys[:-1]).all()):
            raise CorruptDataError(f"the index's keys section is not {n} ascending keys")
        self._keys = keys
        self._next_key = int(keys[-1]) + 1 if n else 0
        if snapshot.graph is not None and self._dimension:
            edits = GraphEdits.of(snapshot)
            graph = VectorGraph.from_buffer(
                snapshot.graph, self._dimension, keys=keys, edits=edits, release=snapshot.graph_release,
                label=f"index {snapshot.name!r}", layout=snapshot.graph_layout,
            )
            problem = self._self_check(graph, edits)
            if problem is not None:
                self.graph_fallback = f"index {snapshot.name!r}: {problem}"
                warnings.warn(
                    f"{self.graph_fallback}; its queries scan every vector until a new graph is built",
                    RuntimeWarning, stacklevel=4,
                )
                return
            # A server's deferred edits cost a load nothing: the removals are written down
            # on the (mapped) graph, the inserted rows scored exactly until indexed.
            graph.remove(edits.removals)
            self._graph = graph
            self._calibration = GraphCalibration.from_json(snapshot.extra.get(EXTRA_KEY))
            if len(edits.insertions):
                self._mark_unindexed(edits.insertions)

    def _self_check(self, graph: VectorGraph, edits: GraphEdits) -> str | None:
        """Why a graph that came from outside cannot be trusted, or ``None``. A graph can be
        well formed and still wrong (random links, another index's vectors), and a wrong
        graph answers wrongly without a sound: rows drawn at random (so that no crafted
        graph can know them in advance) must find themselves, or an identical twin,
        through it."""
        missed, drawn = self.self_check_misses(graph, edits)
        if missed > drawn * GRAPH_SELF_CHECK_MISSES:
            return f"the stored graph failed its self-check: {missed} of {drawn} sampled documents could not find themselves through it"
        return None

    def self_check_misses(self, graph: VectorGraph, edits: GraphEdits) -> tuple[int, int]:
        """``(missed, drawn)``: of up to :data:`GRAPH_SELF_CHECK_ROWS` rows drawn at random,
        how many ``graph`` did not lead back to (nor to an identical twin). Rows a server
        changed since the graph was stored (``edits``) are not drawn: the graph does not
        hold their current vectors yet."""
        n = self._phys
        rows = np.random.default_rng().choice(n, size=min(n, 2 * GRAPH_SELF_CHECK_ROWS), replace=False)
        if len(edits):
            changed = np.isin(self._keys[rows], np.union1d(edits.removals, edits.insertions))
            rows = rows[~changed]
        rows = rows[:GRAPH_SELF_CHECK_ROWS]
        if not rows.size:
            return 0, 0
        missed = 0
        for row, vector in zip(rows.tolist(), self._pool_rows(rows)):
            found = self._rows_for_keys(graph.search(vector, GRAPH_SELF_CHECK_DEPTH, beam=GRAPH_SELF_CHECK_BEAM))
            if row in found.tolist():
                continue
            if not found.size or float(np.max(self._pool_rows(found) @ vector)) < 1.0 - 1e-5:
                missed += 1
        return missed, int(rows.size)
