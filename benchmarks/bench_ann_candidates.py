"""Side-by-side comparison of the approximate-nearest-neighbour libraries considered for
Lichen's big-index path: usearch, faiss-cpu and hnswlib, on this machine, in one run.

Every candidate indexes the same vectors (blends of the msmarco-5k embeddings, see
:func:`_data.mixed_corpus`) and answers the same queries (msmarco's 50 real ones plus 450
in-distribution vectors); each returns ``CANDIDATES`` ids that are then re-ranked by
exact float32 cosine (as Lichen does), and recall@10 is counted against exact search.
All graphs use the same degree (M=32), build beam (200) and search beam (128). Reported per configuration: build time
(2 threads), single-query search latency p50/p95 (1 thread, the re-rank included),
recall@10, resident memory added by the index and serialised size.

Usage::

    python benchmarks/bench_ann_candidates.py --data ../shared/data/msmarco-5k --size 100000 \
        --out benchmarks/results/ann_candidates.json

Needs ``pip install usearch faiss-cpu hnswlib`` (hnswlib builds from source).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus
from _measure import exact_top_k, percentiles, rss_mb
from lichen import get_embedder

TOP_K = 10
CANDIDATES = 128
REAL_QUERIES = 50  # msmarco's; the rest are synthetic in-distribution probes


def rerank(matrix: np.ndarray, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
    ids = ids[ids >= 0]
    scores = matrix[ids] @ query
    return ids[np.argsort(-scores, kind="stable")[:TOP_K]]


def measure(
    name: str,
    build: Callable[[], object],
    search: Callable[[object, np.ndarray], np.ndarray],
    save: Callable[[object, str], None],
    matrix: np.ndarray,
    queries: np.ndarray,
    truth: list[set[int]],
    repeats: int,
) -> dict:
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - started
    added_mb = rss_mb() - before
    found = [len(expected & set(rerank(matrix, query, search(index, query)).tolist())) for query, expected in zip(queries, truth)]
    samples = []
    for i in range(repeats):
        query = queries[i % len(queries)]
        start = time.perf_counter()
        rerank(matrix, query, search(index, query))
        samples.append((time.perf_counter() - start) * 1000.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        save(index, path)
        size_mb = os.path.getsize(path) / 2**20
    row = {
        "name": name,
        "build_s": round(build_s, 2),
        "recall_at_10": round(sum(found) / (TOP_K * len(queries)), 4),
        "recall_at_10_real_queries": round(sum(found[:REAL_QUERIES]) / (TOP_K * REAL_QUERIES), 4),
        "search": percentiles(samples),
        "rss_added_mb": round(added_mb, 1),
        "serialised_mb": round(size_mb, 1),
    }
    print(json.dumps(row))
    del index
    gc.collect()
    return row


def usearch_candidate(dtype: str, connectivity: int, expansion: int, matrix: np.ndarray):
    from usearch.index import Index

    def build():
        index = Index(ndim=matrix.shape[1], metric="cos", dtype=dtype, connectivity=connectivity,
                      expansion_add=200, expansion_search=expansion)
        index.add(np.arange(len(matrix), dtype=np.uint64), matrix, threads=2)
        return index

    def search(index, query):
        return index.search(query, CANDIDATES, threads=1).keys.astype(np.int64)

    return f"usearch HNSW {dtype} M={connectivity} ef={expansion}", build, search, lambda index, path: index.save(path)


def faiss_candidate(kind: str, m: int, ef: int, matrix: np.ndarray):
    import faiss

    def build():
        faiss.omp_set_num_threads(2)
        if kind == "flat":
            index = faiss.IndexHNSWFlat(matrix.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWSQ(matrix.shape[1], faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
            index.train(matrix)
        index.hnsw.efConstruction = 200
        index.add(matrix)
        index.hnsw.efSearch = ef
        faiss.omp_set_num_threads(1)
        return index

    def search(index, query):
        return index.search(query[None, :], CANDIDATES)[1][0]

    return f"faiss HNSW{'Flat f32' if kind == 'flat' else 'SQ int8'} M={m} ef={ef}", build, search, faiss.write_index


def hnswlib_candidate(m: int, ef: int, matrix: np.ndarray):
    import hnswlib

    def build():
        index = hnswlib.Index(space="ip", dim=matrix.shape[1])
        index.init_index(max_elements=len(matrix), ef_construction=200, M=m)
        index.set_num_threads(2)
        index.add_items(matrix, np.arange(len(matrix)))
        index.set_ef(ef)
        index.set_num_threads(1)
        return index

    def search(index, query):
        return index.knn_query(query, k=CANDIDATES)[0][0].astype(np.int64)

    return f"hnswlib HNSW f32 M={m} ef={ef}", build, search, lambda index, path: index.save_index(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ann_candidates.json")
    args = parser.parse_args()

    embedder = get_embedder()
    _, texts = load_corpus(args.data)
    _, query_texts = load_queries(args.data)
    base = cached_embeddings(texts, args.cache, embedder.embed)
    matrix = mixed_corpus(base, args.size)
    real_queries = cached_embeddings(query_texts, args.cache, embedder.embed)
    queries = np.vstack([real_queries, mixed_corpus(base, 450, seed=99)]).astype(np.float32)
    truth = [set(exact_top_k(matrix, q, TOP_K).tolist()) for q in queries]

    configs = [
        usearch_candidate("i8", 32, 128, matrix),
        usearch_candidate("f16", 32, 128, matrix),
        usearch_candidate("f32", 32, 128, matrix),
        faiss_candidate("sq8", 32, 128, matrix),
        faiss_candidate("flat", 32, 128, matrix),
        hnswlib_candidate(32, 128, matrix),
    ]
    rows = [measure(name, build, search, save, matrix, queries, truth, args.repeats) for name, build, search, save in configs]
    import faiss  # noqa: PLC0415 - the exact reference, timed in the same run
    import hnswlib  # noqa: F401, PLC0415
    import usearch

    flat = faiss.IndexFlatIP(matrix.shape[1])
    flat.add(matrix)
    faiss.omp_set_num_threads(1)
    samples = []
    for i in range(args.repeats):
        start = time.perf_counter()
        flat.search(queries[i % len(queries)][None, :], TOP_K)
        samples.append((time.perf_counter() - start) * 1000.0)
    result = {
        "size": args.size,
        "dimension": int(matrix.shape[1]),
        "candidates": CANDIDATES,
        "versions": {"usearch": usearch.__version__, "faiss": faiss.__version__, "numpy": np.__version__},
        "rows": rows,
        "faiss_flat_ip_search": percentiles(samples),
    }
    print(json.dumps(result["faiss_flat_ip_search"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
