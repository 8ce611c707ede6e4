"""``lichen sync`` and ``lichen add``, run as a user runs them (the installed ``lichen``
command, a fresh process each time) against the embedded store and a real server: new,
changed, deleted and unchanged files, a second run that changes nothing, a bad file (exit
1, nothing written) or skipped, dry runs, JSON output, and the progress bars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import Deployment

from lichen import Client

LICHEN = [str(Path(sys.executable).parent / "lichen")] if (Path(sys.executable).parent / "lichen").exists() else [
    sys.executable, "-m", "lichen.cli",
]


def lichen(*argv: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LICHEN, *argv], capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})},
    )


def sections(count: int, word: str = "text") -> str:
    return "\n\n".join(f"## Part {i}\n\nSection {i} {word} about topic{i}." for i in range(count))


def make_folder(root: Path) -> Path:
    folder = root / "kb"
    (folder / "guides").mkdir(parents=True)
    (folder / "long.md").write_text(sections(21))
    (folder / "guides" / "setup.md").write_text("# Setup\n\nInstall the app, then sign in.\n")
    (folder / "faq.jsonl").write_text('{"id": "faq-1", "text": "Passwords reset from the sign-in page."}\n')
    return folder


def test_sync_adds_rechunks_deletes_and_then_changes_nothing(tmp_path):
    folder = make_folder(tmp_path)
    first = lichen("sync", str(folder), "--index", "kb")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "+ kb/faq.jsonl (1 chunk)", "+ kb/guides/setup.md (1 chunk)", "+ kb/long.md (21 chunks)",
        f"synced {folder}: 3 added, 0 changed, 0 deleted, 0 unchanged; 23 chunks written, 0 removed in "
        + first.stdout.split(" removed in ")[1].splitlines()[0],
        "pushed 'kb': version 1",
    ]

    again = lichen("sync", str(folder), "--index", "kb")
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "'kb' already matches the folder (version 1)"
    assert "0 added, 0 changed, 0 deleted, 3 unchanged; 0 chunks written" in again.stdout

    (folder / "long.md").write_text(sections(6, word="rewritten"))  # 21 chunks -> 6
    (folder / "guides" / "setup.md").unlink()
    (folder / "new.txt").write_text("Shipping takes two days.")
    third = lichen("sync", str(folder), "--index", "kb", "--json")
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)
    assert (report["added"], report["changed"], report["deleted"]) == (["kb/new.txt"], ["kb/long.md"], ["kb/guides/setup.md"])
    assert (report["chunks_written"], report["chunks_deleted"], report["version"]) == (7, 16, 2)
    ids = {doc.id for doc in Client().get_docs_sync("kb")}
    assert {f"kb/long.md#chunk-{i:04d}" for i in range(6)} <= ids
    assert not {f"kb/long.md#chunk-{i:04d}" for i in range(6, 21)} & ids and "kb/guides/setup.md#chunk-0000" not in ids
    assert json.loads(lichen("sync", str(folder), "--index", "kb", "--json").stdout)["version"] == 2  # holds still


def test_a_bad_file_stops_the_sync_or_is_skipped(tmp_path):
    folder = make_folder(tmp_path)
    assert lichen("sync", str(folder), "--index", "kb-bad").returncode == 0
    (folder / "broken.txt").write_bytes(b"\xff\xfe not UTF-8")
    (folder / "new.md").write_text("# New\n\nA new page.\n")
    dry = lichen("sync", str(folder), "--index", "kb-bad", "--dry-run", "--skip-errors")
    assert dry.returncode == 0 and "would sync" in dry.stdout and "+ kb/new.md" in dry.stdout
    assert dry.stdout.splitlines()[-1] == "dry run: 'kb-bad' left as it is (version 1)"
    failed = lichen("sync", str(folder), "--index", "kb-bad")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("lichen: error: 1 of 5 inputs could not be read, so nothing was added: ")
    assert "kb/broken.txt: not UTF-8" in failed.stderr
    assert Client().get_index_sync("kb-bad").version == 1  # nothing written
    skipped = lichen("sync", str(folder), "--index", "kb-bad", "--skip-errors")
    assert skipped.returncode == 0 and "! kb/broken.txt: not UTF-8" in skipped.stdout and "+ kb/new.md (1 chunk)" in skipped.stdout
    assert Client().get_index_sync("kb-bad").version == 2
    usage = lichen("sync", str(folder))
    assert usage.returncode == 2 and "--index" in usage.stderr


def test_add_creates_then_adds_with_chunking_options(tmp_path):
    folder = make_folder(tmp_path)
    created = lichen("add", "kb-add", str(folder / "long.md"), "--chunker", "recursive", "--size", "400", "--chars",
                     "--metadata", '{"team": "support"}', "--json", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    docs = Client().get_docs_sync("kb-add")
    assert json.loads(created.stdout) == {
        "index_name": "kb-add", "added": len(docs), "updated": 0, "deleted": 0, "version": 1, "skipped": [],
    }
    assert {d.metadata["team"] for d in docs} == {"support"} and len(docs) == 3  # 21 sections, ~45 chars each
    assert all(len(d.text) <= 400 for d in docs) and {d.metadata["source"] for d in docs} == {"kb/long.md"}
    added = lichen("add", "kb-add", str(folder / "guides"), str(folder / "missing.md"), "--skip-errors", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == [
        "! kb/missing.md: no such file or folder",
        "added to 'kb-add': 1 added, 0 updated, 0 stale chunks removed (version 2)",
    ]
    wrong = lichen("add", "kb-add", str(folder / "faq.jsonl"), "--metadata", "[1]", cwd=tmp_path)
    assert wrong.returncode == 1 and "--metadata must be a JSON object" in wrong.stderr


def test_sync_against_a_server(tmp_path_factory, tmp_path):
    deployment = Deployment("fs", tmp_path_factory.mktemp("cli-sync-server"), None)
    try:
        credentials = deployment.server.create_project()
        env = credentials.env(deployment.server.url)
        folder = make_folder(tmp_path)
        first = lichen("sync", str(folder), "--index", "kb-remote", env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines()[-1] == "pushed 'kb-remote': version 1"
        (folder / "faq.jsonl").unlink()
        second = lichen("sync", str(folder), "--index", "kb-remote", "--json", env=env)
        assert json.loads(second.stdout)["deleted"] == ["kb/faq.jsonl"]
        remote = deployment.server.client(credentials)
        assert remote.get_index_sync("kb-remote").doc_count == 22
    finally:
        deployment.stop()


def test_progress_shows_one_bar_per_stage(tmp_path, capsys, monkeypatch):
    import lichen._progress as progress
    from lichen.cli import main

    monkeypatch.setattr(progress, "progress_wanted", lambda option, stream=None: True)
    folder = make_folder(tmp_path)
    assert main(["sync", str(folder), "--index", "kb-bars"]) == 0
    err = capsys.readouterr().err
    for stage in ("hashing", "chunking", "writing"):
        assert stage in err, err
    assert "embedding" not in err  # the session's own bar would stack on the stage bar
    monkeypatch.setattr(progress, "progress_wanted", lambda option, stream=None: False)
    (folder / "new.txt").write_text("More text.")
    assert main(["sync", str(folder), "--index", "kb-bars"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, message", [
    (["--chunker", "markdown", "--size", "9999"], "would be cut short when embedded"),
    (["--overlap", "50", "--size", "40"], "overlap (50) must be smaller"),
    (["--metadata", "{nope"], "--metadata is not valid JSON"),
])
def test_bad_options_are_refused(tmp_path, capsys, argv, message):
    from lichen.cli import main

    folder = make_folder(tmp_path)
    assert main(["sync", str(folder), "--index", "kb-opts", *argv]) == 1
    assert message in capsys.readouterr().err
    assert "kb-opts" not in [info.name for info in Client().list_indexes_sync()]
