"""The one distribution provides three LlamaIndex namespaces next to llama-index-core's."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("llama_index.vector_stores.lichen", ["LichenVectorStore", "to_lichen_filter", "OPERATOR_MAP", "HYBRID_DEFAULT_ALPHA", "SCORE_KEYS"]),
        ("llama_index.embeddings.lichen", ["LichenEmbedding"]),
        ("llama_index.retrievers.lichen", ["LichenContextRetriever", "SOURCE_KEY"]),
    ],
)
def test_public_names(module, names):
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(names)
    assert all(hasattr(imported, name) for name in names)


def test_shares_the_llama_index_namespace_with_core():
    import llama_index
    import llama_index.core
    import llama_index.vector_stores.lichen

    assert getattr(llama_index, "__file__", None) is None  # a namespace package
    assert Path(llama_index.core.__file__).parent.parent.name == "llama_index"
    assert Path(llama_index.vector_stores.lichen.__file__).parts[-4:] == ("llama_index", "vector_stores", "lichen", "__init__.py")


def test_namespace_levels_have_no_init():
    for level in ("llama_index", "llama_index/vector_stores", "llama_index/embeddings", "llama_index/retrievers"):
        assert not (PACKAGE_ROOT / level / "__init__.py").exists(), level
    config = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    assert find["namespaces"] is True and find["include"] == ["llama_index*"]
    assert "llama-index-core>=0.14.16,<0.15" in config["project"]["dependencies"]


def test_the_wheel_ships_a_typing_marker_in_each_namespace(tmp_path):
    """Type checkers read the three packages' annotations only if each ships ``py.typed``
    (PEP 561), in the built distribution, not just in the source tree."""
    source = tmp_path / "source"
    shutil.copytree(PACKAGE_ROOT, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("vector_stores", "embeddings", "retrievers"):
        assert f"llama_index/{package}/lichen/py.typed" in names, package
