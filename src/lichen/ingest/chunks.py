"""The chunk contract: how a chunk becomes a :class:`~lichen.DocumentInfo`.

Every chunk of a source gets

- the id ``{source}#chunk-{index:04d}`` (a record of a JSON file keeps its own ``id`` if it
  has one), stable across runs: re-adding an unchanged file replaces its chunks instead of
  adding copies;
- these metadata keys, which extra metadata may not shadow (:data:`RESERVED_KEYS`):

  ================  ==================================================================
  ``source``        the source id (a path relative to the synced folder, prefixed)
  ``chunk_index``   0, 1, ... in source order
  ``chunk_count``   how many chunks the source has (a sync checks its chunks are all there)
  ``locator_type``  ``"char"``, ``"line"`` or ``"page"``
  ``locator_start`` ``char``: offset of the chunk's first character in the source text,
  ``locator_end``   of the character after its last, so ``text[start:end]`` is the chunk;
                    ``line`` / ``page``: first and last line / page, 1-based, inclusive
  ``heading``       the heading path (``Returns > Refunds``), markdown chunks only
  ``source_hash``   digest of the source's bytes, the chunking settings (not for JSON
                    records, which are not chunked), the extra
                    metadata and this contract's version: what a sync compares
  ================  ==================================================================

The state a sync needs lives in these keys, in the index itself: there is no side file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .._errors import InvalidArgumentError
from .._types import DocumentInfo
from .chunking import Chunk
from .readers import Record

__all__ = [
    "CONTRACT_VERSION",
    "RESERVED_KEYS",
    "chunk_id",
    "content_digest",
    "source_hash",
    "check_extra_metadata",
    "chunk_documents",
    "record_documents",
    "record_id",
]

#: Bumped when the same source and settings would give different chunks or metadata, so
#: that every source re-chunks on the next sync.
CONTRACT_VERSION = 1
RESERVED_KEYS = (
    "source",
    "chunk_index",
    "chunk_count",
    "locator_type",
    "locator_start",
    "locator_end",
    "heading",
    "source_hash",
)
_RESERVED = frozenset(RESERVED_KEYS)
_DIGEST_SIZE = 16  # 128 bits: collisions between versions of one file are not a concern


def chunk_id(source: str, index: int) -> str:
    """``{source}#chunk-{index:04d}`` (indexes past 9999 take more digits)."""
    return f"{source}#chunk-{index:04d}"


def content_digest(data: bytes | str) -> str:
    """Hex BLAKE2b-128 of a source's bytes (text is hashed as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


def source_hash(digest: str, *, fingerprint: str, metadata: Mapping[str, Any] | None = None) -> str:
    """What a sync compares: the content's digest with the chunking fingerprint, the extra
    metadata (canonical JSON) and :data:`CONTRACT_VERSION`, so changing any of them
    re-chunks the source."""
    extra = orjson.dumps(dict(metadata or {}), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    material = b"\x1f".join((str(CONTRACT_VERSION).encode(), fingerprint.encode("utf-8"), extra, digest.encode()))
    return hashlib.blake2b(material, digest_size=_DIGEST_SIZE).hexdigest()


def check_extra_metadata(metadata: Mapping[str, Any] | None, where: str = "metadata") -> dict[str, Any]:
    """A copy of ``metadata``, refused if it is not a dict or names a reserved key."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"{where} must be a dict, got {type(metadata).__name__}")
    clash = sorted(key for key in metadata if key in _RESERVED)
    if clash:
        raise InvalidArgumentError(
            f"{where} uses reserved key{'s' if len(clash) > 1 else ''} {', '.join(map(repr, clash))}: "
            f"Lichen sets {', '.join(RESERVED_KEYS)} on every chunk; rename yours"
        )
    return dict(metadata)


def chunk_documents(
    source: str, chunks: Sequence[Chunk], *, source_hash: str, metadata: Mapping[str, Any] | None = None
) -> list[DocumentInfo]:
    """The documents of a chunked source, under the contract above. ``metadata`` (extra,
    already checked) is copied into each."""
    extra = dict(metadata or {})
    count = len(chunks)
    documents = []
    for index, chunk in enumerate(chunks):
        meta = dict(extra)
        meta["source"] = source
        meta["chunk_index"] = index
        meta["chunk_count"] = count
        if chunk.pages is not None:
            meta["locator_type"], meta["locator_start"], meta["locator_end"] = "page", chunk.pages[0], chunk.pages[1]
        else:
            meta["locator_type"], meta["locator_start"], meta["locator_end"] = "char", chunk.start, chunk.end
        if chunk.heading:
            meta["heading"] = chunk.heading
        meta["source_hash"] = source_hash
        documents.append(DocumentInfo(id=chunk_id(source, index), text=chunk.document_text, metadata=meta))
    return documents


def record_id(record: Record) -> str:
    """A record's own id, or 16 hex digits of its text's SHA-256 (records given in memory
    without an id: the same text always gets the same id)."""
    if record.id is not None:
        return record.id
    return hashlib.sha256(record.text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def record_documents(
    source: str, records: Sequence[Record], *, source_hash: str, metadata: Mapping[str, Any] | None = None
) -> list[DocumentInfo]:
    """The documents of a JSON / JSON Lines file: one per record, id its own or
    ``{source}#chunk-{index:04d}``, located by the lines it spans."""
    extra = dict(metadata or {})
    count = len(records)
    documents = []
    for index, record in enumerate(records):
        own = check_extra_metadata(record.metadata, f"{source}: record {index} metadata")
        meta = {**extra, **own}
        meta["source"] = source
        meta["chunk_index"] = index
        meta["chunk_count"] = count
        if record.lines is not None:
            meta["locator_type"], meta["locator_start"], meta["locator_end"] = "line", record.lines[0], record.lines[1]
        else:
            meta["locator_type"], meta["locator_start"], meta["locator_end"] = "char", 0, len(record.text)
        meta["source_hash"] = source_hash
        documents.append(
            DocumentInfo(
                id=record.id if record.id is not None else chunk_id(source, index),
                text=record.text,
                metadata=meta,
                embedding=record.embedding,
            )
        )
    return documents
