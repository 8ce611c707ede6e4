"""Recall you can count on: the graph's recall@10 and search time before calibration (the
fixed 128 / 64 setting every graph used) and after (the setting the calibration measured
at build time picks for the 0.95 target, or an exact scan), on two kinds of data, at
several sizes, with the estimate the index reports beside the recall it gets.

* ``msmarco``: msmarco-blend vectors (:func:`_data.mixed_corpus`), queries = msmarco's 50
  real queries plus 450 in-distribution blends (as ``bench_scale.py``'s probes);
* ``clustered``: 384-d Gaussian clusters of a high intrinsic dimension (200 centres drawn
  from N(0, I), each point its centre plus 3 N(0, I): most of a point is its own noise),
  queries fresh points of the same clusters. (2,000 centres spread 0.7, an earlier
  choice, was too easy: recall 1.0 at 128 candidates.)

Indexes are built once with their graph (the 100k and 1M msmarco ones are reused from
``bench_graph_checks.py``'s cache when there; builds take ~2 min per 100k on this box,
calibration included) and kept under ``--cache``. Each measurement runs in a fresh process
on the loaded index: every query is asked exactly (the truth), through the graph with the
fixed setting (before) and with the calibration the artifact carries (after); last, the
graph is calibrated again in place, only to time what ``SessionIndex.calibrate()`` costs.

Usage::

    python benchmarks/bench_calibration.py --data ../shared/data/msmarco-5k \\
        --datasets msmarco,clustered --sizes 100000,300000,1000000 --out benchmarks/results/calibration.json
    python benchmarks/bench_calibration.py --plot benchmarks/results/calibration.png
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


def clustered(count: int, seed: int = 0, dim: int = 384, centres: int = 200, spread: float = 3.0) -> np.ndarray:
    centre = np.random.default_rng(1234).standard_normal((centres, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        rows = min(count, start + 100_000) - start
        block = centre[rng.integers(0, centres, rows)] + spread * rng.standard_normal((rows, dim)).astype(np.float32)
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def artifact(cache: Path, dataset: str, size: int, base: np.ndarray, texts: list[str]) -> Path:
    reused = cache / "graph-checks" / f"msmarco-blend-{size}.lix"
    if dataset == "msmarco" and reused.exists() and _calibrated(reused):
        return reused
    path = cache / "calibration" / f"{'clustered-s3-c200' if dataset == 'clustered' else dataset}-{size}.lix"
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
    build_s = time.perf_counter() - started
    print(f"  built {dataset} {size} in {build_s:.0f} s (graph and calibration)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"build_s": round(build_s, 1)}))
    write_artifact_file(core.snapshot(path.stem, "custom"), path)
    return path


def _calibrated(path: Path) -> bool:
    from lichen.engine.calibration import EXTRA_KEY
    from lichen.format import read_artifact

    return EXTRA_KEY in read_artifact(path, lazy=True).extra


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
    calibration = core._calibration  # measured when the artifact's graph was built
    assert calibration is not None, "the artifact has no calibration: rebuild it"
    core._calibration = None  # before: the fixed setting
    before, before_ms = run()
    core._calibration = calibration
    after, after_ms = run()
    started = time.perf_counter()
    core.calibrate_graph()  # timed only: the in-place calibration of SessionIndex.calibrate()
    calibrate_s = time.perf_counter() - started
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


def plot(rows: dict, out: Path) -> None:
    """Recall and search time, before and after, per dataset and size (needs matplotlib,
    the ``bench`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    datasets = sorted({key.rsplit("-", 1)[0] for key in rows})
    fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets), 6.5), dpi=120, squeeze=False)
    for column, dataset in enumerate(datasets):
        sizes = sorted(int(key.rsplit("-", 1)[1]) for key in rows if key.rsplit("-", 1)[0] == dataset)
        got = [rows[f"{dataset}-{size}"] for size in sizes]
        labels = [f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M" for size in sizes]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(labels, [r["before"]["recall_at_10"] for r in got], "o-", color="tab:red", label="before (128 / 64)")
        top.plot(labels, [r["calibration"]["settings"][0][2] for r in got], "x--", color="tab:red", alpha=0.6,
                 label="estimate at 128 / 64")
        top.plot(labels, [r["after"]["recall_at_10"] for r in got], "o-", color="tab:green", label="after (calibrated)")
        estimates = [r["after"]["estimate"] if r["after"]["estimate"] is not None else 1.0 for r in got]
        top.plot(labels, estimates, "x--", color="tab:green", alpha=0.6, label="estimate reported")
        top.axhline(0.95, color="grey", lw=0.8, ls=":")
        top.set_title(dataset)
        top.set_ylabel("recall@10")
        top.set_ylim(0.7, 1.01)
        top.legend(fontsize=8, loc="lower left")
        bottom.plot(labels, [r["before"]["p50_ms"] for r in got], "o-", color="tab:red", label="before")
        bottom.plot(labels, [r["after"]["p50_ms"] for r in got], "o-", color="tab:green", label="after")
        bottom.plot(labels, [r["exact_p50_ms"] for r in got], "s:", color="grey", label="exact scan")
        for label, r in zip(labels, got):
            setting = r["after"]["setting"]
            bottom.annotate("exact" if setting == "exact" else f"{setting[0]}/{setting[1]}", (label, r["after"]["p50_ms"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7, color="tab:green")
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        bottom.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        bottom.set_ylabel("search p50, ms")
        bottom.set_xlabel("documents")
        bottom.legend(fontsize=8, loc="upper left")
    fig.suptitle("Calibrated graph search: recall@10 target 0.95 (bench_calibration.py)")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--datasets", default="msmarco,clustered")
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "calibration.json")
    parser.add_argument("--plot", type=Path, help="only draw --out's rows into this PNG")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.queries)
        return
    if args.plot:
        plot(json.loads(args.out.read_text()), args.plot)
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
            built = path.with_suffix(".json")
            row["build_s"] = json.loads(built.read_text())["build_s"] if built.exists() else None
            rows[f"{dataset}-{size}"] = row
            print(dataset, size, json.dumps({k: row[k] for k in ("before", "after", "exact_p50_ms", "calibrate_s")}),
                  flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
