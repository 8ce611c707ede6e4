"""nDCG@10 / recall@10 of the *reference* model (sentence-transformers on torch) on
msmarco-5k, pure vector search: the figure Lichen's shipped ONNX model must match.

Needs the throwaway torch environment of ``scripts/make_golden_vectors.py``::

    /tmp/golden/bin/python benchmarks/reference_quality.py MODEL_DIR --data ../shared/data/msmarco-5k
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _data import load_corpus, load_qrels, load_queries, ndcg_at_k, recall_at_k


def main() -> None:
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reference_quality.json")
    args = parser.parse_args()

    model = SentenceTransformer(str(args.model_dir), device="cpu")
    doc_ids, texts = load_corpus(args.data)
    query_ids, queries = load_queries(args.data)
    qrels = load_qrels(args.data)
    corpus = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    query_vectors = model.encode(queries, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    ndcgs, recalls = [], []
    for qid, vector in zip(query_ids, query_vectors):
        if qid not in qrels:
            continue
        ranked = [doc_ids[i] for i in np.argsort(-(corpus @ vector))[:10]]
        ndcgs.append(ndcg_at_k(ranked, qrels[qid]))
        recalls.append(recall_at_k(ranked, qrels[qid]))
    report = {"model": "sentence-transformers/all-MiniLM-L6-v2 (torch)", "queries": len(ndcgs),
              "ndcg@10": round(float(np.mean(ndcgs)), 4), "recall@10": round(float(np.mean(recalls)), 4)}
    print(json.dumps(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
