"""Retrieval quality with an int8 query encoder, documents still embedded by the float model.

Issue 23 item 3 asks to judge a quantised query encoder by retrieval quality, not by
vector cosine: nDCG@10 and recall@10 on msmarco-5k within 0.003 of the float model. The
corpus is embedded once by the shipped float model (cached under ``benchmarks/.cache``);
the judged queries are embedded, one at a time as they are asked, by the float model and
by int8 query encoders (``lichen.models.build.add_query_encoder``, quantising the MatMul
operators only, MatMul and the fused attention, or everything including the embedding
tables), each searched exactly against the same documents. Also reported: a paired permutation p and a bootstrap interval of the nDCG
difference, how many of the float model's top 10 the int8 queries keep (all 50 queries),
and the cosine between the two query vectors, for reference::

    python benchmarks/eval_query_encoder.py --data ../shared/data/msmarco-5k \\
        --out benchmarks/results/query_encoder_quality.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _data import cached_embeddings, load_corpus, load_qrels, load_queries, ndcg_at_k, recall_at_k
from eval_hybrid import bootstrap_interval, permutation_p

BAR = 0.003
K = 10
#: Query encoders tried: which operators onnxruntime's dynamic quantisation turns to int8.
VARIANTS = {"int8-matmul": ("MatMul",), "int8-matmul-attention": ("MatMul", "Attention"), "int8-all": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "query_encoder_quality.json")
    args = parser.parse_args()

    from lichen.models import model_dir
    from lichen.models._onnx import OnnxEmbedder
    from lichen.models.build import add_query_encoder

    shipped = model_dir("lichen-minilm")
    workdir = Path(tempfile.mkdtemp(prefix="lichen-qenc-"))
    directory = workdir / "m"
    shutil.copytree(shipped, directory)
    float_model = OnnxEmbedder(shipped, model_id="lichen-minilm", query_model=False)
    models = {"float": float_model}
    for name, ops in VARIANTS.items():
        add_query_encoder(directory, op_types=ops, file=f"{name}.onnx")
        models[name] = OnnxEmbedder(directory, model_id=name, onnx_file=f"{name}.onnx", query_model=False)

    doc_ids, texts = load_corpus(args.data)
    docs = cached_embeddings(texts, Path(__file__).parent / ".cache", lambda t: float_model.embed(t, progress=False))
    query_ids, queries = load_queries(args.data)
    qrels = load_qrels(args.data)
    # One query per run, as queries are asked: the int8 graph quantises its activations per
    # run, so a batch (padding included) would give other vectors than a lone query gets.
    vectors = {name: np.vstack([model.embed([q]) for q in queries]) for name, model in models.items()}
    ranked = {name: np.argsort(-(docs @ v.T), axis=0, kind="stable")[:K].T for name, v in vectors.items()}
    judged = [i for i, q in enumerate(query_ids) if q in qrels]
    metrics = {}
    for name in vectors:
        hits = [[doc_ids[r] for r in ranked[name][i]] for i in judged]
        metrics[name] = {
            "ndcg": np.array([ndcg_at_k(h, qrels[query_ids[i]]) for h, i in zip(hits, judged)]),
            "recall": np.array([recall_at_k(h, qrels[query_ids[i]]) for h, i in zip(hits, judged)]),
        }
    report = {
        "dataset": args.data.name, "docs": len(doc_ids), "judged_queries": len(judged), "bar": BAR,
        "float": {"ndcg@10": round(float(metrics["float"]["ndcg"].mean()), 4),
                  "recall@10": round(float(metrics["float"]["recall"].mean()), 4)},
        "variants": {},
    }
    for name, ops in VARIANTS.items():
        d_ndcg = metrics[name]["ndcg"] - metrics["float"]["ndcg"]
        d_recall = metrics[name]["recall"] - metrics["float"]["recall"]
        overlap = [len(set(ranked["float"][i]) & set(ranked[name][i])) / K for i in range(len(queries))]
        cosine = (vectors["float"] * vectors[name]).sum(axis=1)
        entry = {
            "quantised_ops": list(ops) if ops else "all",
            "file_mb": round((directory / f"{name}.onnx").stat().st_size / 1e6, 1),
            "ndcg@10": round(float(metrics[name]["ndcg"].mean()), 4),
            "recall@10": round(float(metrics[name]["recall"].mean()), 4),
            "delta_ndcg@10": round(float(d_ndcg.mean()), 4),
            "delta_recall@10": round(float(d_recall.mean()), 4),
            "ndcg_wins_losses": [int((d_ndcg > 1e-12).sum()), int((d_ndcg < -1e-12).sum())],
            "ndcg_permutation_p": round(permutation_p(d_ndcg), 4),
            "ndcg_delta_ci95": [round(x, 4) for x in bootstrap_interval(d_ndcg)],
            "top10_overlap_with_float_mean": round(float(np.mean(overlap)), 4),
            "query_cosine_min": round(float(cosine.min()), 5),
            "query_cosine_mean": round(float(cosine.mean()), 5),
        }
        entry["passes"] = abs(entry["delta_ndcg@10"]) <= BAR and abs(entry["delta_recall@10"]) <= BAR
        report["variants"][name] = entry
    print(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
