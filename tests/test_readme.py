"""The README's code runs as written, and CI runs the README's own test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


READMES = [ROOT / "README.md", *sorted((ROOT / "integrations").glob("*/README.md"))]
SERVER_SETTINGS = ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY")


def python_snippets() -> list[tuple[str, str]]:
    """Every ```python block of every README, as ``(where, code)``."""
    found = []
    for path in READMES:
        text = path.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return found


SNIPPETS = python_snippets()


def run_snippet(code: str, where: str, workdir: Path) -> str:
    """Run ``code`` as a user who pasted it into a file would: a fresh process, the
    embedded store in ``workdir/home``, files written relative to ``workdir``."""
    (workdir / "snippet.py").write_text(code)
    env = {key: value for key, value in os.environ.items() if key not in SERVER_SETTINGS}
    env.update(LICHEN_HOME=str(workdir / "home"), LICHEN_PROGRESS="0")
    completed = subprocess.run(
        [sys.executable, "snippet.py"], cwd=workdir, capture_output=True, text=True, timeout=180, env=env
    )
    assert completed.returncode == 0, f"{where}:\n{completed.stderr}"
    return completed.stdout


def test_every_readme_has_its_snippets_found():
    where = {w.split(":")[0] for w, _ in SNIPPETS}
    assert {"README.md", "integrations/langchain/README.md", "integrations/llamaindex/README.md"} <= where


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_readme_snippet_runs_and_runs_again(where, code, tmp_path):
    """Copy-paste runnable, and repeatable: the second run, in the same home, sees what
    the first stored and must still succeed (no "already exists" on the way)."""
    first = run_snippet(code, where, tmp_path)
    second = run_snippet(code, where, tmp_path)
    if where.startswith("README.md"):
        for out in (first, second):
            assert out.splitlines()[0].startswith("turn-2 ")  # the refund turn answers "refund timeline"


def test_ci_runs_the_readme_test_command():
    setup_commands = re.findall(r"^\$ (python3 -m venv .*)$", README, re.M)
    assert len(setup_commands) == 2  # one for the demo, one for the tests
    ci = (ROOT / ".ci" / "run").read_text()
    extracted = re.search(r"sed -n '(.*?)' README.md", ci)
    assert extracted, "CI must take its command from the README"
    test_command = [c for c in setup_commands if "pytest" in c]
    assert len(test_command) == 1 and "cookbook/live_call_context.py" in setup_commands[0]


def test_setup_commands_never_assume_an_activated_environment():
    """Set-up creates ``.venv`` without activating it, so a later command that runs bare
    ``pip`` or ``lichen`` would use whatever else is on the PATH."""
    programs = [line.split()[1] for line in re.findall(r"^\$ .*$", README, re.M)]
    assert programs and all(p in ("python3", "export") or p.startswith(".venv/bin/") for p in programs), programs


def test_readme_says_where_the_embedded_store_lives(monkeypatch, tmp_path):
    from lichen.stores import default_home

    monkeypatch.delenv("LICHEN_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    if sys.platform.startswith("linux"):
        assert default_home() == tmp_path / ".local" / "share" / "lichen"
    assert "`~/.local/share/lichen` on Linux" in README and "$LICHEN_HOME" in README


def test_the_jsonl_shape_shown_next_to_push_pushes(tmp_path, capsys):
    from lichen import Client
    from lichen.cli import main

    rows = re.search(r"one document per line:\n\n```json\n(.*?)```", README, re.S).group(1)
    (tmp_path / "faqs.jsonl").write_text(rows)
    assert main(["push", str(tmp_path / "faqs.jsonl")]) == 0, capsys.readouterr().err
    docs = Client().get_docs_sync("faqs")
    assert [(d.id, d.metadata) for d in docs] == [("faq-1", {"topic": "billing"}), ("faq-2", {})]
