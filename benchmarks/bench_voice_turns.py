"""Turn time of a voice agent, with and without the query prepared while the user speaks.

Replays msmarco's 50 queries as a caller would say them to a Pipecat pipeline
(``pipecat-lichen``: transcript listener -> user aggregator -> LichenContextProcessor ->
LLM stand-in -> assistant aggregator): per query, an interim transcript per word,
``--word-gap-ms`` apart (an STT sends one every ~250 ms of speech), then the final
transcript as STT services format it (capitalised, with a question mark) and the end of
the user's turn; the stand-in LLM answers at once and the agent "speaks" for
``--turn-gap-ms`` before the next question. Retrieval is from the call's session (every
earlier turn) and the msmarco corpus loaded as a long-term index (5,000 passages,
embedded once with the built-in model and cached under benchmarks/.cache).

Three instants per turn: the final transcript is queued; the user turn ends (the user
aggregator's context frame passes a probe placed right after it); the LLM stand-in
receives the context. **Turn time** is from the end of the turn to the context at the
LLM: what retrieval adds to the turn, the figure preparing changes. **From the final
transcript** adds Pipecat's own wait (``ExternalUserTurnStopStrategy`` ends the turn
0.5 s after the last final transcript, for transcripts that arrive late), the same in
both modes. ``processor`` is the part spent inside LichenContextProcessor (matching,
search, rendering). Each mode runs in a process of its own: prepared vectors are shared
by the whole process, so one mode's preparations would serve the other's queries::

    python benchmarks/bench_voice_turns.py --data ../shared/data/msmarco-5k
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _data import cached_embeddings, load_corpus, load_queries
from _measure import percentiles

HERE = Path(__file__).resolve().parent
MODES = ("without", "with")  # prepare_interim off / on


def spoken_as_final(query: str) -> str:
    """How an STT service formats a final transcript: capitalised, punctuated."""
    return query[:1].upper() + query[1:].rstrip("?. ") + "?"


async def replay(mode: str, data: Path, word_gap: float, turn_gap: float, limit: int | None) -> dict:
    from lichen import Client, DocumentInfo
    from loguru import logger
    from pipecat.frames.frames import (
        EndFrame,
        InterimTranscriptionFrame,
        LLMContextFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        LLMTextFrame,
        TranscriptionFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
    from pipecat.processors.frame_processor import FrameProcessor
    from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
    from pipecat.utils.time import time_now_iso8601
    from pipecat.workers.runner import WorkerRunner
    from pipecat_lichen import LichenContextProcessor, LichenParams

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    class TurnEndProbe(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.passed = 0.0

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, LLMContextFrame):
                self.passed = time.perf_counter()
            await self.push_frame(frame, direction)

    class StandInLLM(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.arrived = 0.0
            self.replied = asyncio.Event()

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if not isinstance(frame, LLMContextFrame):
                await self.push_frame(frame, direction)
                return
            self.arrived = time.perf_counter()
            for out in (LLMFullResponseStartFrame(), LLMTextFrame("Here is what I found."), LLMFullResponseEndFrame()):
                await self.push_frame(out)
            self.replied.set()

    ids, texts = load_corpus(data)
    _, queries = load_queries(data)
    queries = queries[:limit] if limit else queries
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as home:
        client = Client(home=home, progress=False)
        vectors = cached_embeddings(texts, HERE / ".cache", client.session_sync("embedder").embed_texts)
        await client.create_index(
            "msmarco", [DocumentInfo(id=i, text=t, embedding=v) for i, t, v in zip(ids, texts, vectors)]
        )
        await client.load_index("msmarco")
        session = await client.session(f"call-{mode}")
        lichen = LichenContextProcessor(
            session, client, params=LichenParams(indexes=["msmarco"], top_k=3, prepare_interim=mode == "with")
        )
        context = LLMContext([{"role": "system", "content": "You answer questions on a phone call."}])
        aggregators = LLMContextAggregatorPair(
            context, user_params=LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies())
        )
        llm, probe = StandInLLM(), TurnEndProbe()
        pipeline = Pipeline([lichen.transcript_listener(), aggregators.user(), probe, lichen, llm, aggregators.assistant()])
        worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False)
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")
        async def on_started(worker, frame):
            started.set()

        turns: list[dict] = []

        async def caller() -> None:
            await started.wait()
            session.embed_texts(["warm the model up before the first turn"])
            for query in queries:
                llm.replied.clear()
                await worker.queue_frame(UserStartedSpeakingFrame())
                words = query.split()
                for n in range(1, len(words) + 1):
                    interim = InterimTranscriptionFrame(" ".join(words[:n]), user_id="caller", timestamp=time_now_iso8601())
                    await worker.queue_frame(interim)
                    await asyncio.sleep(word_gap)
                final = spoken_as_final(query)
                sent = time.perf_counter()
                await worker.queue_frames([
                    TranscriptionFrame(final, user_id="caller", timestamp=time_now_iso8601()),
                    UserStoppedSpeakingFrame(),
                ])
                await llm.replied.wait()
                turn = lichen.last_turn
                turns.append({
                    "query": query,
                    "turn_ms": (llm.arrived - probe.passed) * 1000.0,
                    "from_final_ms": (llm.arrived - sent) * 1000.0,
                    "processor_ms": turn.latency_ms,
                    "match": turn.query.match,
                    "ready": turn.query.ready,
                    "words": len(words),
                })
                await asyncio.sleep(turn_gap)  # the agent answers
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), caller())

    matches: dict[str, int] = {}
    for turn in turns:
        matches[turn["match"]] = matches.get(turn["match"], 0) + 1
    return {
        "mode": mode,
        "turn": percentiles([t["turn_ms"] for t in turns]),
        "from_final": percentiles([t["from_final_ms"] for t in turns]),
        "processor": percentiles([t["processor_ms"] for t in turns]),
        "turn_mean_ms": round(sum(t["turn_ms"] for t in turns) / len(turns), 4),
        "matches": matches,
        "ready": sum(t["ready"] for t in turns),
        "session_docs_at_end": session.doc_count,
        "turns": turns,
    }


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "voice_turns.json")
    parser.add_argument("--word-gap-ms", type=float, default=250.0)
    parser.add_argument("--turn-gap-ms", type=float, default=1000.0)
    parser.add_argument("--rounds", type=int, default=2, help="each mode this many times, alternating")
    parser.add_argument("--limit", type=int, default=None, help="first N queries only")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one mode, in this process
    args = parser.parse_args()

    if args.mode:
        result = asyncio.run(replay(args.mode, args.data, args.word_gap_ms / 1000, args.turn_gap_ms / 1000, args.limit))
        print(json.dumps(result))
        return

    runs = []
    for round_ in range(args.rounds):
        for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
            command = [sys.executable, __file__, "--mode", mode, "--data", str(args.data),
                       "--word-gap-ms", str(args.word_gap_ms), "--turn-gap-ms", str(args.turn_gap_ms)]
            if args.limit:
                command += ["--limit", str(args.limit)]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LICHEN_PROGRESS": "0"})
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            run["round"] = round_ + 1
            run["load_average_after"] = [round(x, 2) for x in os.getloadavg()]  # other work on the box
            runs.append(run)
            print(
                f"round {round_ + 1} {mode:>7} prepare: turn p50 {run['turn']['p50_ms']:.2f} ms, "
                f"p95 {run['turn']['p95_ms']:.2f} ms (in the processor p50 {run['processor']['p50_ms']:.2f}, "
                f"p95 {run['processor']['p95_ms']:.2f}; from the final transcript p50 {run['from_final']['p50_ms']:.1f}); "
                f"matches {run['matches']}",
                flush=True,
            )

    summary = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {
            key: percentiles([t[f"{key}_ms"] for r in mine for t in r["turns"]])
            for key in ("turn", "from_final", "processor")
        }
        line = ", ".join(f"{key} p50 {v['p50_ms']:.2f} / p95 {v['p95_ms']:.2f} ms" for key, v in summary[mode].items())
        print(f"all rounds {mode:>7} prepare: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "bench_voice_turns.py",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "setup": {
            "queries": "msmarco-5k queries.jsonl" + (f" (first {args.limit})" if args.limit else " (50)"),
            "long_term_index": "msmarco-5k corpus, 5,000 passages, exact search",
            "word_gap_ms": args.word_gap_ms, "turn_gap_ms": args.turn_gap_ms, "top_k": 3, "rounds": args.rounds,
            "final_transcript": "the query capitalised, with a question mark",
            "turn_time": "user turn ends (context frame leaves the user aggregator) -> LLM stand-in receives the context",
            "from_final": "final transcript queued -> LLM stand-in receives the context (includes Pipecat's 0.5 s transcript window)",
        },
        "summary": summary,
        "runs": runs,
    }, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
