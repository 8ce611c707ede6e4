"""Where Lichen keeps its files by default: one rule for the embedded store, the download
cache and user-built models, so every part of the package agrees on it."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["default_home"]


def default_home() -> Path:
    """Where the ``Client`` keeps local indexes: ``$LICHEN_HOME`` if set, else the
    platform's per-user data directory (e.g. ``~/.local/share/lichen`` on Linux)."""
    env = os.environ.get("LICHEN_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("lichen", appauthor=False))
