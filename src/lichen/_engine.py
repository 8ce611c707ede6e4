"""The in-memory index: documents column by column, embeddings in one contiguous matrix.

:class:`IndexCore` owns storage and search and nothing else: it never embeds text (the
session hands it vectors) and never touches disk or network. Every public method takes
the core's lock, so one core can be shared by threads (LangChain runs sync methods in a
thread pool) and by the async faces of a session.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._columns import MetadataColumns
from ._errors import InvalidArgumentError
from ._types import DocumentInfo, QueryResultDocument
from ._util import copy_metadata
from ._validation import as_vectors
from .filters import CompiledFilter, compile_filter
from .fusion import DEFAULT_FUSION, fuse_rankings
from .keyword import KeywordIndex
from .stores._base import IndexSnapshot

__all__ = ["IndexCore", "top_k_indices"]

_INITIAL_CAPACITY = 64


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

    def __init__(self, dimension: int | None = None) -> None:
        self._lock = threading.RLock()
        self._dimension = dimension
        self._ids: list[str] = []
        self._positions: dict[str, int] = {}
        self._texts: list[str] = []
        self._metadata: list[dict[str, Any]] = []
        # Both derived structures are built on first use: a loaded 100k-document index
        # that is never filtered (or never searched by keyword) never pays for them.
        self._columns: MetadataColumns | None = None
        self._keywords: KeywordIndex | None = None
        self._matrix = np.zeros((_INITIAL_CAPACITY, dimension or 0), dtype=np.float32)

    # ------------------------------------------------------------------ properties
    @property
    def dimension(self) -> int | None:
        return self._dimension

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._positions

    @property
    def matrix(self) -> np.ndarray:
        """Read-only view of the live embeddings (row i belongs to document i)."""
        view = self._matrix[: len(self._ids)]
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ writes
    def upsert(self, docs: Sequence[DocumentInfo], vectors: np.ndarray) -> tuple[int, int]:
        """Insert new ids and overwrite existing ones; return ``(added, updated)``.

        ``docs`` must already be validated (unique, well-formed ids); ``vectors`` are
        checked here and normalised, so nothing is mutated if they are bad.
        """
        if not docs:
            return 0, 0
        with self._lock:
            vectors = as_vectors(vectors, self._dimension, "embedding")
            if vectors.shape[0] != len(docs):
                raise InvalidArgumentError(f"got {vectors.shape[0]} vectors for {len(docs)} documents")
            if self._dimension is None:
                self._dimension = vectors.shape[1]
                self._matrix = np.zeros((max(_INITIAL_CAPACITY, len(docs)), self._dimension), dtype=np.float32)
            existing = [self._positions.get(doc.id) for doc in docs]
            update_rows = [i for i, position in enumerate(existing) if position is not None]
            new_rows = [i for i, position in enumerate(existing) if position is None]

            if update_rows:
                self._reserve(len(self._ids))
                positions = [existing[i] for i in update_rows]
                self._matrix[positions] = vectors[update_rows]
                for i, position in zip(update_rows, positions):
                    self._texts[position] = docs[i].text
                    self._metadata[position] = copy_metadata(docs[i].metadata or {})
                if self._columns is not None:
                    self._columns.replace(positions, [self._metadata[p] for p in positions])
                if self._keywords is not None:
                    self._keywords.replace(positions, [self._texts[p] for p in positions])

            if new_rows:
                start = len(self._ids)
                self._reserve(start + len(new_rows))
                self._matrix[start : start + len(new_rows)] = vectors[new_rows]
                for offset, i in enumerate(new_rows):
                    doc = docs[i]
                    self._positions[doc.id] = start + offset
                    self._ids.append(doc.id)
                    self._texts.append(doc.text)
                    self._metadata.append(copy_metadata(doc.metadata or {}))
                if self._columns is not None:
                    self._columns.append(self._metadata[start:])
                if self._keywords is not None:
                    self._keywords.append(self._texts[start:])
            return len(new_rows), len(update_rows)

    def delete(self, ids: Sequence[str]) -> int:
        with self._lock:
            doomed = {self._positions[i] for i in ids if i in self._positions}
            if not doomed:
                return 0
            self._reserve(len(self._ids))
            keep = np.ones(len(self._ids), dtype=bool)
            keep[list(doomed)] = False
            n_keep = int(keep.sum())
            self._matrix[:n_keep] = self._matrix[: len(self._ids)][keep]
            self._ids = [doc_id for doc_id, kept in zip(self._ids, keep) if kept]
            self._texts = [text for text, kept in zip(self._texts, keep) if kept]
            self._metadata = [meta for meta, kept in zip(self._metadata, keep) if kept]
            self._positions = {doc_id: position for position, doc_id in enumerate(self._ids)}
            if self._columns is not None:
                self._columns.keep(keep)
            if self._keywords is not None:
                self._keywords.keep(keep)
            return len(doomed)

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
            return self.delete(list(self._ids))

    def _metadata_columns(self) -> MetadataColumns:
        if self._columns is None:
            # Texts by callable: delete replaces the list, and $document filters read it.
            self._columns = MetadataColumns(self._metadata, texts=lambda: self._texts)
        return self._columns

    def _reserve(self, rows: int) -> None:
        capacity = self._matrix.shape[0]
        if rows <= capacity and self._matrix.flags.writeable:
            return
        # Amortised growth; also the copy-on-first-write of an adopted read-only matrix.
        grown = np.zeros((max(rows, capacity + capacity // 2, _INITIAL_CAPACITY), self._dimension or 0), dtype=np.float32)
        grown[: len(self._ids)] = self._matrix[: len(self._ids)]
        self._matrix = grown

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
        compiled = compile_filter(filter) if filter else None
        with self._lock:
            positions = self._select(ids, compiled, offset, None if limit is None else offset + limit)
            return [
                DocumentInfo(
                    id=self._ids[p],
                    text=self._texts[p],
                    metadata=copy_metadata(self._metadata[p]),
                    embedding=self._matrix[p].tolist() if include_embeddings else None,
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
            positions = [self._positions[i] for i in ids if i in self._positions]
            if compiled is not None and positions:
                mask = compiled.evaluate(self._metadata_columns())
                positions = [p for p in positions if mask[p]]
            return positions[start:end]
        if compiled is not None:
            return np.flatnonzero(compiled.evaluate(self._metadata_columns()))[start:end].tolist()
        return range(len(self._ids))[start:end]

    def search(
        self,
        query_vector: np.ndarray | None,
        query_text: str,
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        alpha: float = 1.0,
        fusion: str = DEFAULT_FUSION,
    ) -> list[QueryResultDocument]:
        """Exact top-k by cosine similarity, optionally fused with BM25 (``alpha < 1``)."""
        compiled = compile_filter(filter) if filter else None
        if compiled is not None and compiled.matches_all:
            compiled = None
        if query_vector is not None:
            query_vector = as_vectors(query_vector, self._dimension, "query embedding")[0]
        with self._lock:
            n = len(self._ids)
            if n == 0 or top_k <= 0:
                return []
            candidates = None
            if compiled is not None:
                candidates = np.flatnonzero(compiled.evaluate(self._metadata_columns()))
                if candidates.size == 0:
                    return []
            if alpha >= 1.0:
                return self._vector_search(query_vector, candidates, top_k)
            return self._hybrid_search(query_vector, query_text, candidates, top_k, alpha, fusion)

    def _vector_search(self, query: np.ndarray, candidates: np.ndarray | None, top_k: int) -> list[QueryResultDocument]:
        n = len(self._ids)
        if candidates is None:
            scores = self._matrix[:n] @ query
            positions = top_k_indices(scores, top_k)
            chosen = scores[positions]
        else:
            if candidates.size * 3 > n:
                # A loose filter: gathering the rows costs more than scoring them all.
                scores = (self._matrix[:n] @ query)[candidates]
            else:
                scores = self._matrix[candidates] @ query
            winners = top_k_indices(scores, top_k)
            positions, chosen = candidates[winners], scores[winners]
        return [self._result(p, float(s), float(s), None) for p, s in zip(positions.tolist(), chosen.tolist())]

    def _hybrid_search(
        self,
        query: np.ndarray | None,
        text: str,
        candidates: np.ndarray | None,
        top_k: int,
        alpha: float,
        fusion: str,
    ) -> list[QueryResultDocument]:
        n = len(self._ids)
        if self._keywords is None:
            self._keywords = KeywordIndex()
            self._keywords.append(self._texts)
        keyword_scores = self._keywords.scores(text)
        if query is None:
            vector_scores = np.zeros(n, dtype=np.float32)
        else:
            vector_scores = self._matrix[:n] @ query
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
        with self._lock:
            n = len(self._ids)
            return IndexSnapshot(
                name=name,
                model_id=model_id,
                dimension=self._dimension or 0,
                ids=list(self._ids),
                texts=list(self._texts),
                metadata=[copy_metadata(m) for m in self._metadata],
                matrix=self._matrix[:n].copy(),
            )

    @classmethod
    def from_snapshot(cls, snapshot: IndexSnapshot) -> IndexCore:
        """Adopt stored embeddings as they are: no re-embedding, no renormalisation, so a
        resumed index holds bit-identical vectors."""
        core = cls(snapshot.dimension or None)
        n = snapshot.doc_count
        matrix = np.asarray(snapshot.matrix, dtype=np.float32)
        if matrix.shape != (n, snapshot.dimension):
            raise InvalidArgumentError(f"snapshot matrix has shape {matrix.shape}, expected ({n}, {snapshot.dimension})")
        # Adopted as is, even read-only (a memory-mapped download): the first write
        # copies it into a growable buffer (see _reserve), reads never do.
        core._matrix = np.ascontiguousarray(matrix)
        core._ids = list(snapshot.ids)
        core._positions = {doc_id: position for position, doc_id in enumerate(core._ids)}
        if len(core._positions) != n:
            raise InvalidArgumentError("snapshot holds duplicate ids")
        core._texts = list(snapshot.texts)
        core._metadata = list(snapshot.metadata)
        core._columns = None
        return core
