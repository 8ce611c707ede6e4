"""Lichen as a Haystack document store: ``LichenDocumentStore`` and the filter translation."""

from .document_store import LichenDocumentStore
from .filters import to_lichen_filter

__all__ = ["LichenDocumentStore", "to_lichen_filter"]
