"""How Lichen scales from 10k to 1M documents, exact scan against approximate search.

Per size, in one run on this machine:

* **build**: ``client.create_index`` of documents that already carry embeddings (the graph
  build plus writing the artifact; nothing is embedded), and the artifact's size;
* **load**: ``client.load_index`` in a fresh process, cold (the file evicted from the page
  cache first with ``posix_fadvise(DONTNEED)``) and cached (again, same process), the
  loaded index's own search-only and end-to-end latency (200 queries, served as a client
  serves it: rows read from the file, documents decoded one by one; end to end also with
  100 queries 100 ms apart, as a voice agent asks them, caches gone cold in between), the
  query embedding alone in the same process (end to end minus it is the index's share),
  and the resident memory the loaded index adds after serving them;
* **search-only** p50/p95 (query vector given) for Lichen's default (approximate from
  ``APPROXIMATE_THRESHOLD`` on), Lichen ``exact=True``, the bare numpy scan
  (``matrix @ q`` + ``argpartition``) and FAISS ``IndexFlatIP``, all single queries;
* **end-to-end** p50/p95 of ``query_sync(text)`` (embedding included) on real queries;
* **recall@10** against exact search, unfiltered and with filters letting 1%, 10% and 50%
  of the documents through (and which path the planner took).

Documents are msmarco-5k passages; their vectors are :func:`_data.mixed_corpus` blends of
the real msmarco embeddings (see its docstring for why not plain replicas), texts the
passages' own. Queries: msmarco's 50 real queries (end-to-end) and, for recall and
search-only timings, those 50 plus 450 in-distribution vectors.

Usage::

    python benchmarks/bench_scale.py --data ../shared/data/msmarco-5k --sizes 10000,100000,1000000 \
        --out benchmarks/results/scale.json --plot benchmarks/results/scale.png

``--update`` re-measures the given sizes and keeps the other rows of ``--out``.

Needs ``pip install -e ".[bench]"`` (faiss-cpu, matplotlib).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries, mixed_corpus
from _measure import percentiles, rss_mb, rss_parts_mb

TOP_K = 10
# A voice agent queries once per turn, seconds apart: after a pause the model's weights and
# the index are no longer in the CPU caches. Spaced queries measure that cold path.
SPACED_GAP_S = 0.1
SPACED_QUERIES = 100
# Filters by selectivity: each lets through the documents whose bucket (0-99) is below it.
FILTERS = {"1%": 1, "10%": 10, "50%": 50}


def timed(fn, repeats: int) -> tuple[dict, list]:
    samples, results = [], []
    for i in range(repeats):
        started = time.perf_counter()
        results.append(fn(i))
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples), results


def spaced(fn) -> dict:
    """Like :func:`timed`, but each call comes :data:`SPACED_GAP_S` after the previous one
    returned (the pause is not timed)."""
    samples = []
    for i in range(SPACED_QUERIES):
        time.sleep(SPACED_GAP_S)
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth)])), 4)


def child_load(args: argparse.Namespace) -> None:
    """Runs in a fresh process: load cold, load cached, serve queries, report memory."""
    os.environ["LICHEN_HOME"] = str(args.home)
    from lichen import Client, QueryOptions
    from lichen import get_embedder
    from lichen.models import embed_queries

    embedder = get_embedder("lichen-minilm")
    embed_queries(embedder, ["warm up"])  # model load is not index load
    client = Client()
    path = client.store.index_path(args.name)
    with open(path, "rb") as handle:  # evict the artifact: a cold read from disk
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    gc.collect()
    before, parts_before = rss_mb(), rss_parts_mb()
    started = time.perf_counter()
    session = client.load_index_sync(args.name)
    cold = time.perf_counter() - started
    after_load = rss_mb()
    queries = np.load(args.queries)
    texts = json.loads(args.query_texts.read_text())
    # Served as a client serves it: documents decoded row by row, candidates' rows read
    # from the file; search-only (vector given) and end to end (real query text).
    loaded_search, _ = timed(lambda i: session.query_sync("", QueryOptions(top_k=TOP_K, embedding=queries[i].tolist())),
                             len(queries))
    loaded_e2e, _ = timed(lambda i: session.query_sync(texts[i % len(texts)], QueryOptions(top_k=TOP_K)), len(queries))
    # The model's share of end to end, in the same process and minute: on a slow day it
    # moves both, and end to end minus this is what the index costs. Through the query
    # path, as a query embeds (the query prompt and the model's query encoder).
    embedding, _ = timed(lambda i: embed_queries(embedder, [texts[i % len(texts)]]), len(queries))
    spaced_search = spaced(lambda i: session.query_sync("", QueryOptions(top_k=TOP_K, embedding=queries[i].tolist())))
    spaced_e2e = spaced(lambda i: session.query_sync(texts[i % len(texts)], QueryOptions(top_k=TOP_K)))
    after_queries, parts_after = rss_mb(), rss_parts_mb()
    del session
    client.unload_index_sync(args.name)  # a later load from the local store, page cache warm
    gc.collect()
    started = time.perf_counter()
    again = client.load_index_sync(args.name)
    cached = time.perf_counter() - started
    graph_adopted = again.core.has_graph
    print(json.dumps({
        "load_cold_s": round(cold, 3), "load_cached_s": round(cached, 3),
        "rss_after_load_mb": round(after_load - before, 1), "rss_after_queries_mb": round(after_queries - before, 1),
        "rss_after_queries_anon_mb": round(parts_after["anon"] - parts_before["anon"], 1),
        "rss_after_queries_file_mb": round(parts_after["file"] - parts_before["file"], 1),
        "graph_adopted": graph_adopted, "loaded_search": loaded_search, "loaded_end_to_end": loaded_e2e,
        "loaded_query_embedding": embedding,
        "loaded_search_spaced": spaced_search, "loaded_end_to_end_spaced": spaced_e2e,
    }))


def measure_size(size: int, base: np.ndarray, texts: list[str], query_texts: list[str], query_vectors: np.ndarray,
                 probes: np.ndarray, repeats: int, home: Path) -> dict:
    import faiss
    from lichen import Client, QueryOptions, SessionIndex
    from lichen.engine.core import APPROXIMATE_THRESHOLD, EXACT_FILTER_ROWS, top_k_indices
    from lichen.format.snapshot import IndexSnapshot

    row: dict = {"docs": size}
    vectors = mixed_corpus(base, size)
    buckets = np.random.default_rng(size).integers(0, 100, size)
    snapshot = IndexSnapshot(
        name=f"scale-{size}", model_id="lichen-minilm", dimension=vectors.shape[1],
        ids=[f"p{i}" for i in range(size)], texts=[texts[i % len(texts)] for i in range(size)],
        metadata=[{"bucket": int(b)} for b in buckets], matrix=vectors,
    )
    session = SessionIndex.from_snapshot(snapshot)
    client = Client()
    started = time.perf_counter()
    client.store.write(session._snapshot())  # what push / create_index do: build the graph, write
    row["build_s"] = round(time.perf_counter() - started, 2)
    row["approximate"] = session.core.uses_graph()
    path = client.store.index_path(snapshot.name)
    row["artifact_mb"] = round(path.stat().st_size / 2**20, 1)
    row["vectors_mb"] = round(vectors.nbytes / 2**20, 1)

    core = session.core
    pick = lambda i: probes[i % len(probes)]  # noqa: E731
    row["search_default"], approx = timed(lambda i: [h.id for h in core.search(pick(i), "", top_k=TOP_K)], repeats)
    row["search_exact"], exact = timed(lambda i: [h.id for h in core.search(pick(i), "", top_k=TOP_K, exact=True)], repeats)
    matrix = np.ascontiguousarray(vectors)
    row["numpy_scan"], _ = timed(lambda i: top_k_indices(matrix @ pick(i), TOP_K), repeats)
    flat = faiss.IndexFlatIP(matrix.shape[1])
    flat.add(matrix)
    row["faiss_flat_ip"], _ = timed(lambda i: flat.search(pick(i)[None, :], TOP_K), repeats)
    del flat
    n = min(repeats, len(probes))
    row["recall_at_10"] = recall(approx[:n], exact[:n])
    real = len(query_vectors)  # the probes start with msmarco's real queries
    row["recall_at_10_real_queries"] = recall(approx[:real], exact[:real])

    row["filters"] = {}
    for label, below in FILTERS.items():
        spec = {"bucket": {"$lt": below}}
        stats, found = timed(lambda i: [h.id for h in core.search(pick(i), "", top_k=TOP_K, filter=spec)], n)
        truth = [[h.id for h in core.search(pick(i), "", top_k=TOP_K, filter=spec, exact=True)] for i in range(n)]
        passing = int(np.sum(buckets < below))
        path_taken = "graph" if row["approximate"] and passing > EXACT_FILTER_ROWS else "exact"
        row["filters"][label] = {"rows": passing, "path": path_taken, "recall_at_10": recall(found, truth), **stats}

    # End to end: real query text in, results out, embedding included.
    session.query_sync(query_texts[0], QueryOptions(top_k=TOP_K))
    row["end_to_end"], _ = timed(lambda i: session.query_sync(query_texts[i % len(query_texts)], QueryOptions(top_k=TOP_K)), repeats)
    row["end_to_end_exact"], _ = timed(
        lambda i: session.query_sync(query_texts[i % len(query_texts)], QueryOptions(top_k=TOP_K, exact=True)), repeats
    )
    del session, core, snapshot, matrix, vectors
    gc.collect()

    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as handle:
        np.save(handle, probes[:200])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as text_file:
        json.dump(query_texts, text_file)
    child = subprocess.run(
        [sys.executable, __file__, "--child-load", "--home", str(home), "--name", f"scale-{size}", "--queries", handle.name,
         "--query-texts", text_file.name],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
    )
    os.unlink(handle.name)
    os.unlink(text_file.name)
    row.update(json.loads(child.stdout.strip().splitlines()[-1]))
    row["threshold"] = APPROXIMATE_THRESHOLD
    print(json.dumps(row), flush=True)
    return row


def markdown_table(rows: list[dict]) -> str:
    """The RESULTS.md table, straight from the JSON (no hand-copied figures)."""
    def ms(stats: dict) -> str:
        return f"{stats['p50_ms']:.2f} ({stats['p95_ms']:.2f})"

    lines = [
        "| documents | " + " | ".join(f"{r['docs']:,}" for r in rows) + " |",
        "| --- |" + " --- |" * len(rows),
    ]
    cells = [
        ("path taken by default", lambda r: "graph" if r["approximate"] else "exact"),
        ("build: graph + write, s", lambda r: f"{r['build_s']:.1f}"),
        ("artifact MB (vectors MB)", lambda r: f"{r['artifact_mb']:.0f} ({r['vectors_mb']:.0f})"),
        ("load_index cold / cached, s", lambda r: f"{r['load_cold_s']:.2f} / {r['load_cached_s']:.2f}"),
        ("RSS after load, MB", lambda r: f"{r['rss_after_load_mb']:.0f}"),
        ("RSS after 200 queries: private + file-backed, MB",
         lambda r: f"{r['rss_after_queries_anon_mb']:.0f} + {r['rss_after_queries_file_mb']:.0f}"),
        ("**search only, Lichen default** p50 (p95) ms", lambda r: f"**{ms(r['search_default'])}**"),
        ("search only, Lichen `exact=True`", lambda r: ms(r["search_exact"])),
        ("search only, bare numpy scan", lambda r: ms(r["numpy_scan"])),
        ("search only, FAISS `IndexFlatIP`", lambda r: ms(r["faiss_flat_ip"])),
        ("exact / numpy (same run)", lambda r: f"{r['search_exact']['p50_ms'] / r['numpy_scan']['p50_ms']:.2f}x"),
        ("**end to end, default** p50 (p95) ms", lambda r: f"**{ms(r['end_to_end'])}**"),
        ("loaded index (lazy, 200 queries): search only", lambda r: ms(r["loaded_search"]) if "loaded_search" in r else "-"),
        ("loaded index: end to end", lambda r: ms(r["loaded_end_to_end"]) if "loaded_end_to_end" in r else "-"),
        ("loaded index: the query embedding alone (same process)",
         lambda r: ms(r["loaded_query_embedding"]) if "loaded_query_embedding" in r else "-"),
        (f"loaded index, queries {SPACED_GAP_S * 1000:.0f} ms apart: search only",
         lambda r: ms(r["loaded_search_spaced"]) if "loaded_search_spaced" in r else "-"),
        (f"loaded index, queries {SPACED_GAP_S * 1000:.0f} ms apart: end to end",
         lambda r: ms(r["loaded_end_to_end_spaced"]) if "loaded_end_to_end_spaced" in r else "-"),
        ("end to end, `exact=True`", lambda r: ms(r["end_to_end_exact"])),
        ("**recall@10, real queries** (50)", lambda r: f"**{r['recall_at_10_real_queries']:.3f}**"),
        ("recall@10, real + synthetic probes (500)", lambda r: f"{r['recall_at_10']:.3f}"),
    ]
    for label in FILTERS:
        cells.append((
            f"filter {label}: path, recall@10, p50 ms",
            lambda r, label=label: f"{r['filters'][label]['path']}, {r['filters'][label]['recall_at_10']:.3f}, "
            f"{r['filters'][label]['p50_ms']:.2f}",
        ))
    for label, cell in cells:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = [r["docs"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    series = [
        ("Lichen default (approximate from 50k)", "search_default", "o-"),
        ("Lichen exact=True", "search_exact", "s--"),
        ("bare numpy scan", "numpy_scan", "x:"),
        ("FAISS IndexFlatIP", "faiss_flat_ip", "^:"),
        ("Lichen end to end (embedding included)", "end_to_end", "D-"),
        ("Lichen loaded index, end to end", "loaded_end_to_end", "v-"),
        (f"Lichen loaded index, end to end, queries {SPACED_GAP_S * 1000:.0f} ms apart", "loaded_end_to_end_spaced", "v--"),
    ]
    series = [entry for entry in series if all(entry[1] in r for r in rows)]
    for label, key, style in series:
        ax.plot(docs, [r[key]["p50_ms"] for r in rows], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("documents in the index")
    ax.set_ylabel("query latency p50 (ms, log scale)")
    ax.set_title("Lichen query latency vs index size (2 cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.json")
    parser.add_argument("--plot", type=Path, default=Path(__file__).parent / "results" / "scale.png")
    parser.add_argument("--table", type=Path, help="print the markdown table of an earlier --out JSON and exit")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of --out for sizes not measured now (re-measure 10k without redoing 1M)")
    parser.add_argument("--child-load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--query-texts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_load:
        child_load(args)
        return
    if args.table:
        rows = json.loads(args.table.read_text())["rows"]
        print(markdown_table(rows))
        plot(rows, args.plot)
        return
    if args.data is None:
        parser.error("--data is required")

    home = Path(tempfile.mkdtemp(prefix="lichen-scale-"))
    os.environ["LICHEN_HOME"] = str(home)
    from lichen import get_embedder

    embedder = get_embedder("lichen-minilm")
    _, texts = load_corpus(args.data)
    _, query_texts = load_queries(args.data)
    base = cached_embeddings(texts, args.cache, embedder.embed)
    real_queries = cached_embeddings(query_texts, args.cache, embedder.embed)
    probes = np.vstack([real_queries, mixed_corpus(base, 450, seed=99)]).astype(np.float32)
    rows = [
        measure_size(int(size), base, texts, query_texts, real_queries, probes, args.repeats, home)
        for size in args.sizes.split(",")
    ]
    if args.update and args.out.exists():
        measured = {row["docs"] for row in rows}
        rows += [row for row in json.loads(args.out.read_text())["rows"] if row["docs"] not in measured]
    rows.sort(key=lambda row: row["docs"])
    import faiss
    import usearch

    result = {
        "machine": {"cpus": os.cpu_count()},
        "versions": {"numpy": np.__version__, "faiss": faiss.__version__, "usearch": usearch.__version__},
        "top_k": TOP_K,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.plot)
    print(markdown_table(rows))
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
