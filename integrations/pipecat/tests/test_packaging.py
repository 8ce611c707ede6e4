"""The distribution's public names, typing marker and metadata."""

from __future__ import annotations

from pathlib import Path

import pipecat_lichen
import tomllib


def test_public_names():
    assert sorted(pipecat_lichen.__all__) == [
        "FILLER_WORDS",
        "InterimQueries",
        "LichenContextProcessor",
        "LichenParams",
        "LichenTranscriptListener",
        "LichenTurn",
        "TurnQuery",
        "match_prepared",
    ]
    assert all(hasattr(pipecat_lichen, name) for name in pipecat_lichen.__all__)
    assert (Path(pipecat_lichen.__file__).parent / "py.typed").exists()


def test_the_interim_rule_is_lichens_own():
    import lichen.interim

    for name in ("FILLER_WORDS", "InterimQueries", "TurnQuery", "match_prepared"):
        assert getattr(pipecat_lichen, name) is getattr(lichen.interim, name)


def test_pyproject():
    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert config["project"]["name"] == "pipecat-lichen"
    assert "pipecat-ai>=1.14,<2" in config["project"]["dependencies"]
    assert "test" in config["project"]["optional-dependencies"]
