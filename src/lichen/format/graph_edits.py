"""Graph edits a server defers to the next reader of an index.

A server that merges documents into, or deletes them from, a stored index never opens
its graph (usearch trusts the bytes it maps, and graphs come from clients). Dropping the
graph instead would cost the next reader of a 1M-document index a ~14-minute rebuild on
two cores for one added document. So the server writes down what changed, as two key
lists stored with the graph (artifact format 4): the keys whose nodes must go (deleted
or replaced documents) and the keys whose rows must go in (added or replaced
documents). The reader checks them against the graph when it adopts it and applies
them, removals first, the first time it needs the graph: a copy of the graph and a few
inserts instead of a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import CorruptDataError
from .snapshot import IndexSnapshot

#: A server keeps deferring edits while they stay below this share of the index's
#: documents (beyond it, a rebuild is about as cheap as the inserts)...
MAX_DEFERRED_FRACTION = 0.25
#: ... and below this many keys in all: the lists live in the artifact's JSON manifest,
#: which every cache check reads (50,000 keys are ~0.5 MB of it).
MAX_DEFERRED_KEYS = 50_000

_EMPTY = np.zeros(0, dtype=np.uint64)


def _keys(value: object) -> np.ndarray:
    return _EMPTY if value is None else np.asarray(value, dtype=np.uint64)


@dataclass(frozen=True)
class GraphEdits:
    """Ascending ``uint64`` key lists: ``removals`` leave the graph, then the rows of
    ``insertions`` (keys the index holds) enter it."""

    removals: np.ndarray
    insertions: np.ndarray

    @classmethod
    def of(cls, snapshot: IndexSnapshot) -> GraphEdits:
        return cls(_keys(snapshot.graph_removals), _keys(snapshot.graph_insertions))

    @classmethod
    def none(cls) -> GraphEdits:
        return cls(_EMPTY, _EMPTY)

    def __len__(self) -> int:
        return len(self.removals) + len(self.insertions)

    def as_fields(self) -> dict[str, np.ndarray | None]:
        """The ``IndexSnapshot`` fields holding these edits."""
        return {
            "graph_removals": self.removals if len(self.removals) else None,
            "graph_insertions": self.insertions if len(self.insertions) else None,
        }

    # ------------------------------------------------------------------ server side
    def after_upsert(self, replaced: np.ndarray, added: np.ndarray) -> GraphEdits:
        """Replaced documents keep their keys: their stale nodes go, their new rows go in."""
        return GraphEdits(
            np.union1d(self.removals, _keys(replaced)),
            np.union1d(self.insertions, np.union1d(_keys(replaced), _keys(added))),
        )

    def after_delete(self, deleted: np.ndarray) -> GraphEdits:
        deleted = _keys(deleted)
        return GraphEdits(np.union1d(self.removals, deleted), np.setdiff1d(self.insertions, deleted))

    def worth_deferring(self, doc_count: int) -> bool:
        """Whether the next reader should apply these edits rather than rebuild."""
        return len(self) <= min(MAX_DEFERRED_KEYS, MAX_DEFERRED_FRACTION * doc_count)

    def first_free_key(self, keys: np.ndarray) -> int:
        """A key above every key of the index and of the graph's pending removals, for
        the next added document."""
        highest = max(int(keys[-1]) if len(keys) else -1, int(self.removals[-1]) if len(self.removals) else -1)
        return highest + 1

    # ------------------------------------------------------------------ reader side
    def check(self, graph_keys: np.ndarray, keys: np.ndarray, *, label: str = "the index") -> None:
        """Refuse (:class:`CorruptDataError`) a graph whose live nodes, ``graph_keys`` (in
        any order), do not become exactly the index's ascending ``keys`` once these edits
        are applied: a node left without a row, a row left without a node, a key held twice
        or inserted where it already is. Plain numpy over the keys, before usearch is
        handed anything: a graph that passes can be edited and searched."""
        def fail(problem: str) -> CorruptDataError:
            return CorruptDataError(f"{label}: graph {problem}")

        if len(self.insertions) and not _locate(keys, self.insertions)[1].all():
            raise fail("is to receive keys (graph_insertions) the index does not hold")
        kept = graph_keys[~np.isin(graph_keys, self.removals)] if len(self.removals) else graph_keys
        if len(self.insertions) and np.isin(kept, self.insertions).any():
            raise fail("is to receive keys (graph_insertions) it already holds")
        rows, found = _locate(keys, kept)
        if not found.all():
            raise fail(f"holds {int(np.count_nonzero(~found))} keys the index does not")
        if len(kept) + len(self.insertions) != len(keys):
            if len(self):
                raise fail(f"would hold {len(kept) + len(self.insertions)} documents after its pending edits, "
                           f"the index {len(keys)}")
            raise fail(f"holds {len(kept)} documents, the index {len(keys)}")
        marked = np.zeros(len(keys), dtype=bool)
        marked[rows] = True
        if int(np.count_nonzero(marked)) != len(kept):
            raise fail("holds a key twice")


def _locate(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each ``wanted`` key in the ascending ``keys``, and whether it is there."""
    n = len(keys)
    if n == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), dtype=bool)
    if int(keys[-1]) == n - 1:  # keys 0..n-1: key and row coincide
        found = wanted < n
        return np.where(found, wanted, 0).astype(np.int64), found
    rows = np.minimum(np.searchsorted(keys, wanted), n - 1)
    return rows, keys[rows] == wanted
