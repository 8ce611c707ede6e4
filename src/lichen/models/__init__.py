"""Embedding models: the shipped ONNX model, the models users build or pull, and the
registry that hands them out.

Built-in models live inside the package (``lichen-minilm``); models built with
``lichen models build`` (see :mod:`lichen.models.build`) or downloaded from the Hugging Face
Hub with ``lichen models pull`` (:mod:`lichen.models.hub`, names in
:mod:`lichen.models.catalogue`) live in
``<LICHEN_HOME or the user data directory>/models/<model_id>/``. A model is loaded once per
process and shared by every index that uses it (loading costs ~0.15 s and ~190 MB);
:func:`get_embedder` is the only way the rest of Lichen gets one, :func:`get_reranker` the
way it gets a cross-encoder. Nothing here downloads: a missing model is an error that says
how to pull it.

Texts are embedded through :func:`embed_documents` (what is stored) and
:func:`embed_queries` (what is searched with), which add the model's passage and query
prompts (``model.json``'s ``prompts``); ``Embedder.embed`` takes texts as they are.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .._errors import InvalidArgumentError, ModelUnavailableError

if TYPE_CHECKING:
    from .rerank import CrossEncoder

__all__ = [
    "Embedder",
    "ModelInfo",
    "embed_documents",
    "embed_queries",
    "get_embedder",
    "get_reranker",
    "pull",
    "list_models",
    "model_dir",
    "user_models_dir",
    "validate_model_id",
    "model_info",
    "model_provenance",
    "missing_model_message",
    "DEFAULT_MODEL_ID",
    "CUSTOM_MODEL_ID",
    "BUILTIN_MODELS",
]

DEFAULT_MODEL_ID = "lichen-minilm"
CUSTOM_MODEL_ID = "custom"
_MODELS_ROOT = Path(__file__).resolve().parent
BUILTIN_MODELS = ("lichen-minilm",)
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_id: str
    dimension: int

    def embed(self, texts: list[str], *, progress: bool | None = None) -> np.ndarray:
        """Return a ``(len(texts), dimension)`` float32 array of unit vectors. ``progress``
        is the switch of :func:`lichen._progress.progress_wanted` for a bar over long
        batches (``None``: on a terminal only)."""


@dataclass(frozen=True)
class ModelInfo:
    """One available model, as ``lichen models ls`` shows it. ``kind`` is ``"embedder"``
    or ``"cross-encoder"`` (a re-ranker: ``QueryOptions(rerank=...)``); ``revision`` is
    the Hub commit a pulled model was built from; ``prompts`` its query and passage
    prompts."""

    model_id: str
    dimension: int
    max_tokens: int
    pooling: str
    builtin: bool
    path: Path
    source: str | None = None
    kind: str = "embedder"
    revision: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    license: str | None = None


def embed_documents(embedder: Embedder, texts: Sequence[str], *, progress: bool | None = None) -> Any:
    """Vectors of texts to store: the model's passage prompt is put before each one.
    Embedders that know no prompts embed the texts as they are."""
    method = getattr(embedder, "embed_documents", None)
    if method is not None:
        return method(list(texts), progress=progress)
    return embedder.embed(list(texts)) if progress is None else embedder.embed(list(texts), progress=progress)


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> Any:
    """Vectors of texts to search with: the model's query prompt is put before each one,
    and they run through its query encoder if it has one."""
    method = getattr(embedder, "embed_queries", None)
    return method(list(texts)) if method is not None else embedder.embed(list(texts))


_cache: dict[tuple[str, str], Embedder] = {}
_cache_lock = threading.Lock()


def model_dir(model_id: str) -> Path:
    """The directory of a built-in model (inside the package)."""
    return _MODELS_ROOT / model_id


def user_models_dir() -> Path:
    """Where built models go: ``<LICHEN_HOME or the platform user data directory>/models``."""
    from .._home import default_home

    return default_home() / "models"


def validate_model_id(model_id: object) -> str:
    """Return ``model_id`` if it can name a user model, else raise ``InvalidArgumentError``.

    Valid: 1-100 letters, digits, ``-``, ``_`` or ``.``, starting with a letter or digit;
    not ``"custom"`` and not a built-in model's name.
    """
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id):
        raise InvalidArgumentError(
            f"invalid model id {model_id!r}: use 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    if model_id == CUSTOM_MODEL_ID or model_id in BUILTIN_MODELS:
        raise InvalidArgumentError(f"model id {model_id!r} is reserved: choose another name")
    return model_id


def _locate(model_id: str) -> Path | None:
    """The directory holding ``model_id``: built-in first, then the user models."""
    if model_id in BUILTIN_MODELS:
        directory = model_dir(model_id)
        return directory if (directory / "model.onnx").is_file() else None
    if model_id == CUSTOM_MODEL_ID or not _MODEL_ID.fullmatch(model_id):
        return None
    directory = user_models_dir() / model_id
    return directory if (directory / "model.onnx").is_file() and (directory / "model.json").is_file() else None


def _info(model_id: str, directory: Path, builtin: bool) -> ModelInfo | None:
    try:
        manifest = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        return ModelInfo(
            model_id=model_id, dimension=int(manifest["dimension"]), max_tokens=int(manifest["max_tokens"]),
            pooling=str(manifest.get("pooling", "mean")), builtin=builtin, path=directory,
            source=manifest.get("source"), kind=str(manifest.get("kind", "embedder")),
            revision=manifest.get("revision"), prompts=dict(manifest.get("prompts") or {}),
            license=manifest.get("license"),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a half-copied or foreign directory is not a model


def model_info(model_id: str) -> ModelInfo | None:
    """The available model of that id (built-in or in the user models directory), or
    ``None``."""
    directory = _locate(model_id) if isinstance(model_id, str) else None
    return None if directory is None else _info(model_id, directory, model_id in BUILTIN_MODELS)


def model_provenance(model_id: str) -> dict[str, Any]:
    """What an index records about the model its vectors came from (``extra["model"]`` of
    a pushed artifact): the id, and for a built or pulled model its source repository and
    revision, so that a reader without the model is told exactly what to pull."""
    info = model_info(model_id) if model_id != CUSTOM_MODEL_ID else None
    if info is None or info.builtin:
        return {}
    record = {"id": model_id, "source": info.source, "revision": info.revision}
    return {"model": {key: value for key, value in record.items() if value}}


def missing_model_message(model_id: str, *, revision: str | None = None, source: str | None = None) -> str:
    """What to tell someone who needs ``model_id`` and does not have it: how to pull it
    (the catalogue name, or the Hub repository it came from) at the ``revision`` an index
    recorded, and what is available instead."""
    from .catalogue import CATALOGUE, is_repo_name, repo_for_model_id

    repo = source if source and is_repo_name(source) else repo_for_model_id(model_id)
    name = model_id if model_id in CATALOGUE else repo
    known = ", ".join([info.model_id for info in list_models()] + [CUSTOM_MODEL_ID])
    if name is None and source:
        return (
            f"model {model_id!r} is not installed here: it was built from {source}; build it again with "
            f"`lichen models build SRC_DIR --id {model_id}`; available: {known}"
        )
    if name is None:
        return f"unknown or missing model {model_id!r}; available: {known}"
    command = f"lichen models pull {name}"
    if revision:
        command += f" --revision {revision}"
    if name != model_id:
        command += f" --id {model_id}"
    return (
        f"model {model_id!r} is not installed here (nothing is downloaded implicitly): run `{command}` "
        f"(or lichen.models.pull) once, then retry; available: {known}"
    )


def list_models() -> list[ModelInfo]:
    """Built-in models, then the user's built models (sorted by id)."""
    found = [info for name in BUILTIN_MODELS if (info := _info(name, model_dir(name), True)) is not None]
    root = user_models_dir()
    if root.is_dir():
        for directory in sorted(root.iterdir()):
            name = directory.name
            if name in BUILTIN_MODELS or name == CUSTOM_MODEL_ID or not _MODEL_ID.fullmatch(name):
                continue
            if (directory / "model.onnx").is_file() and (info := _info(name, directory, False)) is not None:
                found.append(info)
    return found


