"""Push and load of a 100k-document index over loopback, against a real ``lichen serve``.

Builds a 100,000 x 384 index from msmarco-5k passages (replicated under new ids, with
metadata) and random unit vectors (the transfer and load paths do not care what the
vectors mean, and embedding 100k texts would only measure the embedder), starts
``lichen serve`` in a subprocess on 127.0.0.1 (file-system storage in a temporary
directory), and measures through the real client:

- ``push``: ``HttpStore.write`` (encode, upload, server-side verification, fsync, publish);
- ``fetch`` from the server (empty cache) and from the local ETag cache (a 304 answer):
  ``HttpStore.read``, the artifact decoded into an ``IndexSnapshot``;
- ``load_index`` from the server and from the cache: ``Client.load_index_sync``, the
  fetch plus building the in-memory engine (``SessionIndex.from_snapshot``), reported
  separately since that part does not depend on where the bytes came from.

Usage::

    python benchmarks/bench_cloud.py --data ../shared/data/msmarco-5k --out benchmarks/results/cloud.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from _data import load_corpus
from lichen import Client, SessionIndex
from lichen.server.auth import create_project
from lichen.server.storage import open_storage
from lichen.format.snapshot import IndexSnapshot
from lichen.stores.http import HttpStore

DIMENSION = 384


def build_snapshot(data: Path, n: int, name: str) -> IndexSnapshot:
    ids, texts = load_corpus(data)
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((n, DIMENSION), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return IndexSnapshot(
        name=name,
        model_id="lichen-minilm",
        dimension=DIMENSION,
        ids=[f"{ids[i % len(ids)]}-{i // len(ids)}" for i in range(n)],
        texts=[texts[i % len(texts)] for i in range(n)],
        metadata=[{"shard": i % 10, "copy": i // len(ids)} for i in range(n)],
        matrix=matrix,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "lichen.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--data", str(root / "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/project", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("lichen serve did not start")


def timed(fn, repeats: int) -> tuple[list[float], object]:
    samples, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return samples, result


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(samples), 4), "min_s": round(min(samples), 4), "n": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="path to shared/data/msmarco-5k")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cloud.json")
    args = parser.parse_args()

    os.environ["LICHEN_PROGRESS"] = "0"
    name = f"bench-{args.docs}"
    snapshot = build_snapshot(args.data, args.docs, name)
    root = Path(tempfile.mkdtemp(prefix="lichen-bench-cloud-"))
    process, url = start_server(root)
    try:
        credentials = create_project(open_storage(root / "data"))
        pid, key = credentials.project_id, credentials.project_key
        pusher = HttpStore(url, pid, key, cache_dir=root / "pusher")
        push_samples, pushed = timed(lambda: pusher.write(snapshot), args.repeats)
        artifact_bytes = next((root / "data" / "indexes").rglob("*.lix")).stat().st_size

        # From the server: every repeat starts with an empty cache.
        def fetch_cold() -> IndexSnapshot:
            shutil.rmtree(root / "cold", ignore_errors=True)
            return HttpStore(url, pid, key, cache_dir=root / "cold").read(name)

        def load_cold() -> SessionIndex:
            shutil.rmtree(root / "cold", ignore_errors=True)
            return Client(pid, key, url=url, home=root / "cold").load_index_sync(name)

        fetch_server, fetched = timed(fetch_cold, args.repeats)
        load_server, _ = timed(load_cold, args.repeats)

        # From the local cache: the server answers 304, no body.
        warm = HttpStore(url, pid, key, cache_dir=root / "warm")
        warm.read(name)
        warm_client = Client(pid, key, url=url, home=root / "warm")
        fetch_cache, cached = timed(lambda: warm.read(name), args.repeats)
        load_cache, loaded = timed(lambda: warm_client.load_index_sync(name), args.repeats)
        engine_build, _ = timed(lambda: SessionIndex.from_snapshot(cached, read_only=True), args.repeats)

        assert fetched.doc_count == cached.doc_count == loaded.doc_count == args.docs
        assert np.array_equal(fetched.matrix, snapshot.matrix) and np.array_equal(cached.matrix, snapshot.matrix)
        assert pushed.version == args.repeats
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(root, ignore_errors=True)

    results = {
        "docs": args.docs,
        "dimension": DIMENSION,
        "artifact_mb": round(artifact_bytes / 1e6, 1),
        "push": summary(push_samples),
        "fetch_from_server": summary(fetch_server),
        "fetch_from_cache": summary(fetch_cache),
        "load_index_from_server": summary(load_server),
        "load_index_from_cache": summary(load_cache),
        "engine_build_from_snapshot": summary(engine_build),
        "push_mb_per_s": round(artifact_bytes / 1e6 / statistics.median(push_samples), 1),
        "fetch_mb_per_s": round(artifact_bytes / 1e6 / statistics.median(fetch_server), 1),
        "targets": {"load_from_server_s": 1.0, "load_from_cache_s": 0.2},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "notes": "loopback, file-system storage; fetch = HttpStore.read (bytes -> IndexSnapshot); "
                 "load_index = fetch + SessionIndex.from_snapshot (engine build)",
    }
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
