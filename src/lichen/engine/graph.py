"""The approximate-nearest-neighbour graph behind big indexes.

:class:`VectorGraph` wraps a usearch HNSW index over int8-quantised copies of the
engine's vectors. It only *proposes* candidates: the engine re-ranks them with exact
float32 cosine, so scores are always exact and quantisation costs recall only where the
int8 ranking misorders a true top-k member past the candidate cut. usearch was chosen
over faiss-cpu and hnswlib after a side by side on this project's 2-core box (see
``benchmarks/RESULTS.md``): at equal settings all three found the same neighbours in
0.3-0.4 ms, but only usearch removes nodes (sessions delete and update) and serves a
serialised graph straight from a memory-mapped buffer (``view``), so a loaded
million-document artifact costs no rebuild and no copy; it also stores int8, ships
binary wheels (hnswlib needs a compiler here) and is Apache-2.0.

Keys are the engine's stable per-document keys (``uint64``), not row positions, so
deleting a document (which compacts rows) only tombstones its key here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from usearch.index import Index

from .._errors import CorruptDataError
from ..format.graph_edits import GraphEdits
from ..format.graph_layout import GraphLayout, read_graph_layout

__all__ = ["VectorGraph", "GRAPH_CONNECTIVITY", "GRAPH_EXPANSION_ADD", "GRAPH_EXPANSION_SEARCH"]

#: HNSW parameters, chosen by measurement on msmarco-based vectors (RESULTS.md, "Scale"):
#: at 100k, with 128 re-ranked candidates, M=16/beam 128 reached recall@10 0.986 on
#: msmarco's real queries, M=24 0.990, M=32/beam 200 1.000 (0.954 on harder synthetic
#: probes) for +0.05 ms a query. At 1M a build beam of 200 left recall to chance (0.976 or
#: 0.990 by build: misses a wider search beam does not find); 300 reached 0.998 and costs
#: ~2.4x the build time, once, at push; M=48 instead cost 1.5x, 23% more graph memory
#: and reached 0.990 (``bench_graph_params.py``).
GRAPH_CONNECTIVITY = 32
GRAPH_EXPANSION_ADD = 300
GRAPH_EXPANSION_SEARCH = 128
_STORAGE_DTYPE = "i8"
_SERIAL_SEED = 2_048  # nodes inserted one at a time before parallel building starts
_METRIC = "cos"


@contextlib.contextmanager
def _native(label: str, action: str) -> Iterator[None]:
    """usearch reports trouble as ``RuntimeError`` (``"Out of memory!"``, duplicate keys)
    or ``MemoryError``/``ValueError``: a caller of Lichen sees :class:`CorruptDataError`
    naming the index instead."""
    try:
        yield
    except (RuntimeError, MemoryError, ValueError, OverflowError) as exc:
        raise CorruptDataError(f"{label}: graph could not {action}: {exc}") from None


def _new_index(dimension: int, expansion_search: int = GRAPH_EXPANSION_SEARCH) -> Index:
    return Index(
        ndim=dimension,
        metric=_METRIC,
        dtype=_STORAGE_DTYPE,
        connectivity=GRAPH_CONNECTIVITY,
        expansion_add=GRAPH_EXPANSION_ADD,
        expansion_search=expansion_search,
    )


class VectorGraph:
    """An HNSW graph over the engine's vectors, keyed by stable document keys.

    A graph restored from a buffer is a read-only *view* of that buffer (usually a
    memory-mapped artifact); the first write turns it into an owned copy, as the engine
    does with an adopted matrix.
    """

    def __init__(
        self, index: Index, *, viewed: bool = False, removed: int = 0, buffer: Any = None, release: Any = None,
        label: str = "the index",
    ) -> None:
        self._index = index
        self._label = label
        self._viewed = viewed
        self._buffer = buffer  # keeps a viewed buffer alive as long as the index reads it
        self._release = release  # unmaps a viewed buffer's pages once the index is copied
        # Keys removed while the graph is a view (usearch cannot write a mapping): applied
        # when it is copied. Until then a search may return them; the engine drops keys
        # it no longer holds and scores replaced ones by their current vectors.
        self._deferred = np.zeros(0, dtype=np.uint64)
        self.removed = removed
        """Tombstoned keys still inside the graph (deleted or replaced documents)."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, vectors: np.ndarray, keys: np.ndarray, *, threads: int = 0) -> VectorGraph:
        """Build from scratch; ``threads=0`` uses every core (a one-off cost at push or
        at the first query of a big index)."""
        graph = cls(_new_index(vectors.shape[1]))
        keys = np.asarray(keys, dtype=np.uint64)
        # Parallel inserts into a (nearly) empty graph can leave nodes unlinked, so that
        # no search ever reaches them (seen here: a third of searches over a 100-node
        # graph came back short). The first nodes go in one at a time; the rest, with
        # a well-connected graph to join, in parallel.
        seed = min(len(keys), _SERIAL_SEED)
        if seed:
            graph._index.add(keys[:seed], vectors[:seed], threads=1)
        if len(keys) > seed:
            graph._index.add(keys[seed:], vectors[seed:], threads=threads)
        return graph

    @classmethod
    def from_buffer(
        cls, buffer: Any, dimension: int, *, keys: np.ndarray, edits: GraphEdits | None = None,
        release: Any = None, label: str = "the index", layout: GraphLayout | None = None,
    ) -> VectorGraph:
        """Use a serialised graph in place (no copy): ``buffer`` must stay unchanged.
        ``release`` (the snapshot's ``graph_release``) is called once the graph has been
        copied for a write: the mapped pages it walked would otherwise stay resident next
        to the copy (640 MB at 1M documents).

        usearch trusts what it maps, and a checksum proves nothing about who wrote the
        bytes, so before usearch sees them the whole structure is proven sound
        (:func:`~lichen.format.graph_layout.read_graph_layout`) and its nodes must be exactly the
        index's ``keys`` once ``edits`` (a server's pending changes) are applied; anything
        else is a :class:`CorruptDataError` naming ``label``. A ``layout`` the artifact
        reader already proved for this very buffer is not walked again."""
        if layout is None or not layout.proves(buffer):
            layout = read_graph_layout(buffer, dimension, label=label)
        (edits or GraphEdits.none()).check(layout.live_keys, keys, label=label)
        index = _new_index(dimension)
        with _native(label, "be opened"):
            index.view(buffer)
        return cls(index, viewed=True, removed=layout.deleted, buffer=buffer, release=release, label=label)

    def to_bytes(self) -> bytes:
        """The serialised graph, removals included (a view with deferred removals is
        copied first: its buffer still holds the removed nodes)."""
        index = self._writable() if len(self._deferred) else self._index
        return bytes(index.save())

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        """Live keys in the graph (tombstones excluded)."""
        return len(self._index) - len(self._deferred)

    @property
    def tombstone_fraction(self) -> float:
        total = len(self) + self.removed
        return self.removed / total if total else 0.0

    @property
    def viewed(self) -> bool:
        """Whether the graph is still a read-only view of a (mapped) buffer."""
        return self._viewed

    def copy_of_view(self) -> Index | None:
        """An owned copy of a viewed graph's index, made without changing this object, so
        that it can be made outside the engine's lock while the view keeps answering
        (``None`` for a graph that is already owned). Hand it to :meth:`adopt_copy`."""
        if not self._viewed:
            return None
        owned = _new_index(self._index.ndim, self._index.expansion_search)
        with _native(self._label, "be copied"):
            owned.load(self._buffer)
        return owned

    def adopt_copy(self, owned: Index) -> None:
        """Switch a viewed graph to ``owned`` (from :meth:`copy_of_view`), applying the
        removals deferred meanwhile, and hand the mapped pages back to the kernel (640 MB
        at 1M documents would otherwise stay resident next to the copy)."""
        if not self._viewed:
            return
        if len(self._deferred):
            with _native(self._label, "remove documents"):
                owned.remove(self._deferred)
        self._index, self._viewed, self._buffer = owned, False, None
        self._deferred = np.zeros(0, dtype=np.uint64)
        if self._release is not None:
            self._release()
            self._release = None

    def _writable(self) -> Index:
        if self._viewed:
            self.adopt_copy(self.copy_of_view())  # type: ignore[arg-type]
        return self._index

    # ------------------------------------------------------------------ writes
    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Whether each key has a live node (reads a viewed graph without copying it)."""
        if not len(keys):
            return np.zeros(0, dtype=bool)
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.asarray(self._index.contains(keys), dtype=bool)
        if len(self._deferred):
            found &= ~np.isin(keys, self._deferred)
        return found

    def add(self, keys: np.ndarray, vectors: np.ndarray, *, threads: int = 1) -> None:
        """``threads=1`` for a session's few documents at a time; ``0`` (every core)
        for a batch worth parallelising."""
        if len(keys):
            index = self._writable()
            with _native(self._label, "take new documents"):
                index.add(np.asarray(keys, dtype=np.uint64), vectors, threads=threads)

    def remove(self, keys: np.ndarray) -> None:
        """Tombstone ``keys`` (those the graph holds). A viewed graph only writes them
        down (see ``_deferred``), so that deleting from a loaded index copies nothing."""
        if not len(keys):
            return
        keys = np.asarray(keys, dtype=np.uint64)
        if self._viewed:
            live = np.unique(keys[self.contains(keys)])
            self._deferred = np.union1d(self._deferred, live)
            self.removed += len(live)
            return
        with _native(self._label, "remove documents"):
            removed = self._index.remove(keys)
        self.removed += int(np.sum(removed))

    # ------------------------------------------------------------------ reads
    def search(self, query: np.ndarray, count: int, *, beam: int = GRAPH_EXPANSION_SEARCH) -> np.ndarray:
        """Keys of up to ``count`` approximate nearest neighbours, best first.

        The ``beam`` is widened to ``count`` when more candidates are asked, or HNSW would
        return fewer good ones than asked."""
        count = min(count, len(self._index))
        if count <= 0:
            return np.empty(0, np.uint64)
        index = self._index
        wanted = max(beam, count)
        if index.expansion_search != wanted:
            index.expansion_search = wanted
        with _native(self._label, "be searched"):
            return index.search(query, count, threads=1).keys
