"""Haystack ``Document`` <-> Lichen document, field by field.

One Haystack document is one Lichen document: ``id`` -> ``id``, ``content`` -> ``text``,
``meta`` -> ``metadata`` (stored and returned as given), ``embedding`` -> ``embedding``.
Lichen indexes text, so a document needs ``content``; ``blob`` and ``sparse_embedding``
have no Lichen counterpart and are refused rather than dropped. ``score`` is an output
of retrieval, so it is not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from lichen import DocumentInfo, QueryResultDocument

__all__ = ["to_lichen_document", "to_haystack_document", "check_documents", "documents_to_write"]


def check_documents(documents: Any) -> None:
    """Haystack's input contract for ``write_documents``: a list of ``Document``."""
    if not isinstance(documents, (list, tuple)) or not all(isinstance(doc, Document) for doc in documents):
        raise ValueError("write_documents takes a list of haystack.Document")


def to_lichen_document(document: Document) -> DocumentInfo:
    if document.content is None:
        raise ValueError(f"document {document.id!r} has no content: Lichen indexes and embeds text")
    if document.blob is not None:
        raise ValueError(f"document {document.id!r} has a blob: Lichen stores text, metadata and a vector, not bytes")
    if document.sparse_embedding is not None:
        raise ValueError(
            f"document {document.id!r} has a sparse embedding: Lichen's keyword ranking is BM25 over the text, "
            "it stores no sparse vectors"
        )
    return DocumentInfo(
        id=document.id,
        text=document.content,
        metadata=dict(document.meta),
        embedding=document.embedding,
    )


def to_haystack_document(
    document: DocumentInfo | QueryResultDocument, *, score: float | None = None
) -> Document:
    return Document(
        id=document.id,
        content=document.text,
        meta=dict(document.metadata or {}),
        embedding=document.embedding,
        score=score,
    )


def documents_to_write(
    documents: Sequence[Document], policy: DuplicatePolicy, existing_ids: set[str]
) -> list[Document]:
    """The documents a write with ``policy`` stores, given the ids already stored.

    A repeated id within the batch counts as a duplicate like a stored one: ``FAIL``
    refuses the whole batch before anything is written, ``SKIP`` keeps the first and
    ``OVERWRITE`` the last (as writing them one after another would)."""
    if policy == DuplicatePolicy.OVERWRITE:
        return list({doc.id: doc for doc in documents}.values())
    seen = set(existing_ids)
    kept = []
    for doc in documents:
        if doc.id in seen:
            if policy == DuplicatePolicy.FAIL:
                raise DuplicateDocumentError(f"ID {doc.id!r} already exists; nothing was written")
            continue
        seen.add(doc.id)
        kept.append(doc)
    return kept
