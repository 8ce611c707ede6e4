"""Hybrid rank fusion: one ranked list from a vector ranking and a keyword ranking.

This module owns how cosine similarities and BM25 scores become one ``score``; the engine
computes both score arrays over all rows and hands them here with the rows its filter
allows.

Methods
    ``"rrf"`` (reciprocal rank fusion)
        ``alpha / (rrf_k + rank_vector) + (1 - alpha) / (rrf_k + rank_keyword)``, ranks
        from 1. Each ranking contributes only within its *window*, its best
        ``max(100, 10 * top_k)`` candidates (what Elasticsearch calls
        ``rank_window_size``); a row outside a window, or with a keyword score of 0, gets
        nothing from that ranking. Ties inside a ranking are ranked by lower row position.
    ``"normalized"``
        ``alpha * minmax(vector) + (1 - alpha) * minmax(keyword)``, min and max taken over
        the candidates. A ranking whose scores are all equal normalises to 1 when they are
        positive and to 0 otherwise (so "no keyword match anywhere" adds nothing).
    ``"zscore"``
        ``alpha * z(vector) + (1 - alpha) * z(keyword)``, each ranking standardised over the
        candidates (``(s - mean) / std``, population std). A ranking whose scores are all
        equal contributes 0. Unlike min-max, one outlier does not squeeze every other
        score towards 0; the fused score is unbounded (negative for below-average rows).

Results are sorted by fused score, descending; ties by higher vector score, then lower row
position, so the order is deterministic. Only candidate pools are sorted, never all rows:
the work is ``O(n)`` vectorised selection plus a sort of a few hundred rows.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from .._errors import InvalidArgumentError

__all__ = [
    "fuse_rankings", "rank_window_size", "DEFAULT_ALPHA", "DEFAULT_FUSION", "FUSION_METHODS", "FUSION_CHOICES",
    "DEFAULT_RRF_K",
]

#: Weight of the vector ranking when a query does not set ``alpha``. Measured on
#: msmarco-5k (5,000 passages, 43 judged queries, lichen-minilm; ``benchmarks/eval_hybrid.py``,
#: figures in ``benchmarks/results/hybrid.json``), nDCG@10:
#:
#: ==========  =====  =====  =====  =====  =====  =====  =====
#: alpha        0.3    0.5    0.6    0.7    0.8    0.9    0.95
#: ==========  =====  =====  =====  =====  =====  =====  =====
#: rrf         .7637  .7860  .7954  .8011  .7986  .7978  .7973
#: normalized  .7628  .7824  .7893  .7933  .7989  .7954  .7933
#: zscore      .7619  .7774  .7848  .7906  .7945  .7936  .7923
#: ==========  =====  =====  =====  =====  =====  =====  =====
#:
#: against pure vector .7977 and pure BM25 .7328. The best fusion (rrf, 0.7) gains
#: +0.0035 nDCG@10 (18 queries better, 21 worse, paired permutation p = 0.70, 95% bootstrap
#: interval of the gain [-0.012, +0.020]); the best score fusion (min-max, 0.8) +0.0012
#: (p = 0.89). Nothing beats pure vector by more than the noise of which queries are
#: judged, so the default is pure vector search; hybrid is opt-in.
DEFAULT_ALPHA: Final[float] = 1.0
#: Fusion used when a query sets ``alpha < 1`` without ``fusion``: rrf beat both score
#: fusions at every alpha <= 0.7 and is insensitive to score scales.
DEFAULT_FUSION: Final[str] = "rrf"
#: The RRF constant, as in the seed product.
DEFAULT_RRF_K: Final[int] = 30
#: Rank fusion and min-max score fusion (the two methods since the first release).
FUSION_METHODS: Final = ("rrf", "normalized")
#: Every method ``fuse_rankings`` and ``QueryOptions(fusion=...)`` accept.
FUSION_CHOICES: Final = ("rrf", "normalized", "zscore")


def rank_window_size(top_k: int) -> int:
    """How many best rows of each ranking take part in the fusion."""
    return max(100, 10 * top_k)


def _top(values: np.ndarray, size: int) -> np.ndarray:
    """Indices of the ``size`` largest ``values``, ordered by value descending then index
    ascending: ``argpartition`` plus a deterministic cut through ties at the boundary."""
    n = values.shape[0]
    if size <= 0 or n == 0:
        return np.empty(0, np.int64)
    if size < n:
        part = np.argpartition(values, n - size)[n - size :]
        threshold = values[part].min()
        above = np.flatnonzero(values > threshold)
        tied = np.flatnonzero(values == threshold)[: size - above.shape[0]]
        chosen = np.concatenate([above, tied])
    else:
        chosen = np.arange(n)
    return chosen[np.lexsort((chosen, -values[chosen]))]


def _as_float(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    return scores if scores.dtype in (np.float32, np.float64) else scores.astype(np.float64)


def _bounds(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.shape[0] else (0.0, 0.0)


def _minmax(values: np.ndarray, lo: float, hi: float, dtype: type) -> np.ndarray:
    # A division, not a product with the reciprocal: the best row must come out exactly 1.0
    # (x * (1 / x) can be 1 - 2**-53), or a tie between the best by vector and the best by
    # keyword would be broken by rounding instead of by vector score.
    if hi > lo:
        return ((values - dtype(lo)) / dtype(hi - lo)).astype(dtype, copy=False)
    return np.full(values.shape[0], 1.0 if hi > 0 else 0.0, dtype)


def _moments(values: np.ndarray) -> tuple[float, float]:
    if not values.shape[0]:
        return 0.0, 0.0
    values = values.astype(np.float64)
    return float(values.mean()), float(values.std())


def _zscore(values: np.ndarray, mean: float, std: float, dtype: type) -> np.ndarray:
    if std > 0:
        return ((values - dtype(mean)) / dtype(std)).astype(dtype, copy=False)
    return np.zeros(values.shape[0], dtype)


def fuse_rankings(
    vector_scores: np.ndarray,
    keyword_scores: np.ndarray | None,
    candidates: np.ndarray,
    alpha: float,
    top_k: int,
    method: str = "rrf",
    rrf_k: int = DEFAULT_RRF_K,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``top_k`` rows among ``candidates`` by fused score.

    ``vector_scores`` and ``keyword_scores`` are indexed by row position (the whole index);
    ``candidates`` holds the allowed row positions (filter already applied; sorted and
    deduplicated here if they are not already).
    ``keyword_scores=None`` means no keyword match anywhere. Returns ``(rows, scores)``:
    int64 row positions and float64 fused scores, sorted by score descending.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(f"alpha must be between 0 and 1, got {alpha!r}")
    if method not in FUSION_CHOICES:
        raise InvalidArgumentError(f"unknown fusion method {method!r}; expected one of {', '.join(FUSION_CHOICES)}")
    if rrf_k < 0:
        raise InvalidArgumentError(f"rrf_k must be non-negative, got {rrf_k!r}")
    top_k = int(top_k)
    candidates = np.asarray(candidates, dtype=np.int64).reshape(-1)
    if candidates.shape[0] > 1 and not (candidates[1:] > candidates[:-1]).all():
        candidates = np.unique(candidates)  # ascending, so index order is row order in ties
    if top_k <= 0 or candidates.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    # Selection runs over every candidate in float32 (half the memory traffic of float64);
    # the few pooled rows are then scored exactly in float64.
    vec = _as_float(vector_scores)[candidates]
    kw = np.zeros(candidates.shape[0], np.float32) if keyword_scores is None else _as_float(keyword_scores)[candidates]
    window = rank_window_size(top_k)

    if method in ("normalized", "zscore"):
        scale, (v_a, v_b), (k_a, k_b) = (
            (_minmax, _bounds(vec), _bounds(kw)) if method == "normalized" else (_zscore, _moments(vec), _moments(kw))
        )
        approx = scale(vec, v_a, v_b, np.float32) * np.float32(alpha)
        approx += scale(kw, k_a, k_b, np.float32) * np.float32(1.0 - alpha)
        pool = _top(approx, window)
        # Rows tied with the pool's last member in float32 may still belong to the top.
        pool = np.union1d(pool, np.flatnonzero(approx == approx[pool[-1]]))
        fused = alpha * scale(vec[pool].astype(np.float64), v_a, v_b, np.float64)
        fused += (1.0 - alpha) * scale(kw[pool].astype(np.float64), k_a, k_b, np.float64)
    else:
        by_vec = _top(vec, window)
        matched = np.flatnonzero(kw > 0)
        by_kw = matched[_top(kw[matched], window)]
        pool = np.union1d(by_vec, by_kw)
        fused = np.zeros(pool.shape[0])
        # pool is sorted, so each window's members are found by binary search.
        fused[np.searchsorted(pool, by_vec)] += alpha / (rrf_k + np.arange(1, by_vec.shape[0] + 1))
        fused[np.searchsorted(pool, by_kw)] += (1.0 - alpha) / (rrf_k + np.arange(1, by_kw.shape[0] + 1))

    vec = vec[pool].astype(np.float64)
    rows = candidates[pool]
    order = np.lexsort((rows, -vec, -fused))[:top_k]
    return rows[order], fused[order]
