"""Where ``StorageContext.persist`` puts a Lichen index, and how it is read back.

LlamaIndex names every vector store's file ``<namespace>__vector_store.json``, and
``StorageContext.from_defaults(persist_dir=...)`` (without ``vector_store=``) parses each
such file as a ``SimpleVectorStore``'s JSON. A Lichen artifact is binary, so written under
that name it made the conventional reload die with a ``UnicodeDecodeError``. So a path
ending in ``.json`` gets JSON: a small manifest naming the artifact written beside it
(``default__vector_store.lix``). ``SimpleVectorStore`` cannot load the manifest either,
but its parser stops on a value that *is* the message saying how to load the index, so
that is what the user reads at the end of the traceback. Other paths (``store.persist(
"kb.lichen")``) hold the artifact itself, as do ``.json`` files written before the
manifest existed; both still read.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from lichen import CorruptDataError, SessionIndex
from lichen.format import read_artifact, write_artifact

__all__ = ["ARTIFACT_SUFFIX", "RELOAD_HINT", "artifact_path", "read_index", "write_index"]

#: The artifact's file name next to a ``.json`` persist path: its stem plus this suffix
#: (the suffix ``lichen push`` and ``lichen pull`` use for artifacts).
ARTIFACT_SUFFIX = ".lix"
#: What ``StorageContext.from_defaults(persist_dir=...)`` without ``vector_store=`` says.
RELOAD_HINT = (
    "this is not a SimpleVectorStore but a Lichen index ({artifact} beside this file). Load it with "
    "store = LichenVectorStore.from_persist_dir(persist_dir) and pass "
    "StorageContext.from_defaults(persist_dir=persist_dir, vector_store=store) "
    "(or store.storage_context(persist_dir)) to load_index_from_storage"
)
_FORMAT = "lichen-vector-store"


def _is_manifest_path(persist_path: str) -> bool:
    return persist_path.endswith(".json")


def artifact_path(persist_path: str) -> str:
    """Where the artifact of ``persist_path`` lives (itself unless it is a ``.json``)."""
    if not _is_manifest_path(persist_path):
        return persist_path
    return persist_path[: -len(".json")] + ARTIFACT_SUFFIX


def _manifest(artifact_name: str, index: SessionIndex) -> Dict[str, Any]:
    hint = RELOAD_HINT.format(artifact=artifact_name)
    return {
        "format": _FORMAT,
        "artifact": artifact_name,
        "index_name": index.name,
        "model_id": index.model_id,
        # SimpleVectorStore reads embedding_dict as {id: [float, ...]}: the hint is the
        # "float" it fails on, so its error message is the hint.
        "embedding_dict": {"lichen": [hint]},
    }


def write_index(index: SessionIndex, persist_path: str, fs: Any = None) -> None:
    """Write ``index`` for ``persist_path``: the artifact (atomically on the local disk),
    then, for a ``.json`` path, the manifest naming it."""
    target = artifact_path(persist_path)
    if fs is None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        index.save(target)
    else:
        snapshot = index.core.snapshot(index.name, index.model_id)
        snapshot.version = index.version
        with fs.open(target, "wb") as f:
            write_artifact(snapshot, f)
    if not _is_manifest_path(persist_path):
        return
    text = json.dumps(_manifest(posixpath.basename(target.replace(os.sep, "/")), index), indent=2)
    if fs is not None:
        with fs.open(persist_path, "w") as f:
            f.write(text)
        return
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(persist_path)), suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, persist_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _resolve(persist_path: str, head: bytes, read_text: Any, remote: bool) -> Optional[str]:
    """The artifact's path when ``persist_path`` is a manifest, else ``None``."""
    if not head.lstrip().startswith(b"{"):
        return None
    try:
        manifest = json.loads(read_text())
    except ValueError as exc:
        raise CorruptDataError(f"{persist_path} is neither a Lichen artifact nor its manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or not isinstance(manifest.get("artifact"), str):
        raise CorruptDataError(f"{persist_path} is JSON but not a LichenVectorStore manifest")
    if remote:
        return posixpath.join(posixpath.dirname(persist_path), manifest["artifact"])
    return os.path.join(os.path.dirname(persist_path), manifest["artifact"])


def read_index(persist_path: str, fs: Any = None, *, name: Optional[str] = None) -> SessionIndex:
    """The index written for ``persist_path`` by :func:`write_index` (or an artifact
    written there directly)."""
    if fs is None:
        try:
            with open(persist_path, "rb") as f:
                head = f.read(64)
        except FileNotFoundError:
            return SessionIndex.open(persist_path, name=name)  # Lichen's own NotFoundError
        target = _resolve(persist_path, head, lambda: Path(persist_path).read_text(encoding="utf-8"), False)
        return SessionIndex.open(target or persist_path, name=name)
    with fs.open(persist_path, "rb") as f:
        data = f.read()
    target = _resolve(persist_path, data[:64], lambda: data.decode("utf-8"), True)
    if target is not None:
        with fs.open(target, "rb") as f:
            data = f.read()
    return SessionIndex.from_snapshot(read_artifact(data), name=name)
