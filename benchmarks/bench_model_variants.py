"""One query's embedding with the shipped model against another build of it, side by side.

For a change to the model file that must not change the vectors (attention fused at build
time, say): both models load in one process with the shipped session settings and embed
the same queries one at a time, round by round in alternating order, so both see the same
machine noise. Reports each model's p50 / p95, the median of the per-round p50 ratios,
the largest difference between their vectors and each one's cosine to the golden
sentence-transformers vectors of ``tests/test_model_fidelity.py``::

    mkdir -p /tmp/unfused && git show dbb0af6:src/lichen/models/lichen-minilm/model.onnx > /tmp/unfused/model.onnx
    cp src/lichen/models/lichen-minilm/{model.json,tokenizer.json} /tmp/unfused/
    python benchmarks/bench_model_variants.py --data ../shared/data/msmarco-5k --against /tmp/unfused

Queries: msmarco's 50 real queries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from _data import load_queries
from _measure import percentiles
from lichen.models import model_dir
from lichen.models._onnx import OnnxEmbedder

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden_minilm.npz"


def golden_min_cosine(embedder: OnnxEmbedder) -> float:
    golden = np.load(GOLDEN)
    reference = golden["vectors"] / np.linalg.norm(golden["vectors"], axis=1, keepdims=True)
    return float((embedder.embed([str(s) for s in golden["sentences"]]) * reference).sum(axis=1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--against", type=Path, required=True, help="a model directory (model.onnx, model.json, tokenizer.json)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "model_variants.json")
    args = parser.parse_args()

    _, queries = load_queries(args.data)
    models = {
        "shipped": OnnxEmbedder(model_dir("lichen-minilm"), model_id="lichen-minilm"),
        "against": OnnxEmbedder(args.against, model_id="against"),
    }
    samples: dict[str, list[float]] = {name: [] for name in models}
    ratios = []
    for round_number in range(args.rounds):
        order = list(models) if round_number % 2 == 0 else list(reversed(models))
        medians = {}
        for name in order:
            times = []
            for query in queries:
                started = time.perf_counter()
                models[name].embed([query])
                times.append((time.perf_counter() - started) * 1000)
            samples[name] += times
            medians[name] = statistics.median(times)
        ratios.append(medians["shipped"] / medians["against"])
    vectors = {name: model.embed(queries) for name, model in models.items()}
    result = {
        "against": str(args.against),
        **{name: percentiles(times) for name, times in samples.items()},
        "shipped_over_against_p50": round(statistics.median(ratios), 3),
        "max_abs_vector_difference": float(np.abs(vectors["shipped"] - vectors["against"]).max()),
        "golden_min_cosine": {name: round(golden_min_cosine(model), 7) for name, model in models.items()},
        "rounds": args.rounds,
    }
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
