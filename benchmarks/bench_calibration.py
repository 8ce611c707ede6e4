"""Recall you can count on: the graph's recall@10 and search time before calibration (the
fixed 128 / 64 setting every graph used) and after (the setting its calibration picks for
the 0.95 target, or an exact scan), on two kinds of data, at several sizes.

* ``msmarco``: msmarco-blend vectors (:func:`_data.mixed_corpus`), queries = msmarco's 50
  real queries plus 450 in-distribution blends (as ``bench_scale.py``'s probes);
* ``clustered``: 384-d Gaussian clusters of a high intrinsic dimension (2,000 centres,
  points spread 0.7 of a centre's norm), queries near stored points (the issue's set).

Indexes are built once with their graph (the 100k and 1M msmarco ones are reused from
``bench_graph_checks.py``'s cache; builds take ~2 min per 100k on this box) and kept under
``--cache``. Each measurement runs in a fresh process on the loaded index: the artifact's
graph is calibrated in place (timed), and every query is asked through the graph before
and after, and exactly (the truth).

Usage::

    python benchmarks/bench_calibration.py --data ../shared/data/msmarco-5k \\
        --datasets msmarco,clustered --sizes 100000,300000,1000000 --out benchmarks/results/calibration.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus

QUERIES = 500
TOP = 10


def clustered(count: int, seed: int = 0, dim: int = 384, centres: int = 2_000) -> np.ndarray:
    centre = np.random.default_rng(1234).standard_normal((centres, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        rows = min(count, start + 100_000) - start
        block = centre[rng.integers(0, centres, rows)] + 0.7 * rng.standard_normal((rows, dim)).astype(np.float32)
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def artifact(cache: Path, dataset: str, size: int, base: np.ndarray, texts: list[str]) -> Path:
    reused = cache / "graph-checks" / f"msmarco-blend-{size}.lix"
    if dataset == "msmarco" and reused.exists():
        return reused
    path = cache / "calibration" / f"{dataset}-{size}.lix"
    if path.exists():
        return path
    from lichen import DocumentInfo
    from lichen.engine import IndexCore
    from lichen.format import write_artifact_file

    vectors = mixed_corpus(base, size) if dataset == "msmarco" else clustered(size)
    core = IndexCore(approximate=True)
    started = time.perf_counter()
    core.upsert([DocumentInfo(id=f"p{i}", text=texts[i % len(texts)]) for i in range(size)], vectors)
    core.prepare_graph()
    print(f"  built {dataset} {size} in {time.perf_counter() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_artifact_file(core.snapshot(path.stem, "custom"), path)
    return path


def queries_for(dataset: str, base: np.ndarray, real: np.ndarray) -> np.ndarray:
    if dataset == "msmarco":
        return np.vstack([real, mixed_corpus(base, QUERIES - len(real), seed=99)]).astype(np.float32)
    near = clustered(QUERIES, seed=77)  # fresh points of the same clusters: near stored ones
    return near


def child(path: Path, queries_path: Path) -> None:
    from lichen.engine import IndexCore
    from lichen.format import read_artifact

    queries = np.load(queries_path)
    core = IndexCore.from_snapshot(read_artifact(path, lazy=True), approximate=True)
    assert core.has_graph

    def run(**options) -> tuple[list[set[str]], float]:
        found, times = [], []
        for query in queries:
            started = time.perf_counter()
            hits = core.search(query, "", top_k=TOP, **options)
            times.append(time.perf_counter() - started)
            found.append({hit.id for hit in hits})
        return found, float(np.median(times)) * 1000

    truth, exact_ms = run(exact=True)
    core._calibration = None  # before: the fixed setting
    before, before_ms = run()
    started = time.perf_counter()
    calibration = core.calibrate_graph()
    calibrate_s = time.perf_counter() - started
    after, after_ms = run()
    recall = lambda found: sum(len(f & t) for f, t in zip(found, truth)) / (TOP * len(truth))  # noqa: E731
    choice = calibration.choose()
    print(json.dumps({
        "documents": len(core), "exact_p50_ms": round(exact_ms, 3),
        "before": {"setting": [128, 64], "recall_at_10": round(recall(before), 4), "p50_ms": round(before_ms, 3)},
        "after": {
            "setting": "exact" if choice is None else list(choice[:2]), "estimate": None if choice is None else choice[2],
            "recall_at_10": round(recall(after), 4), "p50_ms": round(after_ms, 3),
        },
        "calibration": calibration.to_json(), "calibrate_s": round(calibrate_s, 2),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--datasets", default="msmarco,clustered")
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "calibration.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.queries)
        return
    from lichen.models import get_embedder

    _, texts = load_corpus(args.data)
    embed = lambda t: get_embedder("lichen-minilm").embed(t)  # noqa: E731
    base = cached_embeddings(texts, args.cache, embed)
    _, query_texts = load_queries(args.data)
    real = cached_embeddings(query_texts, args.cache, embed)
    rows = json.loads(args.out.read_text()) if args.out.exists() else {}
    for dataset in args.datasets.split(","):
        queries = queries_for(dataset, base, real)
        queries_path = args.cache / f"calibration-queries-{dataset}.npy"
        queries_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(queries_path, queries)
        for size in [int(s) for s in args.sizes.split(",")]:
            path = artifact(args.cache, dataset, size, base, texts)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path), "--queries", str(queries_path)],
                check=True, capture_output=True, text=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows[f"{dataset}-{size}"] = row
            print(dataset, size, json.dumps({k: row[k] for k in ("before", "after", "exact_p50_ms", "calibrate_s")}),
                  flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
