"""How patient the HTTP store is: timeouts per phase and retries with backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

__all__ = ["Retries", "Timeout"]


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for each phase of a request (httpx semantics): ``read`` and
    ``write`` bound the pause between two chunks, not a whole transfer."""

    connect: float = 5.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 10.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class Retries:
    """How often, and how patiently, to repeat a failed call: ``attempts`` repeats after
    the first try, waiting ``backoff * 2**n`` seconds (capped at ``max_backoff``, with
    +-25 % jitter) before repeat ``n``."""

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * random.uniform(0.75, 1.25)
