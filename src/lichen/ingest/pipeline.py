"""From inputs to documents: read, chunk and label every source, failing whole or
skipping what cannot be read.

:func:`prepare` does all of it without touching an index; :func:`add_inputs` then writes
the result into one (upsert, and the stale tail of every file it re-read removed).
Nothing is written until every input has been read and chunked, so a batch with one bad
file adds nothing unless ``skip_errors=True``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .._errors import InvalidArgumentError
from .._types import DocumentInfo
from .chunking import AutoChunker, Chunk, Chunker, _Strategy, as_chunker
from .chunks import (
    check_extra_metadata,
    chunk_documents,
    content_digest,
    record_documents,
    record_id,
    source_hash,
)
from .errors import SkippedSource, SourceError
from .readers import RECORD_SUFFIXES, SUFFIXES, read_bytes
from .results import AddResult, is_documents_only
from .sources import InputItem, SourceFile, classify
from .tokens import DEFAULT_MODEL_ID, CharMeasure, Measure, token_measure
from .truncation import known_to_fit

__all__ = [
    "IngestIndex",
    "PreparedSource",
    "Prepared",
    "AddResult",
    "Ingestion",
    "prepare",
    "add_inputs",
    "apply_prepared",
    "source_documents",
    "is_documents_only",
    "MAX_SOURCE_ID_LENGTH",
    "MAX_FILE_BYTES",
]

#: Document ids are at most 512 characters; ``#chunk-0000`` takes 11 of them.
MAX_SOURCE_ID_LENGTH = 512 - len("#chunk-00000")
#: Larger files are refused rather than read into memory whole (a data dump in a docs
#: folder); 256 MiB of text is some 60 million word pieces.
MAX_FILE_BYTES = 256 << 20


class IngestIndex(Protocol):
    """What ingestion needs of an index (``SessionIndex`` has it)."""

    def add_docs_sync(self, docs: Sequence[DocumentInfo]) -> tuple[int, int]: ...

    def delete_docs_sync(self, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None) -> int: ...

    def get_docs_sync(
        self,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        *,
        include_embeddings: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]: ...


@dataclass
class PreparedSource:
    """One file's documents, with the hash a sync compares and the file's path."""

    source: str
    source_hash: str
    documents: list[DocumentInfo]
    path: Path | None = None
    #: Chunks a built-in strategy sized in the model's tokens: they fit its window.
    fits: bool = False


@dataclass
class Prepared:
    """Everything ready for ``add_docs``: ``documents`` (given documents and records
    first, then each file's chunks), the file ``sources`` they came from, and what was
    ``skipped`` (only with ``skip_errors=True``; otherwise a failure raises)."""

    documents: list[DocumentInfo] = field(default_factory=list)
    sources: list[PreparedSource] = field(default_factory=list)
    skipped: list[SkippedSource] = field(default_factory=list)

    @property
    def empty(self) -> list[str]:
        """Files read without error that hold no text (a scanned PDF needs OCR first):
        they add nothing, and a caller may say so."""
        return [source.source for source in self.sources if not source.documents]


class Ingestion:
    """One set of ingestion settings, applied to any number of files: the chunker, the
    measure it counts in (loaded on first use), the extra metadata, and the fingerprint
    that goes into each source's hash."""

    def __init__(
        self,
        chunker: str | Chunker | Callable[[str], Iterable[Any]] | None = None,
        *,
        model_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.chunker = as_chunker(chunker)
        self.model_id = model_id or DEFAULT_MODEL_ID
        self.metadata = check_extra_metadata(metadata)
        self._measure: Measure | None = None

    @property
    def measure(self) -> Measure:
        if self._measure is None:
            unit = getattr(self.chunker, "unit", "tokens")
            self._measure = CharMeasure() if unit == "chars" else token_measure(self.model_id)
        return self._measure

    @property
    def fingerprint(self) -> str:
        unit = getattr(self.chunker, "unit", "tokens")
        counted = "chars" if unit == "chars" else f"tokens:{self.model_id}"
        return f"{self.chunker.fingerprint}|{counted}"

    def source_hash(self, data: bytes, suffix: str) -> str:
        """The hash a file's chunks carry. JSON records are not chunked, so the chunking
        settings do not enter theirs: changing them does not re-embed record files."""
        fingerprint = "records" if suffix.lower() in RECORD_SUFFIXES else self.fingerprint
        return source_hash(content_digest(data), fingerprint=fingerprint, metadata=self.metadata)

    def read(self, file: SourceFile) -> bytes:
        """The file's bytes, or :class:`SourceError` naming it."""
        suffix = file.path.suffix.lower()
        if suffix not in SUFFIXES:
            known = ", ".join(sorted(SUFFIXES))
            what = f"file type {suffix!r}" if suffix else "a file without a suffix"
            raise SourceError([SkippedSource(file.source, f"unsupported {what}; Lichen reads {known}")])
        if len(file.source) > MAX_SOURCE_ID_LENGTH:
            raise SourceError([SkippedSource(file.source[:80] + "...", f"its path is longer than {MAX_SOURCE_ID_LENGTH} characters")])
        try:
            size = file.path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise SourceError([SkippedSource(file.source, f"it is {size} bytes; files over {MAX_FILE_BYTES} are not read")])
            return file.path.read_bytes()
        except OSError as exc:
            raise SourceError([SkippedSource(file.source, f"cannot read it ({exc.strerror or exc})")]) from None

    def build(self, file: SourceFile, data: bytes | None = None) -> PreparedSource:
        """Read (unless ``data`` is given), parse, chunk and label one file."""
        if data is None:
            data = self.read(file)
        digest = self.source_hash(data, file.path.suffix)
        content = read_bytes(data, file.path.suffix, file.source)
        if content.kind == "records":
            documents = record_documents(file.source, content.records or [], source_hash=digest, metadata=self.metadata)
        else:
            try:
                chunks = self.chunker.chunk(content, self.measure)
            except InvalidArgumentError as exc:
                raise SourceError([SkippedSource(file.source, f"cannot chunk it: {exc}")]) from None
            for index, chunk in enumerate(chunks):  # a custom chunker must keep the contract too
                if not isinstance(chunk, Chunk) or content.text[chunk.start : chunk.end] != chunk.text or not chunk.text:
                    raise SourceError([SkippedSource(
                        file.source, f"chunker {self.chunker.fingerprint} returned chunk {index}, which is not a "
                        "non-empty Chunk whose text is text[start:end]",
                    )])
            documents = chunk_documents(file.source, chunks, source_hash=digest, metadata=self.metadata)
            return PreparedSource(file.source, digest, documents, file.path, fits=self.sized_in_tokens)
        return PreparedSource(file.source, digest, documents, file.path)

    @property
    def sized_in_tokens(self) -> bool:
        """Whether chunks are sized in the model's tokens by a built-in strategy (whose
        chunks fit the window, a property the chunking tests check)."""
        return isinstance(self.chunker, (AutoChunker, _Strategy)) and self.chunker.unit == "tokens"


def prepare(
    inputs: InputItem | Iterable[InputItem],
    *,
    chunker: str | Chunker | Callable[[str], Iterable[Any]] | None = None,
    model_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    prefix: str | None = None,
    skip_errors: bool = False,
) -> Prepared:
    """Read and chunk ``inputs`` (see :func:`~lichen.ingest.sources.classify` for what they
    may be) into documents, without touching an index.

    ``chunker``: ``None`` (each file type's own strategy), a strategy name, a
    :class:`~lichen.ingest.chunking.Chunker` or a callable; sizes count ``model_id``'s
    tokens. ``metadata`` goes into every chunk of every file (not into given documents or
    records); it may not use a reserved key. Files that cannot be read raise one
    :class:`SourceError` listing them all, unless ``skip_errors``."""
    settings = Ingestion(chunker, model_id=model_id, metadata=metadata)
    sorted_inputs = classify(inputs, include=include, exclude=exclude, prefix=prefix)
    prepared = Prepared(documents=list(sorted_inputs.documents))
    for record in sorted_inputs.records:
        prepared.documents.append(
            DocumentInfo(id=record_id(record), text=record.text, metadata=record.metadata or None, embedding=record.embedding)
        )
    failures = list(sorted_inputs.missing)
    for file in _unique(sorted_inputs.files):
        try:
            source = settings.build(file)
        except SourceError as exc:
            failures.extend(exc.failures)
            continue
        prepared.sources.append(source)
    if failures and not skip_errors:
        raise SourceError(failures, total=sorted_inputs.count)
    prepared.skipped = failures
    for source in prepared.sources:
        prepared.documents.extend(source.documents)
    _check_unique_ids(prepared)
    return prepared


def _unique(files: list[SourceFile]) -> list[SourceFile]:
    """Each file once (a file given alone and inside a given folder is read once)."""
    seen: set[str] = set()
    unique = []
    for file in files:
        if file.source not in seen:
            seen.add(file.source)
            unique.append(file)
    return unique


def _check_unique_ids(prepared: Prepared) -> None:
    counts = Counter(doc.id for doc in prepared.documents)
    repeated = [doc_id for doc_id, count in counts.items() if count > 1]
    if not repeated:
        return
    owners: dict[str, list[str]] = {}
    for source in prepared.sources:
        for doc in source.documents:
            if counts[doc.id] > 1:
                owners.setdefault(doc.id, []).append(source.source)
    described = []
    for doc_id in repeated[:5]:
        where = owners.get(doc_id)
        described.append(f"{doc_id!r}" + (f" (in {', '.join(sorted(set(where)))})" if where else ""))
    raise InvalidArgumentError(
        f"{len(repeated)} id{'s are' if len(repeated) > 1 else ' is'} given more than once: {', '.join(described)}; "
        "each document needs its own id (records without an id get one from their text)"
    )


def source_documents(index: IngestIndex, sources: Sequence[str], *, page_size: int = 1000) -> dict[str, list[str]]:
    """Ids of the documents each of ``sources`` has in ``index`` now (metadata ``source``)."""
    found: dict[str, list[str]] = {source: [] for source in sources}
    if not sources:
        return found
    for start in range(0, len(sources), 256):  # bounded $in lists
        wanted = list(sources[start : start + 256])
        offset = 0
        while True:
            page = index.get_docs_sync(filter={"source": {"$in": wanted}}, limit=page_size, offset=offset)
            for doc in page:
                found[(doc.metadata or {}).get("source")].append(doc.id)
            if len(page) < page_size:
                break
            offset += page_size
    return found


def fitting_documents(sources: Iterable[PreparedSource]) -> list[DocumentInfo]:
    """The documents of ``sources`` known to fit the model's window (see
    :func:`~lichen.ingest.truncation.known_to_fit`)."""
    return [doc for source in sources if source.fits for doc in source.documents]


def apply_prepared(index: IngestIndex, prepared: Prepared, *, replace_sources: bool = True) -> AddResult:
    """Write ``prepared`` into ``index`` in one ``add_docs`` call (so a document the index
    refuses leaves it unchanged). With ``replace_sources`` (default), every file read
    replaces what the index held for it: chunks beyond its new length are deleted, so
    re-adding a file that shrank leaves nothing stale behind. Documents that already carry
    an ``embedding`` are not embedded again (a caller that must retry, as a read-modify-
    write on conflict does, embeds once beforehand)."""
    existing = source_documents(index, [source.source for source in prepared.sources]) if replace_sources else {}
    with known_to_fit(fitting_documents(prepared.sources)):
        added, updated = index.add_docs_sync(prepared.documents) if prepared.documents else (0, 0)
    stale: list[str] = []
    for source in prepared.sources:
        kept = {doc.id for doc in source.documents}
        stale.extend(doc_id for doc_id in existing.get(source.source, []) if doc_id not in kept)
    deleted = index.delete_docs_sync(stale) if stale else 0
    return AddResult(added, updated, deleted, prepared.skipped)


def add_inputs(
    index: IngestIndex,
    inputs: InputItem | Iterable[InputItem],
    *,
    chunker: str | Chunker | Callable[[str], Iterable[Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    prefix: str | None = None,
    skip_errors: bool = False,
    replace_sources: bool = True,
) -> AddResult:
    """:func:`prepare` with the index's model (its ``model_id`` attribute), then
    :func:`apply_prepared`: what ``SessionIndex.add_docs`` does with inputs that are not
    all ``DocumentInfo``."""
    prepared = prepare(
        inputs,
        chunker=chunker,
        model_id=getattr(index, "model_id", None),
        metadata=metadata,
        include=include,
        exclude=exclude,
        prefix=prefix,
        skip_errors=skip_errors,
    )
    return apply_prepared(index, prepared, replace_sources=replace_sources)
