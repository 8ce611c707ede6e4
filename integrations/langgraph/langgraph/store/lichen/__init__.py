"""LangGraph long-term memory on Lichen: ``from langgraph.store.lichen import LichenStore``."""

from importlib.metadata import PackageNotFoundError, version

from .store import LichenIndexConfig, LichenStore

try:
    __version__ = version("langgraph-store-lichen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["LichenStore", "LichenIndexConfig", "__version__"]
