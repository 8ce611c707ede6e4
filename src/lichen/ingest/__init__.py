"""Ingestion: documents in from files, folders, dicts and JSON, chunked by a stable
contract, and kept in step with their sources.

The wing's parts, one job each:

- :mod:`~lichen.ingest.sources`: what an input is (documents, records, JSON text, paths,
  folders walked with include / exclude globs) and the source id of each file;
- :mod:`~lichen.ingest.readers`: one reader per file type (``.txt .md .json .jsonl
  .ndjson``, and with the ``files`` extra ``.pdf .docx .html``);
- :mod:`~lichen.ingest.tokens`: chunk sizes in the model's own tokens, or characters;
- :mod:`~lichen.ingest.chunking`: the strategies (recursive, sentence, markdown, page,
  or your own);
- :mod:`~lichen.ingest.chunks`: the chunk -> ``DocumentInfo`` contract (ids, reserved
  metadata, source hashes);
- :mod:`~lichen.ingest.pipeline`: inputs -> documents, all or nothing (or skipping);
- :mod:`~lichen.ingest.sync`: replace one source's chunks, sync a folder;
- :mod:`~lichen.ingest.truncation`: texts longer than the model reads, found before
  embedding, recorded (``lichen_truncated_tokens``) and warned about.

``SessionIndex.add_docs`` / ``refresh_source`` / ``sync_folder`` and the ``Client``'s
``create_index`` / ``add_docs`` / ``sync_folder`` are the way in; the names here are for
callers who want a step on its own (prepare without writing, plan a sync, chunk a text).

It needs of the rest of Lichen only the value types, the errors and the models' tokenizers;
indexes are reached through a three-method protocol (:class:`IngestIndex`).
"""

# Names are imported on first use (PEP 562): a session that only adds DocumentInfos
# imports ingest.results and ingest.truncation, not the readers and chunkers.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from .chunking import (
        AutoChunker,
        Chunk,
        Chunker,
        FunctionChunker,
        MarkdownChunker,
        PageChunker,
        RecursiveChunker,
        SentenceChunker,
        as_chunker,
        chunk_text,
    )
    from .chunks import CONTRACT_VERSION, RESERVED_KEYS, chunk_id
    from .errors import SkippedSource, SourceError
    from .pipeline import IngestIndex, Prepared, PreparedSource, add_inputs, apply_prepared, prepare
    from .readers import FILES_EXTRA_SUFFIXES, SUFFIXES
    from .results import AddResult, is_documents_only
    from .sync import (
        IndexedSource,
        RefreshResult,
        SyncPlan,
        SyncReport,
        indexed_sources,
        plan_sync,
        refresh_source,
        sync_directory,
    )
    from .tokens import CharMeasure, Measure, TokenMeasure, token_measure
    from .truncation import TRUNCATION_KEY

_EXPORTS = {
    "Chunk": "chunking",
    "Chunker": "chunking",
    "AutoChunker": "chunking",
    "RecursiveChunker": "chunking",
    "SentenceChunker": "chunking",
    "MarkdownChunker": "chunking",
    "PageChunker": "chunking",
    "FunctionChunker": "chunking",
    "as_chunker": "chunking",
    "chunk_text": "chunking",
    "CONTRACT_VERSION": "chunks",
    "RESERVED_KEYS": "chunks",
    "chunk_id": "chunks",
    "SkippedSource": "errors",
    "SourceError": "errors",
    "AddResult": "results",
    "IngestIndex": "pipeline",
    "Prepared": "pipeline",
    "PreparedSource": "pipeline",
    "prepare": "pipeline",
    "add_inputs": "pipeline",
    "apply_prepared": "pipeline",
    "is_documents_only": "results",
    "SUFFIXES": "readers",
    "FILES_EXTRA_SUFFIXES": "readers",
    "IndexedSource": "sync",
    "RefreshResult": "sync",
    "SyncPlan": "sync",
    "SyncReport": "sync",
    "indexed_sources": "sync",
    "plan_sync": "sync",
    "refresh_source": "sync",
    "sync_directory": "sync",
    "Measure": "tokens",
    "TokenMeasure": "tokens",
    "CharMeasure": "tokens",
    "token_measure": "tokens",
    "TRUNCATION_KEY": "truncation",
}

__all__ = [
    "Chunk",
    "Chunker",
    "AutoChunker",
    "RecursiveChunker",
    "SentenceChunker",
    "MarkdownChunker",
    "PageChunker",
    "FunctionChunker",
    "as_chunker",
    "chunk_text",
    "CONTRACT_VERSION",
    "RESERVED_KEYS",
    "chunk_id",
    "SkippedSource",
    "SourceError",
    "AddResult",
    "IngestIndex",
    "Prepared",
    "PreparedSource",
    "prepare",
    "add_inputs",
    "apply_prepared",
    "is_documents_only",
    "SUFFIXES",
    "FILES_EXTRA_SUFFIXES",
    "IndexedSource",
    "RefreshResult",
    "SyncPlan",
    "SyncReport",
    "indexed_sources",
    "plan_sync",
    "refresh_source",
    "sync_directory",
    "Measure",
    "TokenMeasure",
    "CharMeasure",
    "token_measure",
    "TRUNCATION_KEY",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
