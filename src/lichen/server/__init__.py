"""The Lichen server: stores pushed indexes by name and serves them to clients.

Modules, one job each:

- :mod:`~lichen.server.app`: the Starlette ASGI app (``create_app``).
- :mod:`~lichen.server.service`: what the routes do, independent of HTTP.
- :mod:`~lichen.server.rewrite`: a stored index rewritten section by section (merges).
- :mod:`~lichen.server.merge_queue`: rewrites take turns per index, bounded per process.
- :mod:`~lichen.server.compaction`: big indexes given a fresh graph in the background.
- :mod:`~lichen.server.auth`: projects, hashed keys, credential checks.
- :mod:`~lichen.server.storage`: the storage contract and its file-system and S3
  backends.

The wire protocol both ends speak is :mod:`lichen.protocol` (the client never imports
this package).

Run one with ``lichen serve --data DIR`` (see ``lichen serve --help``). Importing this
package does not import starlette or boto3 (the ``server`` extra); the names below load
on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ServerConfig", "Limits", "Storage", "open_storage", "create_project", "ProjectCredentials"]

_EXPORTS = {
    "create_app": ("app", "create_app"),
    "ServerConfig": ("app", "ServerConfig"),
    "Limits": ("service", "Limits"),
    "Storage": ("storage", "Storage"),
    "open_storage": ("storage", "open_storage"),
    "create_project": ("auth", "create_project"),
    "ProjectCredentials": ("auth", "ProjectCredentials"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
