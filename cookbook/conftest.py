"""Fixtures for the cookbook's tests: run a recipe as a user would, in a fresh process,
offline, against an empty embedded store of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SERVER_SETTINGS = ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY")


@pytest.fixture
def run_recipe(tmp_path) -> Callable[..., str]:
    """``run_recipe("name.py")`` runs ``cookbook/name.py`` with ``LICHEN_HOME`` set to a
    directory private to the test (the same one for every call within it, so a second run
    sees what the first stored) and returns its stdout; a non-zero exit fails the test."""
    home = tmp_path / "home"

    def run(name: str, extra_env: dict[str, str] | None = None) -> str:
        env = {key: value for key, value in os.environ.items() if key not in SERVER_SETTINGS}
        env.update({"LICHEN_HOME": str(home), **(extra_env or {})})
        completed = subprocess.run(
            [sys.executable, str(HERE / name)], capture_output=True, text=True, env=env, timeout=300
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed.stdout

    return run
