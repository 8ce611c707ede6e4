"""Refreshing a loaded long-term index (issue 25, item 2), measured on a real ``lichen
serve`` process (file system) and a client in this process that loaded the index with
``auto_refresh=True`` (a long-poll on the server).

Per index size (``--sizes``; the artifacts of ``bench_graph_checks.py``: msmarco-5k
passages, 384-dim vectors, a graph, placed in the storage directly) and per way of
refreshing:

* ``delta``: this server: the client takes the changes since its version
  (``GET .../changes``) and applies them to its loaded copy;
* ``full``: the same server with ``--change-records 0``, which is what a client meets on
  a server without change records: it downloads the artifact whole (revalidated by ETag)
  and swaps in a new index built from it.

Another client adds documents server-side (``add_docs``, vectors included): one, then
1,000, then one again (the first write to a loaded, memory-mapped copy costs the engine
more than the next ones). For each, while a thread of this process queries the loaded
index without pause (``top_k=1`` with the new document's vector as the query), it
reports:

* ``write_s``: the ``add_docs`` call, i.e. the server's rewrite of the stored artifact
  and its publish (the same whichever way the clients refresh);
* ``publish_to_visible_s``: from the publish of the new version (its ``updated_at``,
  stamped by the server just before it writes the head: same clock, this box) to the
  first query that returns the new document; ``answer_to_visible_s``: from the write's
  answer to the writer (negative: the reader had it first);
* ``write_to_visible_s``: from the start of the write to that query;
* ``reader_bytes``: response bytes the server sent for the reader's refresh (its
  long-poll answer, the changes or the artifact), from the server's own ``/metrics``.

Run it from a clean tree of the commit to measure (the engine may have uncommitted work
in the checkout)::

    rm -rf /tmp/refresh-code && mkdir -p /tmp/refresh-code && git archive HEAD src | tar -x -C /tmp/refresh-code
    PYTHONPATH=/tmp/refresh-code/src python benchmarks/bench_refresh.py --sizes 100000,1000000

It prints each figure and writes them, with the box's load average before and after,
to ``--out`` (default ``benchmarks/results/refresh.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent
DIM = 384
READER_ROUTES = ("/v1/indexes/{name}/changes", "/v1/indexes/{name}/artifact", "/v1/indexes/{name}?wait")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def response_bytes(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = {}
    for route, value in re.findall(r'^lichen_http_response_bytes_total\{route="([^"]+)"\} (\S+)$', text, re.M):
        found[route] = float(value)
    return found


class Server:
    def __init__(self, data: Path, *, change_records: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "lichen.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--data", str(data), "--max-body-bytes", str(8 << 30), "--max-docs", "2000000", "--no-compaction",
            "--change-records", str(change_records),
        ]
        self.log = open(data.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def place(data: Path, artifact: Path) -> tuple[str, str, str]:
    """Publish ``artifact`` in the file-system storage under ``data`` (as a push would,
    without the upload's checks); returns the project's id and key and the index name."""
    from lichen.format.artifact import read_manifest
    from lichen.server.auth import create_project
    from lichen.server.storage import open_storage

    storage = open_storage(data)
    project = create_project(storage)
    manifest = read_manifest(artifact)
    upload = storage.new_upload()
    try:
        shutil.copyfile(artifact, upload.path)
        storage.publish(project.project_id, manifest.name, upload, manifest, expected_version=0, job_id="bench")
    finally:
        upload.discard()
    return project.project_id, project.project_key, manifest.name


def new_docs(prefix: str, n: int, seed: int) -> list:
    from lichen import DocumentInfo

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        DocumentInfo(id=f"{prefix}-{i}", text=f"live document {prefix} {i}", metadata={"live": True},
                     embedding=vectors[i].tolist())
        for i in range(n)
    ]


def measure_write(server: Server, reader, writer, name: str, docs: list) -> dict:
    from lichen import QueryOptions

    probe = QueryOptions(top_k=1, embedding=docs[0].embedding)
    before = response_bytes(server.url)
    status_before = reader.index_status(name)
    times: dict[str, float] = {}

    def write() -> None:
        times["start"] = time.perf_counter()
        writer.add_docs_sync(name, docs)
        times["end"] = time.perf_counter()

    thread = threading.Thread(target=write)
    thread.start()
    queries = 0
    while True:
        hit = reader.query_sync(name, "probe", probe).docs
        queries += 1
        if hit and hit[0].id == docs[0].id:
            seen = time.perf_counter()
            seen_wall = time.time()
            break
        if not thread.is_alive() and "end" in times and time.perf_counter() - times["end"] > 600:
            raise RuntimeError("the change never became visible")
    thread.join()
    time.sleep(0.5)  # the long-poll made again after the refresh is counted, not cut off
    after = response_bytes(server.url)
    status = reader.index_status(name)
    stamp = reader.loaded_index(name).info().updated_at
    published = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return {
        "documents": len(docs),
        "write_s": round(times["end"] - times["start"], 3),
        "publish_to_visible_s": round(seen_wall - published, 3),
        "answer_to_visible_s": round(seen - times["end"], 3),
        "write_to_visible_s": round(seen - times["start"], 3),
        "reader_bytes": int(sum(after.get(r, 0) - before.get(r, 0) for r in READER_ROUTES)),
        "reader_bytes_by_route": {r: int(after.get(r, 0) - before.get(r, 0)) for r in READER_ROUTES},
        "refresh": "delta" if status.delta_refreshes > status_before.delta_refreshes else
                   "full" if status.full_refreshes > status_before.full_refreshes else "none",
        "queries_while_waiting": queries,
        "version": status.version,
    }


def run_size(size: int, artifact: Path, work: Path, mode: str) -> dict:
    from lichen import Client

    base = work / f"{mode}-{size}"
    shutil.rmtree(base, ignore_errors=True)
    data = base / "data"
    data.mkdir(parents=True)
    server = Server(data, change_records=0 if mode == "full" else 64)
    try:
        project_id, key, name = place(data, artifact)
        reader = Client(project_id, key, url=server.url, home=base / "reader", progress=False)
        writer = Client(project_id, key, url=server.url, home=base / "writer", progress=False)
        started = time.perf_counter()
        reader.load_index_sync(name, auto_refresh=True, interval=1.0)
        loaded_s = time.perf_counter() - started
        print(f"{size} {mode}: initial load {loaded_s:.1f} s", flush=True)
        cases = []
        for label, n, seed in (("1, first write to the loaded copy", 1, 1), ("1000", 1000, 2), ("1, again", 1, 3)):
            result = measure_write(server, reader, writer, name, new_docs(f"{mode}-{n}-{seed}", n, seed))
            result["case"] = label
            cases.append(result)
            print(
                f"{size} {mode} {label}: write {result['write_s']} s, visible {result['publish_to_visible_s']} s after "
                f"the publish ({result['write_to_visible_s']} s after the write began, "
                f"{result['answer_to_visible_s']} s after its answer), reader received "
                f"{result['reader_bytes']:,} bytes by {result['refresh']}", flush=True,
            )
        reader.close()
        writer.close()
        return {"initial_load_s": round(loaded_s, 2), "cases": cases}
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--modes", default="delta,full")
    parser.add_argument("--artifacts", type=Path, default=ROOT / ".cache" / "graph-checks",
                        help="where bench_graph_checks.py left msmarco-blend-SIZE.lix")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lichen-bench-refresh"))
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "refresh.json")
    args = parser.parse_args()
    import lichen

    results: dict = {
        "code": str(Path(lichen.__file__).resolve().parent),
        "load_average_before": load_average(),
        "cores": os.cpu_count(),
        "sizes": {},
    }
    for size in [int(s) for s in args.sizes.split(",")]:
        artifact = args.artifacts / f"msmarco-blend-{size}.lix"
        if not artifact.exists():
            raise SystemExit(f"{artifact} is missing: run benchmarks/bench_graph_checks.py for size {size} first")
        results["sizes"][str(size)] = {mode: run_size(size, artifact, args.work, mode) for mode in args.modes.split(",")}
    results["load_average_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
