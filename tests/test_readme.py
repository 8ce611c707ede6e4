"""The README's code runs as written, and CI runs the README's own test command.

This file runs every README's snippets, the integration packages' included (twice each,
comparing what each ``print`` states): one runner, so a package's snippets are not run
twice by two copies of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
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


# Runs snippet.py as ``python snippet.py`` would (``runpy``, as ``__main__``), and records
# what each of its ``print`` calls wrote, by line, in printed.json. stdout is untouched.
RECORD_PRINTS = """
import atexit, builtins, io, json, runpy, sys

printed = []
_print = builtins.print

def recording_print(*args, **kwargs):
    _print(*args, **kwargs)
    caller = sys._getframe(1)
    if caller.f_code.co_filename == "snippet.py" and kwargs.get("file") in (None, sys.stdout):
        text = io.StringIO()
        _print(*args, **{**kwargs, "file": text})
        printed.append([caller.f_lineno, text.getvalue()])

builtins.print = recording_print
atexit.register(lambda: open("printed.json", "w").write(json.dumps(printed)))
sys.argv = ["snippet.py"]
runpy.run_path("snippet.py", run_name="__main__")
"""


def run_snippet(code: str, where: str, workdir: Path) -> tuple[str, dict[int, str]]:
    """Run ``code`` as a user who pasted it into a file would: a fresh process, the
    embedded store in ``workdir/home``, files written relative to ``workdir``. Returns
    its stdout and what the ``print`` on each line of ``code`` (1-based) wrote."""
    (workdir / "snippet.py").write_text(code)
    (workdir / "printed.json").unlink(missing_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SERVER_SETTINGS and not key.startswith(("XDG_", "LIVEKIT_"))
    }
    # The frameworks some snippets import keep files under the user's home and send usage
    # events (Haystack, CrewAI): a home of the snippet's own, and their switches off.
    env.update(
        LICHEN_HOME=str(workdir / "home"), LICHEN_PROGRESS="0", HOME=str(workdir / "user"),
        HAYSTACK_TELEMETRY_ENABLED="False", CREWAI_DISABLE_TELEMETRY="true", OTEL_SDK_DISABLED="true",
        CREWAI_TRACING_ENABLED="false",
    )
    completed = subprocess.run(
        [sys.executable, "-c", RECORD_PRINTS], cwd=workdir, capture_output=True, text=True, timeout=180, env=env
    )
    assert completed.returncode == 0, f"{where}:\n{completed.stderr}"
    by_line: dict[int, str] = {}
    for line, text in json.loads((workdir / "printed.json").read_text()):
        by_line[line] = by_line.get(line, "") + text
    return completed.stdout, by_line


# ---- outputs the READMEs state next to their snippets
#
# ``print(...)  # -> TEXT``, or ``# -> TEXT`` on the line(s) right below a ``print``,
# states what that print writes (several ``# ->`` lines: several output lines). ``...``
# stands for any text; runs of whitespace compare as one space; a decimal number matches
# within one unit of its last stated digit (scores are rounded when printed). The root
# README's older form, a plain comment on a ``print`` line, is read as: ``X only`` (one
# line, starting with X), and a trailing ``(note)`` is not part of the output.
_STATED = re.compile(r"#\s*->\s?(.*)$")
_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")


@dataclass
class Stated:
    line: int  # the print's line in the snippet, 1-based
    text: str
    one_line: bool = False


def stated_outputs(code: str) -> list[Stated]:
    lines = code.splitlines()
    stated = []
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("print("):
            continue
        code_part, _, comment = line.partition("  #")
        below = []
        for following in lines[number:]:
            match = _STATED.match(following.strip())
            if not match:
                break
            below.append(match.group(1).strip())
        same_line = _STATED.match("#" + comment) if comment else None
        if same_line:
            stated.append(Stated(number, "\n".join([same_line.group(1).strip(), *below])))
        elif below:
            stated.append(Stated(number, "\n".join(below)))
        elif comment.strip():  # the root README's older form
            text = re.sub(r"\s+\([^()]*\)$", "", comment.strip())
            if text.endswith(" only"):
                stated.append(Stated(number, text[: -len(" only")] + " ...", one_line=True))
            else:
                stated.append(Stated(number, text))
    return stated


def mismatch(stated: Stated, printed: str) -> str | None:
    """Why ``printed`` is not what ``stated`` says, or ``None`` if it is."""
    normal = " ".join(printed.split())
    parts, numbers = [], []
    for piece in re.split(r"(\.\.\.|" + _DECIMAL.pattern + ")", " ".join(stated.text.split())):
        if piece == "...":
            parts.append(".*?")
        elif _DECIMAL.fullmatch(piece):
            parts.append(r"(-?\d+(?:\.\d+)?)")
            numbers.append(piece)
        else:
            parts.append(re.escape(piece))
    match = re.fullmatch("".join(parts), normal, re.S)
    if match is None:
        return f"printed {printed!r}"
    for want, got in zip(numbers, match.groups()):
        if abs(float(got) - float(want)) > 10.0 ** -len(want.split(".")[1]) + 1e-12:
            return f"printed {got} where it states {want}: {printed!r}"
    if stated.one_line and len(printed.splitlines()) != 1:
        return f"printed {len(printed.splitlines())} lines, it states one: {printed!r}"
    return None


def assert_stated_outputs_match(where: str, code: str, printed: dict[int, str]) -> None:
    problems = []
    for stated in stated_outputs(code):
        if stated.line not in printed:
            problems.append(f"line {stated.line} states {stated.text!r} but printed nothing")
        elif (why := mismatch(stated, printed[stated.line])) is not None:
            problems.append(f"line {stated.line} states {stated.text!r}, {why}")
    assert not problems, f"{where}:\n" + "\n".join(problems)


def test_every_readme_has_its_snippets_found():
    where = {w.split(":")[0] for w, _ in SNIPPETS}
    packages = ("langchain", "llamaindex", "langgraph", "haystack", "crewai", "llamaindex-tools", "pipecat", "livekit")
    assert {"README.md", *(f"integrations/{package}/README.md" for package in packages)} <= where


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_readme_snippet_runs_and_runs_again(where, code, tmp_path):
    """Copy-paste runnable, and repeatable: the second run, in the same home, sees what
    the first stored and must still succeed (no "already exists" on the way)."""
    for run in ("first", "second"):
        out, printed = run_snippet(code, where, tmp_path)
        assert_stated_outputs_match(f"{where} ({run} run)", code, printed)
        if where.startswith("README.md") and '"refund timeline"' in code:
            assert out.splitlines()[0].startswith("turn-2 ")  # the refund turn answers "refund timeline"


def test_the_readmes_state_their_outputs():
    """Every print in the integration READMEs says what it prints, and the root README's
    filter snippet states all three of its outputs (compared by the test above)."""
    for where, code in SNIPPETS:
        prints = [n for n, line in enumerate(code.splitlines(), 1) if line.lstrip().startswith("print(")]
        stated = [s.line for s in stated_outputs(code)]
        if where.startswith("integrations/"):
            assert stated == prints, f"{where}: prints on lines {prints}, stated outputs for {stated}"
    filter_snippet = next(code for _, code in SNIPPETS if "session.delete_docs_sync(filter=" in code)
    assert [s.text for s in stated_outputs(filter_snippet)] == ["turn-2 ...", "['turn-2', 'turn-3']", "1"]


@pytest.mark.parametrize(
    "stated, printed, matches",
    [
        ("[('food', 0.68)]", "[('food', 0.68)]\n", True),
        ("[('food', 0.68)]", "[('food', 0.69)]\n", True),  # one unit in the last digit: formatting
        ("[('food', 0.68)]", "[('food', 0.7)]\n", False),
        ("[('food', 0.68)]", "[('pet', 0.68)]\n", False),
        ("[('food', 0.68)]", "[('food', 0.68), ('pet', 0.1)]\n", False),
        ("384 2", "384 2\n", True),
        ("384 2", "384 3\n", False),
        ("A ... Query: x Answer:", "A\n---\nb\n\nQuery: x\nAnswer: \n", True),
        ("A ... Query: x Answer:", "A\nQuery: y\nAnswer: \n", False),
    ],
)
def test_stated_output_comparison(stated, printed, matches):
    assert (mismatch(Stated(1, stated), printed) is None) == matches


def test_stated_outputs_are_read_in_every_form():
    code = "\n".join([
        "print(a)  # -> 1 2",
        "print(b)",
        "# -> first line",
        "# -> second line",
        "# not a statement",
        "for x in y:",
        "    print(x)  # turn-2 only",
        "print(c)  # 1 (turn-3)",
        "client = Client()  # a comment that is not about output",
    ])
    assert [(s.line, s.text, s.one_line) for s in stated_outputs(code)] == [
        (1, "1 2", False), (2, "first line\nsecond line", False), (7, "turn-2 ...", True), (8, "1", False),
    ]
    assert mismatch(Stated(7, "turn-2 ...", one_line=True), "turn-2 0.526 Agent\nturn-1 0.2 x\n") is not None


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
    from lichen._home import default_home

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


# ---- names: every snippet and recipe keeps to its own indexes
#
# The README snippets and the cookbook's recipes run in the user's one embedded store
# (LICHEN_HOME), usually one after another. Two of them opening the same index name see
# each other's documents: the turns of one snippet's call came back in the next
# snippet's answers. The voice adapters (Pipecat, LiveKit) and their recipe are left out:
# they run the live-call demo in a voice pipeline, on its FAQ index, on purpose.
COOKBOOK = ROOT / "cookbook"
VOICE = ("pipecat", "livekit", "voice")
RECIPES = [
    path for path in sorted(COOKBOOK.glob("*.py"))
    if not path.name.startswith(("test_", "conftest")) and not any(word in path.name for word in VOICE)
]
# Calls whose string arguments name an index; for those that take the client first
# (``LichenStore.open(client, name)``), the name is the second argument.
_NAMING_CALLS = {
    "session": 0, "session_sync": 0, "create_index": 0, "create_index_sync": 0, "load_index": 0, "load_index_sync": 0,
    "get_index_sync": 0, "delete_index": 0, "delete_index_sync": 0, "open": 1, "aopen": 1, "from_index_name": 1,
    "afrom_index_name": 1,
}


def index_names(code: str) -> set[str]:
    """The index names ``code`` opens, creates, loads or deletes (string literals, and
    module-level constants bound to one)."""
    import ast

    tree = ast.parse(code)
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name)
    }
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        call = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if call not in _NAMING_CALLS:
            continue
        arguments = node.args[_NAMING_CALLS[call] : _NAMING_CALLS[call] + 1]
        arguments += [kw.value for kw in node.keywords if kw.arg in ("index_name", "name")]
        for argument in arguments:
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
            elif isinstance(argument, ast.Name) and argument.id in constants:
                names.add(constants[argument.id])
    return names


def test_no_two_snippets_or_recipes_share_an_index_name():
    users: dict[str, set[str]] = {}
    snippets = [(where, code) for where, code in SNIPPETS if not any(f"integrations/{word}/" in where for word in VOICE)]
    programs = snippets + [(str(p.relative_to(ROOT)), p.read_text()) for p in RECIPES]
    for where, code in programs:
        for name in index_names(code):
            users.setdefault(name, set()).add(where.split(":")[0] if where.startswith("cookbook") else where)
    shared = {name: sorted(where) for name, where in users.items() if len(where) > 1}
    assert not shared, f"index names used by more than one snippet or recipe: {shared}"
    assert {"call-1001", "call-42", "support-faqs"} <= set(users)  # the extraction sees them


def test_index_names_are_read_from_every_way_of_naming_an_index():
    code = "\n".join([
        'NAME = "from-constant"',
        's = client.session_sync("a")',
        's = await client.session(index_name="b")',
        'store = LichenStore.open(Client(), "c", index={})',
        'store = LichenVectorStore.from_index_name(client, NAME)',
        'store = LichenVectorStore.open("file.lichen")',
        'client.load_index_sync("d"); client.create_index("e", [])',
    ])
    assert index_names(code) == {"a", "b", "c", "d", "e", "from-constant"}
