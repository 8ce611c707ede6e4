"""One [0, 1] relevance scale for hits, whatever ranked them, shared by the framework
adapters (LangChain's relevance scores, LlamaIndex's node scores).

* Pure vector search: ``(1 + cosine) / 2``, so 1 is the query's own direction, 0.5 an
  unrelated (orthogonal) text and 0 the opposite.
* A re-ranked hit (``QueryOptions.rerank``): the cross-encoder's relevance, already in
  [0, 1] (its ``rerank_score``, which is also its ``score``).
* Hybrid and keyword-only search: the reciprocal-rank-fusion score times
  ``rrf_k + 1``. RRF peaks at ``1 / (rrf_k + 1)`` (first in every ranking that ran,
  whatever ``alpha``), so 1 means "ranked first by both" and the scale measures rank
  agreement within one query, not absolute similarity.

The raw parts stay on the hit: ``score`` (what the engine sorted by), ``vector_score``
(cosine) and ``keyword_score`` (BM25). Both mappings are monotonic, so ordering by
relevance is ordering by ``score``.
"""

from __future__ import annotations

from ._types import QueryResultDocument
from .engine.fusion import DEFAULT_RRF_K

__all__ = ["relevance", "cosine_relevance", "fused_relevance"]


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def cosine_relevance(similarity: float) -> float:
    """Cosine similarity in [-1, 1] mapped linearly onto [0, 1]."""
    return _unit((1.0 + similarity) / 2.0)


def fused_relevance(fused: float, rrf_k: int = DEFAULT_RRF_K) -> float:
    """A reciprocal-rank-fusion score rescaled so that its maximum is 1."""
    return _unit(fused * (rrf_k + 1))


def relevance(hit: QueryResultDocument) -> float:
    """The hit's relevance in [0, 1]; see the module docstring."""
    if hit.rerank_score is not None:
        return _unit(hit.rerank_score)
    if hit.keyword_score is None:  # pure vector search: the score is the cosine
        return cosine_relevance(hit.score)
    return fused_relevance(hit.score)
