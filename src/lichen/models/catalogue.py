"""Known-good models ``lichen models pull`` fetches by short name, each pinned to a Hub
commit, with the pooling, prompts and licence it needs.

Any other BERT-architecture sentence-transformers (or cross-encoder) repository works by
its full name (``lichen models pull org/name --revision SHA``); the catalogue only saves
looking these up, and pins what would otherwise drift (a branch moves, a commit does not).

Published quality (not measured here: these weights cannot be fetched on the project's
machines). Embedders, MTEB English v1 as published in the BGE model card / FlagEmbedding
README (https://huggingface.co/BAAI/bge-small-en-v1.5, "Evaluation"; the same table is on
https://huggingface.co/thenlper/gte-small): average over 56 datasets, and "retrieval", the
mean nDCG@10 over the 15 BEIR retrieval datasets. The shipped ``lichen-minilm``
(all-MiniLM-L6-v2) scores 56.26 / 41.95 there. Cross-encoder: sentence-transformers'
MS MARCO cross-encoder table (https://www.sbert.net/docs/cross_encoder/pretrained_models.html,
``docs/pretrained-models/ce-msmarco.md``): nDCG@10 on TREC DL 2019 and MRR@10 on MS MARCO dev,
re-ranking BM25's top 1,000.

Revisions are commits of the model repositories as public projects pin them (they could
not be checked against the Hub from here). A pull verifies every file against the hash the
Hub lists for it at that commit (sha256 for LFS files, the git blob id for the others), and
against an entry's ``weights_sha256`` when it has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["CatalogueEntry", "CATALOGUE", "resolve", "model_id_for_repo", "repo_for_model_id"]

#: bge's query instruction, from its model card (documents get none).
BGE_QUERY_PROMPT = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class CatalogueEntry:
    """One known model: where it lives on the Hub, at which commit, and how to use it."""

    name: str
    repo: str
    revision: str
    license: str
    kind: str = "embedder"
    pooling: str | None = None
    """``"mean"`` or ``"cls"``; ``None``: read from the repository's sentence-transformers files."""
    prompts: dict[str, str] = field(default_factory=dict)
    dimension: int | None = None
    weights_sha256: str | None = None
    published: str = ""
    """Published quality figures and where they come from (see the module docstring)."""


CATALOGUE: dict[str, CatalogueEntry] = {
    entry.name: entry
    for entry in (
        CatalogueEntry(
            "bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", "5c38ec7c405ec4b44b94cc5a9bb96e735b38267a", "MIT",
            pooling="cls", prompts={"query": BGE_QUERY_PROMPT}, dimension=384,
            published="MTEB avg 62.17, retrieval (BEIR nDCG@10) 51.68 (BGE model card)",
        ),
        CatalogueEntry(
            "e5-small-v2", "intfloat/e5-small-v2", "ffb93f3bd4047442299a41ebb6fa998a38507c52", "MIT",
            pooling="mean", prompts={"query": "query: ", "passage": "passage: "}, dimension=384,
            published="MTEB avg 59.93, retrieval 49.04 (BGE / gte-small model cards)",
        ),
        CatalogueEntry(
            "gte-small", "thenlper/gte-small", "17e1f347d17fe144873b1201da91788898c639cd", "MIT",
            pooling="mean", dimension=384,
            published="MTEB avg 61.36, retrieval 49.46 (gte-small model card)",
        ),
        CatalogueEntry(
            "all-MiniLM-L12-v2", "sentence-transformers/all-MiniLM-L12-v2", "c004d8e3e901237d8fa7e9fff12774962e391ce5",
            "Apache-2.0", pooling="mean", dimension=384,
            published="MTEB avg 56.53, retrieval 42.69 (BGE / gte-small model cards)",
        ),
        CatalogueEntry(
            "bge-base-en-v1.5", "BAAI/bge-base-en-v1.5", "a5beb1e3e68b9ab74eb54cfd186867f64f240e1a", "MIT",
            pooling="cls", prompts={"query": BGE_QUERY_PROMPT}, dimension=768,
            published="MTEB avg 63.55, retrieval 53.25 (BGE model card)",
        ),
        CatalogueEntry(
            "ms-marco-MiniLM-L-6-v2", "cross-encoder/ms-marco-MiniLM-L6-v2", "233902d25c440f23af6f7d6e94d2946bac0bee0a",
            "Apache-2.0", kind="cross-encoder",
            published="nDCG@10 TREC DL 2019 74.30, MRR@10 MS MARCO dev 39.01 (sentence-transformers docs)",
        ),
    )
}

_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def resolve(name: str) -> CatalogueEntry | None:
    """The catalogue entry of a short name (case-insensitive) or of its repository."""
    lowered = name.lower()
    for entry in CATALOGUE.values():
        if lowered in (entry.name.lower(), entry.repo.lower()):
            return entry
    return None


def model_id_for_repo(repo: str) -> str:
    """The model id a repository pulled by full name gets: ``org--name`` (the Hub forbids
    ``--`` inside names, so the repository can be read back from the id)."""
    return repo.replace("/", "--")


def repo_for_model_id(model_id: str) -> str | None:
    """The repository a model id stands for: a catalogue entry's, or ``org/name`` from
    ``org--name``; ``None`` when the id names neither."""
    entry = CATALOGUE.get(model_id)
    if entry is not None:
        return entry.repo
    if model_id.count("--") == 1:
        repo = model_id.replace("--", "/")
        return repo if _REPO.fullmatch(repo) else None
    return None


def is_repo_name(name: str) -> bool:
    """Whether ``name`` reads as a Hub repository (``org/name``)."""
    return bool(_REPO.fullmatch(name)) and "--" not in name and ".." not in name
