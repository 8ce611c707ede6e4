"""The store of a Lichen server, reached over HTTP with httpx.

:class:`HttpStore` is what ``Client(project_id, project_key, url=...)`` uses. Every
operation is written once, as a generator that yields the HTTP exchanges it needs
(:class:`_Call`) and receives their outcome (:class:`_Reply`): request building, response
parsing, error mapping, the download cache and conditional writes live there. The sync
face runs those generators with an ``httpx.Client``, the async face with an
``httpx.AsyncClient`` (its CPU and disk steps in a worker thread); the two faces differ
only in how they send and wait (STYLE.md: httpx's own pattern).

Behaviour:

- **Timeouts** are a :class:`Timeout`; **retries** (:class:`Retries`) back off
  exponentially on connection errors (any call: nothing was sent) and on 5xx / dropped
  responses for idempotent calls only (GET, DELETE, and conditional writes: a repeated
  ``If-Match`` write cannot apply twice).
- **Downloads are cached** under ``<cache_dir>/http-cache/`` and revalidated with
  ``If-None-Match``: a second load of an unchanged index transfers no body (304).
- **Large transfers** (>= 8 MiB) show a tqdm progress bar on a TTY; ``progress=False`` or
  ``LICHEN_PROGRESS=0`` turns it off.
- **Errors** are :mod:`lichen` errors: unreachable server or dropped connection ->
  ``NetworkError``; 401 -> ``UnauthorizedError``; 404 -> ``NotFoundError``; 409/412 ->
  ``ConflictError``; 413 / limits -> ``LimitExceededError``; 422 ->
  ``InvalidArgumentError``; a damaged artifact -> ``CorruptDataError``.

Modules: :mod:`.exchange` (the vocabulary: one HTTP exchange asked, its outcome),
:mod:`.operations` (every operation as a generator of exchanges: sans-IO),
:mod:`.store` (:class:`HttpStore`: the sync and async transports that run them, retries
included), :mod:`.cache` (downloaded artifacts and transfer progress), :mod:`.config`.
"""

from .config import Retries, Timeout
from .store import HttpStore

__all__ = ["HttpStore", "Retries", "Timeout"]
