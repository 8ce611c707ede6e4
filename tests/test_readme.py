"""The README's code runs as written, and CI runs the README's own test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_usage_snippet_runs(tmp_path):
    snippet = re.search(r"## Use\n\n```python\n(.*?)```", README, re.S).group(1)
    completed = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120,
        env={**os.environ, "LICHEN_HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[0].startswith("turn-2 ")  # the refund turn answers "refund timeline"


def test_ci_runs_the_readme_test_command():
    setup_commands = re.findall(r"^\$ (python3 -m venv .*)$", README, re.M)
    assert len(setup_commands) == 2  # one for the demo, one for the tests
    ci = (ROOT / ".ci" / "run").read_text()
    extracted = re.search(r"sed -n '(.*?)' README.md", ci)
    assert extracted, "CI must take its command from the README"
    test_command = [c for c in setup_commands if "pytest" in c]
    assert len(test_command) == 1 and "cookbook/live_call_context.py" in setup_commands[0]
