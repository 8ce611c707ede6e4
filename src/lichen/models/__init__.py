"""Embedding models: the shipped ONNX model, the models users build, and the registry that
hands them out.

Built-in models live inside the package (``lichen-minilm``); models built with
``lichen models build`` (see :mod:`lichen.models.build`) live in
``<LICHEN_HOME or the user data directory>/models/<model_id>/``. A model is loaded once per
process and shared by every index that uses it (loading costs ~0.15 s and ~190 MB);
:func:`get_embedder` is the only way the rest of Lichen gets one.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .._errors import InvalidArgumentError, ModelUnavailableError

__all__ = [
    "Embedder",
    "ModelInfo",
    "get_embedder",
    "list_models",
    "model_dir",
    "user_models_dir",
    "validate_model_id",
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
    """One available model, as ``lichen models ls`` shows it."""

    model_id: str
    dimension: int
    max_tokens: int
    pooling: str
    builtin: bool
    path: Path
    source: str | None = None


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
            source=manifest.get("source"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a half-copied or foreign directory is not a model


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
        known = ", ".join([info.model_id for info in list_models()] + [CUSTOM_MODEL_ID])
        raise ModelUnavailableError(f"unknown or missing model {model_id!r}; available: {known}")
    key = (model_id, str(directory))
    embedder = _cache.get(key)
    if embedder is not None:
        return embedder
    with _cache_lock:
        if key not in _cache:
            from ._onnx import OnnxEmbedder

            _cache[key] = OnnxEmbedder(directory, model_id=model_id)
        return _cache[key]
