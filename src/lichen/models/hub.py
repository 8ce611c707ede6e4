"""``lichen models pull``: a model from the Hugging Face Hub, verified, built, registered.

Only an explicit pull downloads; nothing on a query path ever does (a missing model is a
:class:`~lichen.ModelUnavailableError` that says how to pull it). Downloads go through
``huggingface_hub`` (``pip install "lichen[hub]"``), so its cache, resumable downloads,
tokens, ``HF_ENDPOINT`` (a mirror, or a stand-in server in tests) and offline mode
(``HF_HUB_OFFLINE=1``: the cache only) all apply; the two variables are read when ``pull``
runs, not when the library was imported.

A pull:

1. resolves the name: a catalogue entry (:mod:`lichen.models.catalogue`: pinned commit,
   pooling, prompts, licence) or any ``org/name`` repository (model id ``org--name``),
   at ``revision`` (a commit, tag or branch; the commit it resolves to is recorded);
2. downloads the files a sentence-transformers model (or cross-encoder) is built from,
   nothing else (no PyTorch, TensorFlow or ONNX copies of the weights);
3. verifies every file against the hash the Hub gave for it at that commit: the sha256 of
   files stored with LFS, the git blob id of the others (in the cache each blob is named
   by that hash). A corrupted or truncated file is refused (:class:`~lichen.CorruptDataError`)
   and dropped from the cache, so the next pull downloads it again;
4. builds it with :func:`lichen.models.build.build_user_model` into
   ``LICHEN_HOME/models/<model id>`` (atomically), recording the repository, commit, file
   hashes, prompts and licence in its ``model.json``.

Pulling a model that is already there at the same commit does nothing and needs no
network.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

from .._errors import CorruptDataError, InvalidArgumentError, ModelUnavailableError, NetworkError, NotFoundError
from .catalogue import CatalogueEntry, is_repo_name, model_id_for_repo, resolve

__all__ = ["pull", "PULLED_FILES"]

#: What a build reads (and what a licence or card says), at the top level or in a
#: sentence-transformers Transformer module folder.
PULLED_FILES = [
    "config.json", "model.safetensors", "tokenizer.json", "modules.json", "sentence_bert_config.json",
    "config_sentence_transformers.json", "1_Pooling/config.json", "README.md", "LICENSE", "NOTICE",
    "0_*/config.json", "0_*/model.safetensors", "0_*/tokenizer.json", "0_*/sentence_bert_config.json",
]
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRUTHY = {"1", "true", "yes", "on"}


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ModelUnavailableError(
            f'pulling a model needs huggingface_hub, onnx and safetensors: pip install "lichen[hub]" ({exc})'
        ) from None
    return huggingface_hub


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def _git_blob_id(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_hash(path: Path, expected: str) -> str:
    return _sha256(path) if _SHA256.fullmatch(expected) else _git_blob_id(path)


def _expected_hashes(folder: Path, listing: dict[str, str] | None) -> dict[str, str]:
    """Each snapshot file's expected hash: the blob it links to is named by it (the
    cache's layout), else the Hub's listing."""
    expected = {}
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            continue
        name = path.relative_to(folder).as_posix()
        blob = path.resolve().name if path.is_symlink() else None
        if blob is not None and (_SHA256.fullmatch(blob) or _COMMIT.fullmatch(blob)):
            expected[name] = blob
        elif listing is not None and name in listing:
            expected[name] = listing[name]
    return expected


def _listing(hub: Any, repo: str, commit: str, endpoint: str | None, token: Any) -> dict[str, str]:
    """The Hub's hash of every file at ``commit`` (for caches without links to blobs)."""
    api = hub.HfApi(endpoint=endpoint, token=token)
    return {
        item.path: (item.lfs.sha256 if getattr(item, "lfs", None) else item.blob_id)
        for item in api.list_repo_tree(repo, revision=commit, recursive=True)
        if getattr(item, "blob_id", None)
    }


def _verify(folder: Path, expected: dict[str, str], weights_sha256: str | None) -> dict[str, str]:
    """Check each file against its expected hash; drop a bad one from the cache and refuse."""
    files = {}
    for name, want in expected.items():
        path = folder / name
        got = _file_hash(path, want)
        if got != want:
            target = path.resolve()
            for victim in (path, target):  # the link and the blob: the next pull fetches it again
                try:
                    victim.unlink()
                except OSError:
                    pass
            raise CorruptDataError(
                f"{name}: downloaded content hashes to {got}, but the Hub lists {want}: the file is corrupted or "
                "truncated; it was removed from the cache, pull again"
            )
        files[name] = want
    weights = next((n for n in files if n == "model.safetensors" or n.endswith("/model.safetensors")), None)
    if weights is None:
        raise InvalidArgumentError("the repository has no model.safetensors at this revision: only safetensors weights are built")
    if weights_sha256 is not None and _sha256(folder / weights) != weights_sha256:
        raise CorruptDataError(f"{weights}: sha256 is not the catalogue's {weights_sha256}: refusing these weights")
    return files


