"""Latency and throughput of a Lichen session against peers, in one run.

Builds 10k and 100k-document corpora from msmarco-5k (passages replicated under new ids;
a replicated passage has the same vector, so the 5k unique passages are embedded once and
cached), then measures with Lichen's own embedder everywhere:

- end-to-end query (embed + search) and search-only p50/p95, top_k=5, with and without
  a metadata filter;
- a bare numpy matvec + argpartition over the same matrix (the floor for exact search);
- LangChain ``InMemoryVectorStore`` and LlamaIndex ``SimpleVectorStore`` given the same
  vectors, reported as ratios to Lichen;
- ``add_docs`` throughput, embedding included and with precomputed vectors.

Usage::

    python benchmarks/bench_engine.py --data ../shared/data/msmarco-5k --out benchmarks/results/engine.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from _data import cached_embeddings, load_corpus, load_queries
from _measure import percentiles
from lichen import DocumentInfo, QueryOptions, SessionIndex, get_embedder

TOP_K = 5
FILTER = {"shard": {"$eq": 3}}  # 10% of documents


def timed(fn, inputs, repeats: int) -> list[float]:
    samples = []
    for i in range(repeats):
        arg = inputs[i % len(inputs)]
        start = time.perf_counter()
        fn(arg)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def build_session(n: int, ids: list[str], texts: list[str], vectors: np.ndarray) -> SessionIndex:
    session = SessionIndex(f"bench-{n}")
    docs = [
        DocumentInfo(
            id=f"{ids[i % len(ids)]}-{i // len(ids)}",
            text=texts[i % len(texts)],
            metadata={"shard": i % 10, "copy": i // len(ids)},
            embedding=vectors[i % len(vectors)],
        )
        for i in range(n)
    ]
    for start in range(0, n, 10_000):
        session.add_docs_sync(docs[start : start + 10_000])
    return session


def bench_lichen(session: SessionIndex, queries: list[str], query_vectors: np.ndarray, repeats: int) -> dict:
    for query in queries:  # warm-up: first runs at each sequence length allocate buffers
        session.query_sync(query, QueryOptions(top_k=TOP_K, alpha=1.0))
    embedder = get_embedder()
    results = {"embed_query_only": percentiles(timed(lambda q: embedder.embed([q]), queries, repeats))}
    for label, flt in (("no_filter", None), ("filter", FILTER)):
        options = QueryOptions(top_k=TOP_K, filter=flt, alpha=1.0)
        results[f"end_to_end_{label}"] = percentiles(timed(lambda q: session.query_sync(q, options), queries, repeats))
        results[f"search_only_{label}"] = percentiles(
            timed(
                lambda v: session.query_sync("", QueryOptions(top_k=TOP_K, filter=flt, alpha=1.0, embedding=v)),
                list(query_vectors),
                repeats,
            )
        )
        results[f"engine_only_{label}"] = percentiles(
            timed(lambda v: session.core.search(v, "", top_k=TOP_K, filter=flt, alpha=1.0), list(query_vectors), repeats)
        )
    hybrid = QueryOptions(top_k=TOP_K, alpha=0.5)
    session.query_sync(queries[0], hybrid)  # builds the keyword index once
    results["end_to_end_hybrid_alpha_0.5"] = percentiles(timed(lambda q: session.query_sync(q, hybrid), queries, repeats))
    return results


def bench_numpy_paired(session: SessionIndex, query_vectors: np.ndarray, repeats: int) -> dict:
    """Bare numpy matvec + argpartition over the same matrix, timed alternately with
    Lichen's search-only query so both see the same machine noise (the ratio is the
    figure that matters)."""
    matrix = np.ascontiguousarray(session.core.matrix)

    def numpy_search(vector):
        scores = matrix @ vector
        top = np.argpartition(-scores, TOP_K)[:TOP_K]
        return top[np.argsort(-scores[top])]

    options = [QueryOptions(top_k=TOP_K, alpha=1.0, embedding=v) for v in query_vectors]
    numpy_ms, lichen_ms = [], []
    for i in range(repeats):
        vector = query_vectors[i % len(query_vectors)]
        start = time.perf_counter()
        numpy_search(vector)
        numpy_ms.append((time.perf_counter() - start) * 1000.0)
        start = time.perf_counter()
        session.query_sync("", options[i % len(options)])
        lichen_ms.append((time.perf_counter() - start) * 1000.0)
    return {"search_only_no_filter": percentiles(numpy_ms), "lichen_search_only_paired": percentiles(lichen_ms)}


def bench_langchain(n, ids, texts, vectors, queries, embedder, repeats) -> dict:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    lookup = {text: vector.tolist() for text, vector in zip(texts, vectors)}

    class LookupEmbeddings(Embeddings):
        def embed_documents(self, batch):
            return [lookup[t] for t in batch]

        def embed_query(self, text):
            return embedder.embed([text])[0].tolist()

    store = InMemoryVectorStore(LookupEmbeddings())
    all_texts = [texts[i % len(texts)] for i in range(n)]
    all_ids = [f"{ids[i % len(ids)]}-{i // len(ids)}" for i in range(n)]
    metadatas = [{"shard": i % 10} for i in range(n)]
    store.add_texts(all_texts, metadatas=metadatas, ids=all_ids)
    return {
        "end_to_end_no_filter": percentiles(timed(lambda q: store.similarity_search(q, k=TOP_K), queries, repeats)),
        "end_to_end_filter": percentiles(
            timed(lambda q: store.similarity_search(q, k=TOP_K, filter=lambda d: d.metadata["shard"] == 3), queries, repeats)
        ),
    }


def bench_llamaindex(n, ids, texts, vectors, queries, embedder, repeats) -> dict:
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores import SimpleVectorStore
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery

    store = SimpleVectorStore()
    nodes = [
        TextNode(id_=f"{ids[i % len(ids)]}-{i // len(ids)}", text=texts[i % len(texts)], metadata={"shard": i % 10}, embedding=vectors[i % len(vectors)].tolist())
        for i in range(n)
    ]
    store.add(nodes)
    flt = MetadataFilters(filters=[MetadataFilter(key="shard", value=3)])

    def run(q, filters=None):
        vector = embedder.embed([q])[0].tolist()
        return store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=TOP_K, filters=filters))

    return {
        "end_to_end_no_filter": percentiles(timed(run, queries, repeats)),
        "end_to_end_filter": percentiles(timed(lambda q: run(q, flt), queries, repeats)),
    }


def bench_add(texts: list[str], vectors: np.ndarray) -> dict:
    sample = texts[:1000]
    session = SessionIndex("add-embed")
    start = time.perf_counter()
    for i in range(0, len(sample), 100):
        session.add_docs_sync([DocumentInfo(id=f"e{i + j}", text=t) for j, t in enumerate(sample[i : i + 100])])
    embed_rate = len(sample) / (time.perf_counter() - start)

    session = SessionIndex("add-precomputed")
    docs = [DocumentInfo(id=f"p{i}", text=texts[i % len(texts)], embedding=vectors[i % len(vectors)]) for i in range(50_000)]
    start = time.perf_counter()
    for i in range(0, len(docs), 1000):
        session.add_docs_sync(docs[i : i + 1000])
    precomputed_rate = len(docs) / (time.perf_counter() - start)

    session = SessionIndex("add-one")
    start = time.perf_counter()
    for i, text in enumerate(sample[:200]):
        session.add_docs_sync([DocumentInfo(id=f"o{i}", text=text)])
    single_ms = (time.perf_counter() - start) / 200 * 1000
    return {
        "add_docs_embedding_docs_per_s": round(embed_rate, 1),
        "add_docs_one_turn_ms": round(single_ms, 3),
        "add_docs_precomputed_docs_per_s": round(precomputed_rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "engine.json")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--peer-repeats", type=int, default=20)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    embedder = get_embedder()
    ids, texts = load_corpus(args.data)
    _, queries = load_queries(args.data)
    vectors = cached_embeddings(texts, args.cache, embedder.embed)
    query_vectors = embedder.embed(queries)

    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "top_k": TOP_K,
        "filter": FILTER,
        "add": bench_add(texts, vectors),
        "sizes": {},
    }
    for n in args.sizes:
        session = build_session(n, ids, texts, vectors)
        entry = {"lichen": bench_lichen(session, queries, query_vectors, args.repeats)}
        entry["numpy_floor"] = bench_numpy_paired(session, query_vectors, args.repeats)
        if not args.skip_peers:
            entry["langchain_inmemory"] = bench_langchain(n, ids, texts, vectors, queries, embedder, args.peer_repeats)
            entry["llamaindex_simple"] = bench_llamaindex(n, ids, texts, vectors, queries, embedder, args.peer_repeats)
        lichen = entry["lichen"]
        ratios = {
            "search_only_vs_numpy_paired": round(
                entry["numpy_floor"]["lichen_search_only_paired"]["p50_ms"]
                / entry["numpy_floor"]["search_only_no_filter"]["p50_ms"],
                3,
            ),
        }
        for peer in ("langchain_inmemory", "llamaindex_simple"):
            if peer in entry:
                for label in ("no_filter", "filter"):
                    ratios[f"{peer}_{label}_speedup"] = round(
                        entry[peer][f"end_to_end_{label}"]["p50_ms"] / lichen[f"end_to_end_{label}"]["p50_ms"], 1
                    )
        entry["ratios"] = ratios
        report["sizes"][str(n)] = entry
        print(f"\n== {n:,} documents ==")
        for system, figures in entry.items():
            if system == "ratios":
                continue
            for metric, value in figures.items():
                print(f"{system:<20} {metric:<32} p50 {value['p50_ms']:>9.3f} ms   p95 {value['p95_ms']:>9.3f} ms")
        for name, value in ratios.items():
            print(f"ratio {name:<40} {value}")
        del session
    print("\nadd:", json.dumps(report["add"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
