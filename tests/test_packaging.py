"""What a user installing Lichen from a registry sees: a licence, metadata that says who
made it and where it lives, and a version that is the one installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECTS = [ROOT / "pyproject.toml", ROOT / "integrations/langchain/pyproject.toml", ROOT / "integrations/llamaindex/pyproject.toml"]


def test_the_project_licence_is_at_the_root():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a pointer to it


@pytest.mark.parametrize("path", PYPROJECTS, ids=lambda p: p.parent.name)
def test_every_distribution_says_who_made_it_where_it_lives_and_its_licence(path):
    project = tomllib.loads(path.read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert all(author.get("name") for author in project["authors"])
    assert {"Homepage", "Repository", "Issues", "Documentation"} <= set(project["urls"])
    assert all(url.startswith("https://") for url in project["urls"].values())


def test_version_comes_from_the_installed_metadata():
    """``lichen.__version__`` is whatever the installed distribution says (as in the
    adapters), never a second copy of the number to forget to bump."""
    probe = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda name: '9.8.7' if name == 'lichen' else real(name)\n"
        "import lichen\n"
        "print(lichen.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "9.8.7"
    import importlib.metadata

    import lichen

    assert lichen.__version__ == importlib.metadata.version("lichen") == tomllib.loads(
        (ROOT / "pyproject.toml").read_text()
    )["project"]["version"]