def get_embedder(model_id: str = DEFAULT_MODEL_ID) -> Embedder:
    """The process-wide embedder for a model id (loaded on first use): a built-in model, or
    one built with ``lichen models build`` into the user models directory."""
    if model_id == CUSTOM_MODEL_ID:
        raise ModelUnavailableError('model_id="custom" has no embedder: pass embeddings yourself')
    if not isinstance(model_id, str):
        raise ModelUnavailableError(f"model id must be a string, not {type(model_id).__name__}")
    if model_id in BUILTIN_MODELS:  # fast path: no look-up of the user directory
        embedder = _cache.get((model_id, str(model_dir(model_id))))
        if embedder is not None:
            return embedder
    directory = _locate(model_id)
    if directory is None:
        raise ModelUnavailableError(missing_model_message(model_id))
    key = (model_id, str(directory))
    embedder = _cache.get(key)
    if embedder is not None:
        return embedder
    with _cache_lock:
        if key not in _cache:
            info = _info(model_id, directory, model_id in BUILTIN_MODELS)
            if info is not None and info.kind != "embedder":
                raise ModelUnavailableError(
                    f"model {model_id!r} is a {info.kind}, not an embedder: use it as QueryOptions(rerank={model_id!r})"
                )
            from ._onnx import OnnxEmbedder

            _cache[key] = OnnxEmbedder(directory, model_id=model_id)
        return _cache[key]


_rerankers: dict[str, CrossEncoder] = {}


def get_reranker(model_id: str) -> CrossEncoder:
    """The process-wide cross-encoder of that id (a model pulled or built with kind
    ``"cross-encoder"``), loaded on first use; never downloads."""
    directory = _locate(model_id) if isinstance(model_id, str) else None
    if directory is None:
        raise ModelUnavailableError(missing_model_message(str(model_id)))
    key = str(directory)
    reranker = _rerankers.get(key)
    if reranker is not None:
        return reranker
    with _cache_lock:
        if key not in _rerankers:
            from .rerank import CrossEncoder

            _rerankers[key] = CrossEncoder(directory, model_id=model_id)
        return _rerankers[key]


def pull(name: str, revision: str | None = None, **options: Any) -> tuple[Path, dict[str, Any]]:
    """Download a model from the Hugging Face Hub and build it; see
    :func:`lichen.models.hub.pull` (needs ``pip install "lichen[hub]"``)."""
    from .hub import pull as _pull

    return _pull(name, revision, **options)
