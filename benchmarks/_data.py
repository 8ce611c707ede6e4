"""Loading the evaluation data (``shared/data/msmarco-5k``) for benchmarks.

The data path is always an argument: the data never ships inside the package.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


def passage_text(row: dict) -> str:
    title = (row.get("title") or "").strip()
    return f"{title} {row['text']}".strip() if title else row["text"]


def load_corpus(data: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(data / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            ids.append(str(row["_id"]))
            texts.append(passage_text(row))
    return ids, texts


def load_queries(data: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(data / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            ids.append(str(row["_id"]))
            texts.append(row["text"])
    return ids, texts


def load_qrels(data: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels" / "test.tsv", encoding="utf-8") as handle:
        for line in handle:
            parts = line.strip().split("\t")
            if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
                continue  # tolerate a header row
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def cached_embeddings(texts: list[str], cache_dir: Path, embed) -> np.ndarray:
    """Embed once per corpus content and model, then reuse (embedding 5k passages takes
    ~40 s on two cores; benchmarks re-run far more often than the corpus changes)."""
    digest = hashlib.sha256("\x1e".join(texts).encode("utf-8")).hexdigest()[:16]
    path = cache_dir / f"embeddings-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = embed(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def ndcg_at_k(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    """nDCG with linear gain (gain = graded relevance) and log2 discount, as pytrec_eval
    and BEIR compute it."""
    gains = [relevance.get(doc_id, 0) for doc_id in ranked[:k]]
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevance.values(), reverse=True)[:k]
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
    return float(dcg / idcg) if idcg > 0 else 0.0


def recall_at_k(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    relevant = {doc_id for doc_id, grade in relevance.items() if grade > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mixed_corpus(base: np.ndarray, size: int, *, noise: float = 0.2, seed: int = 0) -> np.ndarray:
    """``size`` distinct unit vectors spread over the region real embeddings occupy: row
    ``r`` blends passage ``r % len(base)`` with a random other passage (weight 0.3-1.0)
    plus a little noise. Plain replicas with noise would put 200 near-copies of every
    passage in a 1M corpus, whose order only the noise decides; here neighbours differ
    by content, as in a real collection."""
    rng = np.random.default_rng(seed)
    out = np.empty((size, base.shape[1]), dtype=np.float32)
    step = 50_000
    for start in range(0, size, step):
        rows = np.arange(start, min(size, start + step))
        weights = rng.uniform(0.3, 1.0, (rows.size, 1)).astype(np.float32)
        block = base[rows % len(base)] + weights * base[rng.integers(0, len(base), rows.size)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        block += rng.standard_normal(block.shape, dtype=np.float32) * (noise / np.sqrt(base.shape[1]))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[rows] = block
    return out
