"""The README's snippets run as written, twice in the same home (the second run sees
what the first pushed), and every ``print`` prints what the README says it does.

A ``print(...)  # -> TEXT`` line, or ``# -> TEXT`` lines right below a ``print``, state
its output: ``...`` stands for any text, runs of whitespace compare as one space, and a
decimal number matches within one unit of its last digit (scores are rounded)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)

# Runs snippet.py as ``python snippet.py`` would and records each print, by line.
RECORD_PRINTS = """
import atexit, builtins, io, json, runpy, sys
printed, _print = [], builtins.print
def recording_print(*args, **kwargs):
    _print(*args, **kwargs)
    caller = sys._getframe(1)
    if caller.f_code.co_filename == "snippet.py" and kwargs.get("file") in (None, sys.stdout):
        text = io.StringIO()
        _print(*args, **{**kwargs, "file": text})
        printed.append([caller.f_lineno, text.getvalue()])
builtins.print = recording_print
atexit.register(lambda: open("printed.json", "w").write(json.dumps(printed)))
runpy.run_path("snippet.py", run_name="__main__")
"""
_STATED = re.compile(r"#\s*->\s?(.*)$")
_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")


def stated_outputs(code: str) -> dict[int, str]:
    """What each ``print`` line states it prints, by line number (1-based)."""
    lines, stated = code.splitlines(), {}
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("print("):
            continue
        comment = line.partition("  #")[2]
        same_line = _STATED.match("#" + comment) if comment else None
        texts = [same_line.group(1)] if same_line else []
        for following in lines[number:]:
            below = _STATED.match(following.strip())
            if not below:
                break
            texts.append(below.group(1))
        stated[number] = "\n".join(texts)
    return stated


def matches(stated: str, printed: str) -> bool:
    pattern, numbers = [], []
    for piece in re.split(r"(\.\.\.|" + _DECIMAL.pattern + ")", " ".join(stated.split())):
        if piece == "...":
            pattern.append(".*?")
        elif _DECIMAL.fullmatch(piece):
            pattern.append(r"(-?\d+(?:\.\d+)?)")
            numbers.append(piece)
        else:
            pattern.append(re.escape(piece))
    found = re.fullmatch("".join(pattern), " ".join(printed.split()), re.S)
    return found is not None and all(
        abs(float(got) - float(want)) <= 10.0 ** -len(want.split(".")[1]) + 1e-12
        for want, got in zip(numbers, found.groups())
    )


def run(code: str, workdir: Path) -> dict[int, str]:
    (workdir / "snippet.py").write_text(code)
    # A home of its own: nothing a snippet (or a framework it imports) writes stays behind.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LICHEN_", "XDG_", "LIVEKIT_"))}
    env.update(HOME=str(workdir / "user"), LICHEN_HOME=str(workdir / "home"), LICHEN_PROGRESS="0")
    done = subprocess.run([sys.executable, "-c", RECORD_PRINTS], cwd=workdir, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    printed: dict[int, str] = {}
    for line, text in json.loads((workdir / "printed.json").read_text()):
        printed[line] = printed.get(line, "") + text
    return printed


def test_the_readme_has_snippets_and_states_every_output():
    assert len(SNIPPETS) == 3
    for code in SNIPPETS:
        prints = [n for n, line in enumerate(code.splitlines(), 1) if line.lstrip().startswith("print(")]
        assert prints and all(stated_outputs(code)[n] for n in prints)


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet-{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs_twice_and_prints_what_it_states(code, tmp_path):
    for _ in ("first run", "second run"):
        printed = run(code, tmp_path)
        for line, stated in stated_outputs(code).items():
            assert matches(stated, printed.get(line, "")), f"line {line} states {stated!r}, printed {printed.get(line)!r}"
