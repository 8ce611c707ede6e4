"""Recall and latency of a stored graph against the search beam and the re-ranked pool.

A graph build is not deterministic (parallel inserts), so recall@10 at 1M moved between
0.976 and 0.990 from one ``bench_scale.py`` run to the next with the same settings. This
re-queries artifacts those runs left behind, without rebuilding, to see what a wider beam
or pool buys and costs::

    python benchmarks/bench_graph_beam.py --data ../shared/data/msmarco-5k \\
        /tmp/lichen-scale-*/indexes/scale-1000000-*.lix

Queries: msmarco's 50 real queries (embedded once, cached like the other benchmarks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_queries
from _measure import percentiles

SETTINGS = [(128, 128), (192, 192), (256, 256)]  # (search beam, re-ranked candidates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("artifacts", type=Path, nargs="+")
    args = parser.parse_args()

    import lichen._engine as engine
    import lichen._graph as graph
    from lichen import get_embedder
    from lichen._engine import IndexCore
    from lichen.artifact import read_artifact

    _, texts = load_queries(args.data)
    queries = cached_embeddings(texts, args.cache, get_embedder("lichen-minilm").embed)
    rows = []
    for path in args.artifacts:
        core = IndexCore.from_snapshot(read_artifact(path, lazy=True))
        truth = [[h.id for h in core.search(q, "", top_k=10, exact=True)] for q in queries]
        for beam, pool in SETTINGS:
            graph.GRAPH_EXPANSION_SEARCH, engine.CANDIDATE_FLOOR = beam, pool
            samples, found = [], []
            for _ in range(3):
                for q in queries:
                    started = time.perf_counter()
                    hits = core.search(q, "", top_k=10)
                    samples.append((time.perf_counter() - started) * 1000)
                    found.append([h.id for h in hits])
            recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth * 3)])
            row = {"artifact": path.parent.parent.name, "beam": beam, "pool": pool, "recall_at_10": round(float(recall), 4),
                   **percentiles(samples)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(__file__).parent / "results" / "graph_beam.json"
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
