"""Merging hits from several indexes: the short-term session and long-term indexes.

This is the one place the combined ("context") retrievers of every framework adapter get
their merge logic from: run one query against each source, fuse the ranked lists,
drop duplicate ids (first by fused rank wins), and tag each hit with where it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._errors import InvalidArgumentError
from ._types import QueryOptions, QueryResultDocument
from ._validation import as_query_options
from .engine.fusion import DEFAULT_RRF_K
from .models import CUSTOM_MODEL_ID

if TYPE_CHECKING:
    from ._client import Client
    from ._session import SessionIndex

__all__ = ["ContextHit", "merge_ranked", "ContextSearch", "SESSION_SOURCE"]

SESSION_SOURCE = "session"


@dataclass
class ContextHit:
    """A merged hit: the document, its fused score, and its origin (``"session"`` for the
    short-term session, otherwise the long-term index name)."""

    doc: QueryResultDocument
    score: float
    source: str


def merge_ranked(
    ranked: Mapping[str, Sequence[QueryResultDocument]],
    k: int,
    *,
    method: str = "rrf",
    weights: Mapping[str, float] | None = None,
    rrf_k: int = DEFAULT_RRF_K,
) -> list[ContextHit]:
    """Fuse per-source ranked lists into one list of at most ``k`` hits.

    ``method="rrf"`` (default) scores a hit ``weight / (rrf_k + rank)``: robust when the
    sources' scores are not comparable (hybrid vs vector, different corpora).
    ``method="score"`` uses ``weight * score``, for sources that all return cosine
    similarities from the same model. A document id found in several sources keeps its
    best-scoring occurrence.
    """
    if method not in ("rrf", "score"):
        raise InvalidArgumentError(f"unknown merge method {method!r}; use 'rrf' or 'score'")
    weights = weights or {}
    best: dict[str, ContextHit] = {}
    for source, docs in ranked.items():
        weight = float(weights.get(source, 1.0))
        for rank, doc in enumerate(docs, start=1):
            fused = weight / (rrf_k + rank) if method == "rrf" else weight * doc.score
            current = best.get(doc.id)
            if current is None or fused > current.score:
                best[doc.id] = ContextHit(doc=doc, score=fused, source=source)
    merged = sorted(best.values(), key=lambda hit: (-hit.score, hit.source != SESSION_SOURCE, hit.doc.id))
    return merged[:k]


class ContextSearch:
    """Short-term plus long-term retrieval: one query over a session and loaded indexes.

    ``k`` is the number of merged hits; ``source_k`` the number taken from each source
    before merging (defaults to ``k``), overridable per source with ``per_source_k``.
    Long-term indexes must have been loaded with ``client.load_index(name)``; an
    unloaded one raises :class:`~lichen.IndexNotLoadedError` naming it.
    """

    def __init__(
        self,
        session: SessionIndex | None = None,
        client: Client | None = None,
        indexes: Sequence[str] = (),
        *,
        k: int = 4,
        source_k: int | None = None,
        per_source_k: Mapping[str, int] | None = None,
        method: str = "rrf",
        weights: Mapping[str, float] | None = None,
        options: QueryOptions | None = None,
    ) -> None:
        if session is None and not indexes:
            raise InvalidArgumentError("give a session, long-term indexes, or both")
        if indexes and client is None:
            raise InvalidArgumentError("long-term indexes need the client that loaded them")
        if len(set(indexes)) != len(indexes):
            raise InvalidArgumentError(f"indexes lists a name twice: {list(indexes)}")
        if session is not None and SESSION_SOURCE in indexes:
            raise InvalidArgumentError(
                f"a long-term index named {SESSION_SOURCE!r} would be indistinguishable from the session; rename it"
            )
        self.session = session
        self.client = client
        self.indexes = list(indexes)
        self.k = k
        self.source_k = source_k
        self.per_source_k = dict(per_source_k or {})
        self.method = method
        self.weights = dict(weights or {})
        self.options = as_query_options(options)

    def _options_for(self, source: str, k: int, overrides: Mapping[str, Any]) -> QueryOptions:
        top_k = self.per_source_k.get(source, self.source_k or k)
        return replace(self.options, top_k=top_k, **overrides)

    def _sources(self) -> list[tuple[str, SessionIndex]]:
        sources: list[tuple[str, SessionIndex]] = []
        if self.session is not None:
            sources.append((SESSION_SOURCE, self.session))
        for name in self.indexes:
            sources.append((name, self.client.loaded_index(name)))  # type: ignore[union-attr]
        return sources

    def _shared_query_vector(self, text: str, sources: list[tuple[str, SessionIndex]], overrides: Mapping[str, Any]):
        """Embed the query once when every source uses the same built-in model, instead
        of once per source."""
        if self.options.embedding is not None or "embedding" in overrides:
            return {}
        alpha = overrides.get("alpha", self.options.alpha)
        models = {index.model_id for _, index in sources}
        if len(models) != 1 or CUSTOM_MODEL_ID in models or alpha == 0.0:
            return {}
        return {"embedding": sources[0][1].embed_query(text)}

    def search(self, text: str, k: int | None = None, **overrides: Any) -> list[ContextHit]:
        k = self.k if k is None else k
        sources = self._sources()
        overrides = {**overrides, **self._shared_query_vector(text, sources, overrides)}
        ranked = {source: index.query_sync(text, self._options_for(source, k, overrides)).docs for source, index in sources}
        return merge_ranked(ranked, k, method=self.method, weights=self.weights)

    async def asearch(self, text: str, k: int | None = None, **overrides: Any) -> list[ContextHit]:
        k = self.k if k is None else k
        sources = self._sources()
        shared = await asyncio.to_thread(self._shared_query_vector, text, sources, overrides)
        overrides = {**overrides, **shared}
        results = await asyncio.gather(
            *(index.query(text, self._options_for(source, k, overrides)) for source, index in sources)
        )
        ranked = {source: result.docs for (source, _), result in zip(sources, results)}
        return merge_ranked(ranked, k, method=self.method, weights=self.weights)
