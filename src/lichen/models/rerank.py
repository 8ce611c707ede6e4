"""Re-ranking with a cross-encoder: a BERT that reads the query and a passage together and
scores how well the passage answers it.

A cross-encoder is built by the same builder as the embedders (:mod:`lichen.models.build`:
a ``BertForSequenceClassification`` checkpoint with one output, e.g.
``cross-encoder/ms-marco-MiniLM-L6-v2``) and pulled the same way (``lichen models pull
ms-marco-MiniLM-L-6-v2``). It is far more precise than comparing two vectors and far
slower (a forward pass per passage), so it only re-scores the best candidates a vector
search found: ``QueryOptions(rerank="ms-marco-MiniLM-L-6-v2", rerank_candidates=20)``.

Pairs are tokenised as BERT pairs (``[CLS] query [SEP] passage [SEP]``, segment ids 0 then
1, cut to the model's window longest-first), sorted by length and run in batches padded to
their longest member. The relevance a hit gets is the sigmoid of the logit (what
sentence-transformers' ``CrossEncoder`` returns for a one-output model): in [0, 1],
comparable across queries of one model, not with cosine similarities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .._errors import InvalidArgumentError, ModelUnavailableError
from ._onnx import _session_options

__all__ = ["CrossEncoder", "check_rerank_options", "rerank_hits", "RERANK_BATCH", "DEFAULT_RERANK_CANDIDATES", "MAX_RERANK_CANDIDATES"]

#: Pairs per run: 16 was the fastest of 16 / 32 / 64 at 20 and 50 candidates (benchmarks/bench_rerank.py,
#: RESULTS "Re-ranking"): length-sorted pairs padded in smaller groups waste less work.
RERANK_BATCH = 16
#: Candidates re-scored when a query does not say (``QueryOptions.rerank_candidates``).
DEFAULT_RERANK_CANDIDATES = 20
#: More than this many forward passes per query is a batch job, not a query.
MAX_RERANK_CANDIDATES = 1000


class CrossEncoder:
    """A loaded cross-encoder; thread-safe like :class:`~lichen.models._onnx.OnnxEmbedder`."""

    def __init__(self, directory: Path, *, model_id: str) -> None:
        try:
            manifest = json.loads((directory / "model.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"cannot load model {model_id!r} from {directory}: {exc}") from exc
        if manifest.get("kind") != "cross-encoder":
            raise ModelUnavailableError(f"model {model_id!r} is an embedder, not a cross-encoder: it cannot re-rank")
        try:
            self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            self._session = ort.InferenceSession(
                str(directory / "model.onnx"), _session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise ModelUnavailableError(f"cannot load model {model_id!r} from {directory}: {exc}") from exc
        self.model_id = model_id
        self.max_tokens = int(manifest["max_tokens"])
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)

    def logits(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One float32 logit per passage (higher: more relevant to ``query``)."""
        if not passages:
            return np.zeros(0, np.float32)
        encodings = self._tokenizer.encode_batch([(query, passage) for passage in passages])
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        out = np.empty(len(passages), np.float32)
        for start in range(0, len(order), RERANK_BATCH):
            batch = order[start : start + RERANK_BATCH]
            width = int(lengths[batch].max())
            ids = np.zeros((len(batch), width), np.int64)
            types = np.zeros((len(batch), width), np.int64)
            mask = np.zeros((len(batch), width), np.int64)
            for row, index in enumerate(batch):
                encoding = encodings[index]
                ids[row, : len(encoding.ids)] = encoding.ids
                types[row, : len(encoding.ids)] = encoding.type_ids
                mask[row, : len(encoding.ids)] = 1
            (logits,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
            out[batch] = logits[:, 0]
        return out

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Relevance in [0, 1] per passage: the sigmoid of :meth:`logits`."""
        return (1.0 / (1.0 + np.exp(-self.logits(query, passages).astype(np.float64)))).astype(np.float32)


def check_rerank_options(rerank: Any, candidates: Any, query: str | None = None) -> int | None:
    """How many candidates a query re-scores (``None``: it asks for no re-ranking), or
    ``InvalidArgumentError``. Sessions check every query with it before any work; an
    adapter holding re-ranking settings checks them with it when it is built (``query``
    not known yet)."""
    if rerank is None:
        if candidates is not None:
            raise InvalidArgumentError("rerank_candidates needs rerank: the id of a cross-encoder")
        return None
    if not isinstance(rerank, str) or not rerank:
        raise InvalidArgumentError(f"rerank must be a cross-encoder's model id, got {rerank!r}")
    if query is not None and not query.strip():
        raise InvalidArgumentError("rerank needs the query text: a cross-encoder reads it (search by text, not by vector)")
    if candidates is None:
        return DEFAULT_RERANK_CANDIDATES
    if not isinstance(candidates, int) or isinstance(candidates, bool) or not 1 <= candidates <= MAX_RERANK_CANDIDATES:
        raise InvalidArgumentError(f"rerank_candidates must be an integer from 1 to {MAX_RERANK_CANDIDATES}, got {candidates!r}")
    return candidates


def rerank_hits(reranker: CrossEncoder, query: str, hits: list[Any], top_k: int) -> list[Any]:
    """The best ``top_k`` of ``hits`` (objects with ``text``, ``score`` and
    ``rerank_score``) by the cross-encoder's relevance, which becomes their ``score`` and
    ``rerank_score``; ties keep the hits' order."""
    if not hits:
        return []
    relevance = reranker.score(query, [hit.text for hit in hits])
    order = np.argsort(-relevance, kind="stable")[:top_k]
    ranked = []
    for position in order.tolist():
        hit = hits[position]
        hit.score = hit.rerank_score = float(relevance[position])
        ranked.append(hit)
    return ranked
