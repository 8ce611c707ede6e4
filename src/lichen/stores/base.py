"""What a store of named indexes must do, whatever it is backed by.

A store holds :class:`IndexSnapshot` objects by name: the embedded local directory
(:mod:`lichen.stores.local`) and the HTTP client of a Lichen server
(:mod:`lichen.stores.http`) both implement :class:`IndexStore`, so the ``Client`` never
branches on where indexes live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._types import IndexInfo, PushIndexResult
from ..format.snapshot import IndexSnapshot

__all__ = ["IndexStore", "LiveStore", "IndexState", "IndexChanges"]


@dataclass(frozen=True)
class IndexState:
    """Which version of a stored index a copy is: what a loaded long-term index is
    refreshed against. ``etag`` changes with any change of the stored artifact (a
    compaction's new graph included); ``content`` (a server's digest of the documents,
    empty when the store keeps none) only when the documents change, and is what a delta
    must start from."""

    version: int
    etag: str = ""
    content: str = ""
    doc_count: int = 0
    updated_at: str = ""


@dataclass
class IndexChanges:
    """A delta from one version to ``state``: delete ``deleted``, then upsert ``docs``
    (a snapshot of the rows: the first ``updated`` replace documents in place, the others
    are appended in order)."""

    since: int
    state: IndexState
    deleted: Sequence[str]
    docs: IndexSnapshot
    updated: int = 0
    transferred: int = 0
    """Bytes of the response body (for benchmarks and logs)."""

    @property
    def empty(self) -> bool:
        return not self.deleted and not self.docs.doc_count


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


@runtime_checkable
class LiveStore(Protocol):
    """What keeps a loaded long-term index current (``Client.load_index(...,
    auto_refresh=True)``): the state of what was read, a wait for the stored index to
    change, and, where the store can tell, the changes since a version. Both stores
    implement it; a store that does not is polled with ``get_info``."""

    def read_with_state(self, name: str) -> tuple[IndexSnapshot, IndexState]:
        """:meth:`IndexStore.read` and the state of what was read."""

    def state(self, name: str) -> IndexState:
        """The stored index's current state (``NotFoundError`` if there is none)."""

    def watch(self, name: str, etag: str, wait: float, poll: float) -> IndexState | None:
        """Wait up to ``wait`` seconds for the stored index to differ from ``etag``:
        its new state, or ``None`` if it did not change (``poll``: seconds between looks
        where the store has to look, not be told)."""

    def changes(self, name: str, since: IndexState) -> IndexChanges | None:
        """The delta from the copy ``since`` to the current version, or ``None`` when
        there is none to give (the caller reads the index whole)."""

    def read_cached(self, name: str) -> tuple[IndexSnapshot, IndexState] | None:
        """A copy kept locally from an earlier read, without asking anyone (``None``:
        no copy); for serving while the store cannot be reached."""
