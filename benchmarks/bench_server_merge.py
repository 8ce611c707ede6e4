"""What a server's writes cost it and its readers (issue 21, items 6-8), measured on a real
``lichen serve`` process:

* ``memory``: the server's peak resident memory (``VmHWM``, reset before each step
  through ``/proc/PID/clear_refs``) during a one-document ``add_docs`` into a stored
  index, alone and then three at once into three such indexes, and its resident memory
  3 s after each (idle). Indexes of ``--sizes`` documents x 384 float32: msmarco-5k
  passages as texts, :func:`_data.mixed_corpus` vectors, a graph (at 200k built by
  ``VectorGraph.build``; above 500k a usearch graph of the same kind, M=32 int8, built
  with a build beam of 32 instead of 300 to save the quarter hour: the server copies
  its bytes and never opens it, so its content does not change what a merge costs).
  The artifacts are placed in the storage directly (a push would add its own check).
* ``deletes``: a 200k index loses 10%, 30% and 60% of its documents to one server-side
  ``delete_docs``; then a client loads it in a fresh process, first (download) and again
  (cached, in another process), as ``load_index`` does (``prepare_graph`` included).
  ``before``: a server with compaction off, which writes what the previous server wrote,
  byte for byte (``tests/test_server_merge.py``); ``after``: the compaction done (its
  duration reported).
* ``contention``: ``--writers`` clients each make ``--writes`` unconditional one-document
  ``add_docs`` calls into one 1,000-document index at once: failures, documents lost,
  versions made, wall time.

``--code DIR`` runs the server from another source tree (``DIR/src``), e.g. the commit
before these changes extracted with ``git archive``, to measure the old behaviour::

    mkdir -p /tmp/before && git archive 1d1c835 src | tar -x -C /tmp/before
    python benchmarks/bench_server_merge.py memory --data ../shared/data/msmarco-5k --sizes 200000 --code /tmp/before
    python benchmarks/bench_server_merge.py memory --data ../shared/data/msmarco-5k --sizes 200000,1000000
    python benchmarks/bench_server_merge.py deletes --data ../shared/data/msmarco-5k --size 200000
    python benchmarks/bench_server_merge.py contention --data ../shared/data/msmarco-5k --writers 6 --writes 10 --code /tmp/before

Each run prints its figures and merges them into ``--out`` (default
``benchmarks/results/server_merge.json``) under a key naming the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import xxhash

from _data import cached_embeddings, load_corpus, mixed_corpus

DIM = 384
MODEL = "lichen-minilm"
ROOT = Path(__file__).resolve().parent


# ------------------------------------------------------------------ data
def make_artifact(size: int, data: Path, cache: Path, work: Path) -> Path:
    """The stored index of ``size`` documents (built once per work directory)."""
    path = work / f"index-{size}.lix"
    if path.exists():
        return path
    from lichen import get_embedder
    from lichen.engine.graph import VectorGraph
    from lichen.format.artifact import write_artifact_file
    from lichen.format.snapshot import IndexSnapshot

    _, passages = load_corpus(data)
    vectors = mixed_corpus(cached_embeddings(passages, cache, get_embedder(MODEL).embed), size, seed=21)
    keys = np.arange(size, dtype=np.uint64)
    started = time.perf_counter()
    if size <= 500_000:
        graph = VectorGraph.build(vectors, keys).to_bytes()
    else:
        from usearch.index import Index

        index = Index(ndim=DIM, metric="cos", dtype="i8", connectivity=32, expansion_add=32)
        index.add(keys, vectors, threads=0)
        graph = index.save()
        del index
    print(f"graph for {size} documents: {time.perf_counter() - started:.0f} s", flush=True)
    snapshot = IndexSnapshot(
        name="idx-0", model_id=MODEL, dimension=DIM, ids=[f"doc-{i:07d}" for i in range(size)],
        texts=[passages[i % len(passages)] for i in range(size)],
        metadata=[{"source": "msmarco", "passage": i % len(passages)} for i in range(size)],
        matrix=vectors, keys=keys, graph=graph, version=1, created_at="2026-12-04T00:00:00Z",
        updated_at="2026-12-04T00:00:00Z",
    )
    work.mkdir(parents=True, exist_ok=True)
    write_artifact_file(snapshot, path)
    return path


def renamed_header(path: Path, name: str) -> bytes:
    """The header and manifest of ``path`` naming index ``name`` (same length as its own
    name: the body does not move), digest recomputed."""
    with open(path, "rb") as f:
        head = f.read(40)
        length = int.from_bytes(head[16:24], "little")
        manifest = orjson.loads(f.read(length))
    old = manifest["name"]
    assert len(old) == len(name), (old, name)
    manifest["name"] = name
    data = orjson.dumps(manifest)
    assert len(data) == length
    return head[:24] + xxhash.xxh3_128_digest(data) + data


def seed(storage, project_id: str, artifact: Path, name: str) -> None:
    """Publish ``artifact`` as index ``name`` (its manifest renamed), as a push would
    have stored it."""
    from lichen.format.artifact import read_manifest

    header = renamed_header(artifact, name)
    upload = storage.new_upload()
    try:
        with open(artifact, "rb") as f:
            f.seek(len(header))
            upload.write(header)
            shutil.copyfileobj(f, upload.file, 16 << 20)
        upload.file.flush()
        storage.publish(project_id, name, upload, read_manifest(upload.path), expected_version=None, job_id="seed")
    finally:
        upload.discard()


# ------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, args: argparse.Namespace, extra: list[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if args.code:
            env["PYTHONPATH"] = str(Path(args.code) / "src")
        command = [sys.executable, "-m", "lichen.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data", str(data_dir), "--max-docs", "2000000", "--max-body-bytes", str(4 << 30), *extra]
        if args.storage:
            command += ["--storage", args.storage, "--s3-endpoint-url", args.s3_endpoint_url]
        self.log = open(data_dir.parent / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                assert self.process.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)

    def status(self, field: str) -> float:
        """A ``/proc/PID/status`` figure in MiB."""
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as f:
            f.write("5")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def open_storage(data_dir: Path, args: argparse.Namespace):
    from lichen.server.storage import open_storage as opened

    return opened(data_dir, args.storage, s3_endpoint_url=args.s3_endpoint_url)


def one_doc(name: str, doc_id: str, seed_: int):
    from lichen.format.snapshot import IndexSnapshot

    vector = np.random.default_rng(seed_).standard_normal((1, DIM)).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return IndexSnapshot(name=name, model_id=MODEL, dimension=DIM, ids=[doc_id], texts=[f"added {doc_id}"],
                         metadata=[{}], matrix=vector)


def http_store(server: Server, project):
    from lichen.stores.http import HttpStore, Timeout

    return HttpStore(server.url, project.project_id, project.project_key, progress=False,
                     timeout=Timeout(read=600, write=600))


# ------------------------------------------------------------------ runs
def run_memory(args: argparse.Namespace) -> dict:
    from lichen.server.auth import create_project

    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        artifact = make_artifact(size, args.data, args.cache, args.work)
        with tempfile.TemporaryDirectory(prefix="lichen-merge-", dir=args.work) as tmp:
            data_dir = Path(tmp) / "data"
            storage = open_storage(data_dir, args)
            project = create_project(storage)
            names = [f"idx-{k}" for k in range(args.concurrency)]
            for name in names:
                seed(storage, project.project_id, artifact, name)
            server = Server(data_dir, args)
            try:
                store = http_store(server, project)
                store.check_credentials()
                row = {"documents": size, "artifact_mb": round(artifact.stat().st_size / 2**20, 1),
                       "idle_at_start_mb": round(server.status("VmRSS"))}
                server.reset_peak()
                started = time.perf_counter()
                assert store.add_documents(one_doc(names[0], "new-single", 1)) == (1, 0)
                row["one_merge_s"] = round(time.perf_counter() - started, 2)
                row["one_merge_peak_mb"] = round(server.status("VmHWM"))
                time.sleep(3)
                row["idle_after_one_mb"] = round(server.status("VmRSS"))
                server.reset_peak()
                errors: list[BaseException] = []

                def add(k: int, server: Server = server, project=project, names=names, errors=errors) -> None:
                    try:
                        http_store(server, project).add_documents(one_doc(names[k], f"new-{k}", 10 + k))
                    except BaseException as exc:  # noqa: BLE001 - reported
                        errors.append(exc)

                threads = [threading.Thread(target=add, args=(k,)) for k in range(args.concurrency)]
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                row[f"{args.concurrency}_concurrent_s"] = round(time.perf_counter() - started, 2)
                row[f"{args.concurrency}_concurrent_peak_mb"] = round(server.status("VmHWM"))
                row["errors"] = [repr(e) for e in errors]
                time.sleep(3)
                row[f"idle_after_{args.concurrency}_mb"] = round(server.status("VmRSS"))
                row["peak_over_artifact"] = round(
                    max(row["one_merge_peak_mb"], row[f"{args.concurrency}_concurrent_peak_mb"]) / row["artifact_mb"], 2
                )
            finally:
                server.stop()
        print(json.dumps(row), flush=True)
        results[str(size)] = row
    return results


def load_child(url: str, project_id: str, key: str, name: str) -> None:
    from lichen import Client

    started = time.perf_counter()
    index = Client(project_id, key, url=url, progress=False).load_index_sync(name)
    print(json.dumps({"load_s": round(time.perf_counter() - started, 2), "has_graph": index.core.has_graph,
                      "doc_count": index.doc_count}))


def client_load(server: Server, project, name: str, home: Path) -> dict:
    env = {**os.environ, "LICHEN_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, __file__, "load-child", server.url, project.project_id, project.project_key, name],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_deletes(args: argparse.Namespace) -> dict:
    from lichen.server.auth import create_project

    artifact = make_artifact(args.size, args.data, args.cache, args.work)
    fractions = [float(f) for f in args.fractions.split(",")]
    results: dict = {"documents": args.size, "artifact_mb": round(artifact.stat().st_size / 2**20, 1)}
    for phase in ("before", "after"):
        with tempfile.TemporaryDirectory(prefix="lichen-deletes-", dir=args.work) as tmp:
            data_dir = Path(tmp) / "data"
            storage = open_storage(data_dir, args)
            project = create_project(storage)
            server = Server(data_dir, args, ["--no-compaction"] if phase == "before" else [])
            try:
                store = http_store(server, project)
                for fraction in fractions:
                    name = f"del{int(fraction * 100):02d}"
                    seed(storage, project.project_id, artifact, name)
                    doomed = np.random.default_rng(int(fraction * 100)).choice(args.size, int(fraction * args.size), replace=False)
                    server.reset_peak()
                    started = time.perf_counter()
                    deleted = store.delete_documents(name, [f"doc-{i:07d}" for i in sorted(doomed)])
                    row = {"deleted": deleted, "delete_s": round(time.perf_counter() - started, 2)}
                    head = storage.head(project.project_id, name)
                    if phase == "after":
                        started = time.perf_counter()
                        while storage.head(project.project_id, name).etag == head.etag:
                            time.sleep(0.5)
                        row["compaction_s"] = round(time.perf_counter() - started, 1)
                    row["server_peak_mb"] = round(server.status("VmHWM"))  # the delete, and the compaction if any
                    time.sleep(3)
                    row["server_idle_mb"] = round(server.status("VmRSS"))
                    home = Path(tmp) / f"home-{name}"
                    row["first_load"] = client_load(server, project, name, home)
                    row["cached_load"] = client_load(server, project, name, home)
                    print(json.dumps({phase: {str(fraction): row}}), flush=True)
                    results.setdefault(phase, {})[str(fraction)] = row
            finally:
                server.stop()
    return results


def run_contention(args: argparse.Namespace) -> dict:
    from lichen.server.auth import create_project

    with tempfile.TemporaryDirectory(prefix="lichen-contention-", dir=args.work) as tmp:
        data_dir = Path(tmp) / "data"
        storage = open_storage(data_dir, args)
        project = create_project(storage)
        server = Server(data_dir, args)
        try:
            from lichen import Client, DocumentInfo

            client = Client(project.project_id, project.project_key, url=server.url, progress=False)
            rng = np.random.default_rng(5)
            client.create_index_sync("c", [DocumentInfo(id=f"base-{i}", text=f"base {i}", embedding=rng.standard_normal(DIM))
                                           for i in range(1000)], model_id="custom")
            failures: list[str] = []
            barrier = threading.Barrier(args.writers)

            def writer(k: int) -> None:
                mine = Client(project.project_id, project.project_key, url=server.url, progress=False)
                vectors = np.random.default_rng(k).standard_normal((args.writes, DIM))
                barrier.wait()
                for i in range(args.writes):
                    try:
                        mine.add_docs_sync("c", [DocumentInfo(id=f"w{k}-{i}", text="x", embedding=vectors[i])])
                    except Exception as exc:  # noqa: BLE001 - reported
                        failures.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=writer, args=(k,)) for k in range(args.writers)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            info = client.get_index_sync("c")
            stored = {doc.id for doc in client.get_docs_sync("c", ids=[f"w{k}-{i}" for k in range(args.writers)
                                                                       for i in range(args.writes)])}
        finally:
            server.stop()
    attempted = args.writers * args.writes
    row = {"writers": args.writers, "writes_each": args.writes, "failed": len(failures),
           "lost": attempted - len(failures) - len(stored), "stored": len(stored),
           "versions_made": info.version - 1, "wall_s": round(wall, 2), "writes_per_s": round(attempted / wall, 1),
           "first_failures": sorted(set(failures))[:3]}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", choices=["memory", "deletes", "contention", "load-child"])
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "msmarco-5k")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lichen-bench-merge")
    parser.add_argument("--sizes", default="200000")
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--fractions", default="0.1,0.3,0.6")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--code", help="run the server from this source tree (DIR/src)")
    parser.add_argument("--storage", help="s3://bucket/prefix (default: the file system)")
    parser.add_argument("--s3-endpoint-url")
    parser.add_argument("--label", help="key of this run in --out (default: from the arguments)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "server_merge.json")
    args = parser.parse_args()
    if args.run == "load-child":
        load_child(*args.rest)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    result = {"memory": run_memory, "deletes": run_deletes, "contention": run_contention}[args.run](args)
    label = args.label or "-".join(filter(None, [
        args.run, "before" if args.code else "after", "s3" if args.storage else None,
        args.sizes if args.run == "memory" else f"{args.writers}x{args.writes}" if args.run == "contention" else None,
    ]))
    record = {"result": result, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
              "code": args.code or "working tree", "when": time.strftime("%Y-%m-%d %H:%M")}
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing[label] = record
    args.out.write_text(json.dumps(existing, indent=1) + "\n")
    print(f"{label}: written to {args.out}")


if __name__ == "__main__":
    main()
