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
from .pipeline import (
    AddResult,
    IngestIndex,
    Prepared,
    PreparedSource,
    add_inputs,
    apply_prepared,
    is_documents_only,
    prepare,
)
from .readers import FILES_EXTRA_SUFFIXES, SUFFIXES
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
