"""The distribution's public names and typing marker."""

from __future__ import annotations

from pathlib import Path

import crewai_lichen
import tomllib


def test_public_names():
    assert sorted(crewai_lichen.__all__) == [
        "LichenKnowledgeStorage",
        "LichenSearchInput",
        "LichenSearchTool",
        "knowledge_index_name",
        "lichen_knowledge_storage_factory",
    ]
    assert all(hasattr(crewai_lichen, name) for name in crewai_lichen.__all__)
    assert (Path(crewai_lichen.__file__).parent / "py.typed").exists()


def test_pyproject():
    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert config["project"]["name"] == "crewai-lichen"
    assert "crewai>=1.15,<2" in config["project"]["dependencies"]
    assert "test" in config["project"]["optional-dependencies"]
