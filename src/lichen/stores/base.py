"""What a store of named indexes must do, whatever it is backed by.

A store holds :class:`IndexSnapshot` objects by name: the embedded local directory
(:mod:`lichen.stores.local`) and the HTTP client of a Lichen server
(:mod:`lichen.stores.http`) both implement :class:`IndexStore`, so the ``Client`` never
branches on where indexes live.
"""

from __future__ import annotations

from typing import Protocol

from .._types import IndexInfo, PushIndexResult
from ..format.snapshot import IndexSnapshot

__all__ = ["IndexStore"]


class IndexStore(Protocol):
    """Sync face of a store. Every method has an ``a``-prefixed async twin."""

    def check_credentials(self) -> None:
        """Raise ``UnauthorizedError`` if the project credentials are not accepted."""

    def get_info(self, name: str) -> IndexInfo:
        """Raise ``NotFoundError`` if there is no index of that name."""

    def read(self, name: str) -> IndexSnapshot:
        """Return the whole stored index; raise ``NotFoundError`` / ``CorruptDataError``."""

    def write(self, snapshot: IndexSnapshot, *, expected_version: int | None = None) -> PushIndexResult:
        """Create or atomically replace ``snapshot.name``. With ``expected_version`` the
        write is refused with ``ConflictError`` unless the stored version still equals it
        (0 meaning "must not exist yet")."""

    def list(self) -> list[IndexInfo]: ...

    def delete(self, name: str) -> bool:
        """Return whether an index was deleted."""

    async def acheck_credentials(self) -> None: ...
    async def aget_info(self, name: str) -> IndexInfo: ...
    async def aread(self, name: str) -> IndexSnapshot: ...
    async def awrite(self, snapshot: IndexSnapshot, *, expected_version: int | None = None) -> PushIndexResult: ...
    async def alist(self) -> list[IndexInfo]: ...
    async def adelete(self, name: str) -> bool: ...
