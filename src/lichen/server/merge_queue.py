"""Admission of the writes that rewrite a stored index (document batches, deletes, the
publishing of a compaction): one at a time per index, a few at a time per server.

Writes without a version condition used to race each other: six clients adding to one
index through one server lost 18 of 60 writes to ``ConflictError`` (each read version
*v*, the first to publish made *v + 1*, the others gave up after a few rereads). Here the
writes to one index wait for each other in arrival order, so within a process they never
race; :class:`~lichen.server.service.IndexService` still retries, to a deadline, the
races with other replicas that only the storage's conditional write can settle.

Every rewrite streams the stored artifact (:mod:`lichen.server.rewrite`) and holds a
bounded amount of memory, so bounding how many run at once bounds the server's memory:
at most ``max_running`` run and ``max_waiting`` wait (each waiting for at most
``max_wait_s``); a write beyond that is refused with :class:`ServerBusyError`, which the
app answers with 503 and ``Retry-After``: nothing was written, and trying again later is
safe. Waiting happens on the request's worker thread, which is why the queue is short.

When the last rewrite finishes, the memory it used is handed back to the operating
system shortly after (``gc.collect`` and glibc's ``malloc_trim``), so an idle server
does not keep the peak of its last burst.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator

from .._errors import LichenError

__all__ = ["MergeQueue", "ServerBusyError", "release_memory"]

logger = logging.getLogger(__name__)

_IDLE_RELEASE_DELAY_S = 0.5


class ServerBusyError(LichenError):
    """The server is running and queueing as many index rewrites as it admits: nothing was
    written; retry after a short wait (HTTP 503 with ``Retry-After``)."""


def _malloc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:  # pragma: no cover - no C library to load
        return None
    if trim is None:  # pragma: no cover - not glibc
        return None
    return lambda: trim(0)


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand freed memory back to the operating system: collect cycles, then ask glibc
    to return the free parts of its heap (Python and numpy free to it, not to the OS)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM()


class _Ticket:
    __slots__ = ("key",)

    def __init__(self, key: Hashable) -> None:
        self.key = key


class MergeQueue:
    """At most ``max_running`` rewrites at once, never two of one ``key`` (an index),
    started in arrival order; at most ``max_waiting`` wait, each at most ``max_wait_s``."""

    def __init__(
        self,
        max_running: int = 2,
        max_waiting: int = 32,
        max_wait_s: float = 30.0,
        *,
        on_idle: Callable[[], None] | None = release_memory,
    ) -> None:
        if max_running < 1 or max_waiting < 0:
            raise ValueError("a merge queue needs max_running >= 1 and max_waiting >= 0")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._on_idle = on_idle
        self._cond = threading.Condition()
        self._running: set[Hashable] = set()
        self._waiting: deque[_Ticket] = deque()
        self._idle_timer: threading.Timer | None = None
        self.admitted = 0
        """Rewrites started so far (for tests and logs)."""
        self.refused = 0
        """Rewrites refused as busy so far."""

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _can_start(self, ticket: _Ticket) -> bool:
        """Nobody of the same key runs, and nobody who arrived earlier could start instead."""
        if len(self._running) >= self.max_running or ticket.key in self._running:
            return False
        for earlier in self._waiting:
            if earlier is ticket:
                return True
            if earlier.key == ticket.key or earlier.key not in self._running:
                return False
        return True  # pragma: no cover - the ticket is always in the queue

    def _busy(self, what: str) -> ServerBusyError:
        self.refused += 1
        return ServerBusyError(
            f"the server is busy rewriting indexes ({len(self._running)} running, {len(self._waiting)} "
            f"waiting; {what}); nothing was written, retry in a few seconds"
        )

    @contextlib.contextmanager
    def slot(self, key: Hashable) -> Iterator[None]:
        """Run the body as one rewrite of ``key``; :class:`ServerBusyError` if the queue
        is full or the turn does not come within ``max_wait_s``."""
        ticket = _Ticket(key)
        with self._cond:
            if len(self._running) + len(self._waiting) >= self.max_running + self.max_waiting:
                raise self._busy(f"at most {self.max_running} run and {self.max_waiting} wait")
            self._waiting.append(ticket)
            deadline = time.monotonic() + self.max_wait_s
            try:
                while not self._can_start(ticket):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise self._busy(f"this write waited {self.max_wait_s:g} s for its turn")
                    self._cond.wait(left)
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the next in line may start, or a refusal freed a place
            self._running.add(key)
            self.admitted += 1
        try:
            yield
        finally:
            with self._cond:
                self._running.discard(key)
                idle = not self._running and not self._waiting
                self._cond.notify_all()
                if idle:
                    self._schedule_release()

    def _schedule_release(self) -> None:
        """Release memory once the queue has stayed idle a moment (not between the
        writes of a burst). The caller holds the lock."""
        if self._on_idle is None or self._idle_timer is not None:
            return
        timer = threading.Timer(_IDLE_RELEASE_DELAY_S, self._release_if_idle)
        timer.daemon = True
        self._idle_timer = timer
        timer.start()

    def _release_if_idle(self) -> None:
        with self._cond:
            self._idle_timer = None
            if self._running or self._waiting:
                return
        try:
            assert self._on_idle is not None
            self._on_idle()
        except Exception:  # noqa: BLE001 - giving memory back is a courtesy
            logger.warning("could not release memory after the last rewrite", exc_info=True)
