"""Where named indexes live: the :class:`IndexStore` contract and its embedded
implementation, :class:`LocalStore` (the HTTP store lives in :mod:`lichen.stores.http`)."""

from ._base import IndexSnapshot, IndexStore
from .local import LocalStore, default_home, validate_index_name

__all__ = ["IndexSnapshot", "IndexStore", "LocalStore", "default_home", "validate_index_name"]
