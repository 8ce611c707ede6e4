"""How wide a graph search must be for the recall an index promises: measured when the
graph is built, stored with it, and used by every query.

The graph's recall depends on the data: msmarco's real-text embeddings reach recall@10
0.998 with 128 candidates, a set of clustered vectors of higher intrinsic dimension only
0.73 (issue 23). So when a graph is built, a sample of the index's own rows is held out of
it (added once measured) and searched at widening settings, each scored against the exact
answer among the other rows: recall@10 is the share of the true top 10 among the
candidates the engine re-ranks. A held-out row is a query the graph has never seen, drawn
from the data itself, as a new document or question is; a row the graph holds, or a
slightly perturbed copy of one, is far easier (on 30k clustered vectors at 128
candidates: fresh queries 0.82, held-out rows 0.84, rows the graph holds 0.97, perturbed
copies 0.90). A query then uses the narrowest setting that meets the index's target
(:data:`DEFAULT_RECALL_TARGET`, or one the query asks for) and, where no setting meets it
within :data:`LATENCY_BUDGET` of an exact scan, scans exactly.

A graph that already exists (:meth:`IndexCore.calibrate_graph`) cannot hold rows out: it
is measured with stored rows and perturbed copies of them, an optimistic estimate.

The calibration travels in the artifact (the manifest's ``extra``), so a loaded index
uses the settings its builder measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .graph import GRAPH_EXPANSION_SEARCH, VectorGraph

__all__ = [
    "GraphCalibration",
    "Calibrator",
    "DEFAULT_RECALL_TARGET",
    "CALIBRATION_SETTINGS",
    "EXTRA_KEY",
    "check_recall_target",
]

#: The recall@10 a graph-backed index promises by default.
DEFAULT_RECALL_TARGET = 0.95
#: (candidates asked of the graph, of which the best are re-ranked exactly), narrowest
#: first: the engine's historical setting, then each twice as wide.
CALIBRATION_SETTINGS: tuple[tuple[int, int], ...] = ((128, 64), (256, 128), (512, 256), (1024, 512), (2048, 1024))
#: A setting whose search costs more than this share of an exact scan is not worth the
#: graph: the exact scan answers instead (recall 1).
LATENCY_BUDGET = 0.5
#: Rows drawn as queries: held out of a graph being built, or (a graph that exists) half
#: of them as they are and half perturbed.
SAMPLE_QUERIES = 200
#: Noise of a perturbed query: its cosine to the row it came from is about 0.86.
_PERTURBATION = 0.6
_TOP = 10
EXTRA_KEY = "graph_calibration"


def check_recall_target(recall_target: object) -> None:
    """Refuse a target no calibration could answer (checked before any work, so a bad
    option fails the same on an empty index as on a loaded one)."""
    if recall_target is None:
        return
    if isinstance(recall_target, bool) or not isinstance(recall_target, (int, float)) or not 0.0 < recall_target <= 1.0:
        raise InvalidArgumentError(f"recall_target must be a number in (0, 1], got {recall_target!r}")


@dataclass(frozen=True)
class GraphCalibration:
    """Recall@10 and search time of each setting, as measured on one graph."""

    settings: tuple[tuple[int, int, float, float], ...]
    """``(candidates, rerank, recall, graph_ms)`` per setting, narrowest first."""
    exact_ms: float
    """An exact scan's time on the same machine, at the same size."""
    samples: int

    def choose(self, target: float = DEFAULT_RECALL_TARGET) -> tuple[int, int, float] | None:
        """``(candidates, rerank, estimated recall)`` of the narrowest setting meeting
        ``target`` within the latency budget, or ``None``: scan exactly."""
        budget = LATENCY_BUDGET * self.exact_ms
        for candidates, rerank, recall, graph_ms in self.settings:
            if recall >= target:
                return (candidates, rerank, recall) if graph_ms <= budget else None
        return None

    def to_json(self) -> dict[str, Any]:
        return {"settings": [list(s) for s in self.settings], "exact_ms": self.exact_ms, "samples": self.samples}

    @classmethod
    def from_json(cls, value: Any) -> GraphCalibration | None:
        """A stored calibration, or ``None`` when it is not one (ignored, never trusted
        blindly: the settings it names are bounded here)."""
        try:
            settings = tuple(
                (int(c), int(r), float(recall), float(ms))
                for c, r, recall, ms in value["settings"]
            )
            exact_ms, samples = float(value["exact_ms"]), int(value["samples"])
        except (KeyError, TypeError, ValueError):
            return None
        sane = all(
            1 <= r <= c <= 4 * CALIBRATION_SETTINGS[-1][0] and 0.0 <= recall <= 1.0 and math.isfinite(ms) and ms >= 0
            for c, r, recall, ms in settings
        )
        if not settings or not sane or not (math.isfinite(exact_ms) and exact_ms > 0) or samples < 1:
            return None
        return cls(settings, exact_ms, samples)


