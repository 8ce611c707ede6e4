"""The distribution adds ``llama_index.tools.lichen`` to LlamaIndex's namespace."""

from __future__ import annotations

from pathlib import Path

import tomllib

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def test_public_names_and_typing_marker():
    import llama_index.tools.lichen as module

    assert module.__all__ == ["LichenToolSpec"]
    assert (Path(module.__file__).parent / "py.typed").exists()
    assert Path(module.__file__).parts[-4:] == ("llama_index", "tools", "lichen", "__init__.py")


def test_shares_the_llama_index_namespace_with_core():
    import llama_index
    import llama_index.core  # noqa: F401

    assert getattr(llama_index, "__file__", None) is None  # a namespace package
    for level in ("llama_index", "llama_index/tools"):
        assert not (PACKAGE_ROOT / level / "__init__.py").exists(), level


def test_pyproject():
    config = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())
    assert config["project"]["name"] == "llama-index-tools-lichen"
    find = config["tool"]["setuptools"]["packages"]["find"]
    assert find["namespaces"] is True and find["include"] == ["llama_index.tools.lichen*"]
    assert "test" in config["project"]["optional-dependencies"]
