"""The distribution's public names, namespace layout, plugin registration and metadata;
the interim rule is Lichen's own (``lichen.interim``), re-exported."""

from __future__ import annotations

from pathlib import Path

import livekit.plugins.lichen as plugin
import tomllib
from livekit.agents import Plugin

HERE = Path(__file__).resolve().parents[1]


def test_public_names():
    assert sorted(plugin.__all__) == [
        "FILLER_WORDS",
        "InterimQueries",
        "LichenContext",
        "LichenOptions",
        "LichenTurn",
        "TurnQuery",
        "__version__",
        "match_prepared",
    ]
    assert all(hasattr(plugin, name) for name in plugin.__all__)
    assert (Path(plugin.__file__).parent / "py.typed").exists()


def test_a_livekit_plugin():
    # livekit/ and livekit/plugins/ are namespace packages shared with livekit-agents.
    assert not (HERE / "livekit" / "__init__.py").exists()
    assert not (HERE / "livekit" / "plugins" / "__init__.py").exists()
    assert any(p.title == "livekit.plugins.lichen" for p in Plugin.registered_plugins)


def test_pyproject():
    config = tomllib.loads((HERE / "pyproject.toml").read_text())
    assert config["project"]["name"] == "livekit-plugins-lichen"
    assert config["project"]["version"] == plugin.__version__
    assert "livekit-agents>=1.8,<2" in config["project"]["dependencies"]
    assert "test" in config["project"]["optional-dependencies"]


def test_the_interim_rule_is_lichens_own():
    import lichen.interim

    for name in ("FILLER_WORDS", "InterimQueries", "TurnQuery", "match_prepared"):
        assert getattr(plugin, name) is getattr(lichen.interim, name)
    assert not (HERE / "livekit" / "plugins" / "lichen" / "interim.py").exists()  # no copy to drift