class Calibrator:
    """Measures a graph while it is built: the sampled queries' exact top 10 is kept up
    to date chunk by chunk as the build reads the rows (no second pass over the matrix),
    then :meth:`measure` searches the finished graph at every setting.

    ``held_out`` (a graph being built): the sampled rows are the queries, and the build
    must leave them out of the graph until :meth:`measure` is done (:meth:`holds_out`
    says which rows of a chunk they are; :meth:`observe` skips them itself). Otherwise (a
    graph that exists) half the queries are sampled rows, half perturbed copies."""

    def __init__(
        self, sample_keys: np.ndarray, sample_vectors: np.ndarray, *, held_out: bool = True, seed: int | None = None
    ) -> None:
        self.sample_keys = np.sort(np.asarray(sample_keys, dtype=np.uint64))
        self.sample_vectors = np.asarray(sample_vectors, dtype=np.float32)
        self.held_out = held_out
        if held_out:
            queries = self.sample_vectors
        else:
            rng = np.random.default_rng(seed)
            half = len(sample_vectors) // 2
            noisy = sample_vectors[half:] + _PERTURBATION * rng.standard_normal(sample_vectors[half:].shape).astype(
                np.float32
            ) / math.sqrt(sample_vectors.shape[1])
            queries = np.vstack([sample_vectors[:half], noisy]).astype(np.float32)
        self.queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        self._best_scores = np.full((len(queries), _TOP), -np.inf, dtype=np.float32)
        self._best_keys = np.zeros((len(queries), _TOP), dtype=np.uint64)
        self._rows = 0

    def holds_out(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` are sampled rows to leave out of the graph for now."""
        if not self.held_out:
            return np.zeros(len(keys), dtype=bool)
        return np.isin(np.asarray(keys, dtype=np.uint64), self.sample_keys)

    def observe(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Fold a chunk of rows into the exact top 10 of every sampled query (held-out
        rows are not answers: the graph being measured does not hold them)."""
        held = self.holds_out(keys)
        if held.any():
            keys, vectors = keys[~held], vectors[~held]
        if not len(keys):
            return
        scores = self.queries @ vectors.T  # (queries, chunk)
        self._rows += len(keys)
        merged_scores = np.hstack([self._best_scores, scores])
        merged_keys = np.hstack([self._best_keys, np.broadcast_to(keys, scores.shape)])
        top = np.argpartition(-merged_scores, _TOP - 1, axis=1)[:, :_TOP]
        self._best_scores = np.take_along_axis(merged_scores, top, axis=1)
        self._best_keys = np.take_along_axis(merged_keys, top, axis=1)

    def measure(self, graph: VectorGraph) -> GraphCalibration:
        """Search ``graph`` with every sampled query at every setting."""
        truth = [set(row.tolist()) for row in self._best_keys]
        settings = []
        for candidates, rerank in CALIBRATION_SETTINGS:
            hits, times = 0, []
            for query, expected in zip(self.queries, truth):
                started = time.perf_counter()
                found = graph.search(query, candidates, beam=max(GRAPH_EXPANSION_SEARCH, candidates))
                times.append(time.perf_counter() - started)
                hits += len(expected.intersection(found[:rerank].tolist()))
            graph_ms = float(np.median(times)) * 1000
            recall = hits / (len(truth) * _TOP)
            settings.append((candidates, rerank, round(recall, 4), round(graph_ms, 4)))
            if recall >= 0.999:
                break  # wider settings cannot do better
        # One query's exact scan reads every row once: its time from this machine's
        # scan rate (timing the chunks themselves was too noisy on a busy box).
        exact_ms = max(self._rows * self.queries.shape[1] * 4 * _scan_seconds_per_byte() * 1000, 1e-3)
        return GraphCalibration(tuple(settings), round(exact_ms, 4), len(self.queries))


_scan_rate: list[float] = []


def _scan_seconds_per_byte() -> float:
    """How long this machine's exact scan (one float32 matrix-vector product) takes per
    byte of matrix: measured once per process on 64 MB, best of five."""
    if not _scan_rate:
        matrix = np.random.default_rng(0).standard_normal((1 << 16, 256)).astype(np.float32)
        query = matrix[0].copy()
        best = math.inf
        for _ in range(5):
            started = time.perf_counter()
            matrix @ query
            best = min(best, time.perf_counter() - started)
        _scan_rate.append(best / matrix.nbytes)
    return _scan_rate[0]


def sample_for_calibration(
    keys: np.ndarray, rows_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Up to :data:`SAMPLE_QUERIES` of ``keys``, drawn at random, with their vectors."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(keys), size=min(len(keys), SAMPLE_QUERIES), replace=False)
    return rows_of(np.sort(keys[chosen]))
