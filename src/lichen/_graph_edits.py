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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._errors import CorruptDataError
from ._graph import VectorGraph
from .stores._base import IndexSnapshot

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
    def check(self, graph: VectorGraph, keys: np.ndarray) -> None:
        """Refuse (:class:`CorruptDataError`) edits that do not lead from ``graph`` to a
        graph of exactly the index's ``keys``, before anything is applied."""
        if len(self.insertions) and not np.isin(self.insertions, keys, assume_unique=True).all():
            raise CorruptDataError("the index's graph_insertions name keys the index does not hold")
        live = graph.contains(self.insertions)
        if live.any() and not np.isin(self.insertions[live], self.removals, assume_unique=True).all():
            raise CorruptDataError("the index's graph_insertions name keys its graph already holds")
        after = len(graph) - int(graph.contains(self.removals).sum()) + len(self.insertions)
        if after != len(keys):
            raise CorruptDataError(
                f"the index's graph would hold {after} documents after its pending edits, the index {len(keys)}"
            )

    def apply(self, graph: VectorGraph, vectors_for: Callable[[np.ndarray], np.ndarray]) -> None:
        """Remove, then insert the rows ``vectors_for(insertions)`` returns (on every
        core: a loaded index may have thousands to insert)."""
        graph.remove(self.removals)
        graph.add(self.insertions, vectors_for(self.insertions), threads=0)
