"""Measure hybrid search quality on a BEIR-format dataset to pick the fusion defaults.

Runs pure vector search (alpha = 1), pure BM25 (alpha = 0, keyword matches only) and every
fusion of ``lichen.engine.fusion`` ("rrf" with k = 30, "normalized": min-max, "zscore") over a
grid of alphas, and reports nDCG@10 and recall@10 averaged over the queries that have
judgements.

Metrics follow BEIR / pytrec_eval (``ndcg_cut_10``): gain = graded relevance (linear,
not 2^rel - 1), discount log2(rank + 1), ideal ranking from every judged document of the
query; recall@10 counts documents with relevance > 0. Each fused configuration is also
compared with pure vector search by a paired sign-flip permutation test on the per-query
nDCG@10 differences (two-sided p-value) and a 95% bootstrap interval of the mean difference
(the evaluation itself is deterministic: the noise is which queries happen to be judged).

Usage::

    PYTHONPATH=src python benchmarks/eval_hybrid.py --data ../shared/data/msmarco-5k \\
        --out benchmarks/results/hybrid.json [--cache DIR] [--model lichen-minilm]

The corpus embedding matrix is cached in ``--cache`` (keyed by model and corpus hash), so
reruns only embed the queries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lichen.engine.fusion import DEFAULT_RRF_K, FUSION_CHOICES, fuse_rankings
from lichen.engine.keyword import KeywordIndex
from lichen.models import embed_queries, get_embedder

ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
K = 10


def load_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not parts[2].lstrip("-").isdigit():
                continue  # header ("query-id corpus-id score") or blank line
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def doc_text(doc: dict) -> str:
    title = (doc.get("title") or "").strip()
    return f"{title} {doc['text']}" if title else doc["text"]


def ndcg_at_k(ranked: list[str], judged: dict[str, int], k: int = K) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: list[str], judged: dict[str, int], k: int = K) -> float:
    relevant = {d for d, r in judged.items() if r > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def permutation_p(diffs: np.ndarray, rounds: int = 20_000, seed: int = 0) -> float:
    """Two-sided paired sign-flip test of mean(diffs) != 0."""
    if not np.any(diffs):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(rounds, diffs.shape[0]))
    null = np.abs((signs * diffs).mean(axis=1))
    return float((np.sum(null >= abs(diffs.mean()) - 1e-12) + 1) / (rounds + 1))


def bootstrap_interval(diffs: np.ndarray, rounds: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of mean(diffs) over queries resampled with replacement."""
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.shape[0], size=(rounds, diffs.shape[0]))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def embed_corpus(texts: list[str], model: str, cache: Path, corpus_path: Path, batch: int) -> np.ndarray:
    digest = hashlib.sha256(corpus_path.read_bytes()).hexdigest()[:16]
    path = cache / f"{model}-{digest}.npy"
    if path.exists():
        matrix = np.load(path)
        if matrix.shape[0] == len(texts):
            print(f"corpus embeddings: cached {path}", file=sys.stderr)
            return matrix
    embedder = get_embedder(model)
    started = time.perf_counter()
    parts = []
    for i in range(0, len(texts), batch):
        parts.append(np.asarray(embedder.embed(texts[i : i + batch]), dtype=np.float32))
        print(f"\rembedding corpus {min(i + batch, len(texts))}/{len(texts)}", end="", file=sys.stderr)
    matrix = np.concatenate(parts)
    print(f"\nembedded {len(texts)} docs in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, matrix)
    os.replace(tmp, path)
    return matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR-format directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lichen-eval-cache")
    parser.add_argument("--model", default="lichen-minilm")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    corpus = load_jsonl(args.data / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in load_jsonl(args.data / "queries.jsonl")}
    qrels = load_qrels(args.data / "qrels" / "test.tsv")
    qids = [q for q in queries if q in qrels]
    doc_ids = [d["_id"] for d in corpus]
    texts = [doc_text(d) for d in corpus]
    n = len(texts)

    doc_matrix = embed_corpus(texts, args.model, args.cache, args.data / "corpus.jsonl", args.batch_size)
    # Queries go through the query path, as a Lichen query does: the model's query prompt
    # and, for the built-in model, its int8 query encoder.
    query_matrix = np.asarray(embed_queries(get_embedder(args.model), [queries[q] for q in qids]), dtype=np.float32)
    started = time.perf_counter()
    keywords = KeywordIndex(texts)
    bm25_build_s = time.perf_counter() - started

    configs: list[tuple[str, str, float]] = [("vector", "none", 1.0), ("bm25", "none", 0.0)]
    configs += [(f"{m} a={a}", m, a) for m in FUSION_CHOICES for a in ALPHAS]
    per_query: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in configs}
    candidates = np.arange(n)
    for qi, qid in enumerate(qids):
        vector_scores = doc_matrix @ query_matrix[qi]
        keyword_scores = keywords.scores(queries[qid])
        for name, method, alpha in configs:
            if name == "vector":
                rows = np.argsort(-vector_scores, kind="stable")[:K]
            elif name == "bm25":
                matched = np.flatnonzero(keyword_scores > 0)
                rows = matched[np.argsort(-keyword_scores[matched], kind="stable")[:K]]
            else:
                rows, _ = fuse_rankings(vector_scores, keyword_scores, candidates, alpha, K, method, DEFAULT_RRF_K)
            ranked = [doc_ids[r] for r in rows]
            per_query[name].append((ndcg_at_k(ranked, qrels[qid]), recall_at_k(ranked, qrels[qid])))

    base = np.array([nd for nd, _ in per_query["vector"]])
    results = []
    for name, method, alpha in configs:
        ndcg = np.array([nd for nd, _ in per_query[name]])
        recall = np.array([r for _, r in per_query[name]])
        results.append(
            {
                "name": name,
                "fusion": method,
                "alpha": alpha,
                "ndcg@10": round(float(ndcg.mean()), 4),
                "recall@10": round(float(recall.mean()), 4),
                "delta_ndcg_vs_vector": round(float((ndcg - base).mean()), 4),
                "wins_vs_vector": int(np.sum(ndcg > base + 1e-12)),
                "losses_vs_vector": int(np.sum(ndcg < base - 1e-12)),
                "p_vs_vector": round(permutation_p(ndcg - base), 4) if name != "vector" else None,
                "ci95_delta_ndcg": [round(x, 4) for x in bootstrap_interval(ndcg - base)] if name != "vector" else None,
            }
        )

    print(f"{args.data.name}: {n} docs, {len(qids)} judged queries, model {args.model}, rrf_k={DEFAULT_RRF_K}")
    print(f"{'config':<18} {'nDCG@10':>8} {'R@10':>7} {'dNDCG':>7} {'W/L':>7} {'p':>7} {'95% CI of dNDCG':>18}")
    for r in results:
        p = "" if r["p_vs_vector"] is None else f"{r['p_vs_vector']:.3f}"
        ci = "" if r["ci95_delta_ndcg"] is None else "[{:+.4f}, {:+.4f}]".format(*r["ci95_delta_ndcg"])
        print(
            f"{r['name']:<18} {r['ndcg@10']:>8.4f} {r['recall@10']:>7.4f} {r['delta_ndcg_vs_vector']:>+7.4f} "
            f"{r['wins_vs_vector']:>3}/{r['losses_vs_vector']:<3} {p:>7} {ci:>18}"
        )
    best = max((r for r in results if r["fusion"] != "none"), key=lambda r: r["ndcg@10"])
    print(f"best fusion: {best['name']} nDCG@10 {best['ndcg@10']:.4f} (vector {results[0]['ndcg@10']:.4f})")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": str(args.data.name),
        "docs": n,
        "queries": len(qids),
        "model": args.model,
        "k": K,
        "rrf_k": DEFAULT_RRF_K,
        "metric": "nDCG@10 with linear gain (rel) and log2(rank+1) discount (BEIR/pytrec_eval ndcg_cut_10); recall@10 over rel>0",
        "bm25": {"k1": keywords.k1, "b": keywords.b, "build_seconds": round(bm25_build_s, 3)},
        "results": results,
        "best_fusion": best["name"],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
