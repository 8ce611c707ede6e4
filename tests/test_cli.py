"""The ``lichen`` command: ``project create`` and ``serve`` (run by the server fixtures),
and ``ls / info / push / pull / query / rm`` against the embedded store and a server,
in human and ``--json`` output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from server_helpers import Deployment

from lichen import Client, DocumentInfo, SessionIndex
from lichen.cli import main


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    deployed = Deployment("fs", tmp_path_factory.mktemp("cli"), None)
    yield deployed
    deployed.stop()


@pytest.fixture(params=["embedded", "server"])
def target(request, monkeypatch):
    """Where the commands point: the embedded store (LICHEN_HOME) or a server (env)."""
    if request.param == "server":
        deployment = request.getfixturevalue("deployment")
        credentials = deployment.server.create_project()
        for key, value in credentials.env(deployment.server.url).items():
            monkeypatch.setenv(key, value)
    return request.param


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys, *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_project_create_prints_credentials(tmp_path):
    command = [shutil.which("lichen")] if shutil.which("lichen") else [sys.executable, "-m", "lichen.cli"]
    done = subprocess.run([*command, "project", "create", "--data", str(tmp_path), "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert set(created) == {"project_id", "project_key"}
    record = json.loads((tmp_path / "projects" / f"{created['project_id']}.json").read_text())
    assert created["project_key"] not in json.dumps(record)  # stored hashed only
    assert record["key_hash"].startswith("scrypt$")

    human = subprocess.run([*command, "project", "create", "--data", str(tmp_path), "--id", "team-a"], capture_output=True, text=True, timeout=60)
    assert human.returncode == 0 and human.stdout.startswith("project_id:  team-a\nproject_key: lk_")
    again = subprocess.run([*command, "project", "create", "--data", str(tmp_path), "--id", "team-a"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_push_ls_info_query_pull_rm(target, capsys, tmp_path):
    rows = [
        {"id": "faq-1", "text": "Refunds arrive within 5 business days.", "metadata": {"topic": "billing"}},
        {"id": "faq-2", "text": "Reset your password from the sign-in page.", "metadata": {"topic": "account"}},
        {"id": "faq-3", "text": "Shipping takes 3 to 7 days.", "metadata": {"topic": "shipping"}},
    ]
    write_jsonl(tmp_path / "faqs.jsonl", rows)

    code, out, _ = run(capsys, "push", str(tmp_path / "faqs.jsonl"))
    assert code == 0 and out.startswith("pushed 'faqs': 3 docs, version 1")
    assert run_json(capsys, "push", str(tmp_path / "faqs.jsonl"))["version"] == 2  # push replaces

    listed = run_json(capsys, "ls")
    assert [(i["name"], i["doc_count"], i["model_id"]) for i in listed] == [("faqs", 3, "lichen-minilm")]
    code, out, _ = run(capsys, "ls")
    assert out.splitlines()[0].split() == ["NAME", "DOCS", "MODEL", "DIM", "VERSION", "UPDATED"]
    assert out.splitlines()[1].split()[:5] == ["faqs", "3", "lichen-minilm", "384", "2"]
    assert run_json(capsys, "info", "faqs")["dimension"] == 384
    code, out, _ = run(capsys, "info", "faqs")
    assert "doc_count:   3" in out

    hits = run_json(capsys, "query", "faqs", "when will my refund come", "--top-k", "2")
    assert hits["docs"][0]["id"] == "faq-1" and len(hits["docs"]) == 2
    filtered = run_json(capsys, "query", "faqs", "refund", "--filter", '{"topic": "shipping"}')
    assert [d["id"] for d in filtered["docs"]] == ["faq-3"]
    code, out, _ = run(capsys, "query", "faqs", "password help", "--top-k", "1")
    assert code == 0 and "faq-2" in out.splitlines()[0]

    pulled = run_json(capsys, "pull", "faqs", "-o", str(tmp_path / "copy.lix"))
    assert pulled["doc_count"] == 3
    copy = SessionIndex.open(tmp_path / "copy.lix")
    original = Client().store.read("faqs")
    assert np.array_equal(copy.core.matrix, original.matrix)
    run_json(capsys, "pull", "faqs", "-o", str(tmp_path / "copy.jsonl"), "--embeddings")
    exported = [json.loads(line) for line in (tmp_path / "copy.jsonl").read_text().splitlines()]
    assert [r["id"] for r in exported] == ["faq-1", "faq-2", "faq-3"] and len(exported[0]["embedding"]) == 384

    # An artifact pushes back unchanged under a new name: no re-embedding.
    assert run_json(capsys, "push", str(tmp_path / "copy.lix"), "--name", "faqs-copy")["doc_count"] == 3
    assert np.array_equal(Client().store.read("faqs-copy").matrix, original.matrix)

    assert run_json(capsys, "rm", "faqs-copy") == {"index_name": "faqs-copy", "deleted": True}
    code, out, _ = run(capsys, "rm", "faqs-copy")
    assert code == 1 and "no index 'faqs-copy'" in out


def test_push_jsonl_with_own_embeddings_uses_the_custom_model(target, capsys, tmp_path):
    rows = [{"id": f"v{i}", "text": f"vector {i}", "embedding": list(np.eye(4)[i])} for i in range(3)]
    write_jsonl(tmp_path / "vectors.jsonl", rows)
    assert run_json(capsys, "push", str(tmp_path / "vectors.jsonl"), "--name", "vectors")["doc_count"] == 3
    assert run_json(capsys, "info", "vectors")["model_id"] == "custom"


def test_errors_are_clear_and_exit_nonzero(target, capsys, tmp_path):
    code, _, err = run(capsys, "info", "missing")
    assert code == 1 and err.startswith("lichen: error: index 'missing' not found")
    (tmp_path / "bad.jsonl").write_text('{"text": "no id"}\n')
    code, _, err = run(capsys, "push", str(tmp_path / "bad.jsonl"))
    assert code == 1 and "bad.jsonl:1" in err
    code, _, err = run(capsys, "query", "missing", "x", "--filter", "{not json")
    assert code == 1 and "--filter is not valid JSON" in err
    Client().create_index_sync("here", [DocumentInfo(id="a", text="a", embedding=[1.0, 0.0])], model_id="custom")
    code, _, err = run(capsys, "pull", "here", "-o", str(tmp_path / "no-such-dir" / "here.lix"))
    assert code == 1 and err.startswith("lichen: error:") and "Traceback" not in err


def test_a_deeply_nested_filter_is_a_clear_error_without_a_traceback(capsys):
    Client().create_index_sync("nested", [DocumentInfo(id="a", text="refunds take five days", metadata={"t": "x"})])
    for levels in (40, 500, 5000):  # past the filter's depth cap; past what json.loads can parse
        deep = '{"$and": [' * levels + '{"t": "x"}' + "]}" * levels
        code, _, err = run(capsys, "query", "nested", "refund", "--filter", deep)
        assert code == 1 and err.startswith("lichen: error:") and "nested" in err, err
        assert "Traceback" not in err


def test_wrong_credentials_from_the_cli(deployment, capsys, monkeypatch):
    monkeypatch.setenv("LICHEN_URL", deployment.server.url)
    code, _, err = run(capsys, "ls", "--project-id", "prj_nobody", "--project-key", "lk_wrong")
    assert code == 1 and "invalid project id or key" in err


def test_embedded_and_server_are_separate_worlds(deployment, capsys, monkeypatch):
    Client().create_index_sync("local-only", [DocumentInfo(id="a", text="a", embedding=[1.0, 0.0])], model_id="custom")
    credentials = deployment.server.create_project()
    code, out, _ = run(capsys, "ls", "--url", deployment.server.url, "--project-id", credentials.project_id,
                       "--project-key", credentials.project_key)
    assert code == 0 and out.strip() == "no indexes"
    assert [i["name"] for i in run_json(capsys, "ls")] == ["local-only"]
    assert os.environ.get("LICHEN_URL") is None


def _lichen_command() -> list[str]:
    return [shutil.which("lichen")] if shutil.which("lichen") else [sys.executable, "-m", "lichen.cli"]


def _push_reporting_to(stderr_is_a_terminal: bool, path, home) -> str:
    """Run ``lichen push`` as a user would, its standard error a pseudo-terminal or a
    pipe, and return what it wrote there."""
    env = {**os.environ, "LICHEN_HOME": str(home)}
    env.pop("LICHEN_PROGRESS", None)
    if not stderr_is_a_terminal:
        done = subprocess.run([*_lichen_command(), "push", str(path)], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0x0
    try:
        process = subprocess.Popen(
            [*_lichen_command(), "push", str(path)], stdout=subprocess.PIPE, stderr=follower, env=env
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0
        process.stdout.close()
    finally:
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_push_of_a_big_jsonl_shows_embedding_progress_on_a_terminal_only(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"id": f"p{i}", "text": f"passage number {i}"} for i in range(300)])
    on_terminal = _push_reporting_to(True, tmp_path / "corpus.jsonl", tmp_path / "home-a")
    assert "embedding" in on_terminal and "/300" in on_terminal
    piped = _push_reporting_to(False, tmp_path / "corpus.jsonl", tmp_path / "home-b")
    assert "embedding" not in piped and "\r" not in piped


# ---------------------------------------------------------------- first-hour frictions
def test_version_and_help_say_what_a_new_user_needs(capsys):
    import lichen

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"lichen {lichen.__version__}"
    helps = {}
    for command in ([], ["query"], ["serve"], ["info"], ["pull"], ["rm"], ["ls"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        helps[" ".join(command)] = capsys.readouterr().out
    for text in helps.values():  # every page lists the environment the CLI reads
        for variable in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY", "LICHEN_HOME"):
            assert variable in text
    assert "how many hits (default: 5)" in " ".join(helps["query"].split())
    assert "name                  index name" in helps["query"] and "the query text" in helps["query"]
    assert "(default: 127.0.0.1" in helps["serve"] and "(default: 8080)" in helps["serve"]
    for command in ("info", "pull", "rm"):
        assert "index name" in helps[command]


def test_project_create_prints_an_export_line_with_the_url(tmp_path, capsys):
    code, out, err = run(capsys, "project", "create", "--data", str(tmp_path), "--id", "team-b")
    assert code == 0 and out.startswith("project_id:  team-b\n")
    key = out.split("project_key: ")[1].split()[0]
    assert f"export LICHEN_URL=http://127.0.0.1:8080 LICHEN_PROJECT_ID=team-b LICHEN_PROJECT_KEY={key}" in err
    code, _, err = run(capsys, "project", "create", "--data", str(tmp_path), "--url", "https://lichen.example:9000")
    assert code == 0 and "export LICHEN_URL=https://lichen.example:9000 LICHEN_PROJECT_ID=" in err


def test_missing_credentials_name_the_cli_flags_and_variables(capsys, monkeypatch):
    monkeypatch.setenv("LICHEN_URL", "http://127.0.0.1:9")  # checked before anything is sent
    code, _, err = run(capsys, "ls")
    assert code == 1 and "--project-id and --project-key" in err and "LICHEN_PROJECT_ID" in err
    assert "Client(" not in err
    code, _, err = run(capsys, "ls", "--project-id", "prj_x")
    assert code == 1 and "pass --project-key," in err


def test_push_of_a_file_that_is_no_index_says_what_it_expects(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("just some notes\n")
    code, _, err = run(capsys, "push", str(tmp_path / "notes.txt"))
    assert code == 1 and "expected a .lix index artifact" in err and ".jsonl" in err
    assert "magic" not in err
    assert run_json(capsys, "ls") == []  # nothing stored


def test_hybrid_scores_are_labelled_as_fused(capsys, tmp_path):
    rows = [
        {"id": "faq-1", "text": "Refunds arrive within 5 business days."},
        {"id": "faq-2", "text": "Reset your password from the sign-in page."},
    ]
    write_jsonl(tmp_path / "faqs.jsonl", rows)
    assert run_json(capsys, "push", str(tmp_path / "faqs.jsonl"))["doc_count"] == 2
    code, out, _ = run(capsys, "query", "faqs", "refund days", "--alpha", "0.5")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("hybrid (alpha 0.5): scores are reciprocal-rank fusion scores")
    assert "not cosine similarities" in lines[0]
    assert lines[1].split()[:2] == ["1.", "fused"] and "vector 0." in lines[1] and "faq-1" in lines[1]
    assert run_json(capsys, "query", "faqs", "refund", "--alpha", "0.5")["score_kind"] == "fused"
    assert run_json(capsys, "query", "faqs", "refund")["score_kind"] == "cosine"
    code, out, _ = run(capsys, "query", "faqs", "refund")
    assert "fused" not in out and out.splitlines()[0].split()[2] == "faq-1"
