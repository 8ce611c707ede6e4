"""A session growing past the approximate-search threshold while it is queried: the worst
query of the growth, against the same run's exact query.

As in the issue's report: custom 384-d vectors blended from real msmarco embeddings
(:func:`_data.mixed_corpus`), a session grown from ``--start`` to ``--end`` documents in
batches of ``--batch`` (a pause of ``--pause`` s after each, as turns arrive), while a
thread queries it continuously with stored rows (every eighth query ``exact=True``: the
yardstick). Reported: default-query latency p50 / p99 / max, exact-query p50, the worst
query as a multiple of that, how long until the graph was in, and whether every stored
row queried found itself.

Run it against another checkout with ``--code DIR`` (its ``src`` is imported instead):
the "before" of RESULTS.md ("Turn time") is ``git worktree add /tmp/lichen-before f6271fb``.

Usage::

    python benchmarks/bench_growth.py --data ../shared/data/msmarco-5k [--code /tmp/lichen-before] \\
        --out benchmarks/results/growth.json
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--code", type=Path, help="a checkout whose src/ to measure instead of this one")
    parser.add_argument("--start", type=int, default=40_000)
    parser.add_argument("--end", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.code:
        sys.path.insert(0, str(args.code / "src"))
    import numpy as np
    from _data import cached_embeddings, load_corpus, mixed_corpus
    from lichen import DocumentInfo, SessionIndex
    from lichen.models import get_embedder

    _, texts = load_corpus(args.data)
    base = cached_embeddings(texts, args.cache, lambda t: get_embedder("lichen-minilm").embed(t))
    vectors = mixed_corpus(base, args.end, seed=7)
    session = SessionIndex("growth", model_id="custom")

    def batch(start: int, stop: int) -> list[DocumentInfo]:
        return [
            DocumentInfo(id=f"d{i}", text=texts[i % len(texts)], embedding=vectors[i]) for i in range(start, stop)
        ]

    session.add_docs_sync(batch(0, args.start))
    added = args.start
    lock = threading.Lock()
    stop = threading.Event()
    default: list[float] = []
    exact: list[float] = []
    missed = 0

    def ask() -> None:
        nonlocal missed
        from lichen import QueryOptions

        rng = np.random.default_rng(3)
        n = 0
        while not stop.is_set():
            with lock:
                known = added
            target = int(rng.integers(0, known))
            is_exact = n % 8 == 0
            options = QueryOptions(top_k=5, embedding=vectors[target], exact=is_exact)
            started = time.perf_counter()
            hits = session.query_sync("", options).docs
            (exact if is_exact else default).append(time.perf_counter() - started)
            missed += hits[0].id != f"d{target}"
            n += 1

    asker = threading.Thread(target=ask)
    began = time.perf_counter()
    asker.start()
    while added < args.end:
        session.add_docs_sync(batch(added, min(args.end, added + args.batch)))
        with lock:
            added = min(args.end, added + args.batch)
        time.sleep(args.pause)
    grown = time.perf_counter() - began
    core = session.core
    waited = getattr(core, "wait_for_graph", None)
    if waited is not None:
        waited(timeout=3600)
    graph_ready = time.perf_counter() - began
    time.sleep(2.0)
    stop.set()
    asker.join()
    ms = lambda values, q: round(float(np.percentile(values, q)) * 1000, 2)  # noqa: E731
    row = {
        "code": str(args.code or "this checkout"), "start": args.start, "end": args.end, "batch": args.batch,
        "pause_s": args.pause, "queries": len(default), "default_p50_ms": ms(default, 50),
        "default_p99_ms": ms(default, 99), "default_max_ms": ms(default, 100), "exact_p50_ms": ms(exact, 50),
        "worst_over_exact_p50": round(max(default) / float(np.median(exact)), 1), "grown_s": round(grown, 1),
        "graph_ready_s": round(graph_ready, 1), "stored_rows_not_found_first": missed,
    }
    print(json.dumps(row))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(rows + [row], indent=1))


if __name__ == "__main__":
    main()
