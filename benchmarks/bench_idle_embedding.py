"""One query's embedding after a pause: asleep or busy, to tell idle cores from cold caches.

A voice agent embeds one query per turn, with pauses between. This times ``embed([q])``
on msmarco's queries after each pause (0, 10 and 100 ms), once with the caller sleeping
through the pause and once with it spinning (the core stays busy, the caches are not
shared with anything new). If spinning brings the time back near the back-to-back figure,
the cost of a pause is idle cores waking, not model weights evicted from the caches::

    python benchmarks/bench_idle_embedding.py --data ../shared/data/msmarco-5k
    LICHEN_NUM_THREADS=1 python benchmarks/bench_idle_embedding.py --data ../shared/data/msmarco-5k \\
        --out benchmarks/results/idle_embedding_1thread.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _data import load_queries
from _measure import percentiles

PAUSES_S = (0.0, 0.01, 0.1)


def timed_after_pauses(embed, queries: list[str], pause: float, *, busy: bool) -> list[float]:
    samples = []
    for query in queries:
        if busy:
            end = time.perf_counter() + pause
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(pause)
        started = time.perf_counter()
        embed([query])
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "idle_embedding.json")
    args = parser.parse_args()

    from lichen import get_embedder

    embed = get_embedder("lichen-minilm").embed
    _, queries = load_queries(args.data)
    embed(queries[:5])  # model load and first-run allocation are not what this measures
    rows = []
    for pause in PAUSES_S:
        for busy in (False, True):
            row = {"pause_ms": pause * 1000, "caller": "spinning" if busy else "asleep",
                   **percentiles(timed_after_pauses(embed, queries, pause, busy=busy))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    threads = os.environ.get("LICHEN_NUM_THREADS", "default")
    args.out.write_text(json.dumps({"intra_op_threads": threads, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
