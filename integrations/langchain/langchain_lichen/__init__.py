"""LangChain integration for Lichen: a vector store, retrievers and embeddings over
Lichen's local-first, in-process indexes."""

from importlib import metadata

from .embeddings import LichenEmbeddings
from .retrievers import SOURCE_METADATA_KEY, LichenContextRetriever, LichenRetriever
from .vectorstores import LichenVectorStore

try:
    __version__ = metadata.version("langchain-lichen")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = ""

__all__ = [
    "LichenVectorStore",
    "LichenEmbeddings",
    "LichenRetriever",
    "LichenContextRetriever",
    "SOURCE_METADATA_KEY",
    "__version__",
]
