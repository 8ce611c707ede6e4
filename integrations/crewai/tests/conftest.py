"""Fixtures for crewai-lichen's tests: an isolated embedded store per test, CrewAI's
telemetry and tracing off, no LLM anywhere.

CrewAI reads its telemetry switches when it is first imported, so they are set here,
before any test module imports it. Agents in these tests run on a scripted LLM
(``ScriptedLLM``): CrewAI's own ReAct loop, tool calls and knowledge retrieval run for
real, and the "model" answers with the replies a test gives it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

for _switch in ("CREWAI_DISABLE_TELEMETRY", "OTEL_SDK_DISABLED"):
    os.environ[_switch] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
# CrewAI keeps per-project data (a crew's last task outputs) in the user data directory
# under the project's name, the working directory's unless CREWAI_STORAGE_DIR says; an
# absolute path keeps the tests' runs out of the user's home.
_crewai_data = tempfile.mkdtemp(prefix="crewai-lichen-tests-")
os.environ["CREWAI_STORAGE_DIR"] = _crewai_data
atexit.register(shutil.rmtree, _crewai_data, ignore_errors=True)

# Importing CrewAI sets TOKENIZERS_PARALLELISM=false for the whole process (for Chroma's
# tokenizer); undone here so the rest of a combined test run tokenizes as it would alone.
_tokenizers_parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
import crewai  # noqa: E402, F401

if _tokenizers_parallelism is None:
    os.environ.pop("TOKENIZERS_PARALLELISM", None)
else:
    os.environ["TOKENIZERS_PARALLELISM"] = _tokenizers_parallelism

import pytest  # noqa: E402
from lichen import Client  # noqa: E402


@pytest.fixture(autouse=True)
def lichen_home(tmp_path, monkeypatch):
    """A fresh embedded store directory, and no server settings from the environment."""
    home = tmp_path / "lichen-home"
    monkeypatch.setenv("LICHEN_HOME", str(home))
    for name in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def client(lichen_home) -> Client:
    return Client(home=lichen_home)
