"""Public value types: what goes into an index and what comes back out.

Plain dataclasses rather than pydantic models: they sit on the query hot path, where
construction cost matters; wire validation lives in the server's own models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "MetadataValue",
    "DocumentInfo",
    "QueryOptions",
    "QueryResultDocument",
    "SearchResult",
    "PushIndexResult",
    "IndexInfo",
]

Scalar = Union[str, int, float, bool]
MetadataValue = Union[Scalar, list[Scalar], None]


@dataclass
class DocumentInfo:
    """One document: an id unique within its index, the text that is embedded and
    keyword-indexed, optional metadata for filtering, and an optional precomputed vector
    (required when the index uses ``model_id="custom"``)."""

    id: str
    text: str
    metadata: dict[str, Any] | None = None
    embedding: Sequence[float] | None = None


@dataclass
class QueryOptions:
    """How to run one query.

    ``alpha`` weighs vector against keyword ranking (1.0 pure vector, 0.0 pure keyword);
    ``None`` takes the engine's measured default. ``embedding`` replaces embedding the
    query text (mandatory for ``model_id="custom"``).

    ``min_score`` drops hits whose ``score`` is below it, so a query may return fewer
    than ``top_k``; it compares with the score as returned: the cosine similarity for
    pure vector search, the fused score (at most ``1 / (rrf_k + 1)``, ~0.032) for hybrid.
    ``include_embeddings`` puts each hit's stored (L2-normalised) vector in
    ``QueryResultDocument.embedding``; ``include_text=False`` leaves ``text`` empty
    (``""``) for callers that only need ids, scores and metadata.

    ``exact=True`` scans every vector even when the index is big enough for approximate
    search (the reference, e.g. to measure recall); scores are exact either way.
    ``recall_target`` (in (0, 1]) asks a graph-backed index for another recall@10 than
    the one it promises by default (0.95): its calibration, measured when the graph was
    built, picks a search wide enough, or the query scans exactly where no width meets the
    target within the latency budget. ``IndexInfo.recall_estimate`` is what the default
    gives. Ignored by an index small enough to be scanned exactly.

    ``fusion`` picks how a hybrid query (``alpha < 1``) blends the two rankings:
    ``"rrf"`` (reciprocal rank, the default), ``"normalized"`` (min-max of each ranking's
    scores, then ``alpha``-weighted; fused scores in [0, 1]) or ``"zscore"`` (each
    ranking standardised, then weighted; unbounded). See :mod:`lichen.engine.fusion`.

    ``rerank`` names a cross-encoder (``lichen models pull ms-marco-MiniLM-L-6-v2``) that
    re-scores the best ``rerank_candidates`` hits (default 20) with the query and returns
    the best ``top_k`` of them by its relevance (in [0, 1]), which becomes their ``score``
    (``min_score`` compares with it). Off by default: it costs a forward pass per candidate.
    It reads the query text, so a query without text is refused, as is
    ``rerank_candidates`` without ``rerank``.

    ``group_by`` names a metadata field (a dotted path reaches into nested metadata) whose
    value gathers hits into one result: ``group_by="source"`` gives one result per file
    added with ``add_docs`` or ``sync_folder``, however many of its chunks match. A group's
    ``id`` is the field's value, its ``score`` (and ``vector_score`` / ``keyword_score``)
    its best chunk's, ``chunks`` its matching chunks (each a hit as usual) ordered by
    ``group_order`` (default ``"chunk_index"``; chunks without it follow, best first),
    ``text`` their texts in that order joined by blank lines, and ``metadata`` what those
    chunks have in common but the order field (for a file: ``source``, ``chunk_count``,
    ``source_hash``, its extra metadata). ``top_k`` counts groups; ``min_score`` applies
    to chunks; a hit without the field is a group of its own. See
    :func:`lichen._results.group_hits` for how many hits are read.
    """

    top_k: int = 5
    filter: dict[str, Any] | None = None
    alpha: float | None = None
    embedding: Sequence[float] | None = None
    min_score: float | None = None
    include_embeddings: bool = False
    include_text: bool = True
    exact: bool = False
    recall_target: float | None = None
    fusion: str | None = None
    rerank: str | None = None
    rerank_candidates: int | None = None
    group_by: str | None = None
    group_order: str | None = None


@dataclass
class QueryResultDocument:
    """One hit. ``score`` is what results are sorted by: the cosine similarity for pure
    vector search, the fused score for hybrid search; the two components are kept in
    ``vector_score`` and ``keyword_score`` (``None`` when that ranking did not run). A
    re-ranked hit (``QueryOptions.rerank``) has its cross-encoder relevance in
    ``rerank_score``, which is then its ``score``.
    ``embedding`` is the stored vector when the query asked ``include_embeddings``.
    ``chunks``: with ``QueryOptions(group_by=...)``, this result is a group (a source) and
    these are its matching hits in order; ``None`` otherwise."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    vector_score: float | None = None
    keyword_score: float | None = None
    index_name: str | None = None
    embedding: list[float] | None = None
    rerank_score: float | None = None
    chunks: list[QueryResultDocument] | None = None


@dataclass
class SearchResult:
    docs: list[QueryResultDocument]
    query: str
    index_name: str | None = None
    time_taken_ms: float = 0.0


@dataclass
class PushIndexResult:
    """Outcome of a push. Pushes complete synchronously, so ``status`` is ``"completed"``;
    ``job_id`` identifies the write for the job-status endpoint and logs."""

    job_id: str
    index_name: str
    doc_count: int
    status: str = "completed"
    version: int | None = None
    skipped: list[Any] = field(default_factory=list)
    """Inputs ``create_index(..., skip_errors=True)`` could not read and left out
    (:class:`lichen.ingest.SkippedSource`: ``source`` and ``reason``)."""


@dataclass
class IndexInfo:
    """What an index is. ``graph_fallback`` (a loaded or resumed index only) says why its
    stored approximate-search graph was set aside, so that queries scan exactly: it failed
    the self-check run on every graph that comes from a file or a server. ``None``: no
    graph was refused.

    ``recall_estimate`` is the recall@10 a query can count on at the default target: 1.0
    while queries scan exactly (a small index, or a graph that cannot meet the target in
    time), the calibrated graph's measured recall otherwise. ``None`` where it is not known: a
    graph stored without a calibration (``SessionIndex.calibrate()`` measures one), or the
    info of an index read from a store without loading it."""

    name: str
    doc_count: int
    model_id: str
    dimension: int
    version: int
    created_at: str
    updated_at: str
    graph_fallback: str | None = None
    recall_estimate: float | None = None
