"""Agent hand-off: one agent builds context in a session and pushes it; a second agent,
in another process, resumes it by name from a Lichen server and carries on.

The recipe starts its own ``lichen serve`` on a free local port with a throw-away data
directory, creates a project, and runs the two agents as separate processes that share
nothing but the server URL and the project credentials (the ``LICHEN_*`` environment
variables). The second agent gets the first agent's documents and vectors without
re-embedding them.

Run: ``python cookbook/agent_handoff.py``
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from lichen import Client, DocumentInfo, QueryOptions

SESSION = "ticket-1042"

TRIAGE_NOTES = [
    ("triage-1", "Customer cannot log in after changing their phone; two-factor codes are rejected."),
    ("triage-2", "Account email is verified; last successful login was nine days ago."),
    ("triage-3", "Customer has their backup codes printed but has not tried them yet."),
]
SPECIALIST_NOTES = [
    ("security-1", "Walked the customer through signing in with a backup code; login succeeded."),
    ("security-2", "Re-enrolled two-factor authentication on the new phone and revoked the old device."),
]


async def triage_agent() -> None:
    """Agent 1: gathers facts, then hands the session over by pushing it."""
    client = Client()  # LICHEN_URL / LICHEN_PROJECT_ID / LICHEN_PROJECT_KEY from the environment
    session = await client.session(index_name=SESSION)
    await session.add_docs([DocumentInfo(id=i, text=t, metadata={"agent": "triage"}) for i, t in TRIAGE_NOTES])
    result = await session.push_index()
    print(f"[triage] pushed {result.doc_count} notes to {SESSION!r} (version {result.version})")


async def specialist_agent() -> None:
    """Agent 2: resumes the hand-off by name, asks it questions, adds its own notes."""
    client = Client()
    session = await client.session(index_name=SESSION)
    print(f"[specialist] resumed {SESSION!r} with {session.doc_count} notes from the triage agent")
    answer = await session.query("what has the customer already tried for two-factor?", QueryOptions(top_k=2))
    for doc in answer.docs:
        print(f"[specialist]   context {doc.id} ({doc.metadata['agent']}) {doc.score:.3f} {doc.text}")
    await session.add_docs([DocumentInfo(id=i, text=t, metadata={"agent": "security"}) for i, t in SPECIALIST_NOTES])
    result = await session.push_index()
    print(f"[specialist] pushed {result.doc_count} notes (version {result.version})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"lichen serve exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered (401 without credentials): it is up
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"lichen serve did not answer at {url}")


def run_agent(role: str, env: dict[str, str]) -> None:
    completed = subprocess.run([sys.executable, __file__, role], env=env, text=True, capture_output=True)
    print(completed.stdout, end="")
    if completed.returncode != 0:
        raise SystemExit(f"{role} agent failed:\n{completed.stderr}")


def main() -> None:
    lichen_cli = [sys.executable, "-m", "lichen.cli"]
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as cache_dir:
        created = subprocess.run(
            [*lichen_cli, "project", "create", "--data", data_dir, "--json"], text=True, capture_output=True, check=True
        )
        project = json.loads(created.stdout)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [*lichen_cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--data", data_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(f"{url}/v1/project", server)
            print(f"[server] lichen serve on {url}, project {project['project_id']}")
            env = {
                **os.environ,
                "LICHEN_URL": url,
                "LICHEN_PROJECT_ID": project["project_id"],
                "LICHEN_PROJECT_KEY": project["project_key"],
                "LICHEN_HOME": cache_dir,
                "LICHEN_PROGRESS": "0",
            }
            run_agent("triage", env)
            run_agent("specialist", env)
            os.environ.update(env)
            final = Client().get_index_sync(SESSION)
            print(f"[server] {SESSION!r} now holds {final.doc_count} notes at version {final.version}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    if sys.argv[1:] == ["triage"]:
        asyncio.run(triage_agent())
    elif sys.argv[1:] == ["specialist"]:
        asyncio.run(specialist_agent())
    else:
        main()
