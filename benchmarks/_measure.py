"""Timing and memory helpers shared by the benchmarks."""

from __future__ import annotations

import statistics

import numpy as np


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
        "n": len(ordered),
    }


def rss_mb() -> float:
    """Resident set size of this process now (anonymous and file-backed pages), in MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_parts_mb() -> dict[str, float]:
    """Resident memory split into private (``anon``: heap, Python objects) and
    ``file``-backed pages (memory-mapped artifacts: shared with the page cache and
    dropped by the kernel under pressure, so they cost less than they weigh)."""
    parts = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            for key, name in (("RssAnon:", "anon"), ("RssFile:", "file")):
                if line.startswith(key):
                    parts[name] = int(line.split()[1]) / 1024
    return parts


def exact_top_k(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The reference answer: positions of the ``k`` best inner products."""
    scores = matrix @ query
    chosen = np.argpartition(-scores, k - 1)[:k]
    return chosen[np.argsort(-scores[chosen], kind="stable")]
