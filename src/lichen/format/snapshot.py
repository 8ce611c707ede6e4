"""One whole index frozen for storage or transfer: what the artifact format encodes and
decodes, what stores keep and the engine adopts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._types import IndexInfo
from .columns import EncodedColumn, decoded

__all__ = ["IndexSnapshot"]


@dataclass
class IndexSnapshot:
    """A whole index frozen for storage or transfer: documents column by column plus
    their embeddings as one contiguous ``(doc_count, dimension)`` float32 matrix.

    The columns are lists, or, when a client loaded the index lazily
    (``read_artifact(..., lazy=True)``, what ``Client.load_index`` does), read-only
    sequences decoding one row at a time (:class:`~lichen.format.columns.EncodedColumn`):
    index them, iterate them or call their ``to_list()``, but do not hand them to code that
    expects a ``list`` (``orjson.dumps`` refuses them). :meth:`column_lists` gives all
    three as lists either way.

    ``version`` is the stored version this snapshot was read at (0 for never stored);
    stores use it for optimistic concurrency. Big indexes also carry their
    approximate-search graph, so storing and loading them costs no rebuild.
    """

    name: str
    model_id: str
    dimension: int
    ids: Sequence[str]
    texts: Sequence[str]
    metadata: Sequence[dict[str, Any]]
    matrix: np.ndarray
    version: int = 0
    created_at: str = ""
    updated_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    keys: np.ndarray | None = None
    """Stable ``uint64`` key of each row, the ids the graph knows documents by
    (``None``: ``0 .. doc_count - 1``)."""
    graph: Any = None
    """The serialised approximate-search graph over ``keys`` (any buffer), or ``None``
    when the index has none (small indexes, or format-1 artifacts)."""
    graph_tombstones: int = 0
    """Keys deleted from the graph but still taking space in it."""
    graph_removals: np.ndarray | None = None
    """Ascending ``uint64`` keys whose graph nodes no longer match the index: documents a
    server deleted or replaced. Whoever loads the index removes them from the graph
    before using it (``None``: nothing to remove)."""
    graph_insertions: np.ndarray | None = None
    """Ascending keys (all in ``keys``) whose rows the graph does not hold yet: documents
    a server added or replaced. Inserted into the graph, after the removals, by whoever
    loads the index. A server edits these two lists instead of the graph, which it never
    opens, so a merge into a big index costs its next reader a few inserts, not a rebuild."""
    graph_release: Any = None
    """Hands the mapped pages of ``graph`` back to the kernel (``MADV_DONTNEED``): called
    by whoever copies the graph out of the file, so that the copy does not count twice in
    the process's memory; ``None`` when the graph is not memory-mapped."""
    graph_layout: Any = None
    """The :class:`~lichen.format.graph_layout.GraphLayout` proven for ``graph`` by the reader
    that decoded it, so that loading it does not walk it twice; ``None``: not proven yet
    (a layout is only trusted for the very buffer it was read from)."""
    file_matrix: Any = None
    """A :class:`~lichen.format.file.FileMatrix` reading rows of ``matrix`` from the
    artifact file with ``pread`` (set by lazy reads of a path), or ``None``."""

    @property
    def doc_count(self) -> int:
        return len(self.ids)

    def column_lists(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """``ids``, ``texts`` and ``metadata`` as lists, decoding lazily read columns whole
        (the lists of an eagerly read snapshot are returned as they are, not copied)."""
        ids, texts, metadata = (
            decoded(column) if isinstance(column, (list, EncodedColumn)) else list(column)
            for column in (self.ids, self.texts, self.metadata)
        )
        return ids, texts, metadata

    def info(self) -> IndexInfo:
        return IndexInfo(
            name=self.name,
            doc_count=self.doc_count,
            model_id=self.model_id,
            dimension=self.dimension,
            version=self.version,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
