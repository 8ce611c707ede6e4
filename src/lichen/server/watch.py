"""Long-polls: ``GET /v1/indexes/{name}?wait=S`` with ``If-None-Match`` answers as soon as
the index's head moves away from the client's ETag, or after ``S`` seconds with 304.

Replicas share only their storage, so a replica learns of a push that landed on another
one by watching the storage: one poller per watched index and server process asks the
storage for the head's *token* (:meth:`~lichen.server.storage.Storage.head_token`: a
``stat`` of the head file, or one ``HeadObject`` on S3) every ``interval`` seconds while
anyone waits on that index, and reads the head only when the token moves. That is one
cheap request per watched index and replica per interval, whatever the number of
clients waiting, instead of every client polling the server. Publishes of this process
(writes, compactions, deletes) wake the poller at their commit point
(:attr:`Storage.on_commit` calls :meth:`HeadWatch.poke`), so a client waiting on the
replica that took the write hears of it in milliseconds, on another replica within
``interval``.

Each waiter is answered from a read of the storage made after it started waiting (the
poller polls once on its arrival), never from an older one: a client is never told of a
head older than the one it has. At most ``max_open`` long-polls are open per process;
beyond, :class:`TooManyWatchers` (the app answers 503 with ``Retry-After``, which the
client meets with a jittered pause). When the process is told to stop,
:meth:`HeadWatch.close` answers every long-poll at once (304), so that its clients go on
with another replica rather than hold its shutdown for the rest of their wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from .._errors import LichenError
from .storage import IndexHead, Storage

__all__ = ["HeadWatch", "TooManyWatchers"]

logger = logging.getLogger(__name__)

_UNREAD = object()


class TooManyWatchers(LichenError):
    """This server process holds as many long-polls as it allows (HTTP 503)."""


@dataclass(eq=False)
class _Watch:
    """One watched index: its poller's latest reading and the waiters' condition."""

    cond: asyncio.Condition
    wake: asyncio.Event
    waiters: int = 0
    polls: int = 0
    token: object = _UNREAD
    head: IndexHead | None = None
    task: asyncio.Task | None = field(default=None, repr=False)


class HeadWatch:
    """The long-polls of one server process (see the module docstring)."""

    def __init__(self, storage: Storage, *, interval: float = 0.5, max_open: int = 1024) -> None:
        self.storage = storage
        self.interval = interval
        self.max_open = max_open
        self.open = 0
        """Long-polls waiting right now (the ``lichen_long_polls_open`` gauge)."""
        self.closing = False
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def poke(self, project_id: str, name: str) -> None:
        """Look at the index's head now (any thread: called after a publish)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._poke, (project_id, name))

    def _poke(self, key: tuple[str, str]) -> None:
        watch = self._watches.get(key)
        if watch is not None:
            watch.wake.set()

    def close(self) -> None:
        """Answer every long-poll now, and every later one at once (any thread, a signal
        handler included: the process is shutting down)."""
        self.closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release_all)

    def _release_all(self) -> None:
        for watch in list(self._watches.values()):
            asyncio.ensure_future(self._notify(watch))

    @staticmethod
    async def _notify(watch: _Watch) -> None:
        async with watch.cond:
            watch.cond.notify_all()

    async def wait(self, project_id: str, name: str, etag: str, timeout: float) -> tuple[bool, IndexHead | None]:
        """Wait up to ``timeout`` seconds for the index's head to differ from ``etag``:
        ``(True, head)`` when it does (``head`` is ``None`` once the index is deleted),
        ``(False, head)`` on timeout or shutdown, ``head`` being the latest one read
        (``None`` if none was read yet)."""
        if self.open >= self.max_open:
            raise TooManyWatchers(
                f"this server holds {self.open} long-polls, its limit (--max-long-polls); retry in a moment"
            )
        self._loop = asyncio.get_running_loop()
        key = (project_id, name)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(asyncio.Condition(), asyncio.Event())
        watch.waiters += 1
        self.open += 1
        try:
            if watch.task is None or watch.task.done():
                watch.task = asyncio.create_task(self._poll(key, watch))
            polls = watch.polls
            watch.wake.set()  # a reading made after this waiter arrived: never an older one

            def answered() -> bool:
                return watch.polls > polls and (watch.head is None or watch.head.etag != etag)

            with contextlib.suppress(asyncio.TimeoutError):
                async with watch.cond:
                    await asyncio.wait_for(watch.cond.wait_for(lambda: answered() or self.closing), timeout)
                    if answered():
                        return True, watch.head
            return False, watch.head if watch.polls > polls else None
        finally:
            self.open -= 1
            watch.waiters -= 1

    async def _poll(self, key: tuple[str, str], watch: _Watch) -> None:
        project_id, name = key
        try:
            while watch.waiters > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(watch.wake.wait(), self.interval)
                watch.wake.clear()
                try:
                    token = await run_in_threadpool(self.storage.head_token, project_id, name)
                    if token != watch.token:
                        watch.head = await run_in_threadpool(self.storage.head, project_id, name) if token else None
                        watch.token = token
                except Exception:  # noqa: BLE001 - storage hiccup: the waiters wait on, the next poll retries
                    logger.warning("could not look at the head of index %r", name, exc_info=True)
                    continue
                async with watch.cond:
                    watch.polls += 1
                    watch.cond.notify_all()
        finally:
            if self._watches.get(key) is watch and watch.waiters == 0:
                del self._watches[key]