def _download(
    hub: Any, repo: str, revision: str, *, cache_dir: Any, endpoint: str | None, token: Any, offline: bool,
) -> Path:
    errors = importlib.import_module("huggingface_hub.utils")  # the error types, in every version
    try:
        folder = hub.snapshot_download(
            repo, revision=revision, allow_patterns=PULLED_FILES, cache_dir=cache_dir, endpoint=endpoint,
            token=token, local_files_only=offline,
        )
    except errors.RevisionNotFoundError as exc:
        raise NotFoundError(f"{repo} has no revision {revision!r} on the Hub ({exc})") from None
    except errors.RepositoryNotFoundError as exc:
        raise NotFoundError(f"no model repository {repo!r} on the Hub (or it is private: set HF_TOKEN) ({exc})") from None
    except errors.LocalEntryNotFoundError as exc:
        where = "offline mode is on (HF_HUB_OFFLINE)" if offline else "the Hub could not be reached"
        raise ModelUnavailableError(
            f"{repo} at {revision} is not in the Hugging Face cache and {where}: pull it once online ({exc})"
        ) from None
    except OSError as exc:  # a download cut short ("Consistency check failed"), a full disk, ...
        if "onsistency check" in str(exc):
            raise CorruptDataError(f"{repo}: a download was truncated ({exc}); pull again to resume it") from None
        raise NetworkError(f"cannot download {repo} at {revision}: {exc}") from None
    except Exception as exc:  # httpx / requests errors differ between huggingface_hub versions
        raise NetworkError(f"cannot download {repo} at {revision}: {type(exc).__name__}: {exc}") from None
    return Path(folder)


def _existing(target: Path) -> dict[str, Any] | None:
    try:
        return json.loads((target / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def pull(
    name: str,
    revision: str | None = None,
    *,
    model_id: str | None = None,
    force: bool = False,
    home: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    offline: bool | None = None,
    pooling: str | None = None,
    prompts: dict[str, str] | None = None,
    fp32: bool = False,
    query_int8: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Download, verify, build and register a model; returns its directory and manifest.

    ``name``: a catalogue name (``"bge-small-en-v1.5"``) or a Hub repository
    (``"BAAI/bge-small-en-v1.5"``). ``revision``: a commit (best), tag or branch; default
    the catalogue's pinned commit, or ``main`` for other repositories. ``model_id``: the
    id to register (default the catalogue name, or ``org--name``). ``force`` replaces a
    model of that id built from something else. ``endpoint`` / ``offline`` default to
    ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE``; ``cache_dir`` / ``token`` to huggingface_hub's
    own settings (``HF_HUB_CACHE`` / ``HF_HOME`` read now). ``pooling`` and ``prompts`` override the catalogue's and the
    repository's (``{"query": ..., "passage": ...}``; ``""`` removes one). ``query_int8``
    adds an int8 query encoder (:func:`lichen.models.build.add_query_encoder`): check its
    retrieval quality on your data first.

    Raises ``ModelUnavailableError`` (no ``hub`` extra; offline and not cached),
    ``NotFoundError`` (no such repository or revision), ``CorruptDataError`` (a file does
    not match its hash), ``NetworkError``, ``InvalidArgumentError`` (a model the builder
    does not support, a bad id).
    """
    from . import user_models_dir, validate_model_id
    from .build import build_user_model

    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"model name must be a catalogue name or org/name, got {name!r}")
    entry: CatalogueEntry | None = resolve(name)
    if entry is None and not is_repo_name(name):
        from .catalogue import CATALOGUE

        raise InvalidArgumentError(
            f"{name!r} is neither a catalogue model ({', '.join(CATALOGUE)}) nor a Hub repository (org/name)"
        )
    repo = entry.repo if entry is not None else name
    revision = revision or (entry.revision if entry is not None else "main")
    model_id = validate_model_id(model_id or (entry.name if entry is not None else model_id_for_repo(repo)))
    root = Path(home) / "models" if home is not None else user_models_dir()
    target = root / model_id

    existing = None if force or not target.exists() else _existing(target)

    def refuse_existing() -> InvalidArgumentError:
        assert existing is not None
        return InvalidArgumentError(
            f"model {model_id!r} already exists at {target} (from {existing.get('source')} at "
            f"{existing.get('revision')}): vectors of another model or commit do not mix with its indexes; "
            "pass force=True (--force) to replace it, or choose another id (--id)"
        )

    if existing is not None:
        if existing.get("source") == repo and existing.get("revision") == revision:
            return target, existing  # already pulled at this commit: no network
        if existing.get("source") != repo or _COMMIT.fullmatch(revision):
            raise refuse_existing()

    hub = _hub()
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    if cache_dir is None and os.environ.get("HF_HUB_CACHE"):
        cache_dir = os.environ["HF_HUB_CACHE"]
    elif cache_dir is None and os.environ.get("HF_HOME"):
        cache_dir = Path(os.environ["HF_HOME"]) / "hub"
    offline = _offline(offline)
    folder = _download(hub, repo, revision, cache_dir=cache_dir, endpoint=endpoint, token=token, offline=offline)
    commit = folder.name
    if _COMMIT.fullmatch(revision) and commit != revision:
        raise CorruptDataError(f"asked {repo} at {revision}, the Hub answered with {commit}")
    if existing is not None:  # a branch or tag: still the commit already built?
        if existing.get("revision") == commit:
            return target, existing
        raise refuse_existing()
    expected = _expected_hashes(folder, None)
    if len(expected) < sum(1 for path in folder.rglob("*") if not path.is_dir()):
        if offline:
            raise ModelUnavailableError(f"{repo}: this cache keeps no hashes to verify its files against; pull online")
        expected = _expected_hashes(folder, _listing(hub, repo, commit, endpoint, token))
    files = _verify(folder, expected, entry.weights_sha256 if entry is not None else None)

    chosen_prompts = {**(entry.prompts if entry is not None else {}), **(prompts or {})}
    provenance = {"revision": commit, "files": files}
    if entry is not None:
        provenance["catalogue"] = entry.name
    return build_user_model(
        folder, model_id, fp32=fp32, overwrite=True, home=home, query_int8=query_int8,
        pooling=pooling or (entry.pooling if entry else None),
        prompts=chosen_prompts or None, source_name=repo, license=entry.license if entry is not None else None,
        provenance=provenance,
    )
