"""What a server's change to a big stored index costs its next reader.

A server merging into (``Client.add_docs``) or deleting from (``Client.delete_docs``) a
stored index used to drop its graph, so the next ``load_index`` of a 1M-document index
rebuilt it (~14 minutes on 2 cores). It now writes down the graph edits (artifact format
4) and the reader applies them to a copy of the stored graph. This measures that, on an
artifact ``bench_scale.py`` left behind::

    python benchmarks/bench_graph_edits.py --data ../shared/data/msmarco-5k --edits 100,1000,10000 \\
        /tmp/lichen-scale-*/indexes/scale-1000000-*.lix

For each edit count ``n``: the server's own functions (``merge_upsert``, ``remove_docs``)
add ``n / 2`` new documents, replace the vectors of ``n / 4`` and delete ``n / 4``; the
result is written as the server would store it. A fresh process then reads it as a
client loads it (file in the page cache) and reports the read, the edits applied
(``prepare_graph``, as ``load_index`` does), resident memory then (the edited graph is a
private copy, no longer the file's pages), and recall@10 against exact search on
msmarco's 50 real queries and 150 synthetic probes, before a search-only p50.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus
from _measure import percentiles, rss_parts_mb

PROBES = 150


def queries(data: Path, cache: Path) -> tuple[np.ndarray, int]:
    from lichen import get_embedder

    embed = get_embedder("lichen-minilm").embed
    _, texts = load_queries(data)
    real = cached_embeddings(texts, cache, embed)
    _, corpus_texts = load_corpus(data)
    probes = mixed_corpus(cached_embeddings(corpus_texts, cache, embed), PROBES, seed=99)
    return np.vstack([real, probes]).astype(np.float32), len(real)


def edited_artifact(source: Path, count: int, data: Path, cache: Path, out: Path) -> dict:
    """Apply ``count`` server-side edits to ``source``; write the result to ``out``."""
    from lichen.engine.core import IndexCore
    from lichen.format.artifact import read_artifact, write_artifact_file
    from lichen.server.service import merge_upsert, remove_docs
    from lichen._types import DocumentInfo
    from lichen import get_embedder

    current = read_artifact(source, lazy=True)
    n = current.doc_count
    rng = np.random.default_rng(count)
    _, corpus_texts = load_corpus(data)
    fresh = mixed_corpus(cached_embeddings(corpus_texts, cache, get_embedder("lichen-minilm").embed), count // 2 + count // 4, seed=7 + count)
    replaced = rng.choice(n, count // 4, replace=False)
    docs = [DocumentInfo(id=f"edit-{count}-{i}", text="added by a server merge") for i in range(count // 2)]
    docs += [DocumentInfo(id=current.ids[int(row)], text="replaced by a server merge") for row in replaced]
    batch = IndexCore(approximate=False)
    batch.upsert(docs, fresh)
    started = time.perf_counter()
    merged, added, updated = merge_upsert(current, batch.snapshot(current.name, current.model_id))
    doomed = {merged.ids[int(row)] for row in rng.choice(n, count // 4, replace=False)} - {d.id for d in docs}
    kept, deleted = remove_docs(merged, doomed)
    server_s = time.perf_counter() - started
    write_artifact_file(kept, out)
    return {"added": added, "replaced": updated, "deleted": deleted, "graph_kept": kept.graph is not None,
            "pending_keys": 0 if kept.graph is None else len(kept.graph_removals) + len(kept.graph_insertions),
            "server_merge_s": round(server_s, 2), "artifact_mb": round(out.stat().st_size / 2**20, 1)}


def child(path: Path, query_file: Path, real_count: int) -> None:
    from lichen.engine.core import IndexCore
    from lichen.format.artifact import read_artifact

    probes = np.load(query_file)
    path.read_bytes()  # the file in the page cache, as right after a download
    started = time.perf_counter()
    core = IndexCore.from_snapshot(read_artifact(path, lazy=True))
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    core.prepare_graph()
    apply_s = time.perf_counter() - started
    memory = rss_parts_mb()  # before the exact searches below map the whole matrix
    overlap = []
    for q in probes:
        truth = {h.id for h in core.search(q, "", top_k=10, exact=True)}
        overlap.append(len(truth & {h.id for h in core.search(q, "", top_k=10)}) / 10)
    samples = []
    for q in probes:
        began = time.perf_counter()
        core.search(q, "", top_k=10)
        samples.append((time.perf_counter() - began) * 1000)
    print(json.dumps({
        "read_s": round(read_s, 3), "apply_edits_s": round(apply_s, 2), "has_graph": core.has_graph,
        "rss_after_apply_mb": {k: round(v) for k, v in memory.items()},
        "recall_at_10_real_queries": round(float(np.mean(overlap[:real_count])), 4),
        "recall_at_10": round(float(np.mean(overlap)), 4), "search": percentiles(samples),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--edits", default="100,1000,10000")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "graph_edits.json")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("artifact", type=Path, nargs="?")
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))
        return

    probes, real_count = queries(args.data, args.cache)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lichen-edits-") as tmp:
        query_file = Path(tmp) / "queries.npy"
        np.save(query_file, probes)
        for count in (int(c) for c in args.edits.split(",")):
            path = Path(tmp) / f"edited-{count}.lix"
            row = {"edits": count, **edited_artifact(args.artifact, count, args.data, args.cache, path)}
            done = subprocess.run([sys.executable, __file__, "--child", str(path), str(query_file), str(real_count)],
                                  capture_output=True, text=True, check=True)
            row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            path.unlink()
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"artifact": args.artifact.name, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
