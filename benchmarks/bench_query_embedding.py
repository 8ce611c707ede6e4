"""Where the time of one query's embedding goes, and which onnxruntime settings change it.

Part 1 (breakdown) times a single short query, the kind a chat or voice turn sends (8-15
words; also msmarco's shorter queries), stage by stage: tokenisation, building the input
arrays, ``session.run``, ``embed`` with a session that answers instantly (everything but
the model) and the whole ``embed([q])``, for the shipped settings and the previous ones,
interleaved. Mean pooling and L2 normalisation run inside the graph, so onnxruntime's
profiler splits ``session.run`` into MatMul kernels, the pooling + normalisation tail, the
other kernels and the runtime's time outside kernels.

Part 2 (settings) builds one session per onnxruntime configuration and times them side by
side in the same process, round by round in alternating order, so they all see the same
machine noise: ``embed([q])`` back to back, after 20 ms idle, and followed by a numpy
search over 10k and 100k vectors (threads left spinning after a run once tripled that);
paired ratios against the previous settings, CPU time per query and the cores other
processes used meanwhile. Then fidelity against the golden vectors of
``tests/test_model_fidelity.py`` and batch throughput (1,000 msmarco passages).

Part 3 (end to end) times ``SessionIndex.query_sync`` at 10k documents as
``bench_engine.py`` does, with the previous and the shipped settings alternating.

Usage::

    python benchmarks/bench_query_embedding.py --data ../shared/data/msmarco-5k \\
        --out benchmarks/results/query_embedding.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from _data import cached_embeddings, load_corpus, load_queries
from _measure import percentiles
from lichen.models import model_dir
from lichen.models._onnx import OnnxEmbedder, _session_options

MODEL_ID = "lichen-minilm"
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden_minilm.npz"

#: What a chat or voice agent sends as a query: one spoken or typed turn, 8-15 words.
CHAT_QUERIES = [
    "what time does the pharmacy on main street open tomorrow morning",
    "can you remind me what we decided about the budget last week",
    "how do I reset my password if I no longer have my phone",
    "is there a cheaper plan that still includes international calls",
    "what did the doctor say about taking the medicine with food",
    "my order arrived damaged, how do I get a replacement sent out",
    "which of my meetings on thursday can be moved to next week",
    "what is the refund policy for tickets bought through the app",
    "tell me again the name of the restaurant you recommended for saturday",
    "how long does shipping to canada usually take for small parcels",
    "why was I charged twice for the same subscription this month",
    "what are the opening hours of the city library during the holidays",
    "can I bring my dog on the train if it stays in a carrier",
    "where did I say I left the spare keys for the garage",
    "how much paid leave do new employees get in their first year",
    "what was the address of the apartment we visited on monday",
    "do you support exporting my data to a spreadsheet every night",
    "which vaccines does my cat need before we travel abroad in june",
    "what is the difference between the basic and the premium warranty",
    "how do I connect the printer to the office wifi network",
    "remind me what my sister said she wanted for her birthday",
    "is the pool at the hotel heated during the winter months",
    "how many vacation days do I have left for this year",
    "what should I do if the app keeps logging me out",
]

BASELINE = "before"
#: Session settings compared with the shipped one, side by side (name -> intra-op threads
#: and config entries; all share graph optimisation level ALL, sequential execution and
#: one inter-op thread). "before" is what the embedder used until the bounded spin.
VARIANTS = {
    BASELINE: {"threads": 2, "config": {"session.intra_op.allow_spinning": "0"}},
    "1 thread": {"threads": 1, "config": {"session.intra_op.allow_spinning": "0"}},
    "spin <= 20 us, stop after run": {
        "threads": 2,
        "config": {
            "session.intra_op.allow_spinning": "1",
            "session.intra_op.spin_duration_us": "20",
            "session.force_spinning_stop": "1",
        },
    },
    "spin whole run, stop after run": {
        "threads": 2,
        "config": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    },
}


def variant_options(spec: dict) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    for key, value in spec["config"].items():
        options.add_session_config_entry(key, value)
    return options


def describe(options: ort.SessionOptions) -> dict:
    keys = ("session.intra_op.allow_spinning", "session.intra_op.spin_duration_us", "session.force_spinning_stop")
    return {
        "intra_op_num_threads": options.intra_op_num_threads,
        **{key: options.get_session_config_entry(key) for key in keys if _has_entry(options, key)},
    }


def _has_entry(options: ort.SessionOptions, key: str) -> bool:
    try:
        options.get_session_config_entry(key)
    except Exception:  # onnxruntime raises when the key was never set
        return False
    return True


def make_embedder(options: ort.SessionOptions | None) -> OnnxEmbedder:
    embedder = OnnxEmbedder(model_dir(MODEL_ID), model_id=MODEL_ID)
    if options is not None:
        embedder._session = ort.InferenceSession(
            str(model_dir(MODEL_ID) / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
    return embedder


def feed_for(ids: list[int]) -> dict[str, np.ndarray]:
    input_ids = np.array([ids], dtype=np.int64)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids), "token_type_ids": np.zeros_like(input_ids)}


def clock(fn, arg) -> float:
    start = time.perf_counter()
    fn(arg)
    return (time.perf_counter() - start) * 1000.0


# -- part 1: where the time goes ---------------------------------------------------------


class _InstantSession:
    def __init__(self, dimension: int) -> None:
        self._out = np.full((1, dimension), dimension**-0.5, dtype=np.float32)

    def run(self, names, feed):
        return [self._out]


def breakdown(embedders: dict[str, OnnxEmbedder], queries: list[str], rounds: int) -> dict:
    """Each stage timed over every query, per embedder, per round; embedders alternate
    order round by round so both see the same machine noise."""
    plans = {}
    for name, embedder in embedders.items():
        tokenizer, session = embedder._tokenizer, embedder._session
        encodings = [tokenizer.encode(q) for q in queries]
        feeds = [feed_for(e.ids) for e in encodings]
        for query in queries:  # warm-up: first runs at each sequence length allocate buffers
            embedder.embed([query])
        # The same embedder with a session that answers instantly: what embed() costs
        # besides the model (tokenising, arrays, batching, copying out), measured directly.
        no_model = copy.copy(embedder)
        no_model._session = _InstantSession(embedder.dimension)
        plans[name] = {
            "tokenize": (tokenizer.encode, queries),
            "input_arrays": (lambda e: feed_for(e.ids), encodings),
            "session_run": (lambda f, session=session: session.run(None, f), feeds),
            "embed_without_model": (lambda q, no_model=no_model: no_model.embed([q]), queries),
            "embed_total": (lambda q, embedder=embedder: embedder.embed([q]), queries),
        }
    samples = {name: {stage: [] for stage in plan} for name, plan in plans.items()}
    for r in range(rounds):
        for name in list(plans) if r % 2 == 0 else list(plans)[::-1]:
            for stage, (fn, args) in plans[name].items():
                samples[name][stage].extend(clock(fn, a) for a in args)
    tokens = [len(next(iter(embedders.values()))._tokenizer.encode(q).ids) for q in queries]
    return {
        "queries": len(queries),
        "words_mean": round(float(np.mean([len(q.split()) for q in queries])), 1),
        "tokens_mean": round(float(np.mean(tokens)), 1),
        **{name: {stage: percentiles(values) for stage, values in stages.items()} for name, stages in samples.items()},
    }


def graph_profile(options: ort.SessionOptions, queries: list[str], tokenizer, runs: int) -> dict:
    """Split ``session.run`` with onnxruntime's profiler: kernel time per part of the
    optimised graph (mean per run) and the runtime's time outside kernels. The pooling +
    normalisation tail is every node the output depends on that the encoder's last layer
    norm does not (the mask counts, masked sum, mean, L2 norm, divide)."""
    import onnx  # test / build-model extra; only the profile needs it

    feeds = [feed_for(tokenizer.encode(q).ids) for q in queries]
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        session = ort.InferenceSession(str(model_dir(MODEL_ID) / "model.onnx"), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
        for f in feeds:  # warm-up, left out below
            session.run(None, f)
        for i in range(runs):
            session.run(None, feeds[i % len(feeds)])
        events = json.loads(Path(session.end_profiling()).read_text())
    runs_seen = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[len(feeds):]
    start = runs_seen[0]["ts"]
    producers = {out: node for node in graph.node for out in node.output}

    def ancestors(names: list[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(names)
        while stack:
            node = producers.get(stack.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                stack.extend(node.input)
        return seen

    last_norm = [n for n in graph.node if n.op_type in ("LayerNormalization", "SkipLayerNormalization")][-1]
    tail = ancestors([o.name for o in graph.output]) - ancestors(list(last_norm.output))
    run_us = [e["dur"] for e in runs_seen]
    groups = {"matmul_kernels": 0.0, "pooling_normalise_kernels": 0.0, "other_kernels": 0.0}
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start]
    for event in kernels:
        node = event["name"][: -len("_kernel_time")]
        if node in tail:
            groups["pooling_normalise_kernels"] += event["dur"]
        elif event["args"]["op_name"] in ("MatMul", "FusedMatMul"):
            groups["matmul_kernels"] += event["dur"]
        else:
            groups["other_kernels"] += event["dur"]
    per_run = {name: round(total / runs / 1000.0, 4) for name, total in groups.items()}
    per_run["session_run_profiled_mean_ms"] = round(float(np.mean(run_us)) / 1000.0, 4)
    per_run["outside_kernels_ms"] = round(per_run["session_run_profiled_mean_ms"] - sum(per_run[g] for g in groups), 4)
    per_run["nodes"] = len(graph.node)
    per_run["pooling_normalise_nodes"] = sorted(tail)
    return per_run


# -- part 2: settings side by side ------------------------------------------------------


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes have used (``/proc/stat``); NaN where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except OSError:
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def compare_settings(
    embedders: dict[str, OnnxEmbedder], queries: list[str], rounds: int, search_sizes: list[int], baseline: str
) -> dict:
    """Each round runs every setting once per mode (in alternating order); per-round
    medians give paired ratios against ``baseline`` that machine noise mostly cancels
    from. Modes: ``embed([q])`` back to back; after 20 ms idle (a query arriving on its
    own, with the pool's threads asleep); followed by a numpy search over ``n`` vectors.
    Each round also records how many cores other processes used meanwhile, so quiet
    rounds can be told apart on a shared machine."""
    rng = np.random.default_rng(0)
    matrices = {n: rng.standard_normal((n, 384), dtype=np.float32) for n in search_sizes}
    idle_queries = queries[:8]
    for embedder in embedders.values():
        for query in queries:
            embedder.embed([query])

    def embed_then_search(embedder, matrix):
        def go(query):
            scores = matrix @ embedder.embed([query])[0]
            np.argpartition(-scores, 4)[:5]

        return go

    def after_idle(embedder):
        def go(query):
            time.sleep(0.02)
            return clock(lambda q: embedder.embed([q]), query)

        return go

    modes = ["embed", "embed_after_idle", *(f"embed_then_search_{n}" for n in search_sizes)]
    samples = {name: {mode: [] for mode in modes} for name in embedders}
    round_medians = {name: {mode: [] for mode in modes} for name in embedders}
    cpu_ms = {name: [] for name in embedders}
    others_cores = []
    for r in range(rounds):
        busy0, own0, wall0 = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        for name in list(embedders) if r % 2 == 0 else list(embedders)[::-1]:
            embedder = embedders[name]
            cpu0 = time.process_time()
            figures = {"embed": [clock(lambda q: embedder.embed([q]), q) for q in queries]}
            cpu_ms[name].append((time.process_time() - cpu0) * 1000.0 / len(queries))
            figures["embed_after_idle"] = [after_idle(embedder)(q) for q in idle_queries]
            for n, matrix in matrices.items():
                go = embed_then_search(embedder, matrix)
                figures[f"embed_then_search_{n}"] = [clock(go, q) for q in queries]
            for mode, values in figures.items():
                samples[name][mode].extend(values)
                round_medians[name][mode].append(statistics.median(values))
            # numpy's BLAS threads spin for ~100 ms after a matrix product, holding a
            # core: let them settle so the next setting's first mode starts clean.
            time.sleep(0.3)
        own = time.process_time() - own0
        others_cores.append(max(0.0, (_busy_cpu_seconds() - busy0 - own) / (time.perf_counter() - wall0)))
    quiet = [i for i, cores in enumerate(others_cores) if cores < 0.3]

    def paired(name: str, mode: str, rows: list[int]) -> float | None:
        if not rows:
            return None
        ratios = [round_medians[name][mode][i] / round_medians[baseline][mode][i] for i in rows]
        return round(statistics.median(ratios), 3)

    result = {
        "rounds": rounds,
        "other_processes_cores_per_round": [round(c, 2) for c in others_cores],
        "round_medians_ms": {n: {m: [round(x, 4) for x in v] for m, v in by_mode.items()} for n, by_mode in round_medians.items()},
        "quiet_rounds": len(quiet),
        "settings": {},
    }
    for name in embedders:
        entry = {mode: percentiles(values) for mode, values in samples[name].items()}
        entry["cpu_ms_per_embed_median"] = round(statistics.median(cpu_ms[name]), 4)
        entry[f"paired_ratio_vs_{baseline}"] = {mode: paired(name, mode, list(range(rounds))) for mode in modes}
        entry["paired_ratio_quiet_rounds"] = {mode: paired(name, mode, quiet) for mode in modes}
        entry["quiet_rounds_p50_ms"] = {
            mode: (round(statistics.median([round_medians[name][mode][i] for i in quiet]), 4) if quiet else None)
            for mode in modes
        }
        result["settings"][name] = entry
    return result


def session_end_to_end(
    sessions: dict[str, ort.InferenceSession], data: Path, cache: Path, sizes: list[int], rounds: int, baseline: str
) -> dict:
    """``SessionIndex.query_sync`` (embed + engine search, top_k=5) over msmarco's queries,
    as ``bench_engine.py`` measures it, with the process-wide embedder's session swapped
    per setting, alternating round by round."""
    from bench_engine import build_session
    from lichen import QueryOptions, get_embedder

    embedder = get_embedder(MODEL_ID)
    own_session = embedder._session
    ids, texts = load_corpus(data)
    _, queries = load_queries(data)
    vectors = cached_embeddings(texts, cache, embedder.embed)
    options = QueryOptions(top_k=5, alpha=1.0)
    result = {}
    try:
        for n in sizes:
            index = build_session(n, ids, texts, vectors)
            medians: dict[str, list[float]] = {name: [] for name in sessions}
            for r in range(rounds):
                for name in list(sessions) if r % 2 == 0 else list(sessions)[::-1]:
                    embedder._session = sessions[name]
                    for query in queries[:5]:
                        index.query_sync(query, options)
                    medians[name].append(statistics.median(clock(lambda q: index.query_sync(q, options), q) for q in queries))
                    time.sleep(0.3)
            result[str(n)] = {
                name: {
                    "p50_of_round_medians_ms": round(statistics.median(values), 4),
                    f"paired_ratio_vs_{baseline}": round(
                        statistics.median(v / b for v, b in zip(values, medians[baseline])), 3
                    ),
                }
                for name, values in medians.items()
            }
            del index
    finally:
        embedder._session = own_session
    return result


def batch_throughput(embedders: dict[str, OnnxEmbedder], passages: list[str], repeats: int, baseline: str) -> dict:
    """``embed(passages)`` per setting, alternating order per repeat; the paired ratio is
    the median over repeats of throughput relative to ``baseline`` in the same repeat."""
    seconds: dict[str, list[float]] = {name: [] for name in embedders}
    for r in range(repeats):
        for name in list(embedders) if r % 2 == 0 else list(embedders)[::-1]:
            embedder = embedders[name]
            start = time.perf_counter()
            embedder.embed(passages, progress=False)
            seconds[name].append(time.perf_counter() - start)
    return {
        name: {
            "texts": len(passages),
            "docs_per_s_median": round(len(passages) / statistics.median(s), 1),
            f"throughput_paired_ratio_vs_{baseline}": round(statistics.median(b / x for x, b in zip(s, seconds[baseline])), 3),
            "seconds": [round(x, 2) for x in s],
        }
        for name, s in seconds.items()
    }


def fidelity(embedder: OnnxEmbedder) -> dict:
    golden = np.load(GOLDEN)
    sentences = [str(s) for s in golden["sentences"]]
    reference = golden["vectors"] / np.linalg.norm(golden["vectors"], axis=1, keepdims=True)
    one_by_one = np.stack([embedder.embed([s])[0] for s in sentences])
    batched = embedder.embed(sentences)
    return {
        "sentences": len(sentences),
        "min_cosine_one_at_a_time": round(float((one_by_one * reference).sum(axis=1).min()), 7),
        "min_cosine_batched": round(float((batched * reference).sum(axis=1).min()), 7),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="msmarco-5k directory (queries and passages)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "query_embedding.json")
    parser.add_argument("--rounds", type=int, default=24, help="passes over the query set per stage / setting")
    parser.add_argument("--profile-runs", type=int, default=400)
    parser.add_argument("--search-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--batch-texts", type=int, default=1000)
    parser.add_argument("--batch-repeats", type=int, default=4)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS)[1:], help=f"names from VARIANTS besides {BASELINE!r}")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--session-sizes", type=int, nargs="*", default=[10_000], help="SessionIndex sizes for end to end")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache", help="passage embeddings cache")
    args = parser.parse_args()

    _, msmarco_queries = load_queries(args.data)
    shipped = make_embedder(None)
    before = make_embedder(variant_options(VARIANTS[BASELINE]))
    pair = {BASELINE: before, "shipped": shipped}
    report: dict = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "onnxruntime": ort.__version__},
        "shipped_settings": describe(_session_options()),
        "breakdown_chat": breakdown(pair, CHAT_QUERIES, args.rounds),
        "breakdown_msmarco": breakdown(pair, msmarco_queries, args.rounds),
        "graph_profile_chat": {
            BASELINE: graph_profile(variant_options(VARIANTS[BASELINE]), CHAT_QUERIES, shipped._tokenizer, args.profile_runs),
            "shipped": graph_profile(_session_options(), CHAT_QUERIES, shipped._tokenizer, args.profile_runs),
        },
    }
    print(f"shipped settings: {report['shipped_settings']}")
    for label in ("breakdown_chat", "breakdown_msmarco"):
        figures = report[label]
        print(f"\n== {label}: {figures['words_mean']} words, {figures['tokens_mean']} tokens on average ==")
        print(f"{'p50 (p95) ms':<20} {BASELINE:>20} {'shipped':>20}")
        for stage in ("tokenize", "input_arrays", "session_run", "embed_without_model", "embed_total"):
            cells = [f"{figures[n][stage]['p50_ms']:.4f} ({figures[n][stage]['p95_ms']:.4f})" for n in pair]
            print(f"{stage:<20} {cells[0]:>20} {cells[1]:>20}")
    print(f"\n== session.run under the profiler (chat queries, ms per run; "
          f"{report['graph_profile_chat']['shipped']['nodes']} nodes) ==")
    for key in ("matmul_kernels", "pooling_normalise_kernels", "other_kernels", "outside_kernels_ms", "session_run_profiled_mean_ms"):
        cells = [f"{report['graph_profile_chat'][n][key]:.4f}" for n in pair]
        print(f"{key:<30} {cells[0]:>10} {cells[1]:>10}")

    specs = {"shipped": None, **{name: VARIANTS[name] for name in [BASELINE, *args.variants]}}
    options = {name: (_session_options() if spec is None else variant_options(spec)) for name, spec in specs.items()}
    report["variant_settings"] = {name: describe(o) for name, o in options.items()}
    embedders = {name: pair.get(name) or make_embedder(options[name]) for name in specs}
    comparison = compare_settings(embedders, CHAT_QUERIES, args.rounds, args.search_sizes, BASELINE)
    report["settings_chat"] = comparison
    print(f"\n== settings side by side (chat queries, {comparison['rounds']} interleaved rounds, "
          f"{comparison['quiet_rounds']} quiet) ==")
    print(f"cores used by other processes per round: {comparison['other_processes_cores_per_round']}")
    print("p50 / p95 ms over all rounds; [paired ratio vs before, all rounds | quiet rounds]")
    for name, figures in comparison["settings"].items():
        print(f"{name}  (cpu {figures['cpu_ms_per_embed_median']:.2f} ms per embed)")
        for mode, ratio in figures[f"paired_ratio_vs_{BASELINE}"].items():
            quiet = figures["paired_ratio_quiet_rounds"][mode]
            print(f"    {mode:<28} {figures[mode]['p50_ms']:>7.3f} / {figures[mode]['p95_ms']:>7.3f}   "
                  f"[{ratio} | {quiet}]  quiet p50 {figures['quiet_rounds_p50_ms'][mode]}")
    if args.session_sizes:
        report["session_end_to_end"] = session_end_to_end(
            {name: embedders[name]._session for name in pair}, args.data, args.cache, args.session_sizes, args.rounds, BASELINE
        )
        for n, figures in report["session_end_to_end"].items():
            for name, values in figures.items():
                print(f"SessionIndex {int(n):>7,} docs end to end {name:<10} {values}")
    report["fidelity"] = {name: fidelity(e) for name, e in embedders.items()}
    for name, figures in report["fidelity"].items():
        print(f"fidelity {name:<42} {figures}")
    if not args.skip_batch:
        _, passages = load_corpus(args.data)
        report["batch_throughput"] = batch_throughput(embedders, passages[: args.batch_texts], args.batch_repeats, BASELINE)
        for name, figures in report["batch_throughput"].items():
            print(f"batch {name:<42} {figures['docs_per_s_median']:>7.1f} docs/s  "
                  f"x{figures[f'throughput_paired_ratio_vs_{BASELINE}']} vs before  {figures['seconds']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
