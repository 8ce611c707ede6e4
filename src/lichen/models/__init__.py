"""Embedding models: the shipped ONNX model and the registry that hands it out.

A model is loaded once per process and shared by every index that uses it (loading costs
~0.15 s and ~190 MB); :func:`get_embedder` is the only way the rest of Lichen gets one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .._errors import ModelUnavailableError

__all__ = ["Embedder", "get_embedder", "DEFAULT_MODEL_ID", "CUSTOM_MODEL_ID", "BUILTIN_MODELS", "model_dir"]

DEFAULT_MODEL_ID = "lichen-minilm"
CUSTOM_MODEL_ID = "custom"
_MODELS_ROOT = Path(__file__).resolve().parent
BUILTIN_MODELS = ("lichen-minilm",)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_id: str
    dimension: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return a ``(len(texts), dimension)`` float32 array of unit vectors."""


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def model_dir(model_id: str) -> Path:
    return _MODELS_ROOT / model_id


def get_embedder(model_id: str = DEFAULT_MODEL_ID) -> Embedder:
    """The process-wide embedder for a built-in model id (loaded on first use)."""
    if model_id == CUSTOM_MODEL_ID:
        raise ModelUnavailableError('model_id="custom" has no embedder: pass embeddings yourself')
    embedder = _cache.get(model_id)
    if embedder is not None:
        return embedder
    with _cache_lock:
        if model_id not in _cache:
            directory = model_dir(model_id)
            if model_id not in BUILTIN_MODELS or not (directory / "model.onnx").is_file():
                known = ", ".join(BUILTIN_MODELS + (CUSTOM_MODEL_ID,))
                raise ModelUnavailableError(f"unknown or missing model {model_id!r}; available: {known}")
            from ._onnx import OnnxEmbedder

            _cache[model_id] = OnnxEmbedder(directory, model_id=model_id)
        return _cache[model_id]
