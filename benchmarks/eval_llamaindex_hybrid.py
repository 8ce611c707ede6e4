"""Pick the default ``alpha`` of ``LichenVectorStore``'s HYBRID mode (llama-index-lichen).

LlamaIndex users who ask for ``vector_store_query_mode="hybrid"`` without an ``alpha``
have asked for a blend, so the default must blend (``alpha < 1``). This runs msmarco-5k
through the adapter itself (nodes with the corpus embeddings in a ``LichenVectorStore``,
``VectorStoreQuery(mode=HYBRID, alpha=a)``) over a grid of alphas and reports nDCG@10 and
recall@10 against the store's DEFAULT (pure vector) mode, with the same metrics and
paired permutation test as ``eval_hybrid.py`` (whose loaders and metrics it reuses).

Usage::

    PYTHONPATH=src python benchmarks/eval_llamaindex_hybrid.py --data ../shared/data/msmarco-5k \\
        --out benchmarks/results/llamaindex_hybrid.json [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from eval_hybrid import K, doc_text, embed_corpus, load_jsonl, load_qrels, ndcg_at_k, permutation_p, recall_at_k
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from llama_index.vector_stores.lichen import LichenVectorStore

from lichen.models import get_embedder

ALPHAS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
MODEL = "lichen-minilm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lichen-eval-cache")
    args = parser.parse_args(argv)

    corpus = load_jsonl(args.data / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in load_jsonl(args.data / "queries.jsonl")}
    qrels = load_qrels(args.data / "qrels" / "test.tsv")
    qids = [q for q in queries if q in qrels]
    texts = [doc_text(d) for d in corpus]
    matrix = embed_corpus(texts, MODEL, args.cache, args.data / "corpus.jsonl", 64)
    query_vectors = get_embedder(MODEL).embed([queries[q] for q in qids])

    store = LichenVectorStore()
    store.add([TextNode(id_=d["_id"], text=t, embedding=v.tolist()) for d, t, v in zip(corpus, texts, matrix)])

    def run(mode: VectorStoreQueryMode, alpha: float | None) -> np.ndarray:
        scores = []
        for qi, qid in enumerate(qids):
            query = VectorStoreQuery(
                query_embedding=query_vectors[qi].tolist(), query_str=queries[qid], similarity_top_k=K, mode=mode, alpha=alpha
            )
            ranked = store.query(query).ids
            scores.append((ndcg_at_k(ranked, qrels[qid]), recall_at_k(ranked, qrels[qid])))
        return np.array(scores)

    base = run(VectorStoreQueryMode.DEFAULT, None)
    rows = [{"mode": "default (vector)", "alpha": None, "ndcg@10": base[:, 0].mean(), "recall@10": base[:, 1].mean()}]
    for alpha in ALPHAS:
        got = run(VectorStoreQueryMode.HYBRID, alpha)
        diff = got[:, 0] - base[:, 0]
        rows.append({
            "mode": "hybrid", "alpha": alpha, "ndcg@10": got[:, 0].mean(), "recall@10": got[:, 1].mean(),
            "delta_ndcg_vs_vector": diff.mean(), "wins": int((diff > 1e-12).sum()), "losses": int((diff < -1e-12).sum()),
            "p_vs_vector": permutation_p(diff),
        })
    rows = [{k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()} for r in rows]
    best = max(rows[1:], key=lambda r: r["ndcg@10"])

    print(f"{args.data.name}: {len(texts)} docs, {len(qids)} judged queries, through LichenVectorStore.query")
    print(f"{'mode':<18} {'alpha':>5} {'nDCG@10':>8} {'R@10':>7} {'dNDCG':>7} {'W/L':>7} {'p':>6}")
    for r in rows:
        extra = f"{r['delta_ndcg_vs_vector']:>+7.4f} {r['wins']:>3}/{r['losses']:<3} {r['p_vs_vector']:>6.3f}" if "wins" in r else ""
        print(f"{r['mode']:<18} {str(r['alpha'] or ''):>5} {r['ndcg@10']:>8.4f} {r['recall@10']:>7.4f} {extra}")
    print(f"best hybrid alpha: {best['alpha']} (nDCG@10 {best['ndcg@10']:.4f}, vector {rows[0]['ndcg@10']:.4f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"dataset": args.data.name, "queries": len(qids), "k": K, "results": rows, "best_hybrid_alpha": best["alpha"]}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
