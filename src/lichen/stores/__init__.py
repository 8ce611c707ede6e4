"""Where named indexes live, seen from the client: the :class:`IndexStore` contract and
its embedded implementation, :class:`LocalStore`. The store of a Lichen server is
:class:`lichen.stores.http.HttpStore` (imported on demand: it needs httpx)."""

from .base import IndexStore
from .local import LocalStore

__all__ = ["IndexStore", "LocalStore"]
