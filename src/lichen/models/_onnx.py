"""Run a sentence-embedding model with onnxruntime and Hugging Face tokenizers.

The graph (see :mod:`lichen.models.build`) already does pooling and L2 normalisation, so
this module only tokenises, batches and feeds it. Two faces say what a text is for:
:meth:`OnnxEmbedder.embed_documents` puts the model's passage prompt before each text and
:meth:`OnnxEmbedder.embed_queries` its query prompt (``model.json``'s ``prompts``: e5's
``"query: "`` / ``"passage: "``, bge's search instruction; none for lichen-minilm);
:meth:`~OnnxEmbedder.embed` embeds texts exactly as given. A model directory may also hold
a query encoder (``model.json``'s ``query_model``, e.g. an int8 copy of the graph): queries
then run through it, documents always through ``model.onnx``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .._errors import ModelUnavailableError
from .._progress import ProgressBar, progress_wanted

BATCH_SIZE = 32
#: Fewer texts than this embed in a few seconds at most: no bar. 5,000 passages take about
#: a minute on two cores, which is when silence starts to look like a hang.
PROGRESS_MIN_TEXTS = 256
#: How long a pool thread spins for the next operator of the same run before it sleeps.
SPIN_MICROSECONDS = 10


def _bounded_spinning_supported() -> bool:
    """Whether onnxruntime knows ``session.intra_op.spin_duration_us`` (PR 27916, April
    2026; 1.27 to be sure). Older versions ignore the key, and their threads would spin
    through the whole of every run, which costs far more when the cores are busy."""
    try:
        major, minor = (int(part) for part in ort.__version__.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (1, 27)


def _session_options() -> ort.SessionOptions:
    """Sized for small machines: one inference uses at most the cores there are (two on
    the reference box); no inter-op pool, since a BERT graph is a single chain."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(os.environ.get("LICHEN_NUM_THREADS", 0)) or min(os.cpu_count() or 1, 4)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Threads left spinning after a run hold both cores just when the search (numpy's BLAS
    # threads) needs them: that tripled end-to-end query latency at 10k documents (6.1 ms
    # -> 2.5 ms p50 without spinning). Within a run, though, a thread that sleeps must be
    # woken for each of the graph's parallel operators, a fifth of a short query's time.
    # So threads spin between operators, 10 us at most (longer spins cost more than they
    # save once other processes want the cores), and stop the moment the run returns.
    # Measured in benchmarks/bench_query_embedding.py (RESULTS.md, "Query embedding
    # latency"): msmarco query 2.42 -> 1.81 ms p50, 10k end to end 0.86x, same vectors.
    if _bounded_spinning_supported():
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_MICROSECONDS))
        options.add_session_config_entry("session.force_spinning_stop", "1")
    else:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxEmbedder:
    """Thread-safe: onnxruntime sessions and tokenizers both allow concurrent calls, and
    nothing here mutates shared state after construction."""

    def __init__(self, directory: Path, *, model_id: str, onnx_file: str = "model.onnx", query_model: bool = True) -> None:
        try:
            manifest = json.loads((directory / "model.json").read_text())
            self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            self._session = ort.InferenceSession(
                str(directory / onnx_file), _session_options(), providers=["CPUExecutionProvider"]
            )
        except (OSError, ValueError, Exception) as exc:  # onnxruntime raises its own types
            raise ModelUnavailableError(f"cannot load model {model_id!r} from {directory}: {exc}") from exc
        query_file = manifest.get("query_model") if query_model else None
        self._query_embedder = None if not query_file else OnnxEmbedder(
            directory, model_id=model_id, onnx_file=str(query_file), query_model=False
        )
        self.model_id = model_id
        self.dimension = int(manifest["dimension"])
        self.max_tokens = int(manifest["max_tokens"])
        prompts = manifest.get("prompts") or {}
        self.query_prompt: str = str(prompts.get("query") or "")
        """Put before every query text (``embed_queries``)."""
        self.passage_prompt: str = str(prompts.get("passage") or "")
        """Put before every document text (``embed_documents``)."""
        self.query_model: str | None = str(query_file) if query_file else None
        """The file queries run through when it is not ``model.onnx`` (``None``: the same)."""
        # The shipped tokenizer.json pads and truncates to 128; batches are padded here
        # instead (to their own longest member) and truncation follows the reference.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)

    def with_prompts(self, *, query: str | None = None, passage: str | None = None) -> OnnxEmbedder:
        """A copy with other prompts (``None`` keeps the model's), sharing the loaded
        graphs and tokenizer: costs nothing. Vectors embedded with different prompts are
        not comparable, so an index keeps the prompts of its model."""
        twin = copy.copy(self)
        if query is not None:
            twin.query_prompt = query
        if passage is not None:
            twin.passage_prompt = passage
        return twin

    def embed_documents(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """Embed texts to be stored and searched: the passage prompt, then each text."""
        prompted = _prompted(self.passage_prompt, texts)
        return self.embed(prompted) if progress is None else self.embed(prompted, progress=progress)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts to search with: the query prompt, then each text, through the
        query encoder."""
        return (self._query_embedder or self).embed(_prompted(self.query_prompt, texts))

    def embed(self, texts: list[str], *, progress: bool | None = None) -> np.ndarray:
        """Embed ``texts`` exactly as given (no prompt); a tqdm bar counts them when there
        are at least ``PROGRESS_MIN_TEXTS`` and :func:`lichen._progress.progress_wanted`
        says so."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts)) if len(texts) > 1 else [self._tokenizer.encode(texts[0])]
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        # Length-sorted batches keep padding (wasted attention work) to a minimum.
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # The query path (one text) never pays for the look-up of the terminal.
        wanted = len(texts) >= PROGRESS_MIN_TEXTS and progress_wanted(progress)
        with ProgressBar(wanted, len(texts), PROGRESS_MIN_TEXTS, unit="text", desc="embedding") as bar:
            for start in range(0, len(order), BATCH_SIZE):
                self._run_batch(encodings, lengths, order[start : start + BATCH_SIZE], out)
                bar.update(min(BATCH_SIZE, len(order) - start))
        return out

    def _run_batch(self, encodings: list, lengths: np.ndarray, batch: np.ndarray, out: np.ndarray) -> None:
        """Pad one length-sorted batch to its longest member, run it, store its rows."""
        width = int(lengths[batch].max())
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        attention = np.zeros((len(batch), width), dtype=np.int64)
        for row, index in enumerate(batch):
            ids = encodings[index].ids
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        (vectors,) = self._session.run(
            None,
            {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": np.zeros_like(input_ids)},
        )
        out[batch] = vectors


def _prompted(prompt: str, texts: Sequence[str]) -> list[str]:
    return [prompt + text for text in texts] if prompt else list(texts)
