"""The package README's usage snippet runs as written, and again (it is repeatable)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_usage_snippet_runs_twice(tmp_path):
    snippet = re.search(r"## Usage\n\n```python\n(.*?)```", README, re.S).group(1)
    env = {key: value for key, value in os.environ.items() if not key.startswith("LICHEN_")}
    env["LICHEN_HOME"] = str(tmp_path)
    for _ in range(2):
        completed = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120, env=env)
        assert completed.returncode == 0, completed.stderr
        hits, namespaces = completed.stdout.splitlines()
        assert hits.startswith("[('food', ") and namespaces == "[('memories', 'user-1')]"
