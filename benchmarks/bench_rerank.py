"""What re-ranking costs a query: a cross-encoder of ms-marco-MiniLM-L-6-v2's shape over
the top 20 and top 50 candidates (issue 28, item 3).

The weights of ``cross-encoder/ms-marco-MiniLM-L6-v2`` cannot be fetched on this project's
machines, and its latency does not depend on their values: a cross-encoder with its exact
shape (6 layers, hidden 384, 12 heads, feed-forward 1536, the BERT uncased vocabulary,
512 positions), randomly initialised, is built here by ``lichen models build``'s builder
(float16 weights, attention fused, as a pull would build it). For each of msmarco's 50
queries it re-scores the top 20 and top 50 passages the shipped embedder finds among the
first ``--passages`` (2,000) msmarco-5k passages, in batches of 16, 32 and 64 pairs,
interleaved; then whole queries of that session run with and without
``QueryOptions(rerank=...)``::

    python benchmarks/bench_rerank.py --data ../shared/data/msmarco-5k --out benchmarks/results/rerank.json

Quality is not measured here (random weights); the published figures are in
``lichen.models.catalogue``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import load_corpus, load_queries
from _measure import percentiles

SHAPE = {"hidden": 384, "heads": 12, "layers": 6, "intermediate": 1536, "positions": 512, "vocab": 30522}


def write_cross_encoder(directory: Path, seed: int = 0) -> Path:
    from lichen.models import model_dir
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    h, ff = SHAPE["hidden"], SHAPE["intermediate"]

    def normal(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {
        "bert.embeddings.word_embeddings.weight": normal(SHAPE["vocab"], h),
        "bert.embeddings.position_embeddings.weight": normal(SHAPE["positions"], h),
        "bert.embeddings.token_type_embeddings.weight": normal(2, h),
        "bert.embeddings.LayerNorm.weight": np.ones(h, np.float32), "bert.embeddings.LayerNorm.bias": np.zeros(h, np.float32),
        "bert.pooler.dense.weight": normal(h, h), "bert.pooler.dense.bias": np.zeros(h, np.float32),
        "classifier.weight": normal(1, h), "classifier.bias": np.zeros(1, np.float32),
    }
    for i in range(SHAPE["layers"]):
        p = f"bert.encoder.layer.{i}"
        for part, (n_in, n_out) in {
            "attention.self.query": (h, h), "attention.self.key": (h, h), "attention.self.value": (h, h),
            "attention.output.dense": (h, h), "intermediate.dense": (h, ff), "output.dense": (ff, h),
        }.items():
            w[f"{p}.{part}.weight"], w[f"{p}.{part}.bias"] = normal(n_out, n_in), np.zeros(n_out, np.float32)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{norm}.weight"], w[f"{p}.{norm}.bias"] = np.ones(h, np.float32), np.zeros(h, np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(w, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": h, "num_attention_heads": SHAPE["heads"], "num_hidden_layers": SHAPE["layers"],
        "intermediate_size": ff, "max_position_embeddings": SHAPE["positions"], "type_vocab_size": 2,
        "vocab_size": SHAPE["vocab"], "layer_norm_eps": 1e-12, "id2label": {"0": "LABEL_0"},
    }))
    (directory / "tokenizer.json").write_bytes((model_dir("lichen-minilm") / "tokenizer.json").read_bytes())
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 50 queries")
    parser.add_argument("--passages", type=int, default=2000, help="msmarco-5k passages in the session")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rerank.json")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="lichen-rerank-"))
    os.environ["LICHEN_HOME"] = str(home)
    from lichen import DocumentInfo, QueryOptions, SessionIndex
    from lichen.models import get_reranker, rerank
    from lichen.models.build import build_user_model

    build_user_model(write_cross_encoder(home / "src"), "ce-minilm-l6-shape")
    reranker = get_reranker("ce-minilm-l6-shape")
    passages = load_corpus(args.data)[1][: args.passages]
    _, queries = load_queries(args.data)
    session = SessionIndex("bench")
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(passages)])
    candidates = {q: [d.text for d in session.query_sync(q, QueryOptions(top_k=50)).docs] for q in queries}
    tokens = [len(reranker._tokenizer.encode(q, t).ids) for q in queries for t in candidates[q][:20]]

    batches = (16, 32, 64)
    samples: dict[str, list[float]] = {f"top{n} batch{b}": [] for n in (20, 50) for b in batches}
    reranker.logits(queries[0], candidates[queries[0]])  # first run allocations
    for r in range(args.rounds):
        for i, query in enumerate(queries):
            order = list(samples) if (r + i) % 2 == 0 else list(reversed(samples))
            for key in order:
                n, b = (int(part[len(prefix):]) for part, prefix in zip(key.split(), ("top", "batch")))
                rerank.RERANK_BATCH = b
                started = time.perf_counter()
                reranker.logits(query, candidates[query][:n])
                samples[key].append((time.perf_counter() - started) * 1000)
    rerank.RERANK_BATCH = 16
    whole: dict[str, list[float]] = {"no rerank": [], "rerank top 20": [], "rerank top 50": []}
    for r in range(args.rounds):
        for query in queries:
            for key, options in (
                ("no rerank", QueryOptions(top_k=10)),
                ("rerank top 20", QueryOptions(top_k=10, rerank="ce-minilm-l6-shape", rerank_candidates=20)),
                ("rerank top 50", QueryOptions(top_k=10, rerank="ce-minilm-l6-shape", rerank_candidates=50)),
            ):
                started = time.perf_counter()
                session.query_sync(query, options)
                whole[key].append((time.perf_counter() - started) * 1000)
    report = {
        "model": "cross-encoder of ms-marco-MiniLM-L-6-v2's shape, random weights, float16, attention fused",
        "pair_tokens_top20": {"mean": round(float(np.mean(tokens)), 1), "max": int(np.max(tokens))},
        "logits_ms": {key: percentiles(v) for key, v in samples.items()},
        "query_ms": {key: percentiles(v) for key, v in whole.items()},
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    print(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
