"""The architecture is a checked contract (docs/architecture.md), not a hope: the layer
contracts in pyproject.toml hold (no import circle inside a wing either), the code passes ruff, the HTTP client never loads the
server, the framework adapters use only public names, and the public API stays what it is.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADAPTER_PACKAGES = [
    path
    for path in (ROOT / "integrations").glob("*/*")
    if path.is_dir() and path.name not in {"tests", "build"} and not path.name.endswith(".egg-info")
]

#: ``sorted(lichen.__all__)``: the names users import. A change here is a change of the
#: public API, to be made on purpose (and to the docs), never by a refactor.
PUBLIC_API = [
    "Client", "ConflictError", "ContextHit", "ContextSearch", "CorruptDataError", "DocumentInfo", "IndexInfo",
    "IndexNotLoadedError", "IndexStatus", "InvalidArgumentError", "LichenError", "LimitExceededError", "LoadReport", "ModelUnavailableError",
    "NetworkError", "NotFoundError", "PushIndexResult", "QueryOptions", "QueryResultDocument", "SearchResult",
    "SessionIndex", "SourceError", "StorageError", "TruncationWarning", "Unauthorized", "UnauthorizedError",
    "__version__", "get_embedder", "merge_ranked",
]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_the_layer_contracts_hold():
    done = run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_ruff_passes_on_the_package_and_the_adapters():
    done = run(str(BIN / "ruff"), "check", "src", "integrations")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_http_client_loads_nothing_of_the_server():
    code = (
        "import sys\n"
        "from lichen.stores.http import HttpStore\n"
        "import lichen\n"
        "HttpStore('http://127.0.0.1:9', 'prj_x', 'lk_x', cache=False)\n"
        "lichen.Client('prj_x', 'lk_x', url='http://127.0.0.1:9')\n"
        "print(sorted(m for m in sys.modules if m == 'lichen.server' or m.startswith('lichen.server.')))\n"
    )
    done = run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def _lichen_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return [module for module in modules if module == "lichen" or module.startswith("lichen.")]


@pytest.mark.parametrize("package", ADAPTER_PACKAGES, ids=lambda path: str(path.relative_to(ROOT / "integrations")))
def test_adapters_import_only_public_lichen_modules(package):
    private = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in package.rglob("*.py")
        for module in _lichen_imports(path)
        if any(part.startswith("_") for part in module.split("."))
    }
    assert not private


def test_the_public_api_is_unchanged():
    import lichen

    assert sorted(lichen.__all__) == PUBLIC_API
