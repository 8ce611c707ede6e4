"""Recall and latency of a stored graph against the search beam and the re-ranked pool.

A graph build is not deterministic (parallel inserts), so recall@10 at 1M moved between
0.976 and 0.990 from one ``bench_scale.py`` run to the next with the same settings. This
re-queries artifacts those runs left behind, without rebuilding, to see what a wider beam
or pool buys and costs::

    python benchmarks/bench_graph_beam.py --data ../shared/data/msmarco-5k \\
        /tmp/lichen-scale-*/indexes/scale-1000000-*.lix

``--settings 64:64,128:64`` picks the (search beam, re-ranked pool) pairs; ``--out`` the
JSON written. Each setting's rounds are interleaved with the others', so a slow minute
slows them all rather than one.

Queries: msmarco's 50 real queries (embedded once, cached like the other benchmarks), and
the 450 synthetic probes ``bench_scale.py`` uses (blends with many near-equal neighbours).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus
from _measure import percentiles

ROUNDS = 3


def parse_settings(text: str) -> list[tuple[int, int]]:
    """``"64:64,128:128"`` -> ``[(64, 64), (128, 128)]`` (search beam, re-ranked pool)."""
    return [(int(beam), int(pool)) for beam, pool in (item.split(":") for item in text.split(","))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--settings", type=parse_settings, default=parse_settings("128:128,192:192,256:256"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "graph_beam.json")
    parser.add_argument("artifacts", type=Path, nargs="+")
    args = parser.parse_args()

    import lichen.engine.core as engine
    import lichen.engine.graph as graph
    from lichen import get_embedder
    from lichen.engine.core import IndexCore
    from lichen.format.artifact import read_artifact

    embed = get_embedder("lichen-minilm").embed
    _, texts = load_queries(args.data)
    real = cached_embeddings(texts, args.cache, embed)
    _, corpus_texts = load_corpus(args.data)
    probes = np.vstack([real, mixed_corpus(cached_embeddings(corpus_texts, args.cache, embed), 450, seed=99)])
    probes = probes.astype(np.float32)
    rows = []
    for path in args.artifacts:
        core = IndexCore.from_snapshot(read_artifact(path, lazy=True))
        truth = [{h.id for h in core.search(q, "", top_k=10, exact=True)} for q in probes]
        samples: dict = {setting: [] for setting in args.settings}
        found: dict = {setting: [] for setting in args.settings}
        for _ in range(ROUNDS):
            for setting in args.settings:
                beam, pool = setting  # the graph hands back its whole beam; the best `pool` are re-ranked
                graph.GRAPH_EXPANSION_SEARCH = engine.CANDIDATE_FLOOR = beam
                engine.RERANK_FLOOR = pool
                for q in probes:
                    started = time.perf_counter()
                    hits = core.search(q, "", top_k=10)
                    samples[setting].append((time.perf_counter() - started) * 1000)
                    found[setting].append({h.id for h in hits})
        for beam, pool in args.settings:
            overlap = [len(f & t) / 10 for f, t in zip(found[beam, pool], truth * ROUNDS)]
            is_real = [i % len(probes) < len(real) for i in range(len(overlap))]
            row = {"artifact": path.name, "docs": len(core), "beam": beam, "pool": pool,
                   "recall_at_10_real_queries": round(float(np.mean([o for o, r in zip(overlap, is_real) if r])), 4),
                   "recall_at_10": round(float(np.mean(overlap)), 4),
                   **percentiles(samples[beam, pool])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
