"""What proving an untrusted graph costs a load, and how often a sound graph fails its self-check.

Per size, an index of msmarco-blend vectors (:func:`_data.mixed_corpus`) with its graph is
written once (kept under ``--cache``: the 1M build takes ~15 minutes on two cores), then a
fresh process, with the file in the page cache:

* **cached load**: ``read_artifact(path, lazy=True)`` + ``IndexCore.from_snapshot`` as a
  client loads an index, everything included (p50 of ``--repeats``), and the same with
  the structure check skipped (the layout handed over already proven): the difference is
  what the check adds to a load, where it runs beside the checksums on the other core;
* **structure check alone**: :func:`lichen.format.graph_layout.read_graph_layout` plus the key
  check against the index (``GraphEdits.check``), by itself (what a server pays);
* **self-check**: ``IndexCore._self_check`` on the loaded graph, its time and, over
  ``--self-checks`` runs, how many of the 24 drawn rows missed (a sound graph should miss
  none or one; the check sets a graph aside beyond 3).

Usage::

    python benchmarks/bench_graph_checks.py --data ../shared/data/msmarco-5k --sizes 100000,1000000 \
        --out benchmarks/results/graph_checks.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, mixed_corpus
from _measure import percentiles


def build(path: Path, size: int, base: np.ndarray, texts: list[str]) -> None:
    from lichen import DocumentInfo
    from lichen.engine.core import IndexCore
    from lichen.format.artifact import write_artifact_file

    vectors = mixed_corpus(base, size)
    core = IndexCore(approximate=True)
    docs = [DocumentInfo(id=f"p{i}", text=texts[i % len(texts)]) for i in range(size)]
    started = time.perf_counter()
    core.upsert(docs, vectors)
    snapshot = core.snapshot(path.stem, "lichen-minilm")
    print(f"  built {size} in {time.perf_counter() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_artifact_file(snapshot, path)


def child(path: Path, repeats: int, self_checks: int) -> None:
    """Measure in this (fresh) process and print one JSON object."""
    import dataclasses

    import lichen.engine.graph as graph_module
    import lichen.format.artifact as artifact_module
    from lichen.engine.core import IndexCore
    from lichen.format.graph_edits import GraphEdits
    from lichen.format.graph_layout import read_graph_layout
    from lichen.format.artifact import read_artifact

    with open(path, "rb") as handle:  # into the page cache: a cached load is measured
        while handle.read(64 << 20):
            pass

    def load_times() -> list[float]:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            IndexCore.from_snapshot(read_artifact(path, lazy=True))
            times.append((time.perf_counter() - started) * 1000)
        return times

    snapshot = read_artifact(path, lazy=True)
    alone = []
    for _ in range(repeats):
        started = time.perf_counter()
        layout = read_graph_layout(snapshot.graph, snapshot.dimension)
        GraphEdits.of(snapshot).check(layout.live_keys, np.asarray(snapshot.keys))
        alone.append((time.perf_counter() - started) * 1000)
    checked = load_times()
    # The same loads with the structure already proven (the reader's check replaced by
    # the layout computed above): what the check adds to a load, overlapped as it is
    # with the checksums.
    proven = lambda buffer, *args, **kwargs: dataclasses.replace(layout, buffer=buffer)  # noqa: E731
    artifact_module.read_graph_layout = graph_module.read_graph_layout = proven
    unchecked = load_times()
    core = IndexCore.from_snapshot(read_artifact(path, lazy=True))
    assert core.graph_fallback is None
    graph = core._graph
    times, counts = [], Counter()
    for _ in range(self_checks):
        started = time.perf_counter()
        missed, _drawn = core.self_check_misses(graph, GraphEdits.none())
        times.append((time.perf_counter() - started) * 1000)
        counts[missed] += 1
    print(json.dumps({
        "cached_load": percentiles(checked), "cached_load_structure_proven": percentiles(unchecked),
        "structure_check_alone": percentiles(alone), "self_check": percentiles(times),
        "self_check_misses": dict(sorted(counts.items())), "graph_bytes": len(snapshot.graph),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--self-checks", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "graph_checks.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats, args.self_checks)
        return
    from lichen.models import get_embedder

    _, texts = load_corpus(args.data)
    base = cached_embeddings(texts, args.cache, lambda t: get_embedder("lichen-minilm").embed(t))
    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        path = args.cache / "graph-checks" / f"msmarco-blend-{size}.lix"
        if not path.exists():
            build(path, size, base, texts)
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--repeats", str(args.repeats),
             "--self-checks", str(args.self_checks)], check=True, capture_output=True, text=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        added = row["cached_load"]["p50_ms"] - row["cached_load_structure_proven"]["p50_ms"]
        before = row["cached_load_structure_proven"]["p50_ms"] - row["self_check"]["p50_ms"]
        row["structure_check_added_ms"] = round(added, 2)
        row["checks_share_of_an_unchecked_load"] = round((added + row["self_check"]["p50_ms"]) / before, 3)
        results[str(size)] = row
        print(size, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
