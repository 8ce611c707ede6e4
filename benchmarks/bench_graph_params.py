"""Which HNSW build setting buys recall: storage type, connectivity M, build beam.

``bench_graph_beam.py`` showed that a wider *search* beam does not recover the misses of
a weaker 1M build; they are in the graph. This builds graphs over the same vectors as
``bench_scale.py`` (``_data.mixed_corpus`` blends of the msmarco-5k embeddings) with each
setting, as the engine builds them (the first 2,048 nodes one at a time, the rest on
every core), and reports build time, serialised size, search latency and recall@10 against
exact search after the engine's exact re-ranking of the candidates::

    python benchmarks/bench_graph_params.py --data ../shared/data/msmarco-5k --docs 200000 \\
        --settings i8:32:200,i8:48:200,i8:32:300,f16:32:200

Probes: msmarco's 50 real queries plus 450 in-distribution vectors (as ``bench_scale``).
Each setting is searched with the default beam / pool (128 / 128) and with 256 / 256.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus
from _measure import percentiles

SERIAL_SEED = 2_048  # as lichen.engine.graph
SEARCHES = [(128, 128), (256, 256)]  # (search beam, re-ranked candidates)


def parse_settings(text: str) -> list[tuple[str, int, int]]:
    settings = []
    for item in text.split(","):
        dtype, connectivity, expansion_add = item.split(":")
        settings.append((dtype, int(connectivity), int(expansion_add)))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--settings", type=parse_settings, default=parse_settings("i8:32:200,i8:48:200,i8:32:300"),
                        help="dtype:M:expansion_add, comma-separated")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "graph_params.json")
    args = parser.parse_args()

    from usearch.index import Index

    from lichen import get_embedder
    from lichen.engine.core import top_k_indices

    embed = get_embedder("lichen-minilm").embed
    base = cached_embeddings(load_corpus(args.data)[1], args.cache, embed)
    real = cached_embeddings(load_queries(args.data)[1], args.cache, embed)
    matrix = mixed_corpus(base, args.docs)
    probes = np.vstack([real, mixed_corpus(base, 450, seed=99)]).astype(np.float32)
    truth = [set(top_k_indices(matrix @ q, 10).tolist()) for q in probes]
    keys = np.arange(args.docs, dtype=np.uint64)
    rows = []
    for dtype, connectivity, expansion_add in args.settings:
        index = Index(ndim=matrix.shape[1], metric="cos", dtype=dtype, connectivity=connectivity,
                      expansion_add=expansion_add)
        started = time.perf_counter()
        index.add(keys[:SERIAL_SEED], matrix[:SERIAL_SEED], threads=1)
        index.add(keys[SERIAL_SEED:], matrix[SERIAL_SEED:], threads=0)
        build_s = time.perf_counter() - started
        graph_mb = len(index.save()) / 1e6
        for beam, pool in SEARCHES:
            index.expansion_search = beam
            found, samples = [], []
            for query in probes:
                started = time.perf_counter()
                candidates = index.search(query, pool, threads=1).keys.astype(np.int64)
                scores = matrix[candidates] @ query
                found.append(set(candidates[top_k_indices(scores, 10)].tolist()))
                samples.append((time.perf_counter() - started) * 1000)
            hits = [len(f & t) / 10 for f, t in zip(found, truth)]
            row = {"docs": args.docs, "dtype": dtype, "connectivity": connectivity, "expansion_add": expansion_add,
                   "beam": beam, "pool": pool, "build_s": round(build_s, 1), "graph_mb": round(graph_mb, 1),
                   "recall_at_10_real_queries": round(float(np.mean(hits[: len(real)])), 4),
                   "recall_at_10": round(float(np.mean(hits)), 4), **percentiles(samples)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    previous = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    args.out.write_text(json.dumps({"rows": previous + rows}, indent=2) + "\n")
    print(f"appended {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
