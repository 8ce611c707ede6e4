"""Keeping a query path warm between spaced queries, on request.

A query that arrives after a pause (a voice agent's turns, seconds apart) costs several
times one that follows another: the cores went idle, and the model's weights and the
index's pages went cold. :class:`KeepWarm` runs a small stand-in query every ``period``
seconds on a daemon thread for as long as it is held (``with session.keep_warm(): ...``),
so the real query finds the path hot. It costs CPU the whole time (measured in
``benchmarks/RESULTS.md``, "Spaced queries"), which is why it is opt-in and meant for the
length of a live call, not for a process's lifetime.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["KeepWarm", "DEFAULT_WARM_PERIOD", "WARM_TEXT"]

#: Seconds between two stand-in queries. Measured: 10 ms keeps a query near its
#: back-to-back time; 100 ms pauses already let it go cold.
DEFAULT_WARM_PERIOD = 0.01
#: What the stand-in query embeds: every weight of the model is read whatever the text.
WARM_TEXT = "warm"


class KeepWarm:
    """Runs ``tick`` every ``period`` seconds on a daemon thread from :meth:`start` (or
    entering it as a context, sync or async) until :meth:`stop`. A ``tick`` that raises
    ends the warming (it never reaches the caller's queries); :attr:`ticks` counts the
    stand-in queries run."""

    def __init__(self, tick: Callable[[], Any], period: float = DEFAULT_WARM_PERIOD) -> None:
        if not isinstance(period, (int, float)) or isinstance(period, bool) or not 0.0 < period <= 60.0:
            from .._errors import InvalidArgumentError

            raise InvalidArgumentError(f"keep_warm period must be between 0 and 60 seconds, got {period!r}")
        self._tick = tick
        self.period = float(period)
        self.ticks = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> KeepWarm:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lichen-keep-warm", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self._tick()
            except BaseException as exc:  # noqa: BLE001 - warming must never break the caller
                self.error = exc
                return
            self.ticks += 1

    def __enter__(self) -> KeepWarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> KeepWarm:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)
