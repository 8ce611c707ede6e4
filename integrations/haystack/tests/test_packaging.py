"""One distribution, three modules in Haystack's integration namespaces."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import tomllib

SOURCE = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("haystack_integrations.document_stores.lichen", ["LichenDocumentStore", "to_lichen_filter"]),
        ("haystack_integrations.components.retrievers.lichen", ["LichenBM25Retriever", "LichenEmbeddingRetriever"]),
        ("haystack_integrations.components.embedders.lichen", ["LichenTextEmbedder"]),
    ],
)
def test_public_names_and_typing_marker(module, names):
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(names)
    assert all(hasattr(imported, name) for name in names)
    assert (Path(imported.__file__).parent / "py.typed").exists()


def test_namespace_levels_have_no_init():
    for level in ("", "/document_stores", "/components", "/components/retrievers", "/components/embedders"):
        assert not (SOURCE / f"haystack_integrations{level}" / "__init__.py").exists(), level
    import haystack_integrations

    assert getattr(haystack_integrations, "__file__", None) is None  # a namespace package


def test_pyproject_declares_the_namespace_layout():
    config = tomllib.loads((SOURCE.parent / "pyproject.toml").read_text())
    assert config["project"]["name"] == "lichen-haystack"
    find = config["tool"]["setuptools"]["packages"]["find"]
    assert find == {"where": ["src"], "include": ["haystack_integrations*"], "namespaces": True}
    assert "test" in config["project"]["optional-dependencies"]
