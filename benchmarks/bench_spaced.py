"""Spaced queries end to end (issue 23, item 3): one query per pause, as a voice agent asks.

Loaded indexes of 10k / 100k / 1M msmarco-blend documents (100k and 1M read lazily from
the cached artifacts of ``bench_graph_checks.py``; 10k, below the graph threshold, built
in memory from the same blend) answer msmarco's real queries, each after ``--pause``
seconds asleep, with every variant side by side in one process, rounds rotating their
order, so that all see the same machine:

* ``float``: the shipped model's float graph for queries (what shipped before);
* ``int8`` / ``int8ma``: an int8 query encoder (``lichen.models.build.add_query_encoder``:
  the MatMul operators quantised, or MatMul and the fused attention) for the queries,
  documents still embedded by the float model;
* ``+warm``: the same inside ``session.keep_warm()`` (a stand-in query every 10 ms);
* ``+prepared``: the query text handed to ``session.prepare`` before the pause (as an
  interim transcript is, while the user speaks), so the query finds its vector ready and
  pays only the search (issue 23 item 4); the prepared vectors are dropped after each
  such query, so no other variant finds them.

Each query is timed in two steps, ``session.embed_query`` then ``session.query_sync`` with
that vector: their sum is the end-to-end time. CPU use is the process's CPU time over each
pause and query, in cores. Back-to-back figures (no pause) of the same variants come first
for reference::

    python benchmarks/bench_spaced.py --data ../shared/data/msmarco-5k --out benchmarks/results/spaced.json
    python benchmarks/bench_spaced.py --data ../shared/data/msmarco-5k --sizes 100000 --rounds 100 --pause 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus

CACHE = Path(__file__).resolve().parent / ".cache"
ARTIFACTS = CACHE / "graph-checks"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = np.sort(np.asarray(samples))
    return {
        "p50_ms": round(float(np.percentile(ordered, 50)), 3),
        "p95_ms": round(float(np.percentile(ordered, 95)), 3),
        "p99_ms": round(float(np.percentile(ordered, 99)), 3),
        "n": int(ordered.size),
    }


def open_indexes(sizes: list[int], data: Path):
    from lichen import SessionIndex
    from lichen.format.snapshot import IndexSnapshot

    sessions = {}
    for size in sizes:
        path = ARTIFACTS / f"msmarco-blend-{size}.lix"
        if path.exists():
            sessions[size] = SessionIndex.open(path)
            continue
        if size > 50_000:
            raise SystemExit(f"{path} is missing: run bench_graph_checks.py first (a graph build takes minutes)")
        _, texts = load_corpus(data)
        from lichen import get_embedder

        base = cached_embeddings(texts, CACHE, lambda t: get_embedder().embed(t, progress=False))
        vectors = mixed_corpus(base, size)
        sessions[size] = SessionIndex.from_snapshot(IndexSnapshot(
            name=f"blend-{size}", model_id="lichen-minilm", dimension=vectors.shape[1],
            ids=[f"p{i}" for i in range(size)], texts=[texts[i % len(texts)] for i in range(size)],
            metadata=[{} for _ in range(size)], matrix=vectors,
        ))
    return sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=50, help="spaced queries per size and variant")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds asleep before each spaced query")
    parser.add_argument("--variants", default="float,int8,int8ma,float+warm,int8+warm,int8ma+warm")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "spaced.json")
    args = parser.parse_args()

    from lichen import QueryOptions
    from lichen._prepared import prepared_queries
    from lichen.models import model_dir
    from lichen.models._onnx import OnnxEmbedder
    from lichen.models.build import add_query_encoder

    shipped = model_dir("lichen-minilm")
    workdir = Path(tempfile.mkdtemp(prefix="lichen-spaced-"))
    int8_dir = workdir / "lichen-minilm"
    shutil.copytree(shipped, int8_dir)
    add_query_encoder(int8_dir, op_types=("MatMul", "Attention"), file="int8ma.onnx")
    add_query_encoder(int8_dir, op_types=("MatMul",), file="int8.onnx")
    embedders = {
        "float": OnnxEmbedder(shipped, model_id="lichen-minilm", query_model=False),
        # Queries through an int8 graph: MatMul only, or MatMul and the fused attention.
        "int8": OnnxEmbedder(int8_dir, model_id="lichen-minilm", onnx_file="int8.onnx", query_model=False),
        "int8ma": OnnxEmbedder(int8_dir, model_id="lichen-minilm", onnx_file="int8ma.onnx", query_model=False),
    }
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = args.variants.split(",")
    _, queries = load_queries(args.data)
    sessions = open_indexes(sizes, args.data)

    def one(size: int, variant: str, query: str) -> tuple[float, float]:
        session = sessions[size]
        session._embedder = embedders[variant.split("+")[0]]  # the variant's query encoder
        started = time.perf_counter()
        vector = session.embed_query(query)
        embedded = time.perf_counter()
        session.query_sync(query, QueryOptions(top_k=10, embedding=vector))
        done = time.perf_counter()
        return (embedded - started) * 1000, (done - embedded) * 1000

    for size in sizes:  # first touches (lazy columns, graph pages) are not what is measured
        for variant in variants:
            for query in queries[:5]:
                one(size, variant, query)
    report: dict = {
        "pause_s": args.pause, "rounds": args.rounds, "sizes": sizes, "variants": variants,
        "query_encoders": {"int8": "MatMul quantised", "int8ma": "MatMul and Attention quantised"},
        "cpu_count": os.cpu_count(), "load_average_before": load_average(),
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "back_to_back": {}, "spaced": {},
    }
    for size in sizes:
        for variant in variants:
            if "+warm" in variant or "+prepared" in variant:
                continue
            e2e = []
            for query in queries:
                embed_ms, search_ms = one(size, variant, query)
                e2e.append(embed_ms + search_ms)
            report["back_to_back"][f"{size} {variant}"] = summary(e2e)
            print(json.dumps({"back_to_back": f"{size} {variant}", **summary(e2e)}), flush=True)
    samples = {f"{s} {v}": {"e2e": [], "embed": [], "search": [], "cores": []} for s in sizes for v in variants}
    slots = [(s, v) for s in sizes for v in variants]
    for r in range(args.rounds):
        query = queries[r % len(queries)]
        shift = r % len(slots)
        for size, variant in slots[shift:] + slots[:shift]:
            session = sessions[size]
            session._embedder = embedders[variant.split("+")[0]]
            warm = session.keep_warm() if "+warm" in variant else None
            if "+prepared" in variant:
                session.prepare_sync(query)
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            if warm is not None:
                warm.start()
            time.sleep(args.pause)
            embed_ms, search_ms = one(size, variant, query)
            if warm is not None:
                warm.stop()
            prepared_queries(session.model_id).clear()
            cores = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
            entry = samples[f"{size} {variant}"]
            entry["e2e"].append(embed_ms + search_ms)
            entry["embed"].append(embed_ms)
            entry["search"].append(search_ms)
            entry["cores"].append(cores)
        if (r + 1) % 10 == 0:
            print(f"round {r + 1}/{args.rounds}, load {load_average()}", flush=True)
    for key, entry in samples.items():
        report["spaced"][key] = {
            "end_to_end": summary(entry["e2e"]), "embedding": summary(entry["embed"]), "search": summary(entry["search"]),
            "cpu_cores_mean": round(float(np.mean(entry["cores"])), 3),
        }
        print(json.dumps({key: report["spaced"][key]}), flush=True)
    report["load_average_after"] = load_average()
    report["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
