"""Progress bars for long work: big transfers (the HTTP store) and big embedding batches.

One switch for all of them, so a user silences every bar the same way: the ``progress=``
option (``True`` forces a bar, ``False`` hides it, ``None`` decides), else
``LICHEN_PROGRESS=0`` (or ``false`` / ``no`` / ``off``) hides it, else a bar is shown only
when standard error is a terminal. Logs, pipes and CI output never get bar noise.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["progress_wanted", "ProgressBar"]

_OFF = ("0", "false", "no", "off")


def progress_wanted(option: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show a bar: the explicit option, else ``LICHEN_PROGRESS``, else whether
    ``stream`` (default: ``sys.stderr``, where bars are drawn) is a terminal."""
    if option is not None:
        return bool(option)
    if os.environ.get("LICHEN_PROGRESS", "").strip().lower() in _OFF:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """A tqdm bar when ``enabled`` and the work reaches ``threshold`` units, else nothing:
    short work finishes before a bar would help, and only adds noise."""

    def __init__(self, enabled: bool, total: int, threshold: int, **tqdm_options: Any) -> None:
        self._bar = None
        if enabled and total >= threshold:
            from tqdm import tqdm

            self._bar = tqdm(total=total, leave=False, **tqdm_options)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
