"""The ``lichen`` command: run a server, create projects, and manage indexes.

Server side::

    lichen serve --host 127.0.0.1 --port 8080 --data DIR [--storage s3://bucket/prefix]
    lichen project create --data DIR [--json]

Client side (the embedded store by default; a server with ``--url`` / ``LICHEN_URL`` and
the project's credentials in ``--project-id`` / ``--project-key`` or
``LICHEN_PROJECT_ID`` / ``LICHEN_PROJECT_KEY``)::

    lichen ls | info NAME | push PATH-or-JSONL [--name N] | pull NAME [-o PATH]
    lichen query NAME "text" [--top-k K] [--filter JSON] [--alpha A] | rm NAME
    lichen sync DIR --index NAME [--include G]... [--exclude G]... [--dry-run] | add NAME PATH...

Embedding models and re-rankers (built into ``$LICHEN_HOME/models``; building needs
``lichen[build-model]``, pulling ``lichen[hub]``)::

    lichen models build SRC_DIR --id NAME [--fp32] [--force] [--query-prompt P] [--passage-prompt P]
    lichen models pull NAME-or-ORG/REPO [--revision SHA] [--id NAME] [--force] | models catalogue | models ls

Human output by default, ``--json`` for scripts. Errors go to stderr with exit status 1
(2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import InvalidArgumentError, LichenError, UnauthorizedError

__all__ = ["main", "build_parser"]


# ------------------------------------------------------------------ output helpers
def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=None) + "\n")


def _info_dict(info: Any) -> dict[str, Any]:
    return {
        "name": info.name, "doc_count": info.doc_count, "model_id": info.model_id, "dimension": info.dimension,
        "version": info.version, "created_at": info.created_at, "updated_at": info.updated_at,
    }


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _shorten(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


# ------------------------------------------------------------------ server commands
def _limits(args: argparse.Namespace) -> Any:
    from .server.service import Limits

    defaults = Limits()
    return Limits(
        max_body_bytes=args.max_body_bytes if args.max_body_bytes is not None else defaults.max_body_bytes,
        max_docs=args.max_docs if args.max_docs is not None else defaults.max_docs,
        max_running_merges=args.max_running_merges or defaults.max_running_merges,
        max_queued_merges=args.max_queued_merges if args.max_queued_merges is not None else defaults.max_queued_merges,
    )


def _compaction(args: argparse.Namespace) -> Any:
    from .server.compaction import CompactionPolicy

    defaults = CompactionPolicy()
    return CompactionPolicy(
        min_docs=args.compact_min_docs if args.compact_min_docs is not None else defaults.min_docs,
        edit_fraction=args.compact_edit_fraction if args.compact_edit_fraction is not None else defaults.edit_fraction,
        enabled=not args.no_compaction,
    )


def _storage(args: argparse.Namespace) -> Any:
    from .server.storage import open_storage

    return open_storage(args.data, args.storage, s3_endpoint_url=args.s3_endpoint_url)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .server.app import ServerConfig, create_app
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise LichenError(f"the server needs the 'server' extra: pip install 'lichen[server]' ({exc})") from None
    from .server.changes import ChangePolicy

    storage = _storage(args)
    limits = _limits(args)
    app = create_app(ServerConfig(
        storage=storage, limits=limits, compaction=_compaction(args),
        changes=ChangePolicy(keep_versions=args.change_records),
        watch_interval=args.watch_interval, max_long_polls=args.max_long_polls,
    ))
    print(
        f"lichen: serving on http://{args.host}:{args.port} (storage: {storage.describe()}; "
        f"max body {limits.max_body_bytes} bytes, max {limits.max_docs} docs per index)",
        file=sys.stderr, flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
        timeout_graceful_shutdown=5,
    ))
    stop = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        app.state.watch.close()  # long-polls answer now instead of holding the shutdown
        stop(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]
    server.run()
    return 0


def cmd_project_create(args: argparse.Namespace) -> int:
    from .server.auth import create_project

    credentials = create_project(_storage(args), project_id=args.id)
    if args.json:
        _emit_json({"project_id": credentials.project_id, "project_key": credentials.project_key})
    else:
        print(f"project_id:  {credentials.project_id}")
        print(f"project_key: {credentials.project_key}")
        print("The key is shown once and stored only hashed: keep it now. Clients use:", file=sys.stderr)
        print(
            f"  export LICHEN_URL={args.url} LICHEN_PROJECT_ID={credentials.project_id} "
            f"LICHEN_PROJECT_KEY={credentials.project_key}",
            file=sys.stderr,
        )
    return 0


# ------------------------------------------------------------------ index commands
def _client(args: argparse.Namespace) -> Any:
    from ._client import Client

    url = args.url or os.environ.get("LICHEN_URL")
    project_id = args.project_id or os.environ.get("LICHEN_PROJECT_ID")
    project_key = args.project_key or os.environ.get("LICHEN_PROJECT_KEY")
    if url and not (project_id and project_key):
        missing = " and ".join(
            flag for flag, value in (("--project-id", project_id), ("--project-key", project_key)) if not value
        )
        raise UnauthorizedError(
            f"the server at {url} needs project credentials: pass {missing}, or set LICHEN_PROJECT_ID and "
            "LICHEN_PROJECT_KEY (lichen project create prints both; unset LICHEN_URL to use the embedded store)"
        )
    return Client(project_id, project_key, url=url, home=args.home)


def cmd_ls(args: argparse.Namespace) -> int:
    infos = _client(args).list_indexes_sync()
    if args.json:
        _emit_json([_info_dict(i) for i in infos])
    elif not infos:
        print("no indexes")
    else:
        rows = [[i.name, str(i.doc_count), i.model_id, str(i.dimension), str(i.version), i.updated_at] for i in infos]
        print(_table(rows, ["NAME", "DOCS", "MODEL", "DIM", "VERSION", "UPDATED"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = _client(args).get_index_sync(args.name)
    if args.json:
        _emit_json(_info_dict(info))
    else:
        for key, value in _info_dict(info).items():
            print(f"{key + ':':<12} {value}")
    return 0


def _read_jsonl(path: Path) -> list[Any]:
    from ._types import DocumentInfo

    docs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                docs.append(
                    DocumentInfo(
                        id=str(row["id"]), text=row["text"], metadata=row.get("metadata"), embedding=row.get("embedding")
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidArgumentError(
                    f"{path}:{number}: expected a JSON object with 'id' and 'text' ({type(exc).__name__}: {exc})"
                ) from None
    return docs


def cmd_push(args: argparse.Namespace) -> int:
    from ._session import SessionIndex

    client = _client(args)
    path = Path(args.path)
    if not path.is_file():
        raise InvalidArgumentError(f"{path} is not a file")
    if path.suffix in (".jsonl", ".ndjson"):
        name = args.name or path.stem
        docs = _read_jsonl(path)
        model_id = args.model_id or ("custom" if docs and all(d.embedding is not None for d in docs) else None)
        session = SessionIndex(name, model_id or "lichen-minilm", store=client.store, progress=client.progress)
        session.add_docs_sync(docs)
    else:
        from .format.artifact import MAGIC, read_artifact_file

        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise InvalidArgumentError(
                    f"{path}: expected a .lix index artifact (from lichen pull or SessionIndex.save) or a .jsonl "
                    'file with one {"id": ..., "text": ..., "metadata"?: {...}, "embedding"?: [...]} object per line'
                )
        session = SessionIndex.from_snapshot(read_artifact_file(path, lazy=True), name=args.name, store=client.store)
    result = session.push_index_sync(overwrite=True)
    if args.json:
        _emit_json({
            "index_name": result.index_name, "doc_count": result.doc_count, "job_id": result.job_id,
            "status": result.status, "version": result.version,
        })
    else:
        print(f"pushed {result.index_name!r}: {result.doc_count} docs, version {result.version} (job {result.job_id})")
    return 0


def _default_output(name: str) -> Path:
    return Path((re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "index") + ".lix")


def cmd_pull(args: argparse.Namespace) -> int:
    from .format.artifact import write_artifact_file

    snapshot = _client(args).store.read(args.name)
    output = Path(args.output) if args.output else _default_output(args.name)
    if output.suffix in (".jsonl", ".ndjson"):
        tmp = output.with_name(f".{output.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for i, doc_id in enumerate(snapshot.ids):
                row: dict[str, Any] = {"id": doc_id, "text": snapshot.texts[i], "metadata": snapshot.metadata[i]}
                if args.embeddings:
                    row["embedding"] = snapshot.matrix[i].tolist()
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, output)
    else:
        write_artifact_file(snapshot, output)
    if args.json:
        _emit_json({"index_name": snapshot.name, "doc_count": snapshot.doc_count, "version": snapshot.version, "path": str(output)})
    else:
        print(f"pulled {snapshot.name!r}: {snapshot.doc_count} docs, version {snapshot.version} -> {output}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from ._types import QueryOptions
    from .engine.fusion import DEFAULT_RRF_K

    flt = None
    if args.filter:
        try:
            flt = json.loads(args.filter)
        except ValueError as exc:
            raise InvalidArgumentError(f"--filter is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidArgumentError("--filter is nested too deeply to parse") from None
    client = _client(args)
    client.load_index_sync(args.name)
    result = client.query_sync(args.name, args.text, QueryOptions(top_k=args.top_k, filter=flt, alpha=args.alpha))
    fused = args.alpha is not None and args.alpha < 1.0
    if args.json:
        _emit_json({
            "query": result.query, "index_name": result.index_name, "time_taken_ms": result.time_taken_ms,
            "score_kind": "fused" if fused else "cosine",
            "docs": [
                {"id": d.id, "score": d.score, "text": d.text, "metadata": d.metadata,
                 "vector_score": d.vector_score, "keyword_score": d.keyword_score}
                for d in result.docs
            ],
        })
    else:
        if not result.docs:
            print("no results")
        elif fused:
            print(
                f"hybrid (alpha {args.alpha:g}): scores are reciprocal-rank fusion scores (at most {1 / (1 + DEFAULT_RRF_K):.4f}), "
                "not cosine similarities; each hit shows its vector (cosine) and keyword (BM25) parts"
            )
        for rank, doc in enumerate(result.docs, start=1):
            if fused:
                parts = ", ".join(
                    f"{label} {value:.4f}" for label, value in (("vector", doc.vector_score), ("keyword", doc.keyword_score))
                    if value is not None
                )
                print(f"{rank:>3}. fused {doc.score:.4f} ({parts})  {doc.id}  {_shorten(doc.text)}")
            else:
                print(f"{rank:>3}. {doc.score:.4f}  {doc.id}  {_shorten(doc.text)}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    deleted = _client(args).delete_index_sync(args.name)
    if args.json:
        _emit_json({"index_name": args.name, "deleted": deleted})
    else:
        print(f"deleted {args.name!r}" if deleted else f"no index {args.name!r}")
    return 0 if deleted else 1


# ------------------------------------------------------------------ documents in: sync, add
class _StageBars:
    """``progress(stage, done, total)`` for a sync: one bar per stage (hashing, chunking,
    writing, deleting), each replacing the last, on a terminal only (``LICHEN_PROGRESS``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            from tqdm import tqdm

            self.stage, self.done = stage, 0
            unit = "chunk" if stage in ("writing", "deleting") else "file"
            self.bar = tqdm(total=total, desc=stage, unit=unit, leave=False, file=sys.stderr)
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _ingest_options(args: argparse.Namespace) -> dict[str, Any]:
    from .ingest.chunking import as_chunker

    metadata = None
    if args.metadata:
        try:
            metadata = json.loads(args.metadata)
        except ValueError as exc:
            raise InvalidArgumentError(f"--metadata is not valid JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise InvalidArgumentError(f"--metadata must be a JSON object, got {type(metadata).__name__}")
    chunker = as_chunker(args.chunker, size=args.size, overlap=args.overlap, unit="chars" if args.chars else "tokens")
    return {
        "include": args.include, "exclude": args.exclude, "prefix": args.prefix, "chunker": chunker,
        "metadata": metadata, "skip_errors": args.skip_errors,
    }


def _version(client: Any, name: str) -> int | None:
    from ._errors import NotFoundError

    try:
        return client.get_index_sync(name).version
    except NotFoundError:
        return None


def cmd_sync(args: argparse.Namespace) -> int:
    from ._progress import progress_wanted

    client = _client(args)
    client.progress = False  # the stage bars count the embedding; two bars would stack
    bars = _StageBars(progress_wanted(None) and not args.json)
    try:
        report = client.sync_folder_sync(
            args.index, args.directory, model_id=args.model_id, dry_run=args.dry_run, progress=bars,
            **_ingest_options(args),
        )
    finally:
        bars.close()
    version = _version(client, args.index)
    if args.json:
        _emit_json({**report.to_dict(), "index_name": args.index, "version": version})
        return 0
    for line in report.lines():
        print(line)
    if report.dry_run:
        print(f"dry run: {args.index!r} left as it is" + (f" (version {version})" if version else " (not created)"))
    elif report.changes:
        print(f"pushed {args.index!r}: version {version}")
    else:
        print(f"{args.index!r} already matches the folder" + (f" (version {version})" if version else " (nothing to index)"))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    client = _client(args)
    options = _ingest_options(args)
    before = _version(client, args.name)
    if before is None:  # a new index: created from the inputs (with --model-id)
        pushed = client.create_index_sync(args.name, args.paths, args.model_id, **options)
        added, updated, deleted, skipped, version = pushed.doc_count, 0, 0, pushed.skipped, pushed.version
    else:
        if args.model_id:
            info = client.get_index_sync(args.name)
            if info.model_id != args.model_id:
                raise InvalidArgumentError(
                    f"index {args.name!r} uses model {info.model_id!r}, not {args.model_id!r} (leave --model-id out)"
                )
        result = client.add_docs_sync(args.name, args.paths, **options)
        added, updated, deleted, skipped = result.added, result.updated, result.deleted, result.skipped
        version = _version(client, args.name)
    if args.json:
        _emit_json({
            "index_name": args.name, "added": added, "updated": updated, "deleted": deleted, "version": version,
            "skipped": [{"source": item.source, "reason": item.reason} for item in skipped],
        })
        return 0
    for item in skipped:
        print(f"! {item}")
    verb = "created" if before is None else "added to"
    print(f"{verb} {args.name!r}: {added} added, {updated} updated, {deleted} stale chunks removed (version {version})")
    return 0


def _add_ingest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include", action="append", metavar="GLOB",
                        help="only files matching (repeatable; '*.md' matches names, 'guides/**/*.md' paths)")
    parser.add_argument("--exclude", action="append", metavar="GLOB", help="leave out files or folders matching (repeatable)")
    parser.add_argument("--prefix", help="what source ids start with (default: the folder's name and '/')")
    parser.add_argument("--chunker", default="auto", choices=["auto", "recursive", "sentence", "markdown", "page"],
                        help="chunking strategy (default: auto, the one each file type calls for)")
    parser.add_argument("--size", type=int, help="chunk size in tokens of the model (default: its window), or characters with --chars")
    parser.add_argument("--overlap", type=int, default=0, help="tokens (or characters) repeated from one chunk to the next")
    parser.add_argument("--chars", action="store_true", help="count --size and --overlap in characters")
    parser.add_argument("--metadata", metavar="JSON", help='metadata put on every chunk, e.g. \'{"team": "support"}\'')
    parser.add_argument("--model-id", help="embedding model of a new index (default lichen-minilm)")
    parser.add_argument("--skip-errors", action="store_true", help="add what can be read and list the rest (default: add nothing)")


def _add_ingest_commands(sub: Any) -> None:
    sync = _sub(
        sub, "sync", "bring an index in step with a folder: add new files, re-chunk changed ones, remove deleted ones",
        description="Sync DIR (recursively: .txt .md .json .jsonl .ndjson, and .pdf .docx .html with lichen[files]) "
        "into the index NAME, created if missing: new files are added, changed ones (by content hash) re-chunked, "
        "deleted ones removed, unchanged ones only hashed; the index is pushed only if something changed, so a second "
        "run changes nothing. Prints one line per file that changed and a summary. A file that cannot be read stops "
        "the sync before anything is written (exit 1), unless --skip-errors.",
    )
    sync.add_argument("directory", metavar="DIR", help="the folder to sync")
    sync.add_argument("--index", required=True, metavar="NAME", help="the index to sync into")
    sync.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    _add_ingest_options(sync)
    _add_client_options(sync)
    sync.set_defaults(func=cmd_sync)

    add = _sub(sub, "add", "add files, folders or JSON Lines to an index (created if missing), chunked")
    add.add_argument("name", help="index name")
    add.add_argument("paths", nargs="+", metavar="PATH", help="files and folders (folders are walked recursively)")
    _add_ingest_options(add)
    _add_client_options(add)
    add.set_defaults(func=cmd_add)


# ------------------------------------------------------------------ model commands
def _model_dict(info: Any) -> dict[str, Any]:
    found = {
        "model_id": info.model_id, "dimension": info.dimension, "max_tokens": info.max_tokens,
        "pooling": info.pooling, "builtin": info.builtin, "source": info.source, "path": str(info.path),
    }
    if info.kind != "embedder":
        found["kind"] = info.kind
    if info.revision:
        found["revision"] = info.revision
    if info.prompts:
        found["prompts"] = info.prompts
    return found


def _prompt_options(args: argparse.Namespace) -> dict[str, str] | None:
    prompts = {key: value for key, value in (("query", args.query_prompt), ("passage", args.passage_prompt)) if value is not None}
    return prompts or None


def _report_model(path: Path, manifest: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        _emit_json({**manifest, "path": str(path)})
        return
    size_mb = (path / "model.onnx").stat().st_size / 1e6
    what = "cross-encoder" if manifest.get("kind") == "cross-encoder" else f"{manifest['dimension']}-d, {manifest['pooling']} pooling"
    revision = f" at {manifest['revision'][:12]}" if manifest.get("revision") else ""
    print(
        f"{verb} {manifest['model_id']!r}{revision}: {what}, max {manifest['max_tokens']} tokens, "
        f"{manifest['weights_dtype']} weights ({size_mb:.1f} MB) -> {path}"
    )
    for name, prompt in (manifest.get("prompts") or {}).items():
        print(f"{name} prompt: {prompt!r}", file=sys.stderr)
    if manifest.get("kind") == "cross-encoder":
        print(f"use it with QueryOptions(rerank={manifest['model_id']!r})", file=sys.stderr)
    else:
        print(f"use it with SessionIndex(name, model_id={manifest['model_id']!r})", file=sys.stderr)


def cmd_models_build(args: argparse.Namespace) -> int:
    from .models.build import build_user_model

    path, manifest = build_user_model(
        args.source, args.id, fp32=args.fp32, overwrite=args.force, prompts=_prompt_options(args),
        pooling=args.pooling, query_int8=args.query_int8,
    )
    _report_model(path, manifest, "built", args.json)
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    from .models.hub import pull

    path, manifest = pull(
        args.name, args.revision, model_id=args.id, force=args.force, fp32=args.fp32, prompts=_prompt_options(args),
        pooling=args.pooling, query_int8=args.query_int8,
    )
    _report_model(path, manifest, "pulled", args.json)
    return 0


def cmd_models_catalogue(args: argparse.Namespace) -> int:
    from .models.catalogue import CATALOGUE

    entries = list(CATALOGUE.values())
    if args.json:
        _emit_json([
            {"name": e.name, "repo": e.repo, "revision": e.revision, "kind": e.kind, "pooling": e.pooling,
             "prompts": e.prompts, "license": e.license, "dimension": e.dimension, "published": e.published}
            for e in entries
        ])
    else:
        rows = [[e.name, e.kind, str(e.dimension or "-"), e.license, e.published] for e in entries]
        print(_table(rows, ["NAME", "KIND", "DIM", "LICENSE", "PUBLISHED QUALITY"]))
    return 0


def cmd_models_ls(args: argparse.Namespace) -> int:
    from .models import list_models

    infos = list_models()
    if args.json:
        _emit_json([_model_dict(i) for i in infos])
    else:
        rows = [
            [i.model_id, i.kind, str(i.dimension), i.pooling, str(i.max_tokens), (i.revision or "-")[:12],
             "built-in" if i.builtin else str(i.path)]
            for i in infos
        ]
        print(_table(rows, ["MODEL", "KIND", "DIM", "POOLING", "MAX_TOKENS", "REVISION", "LOCATION"]))
    return 0


# ------------------------------------------------------------------ parser
def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="server data directory (file-system storage; with --storage s3://, the upload spool)")
    parser.add_argument("--storage", metavar="URL", help="s3://bucket/prefix for S3-compatible object storage")
    parser.add_argument("--s3-endpoint-url", metavar="URL", default=os.environ.get("AWS_ENDPOINT_URL"), help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="Lichen server URL (default: $LICHEN_URL; unset: the embedded store)")
    parser.add_argument("--project-id", help="the server project's id (default: $LICHEN_PROJECT_ID)")
    parser.add_argument("--project-key", help="the server project's key (default: $LICHEN_PROJECT_KEY)")
    parser.add_argument(
        "--home", help=f"embedded store / download cache directory (default: $LICHEN_HOME, else {_default_home()})"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _default_home() -> str:
    from ._home import default_home

    return str(default_home()) if not os.environ.get("LICHEN_HOME") else "the platform's user data directory"


ENVIRONMENT = """\
environment:
  LICHEN_URL          a Lichen server to use instead of the embedded store (like --url)
  LICHEN_PROJECT_ID   that server's project id (like --project-id)
  LICHEN_PROJECT_KEY  that server's project key (like --project-key)
  LICHEN_HOME         where the embedded store and the download cache live (like --home)
  LICHEN_PROGRESS     0 hides progress bars (shown only on a terminal anyway)
"""


def _sub(sub: Any, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose --help also lists the environment variables."""
    return sub.add_parser(name, help=help, description=kwargs.pop("description", help[:1].upper() + help[1:] + "."),
                          epilog=ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="lichen", description="Lichen: local-first retrieval, and its server.", epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lichen {__version__ or '(not installed)'}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _sub(sub, "serve", "run a Lichen server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    _add_storage_options(serve)
    serve.add_argument("--max-body-bytes", type=int, default=None, help="largest request body (default 1 GiB)")
    serve.add_argument("--max-docs", type=int, default=None, help="most documents per index (default 1,000,000)")
    serve.add_argument(
        "--max-running-merges", type=int, default=None,
        help="index rewrites (merges, deletes, push checks) run at once (default 2); more wait their turn",
    )
    serve.add_argument(
        "--max-queued-merges", type=int, default=None,
        help="rewrites that may wait for their turn (default 32); beyond, 503 with Retry-After",
    )
    serve.add_argument(
        "--compact-min-docs", type=int, default=None,
        help="rebuild the graph of indexes from this many documents when it is missing or worn (default 50,000)",
    )
    serve.add_argument(
        "--compact-edit-fraction", type=float, default=None,
        help="rebuild a graph once its pending edits exceed this share of the documents (default 0.01)",
    )
    serve.add_argument("--no-compaction", action="store_true", help="never rebuild graphs on the server")
    serve.add_argument(
        "--change-records", type=int, default=64,
        help="versions of change records kept per index, for clients refreshing by delta (default %(default)s; 0: none)",
    )
    serve.add_argument(
        "--watch-interval", type=float, default=0.5,
        help="seconds between looks at the storage while a long-poll waits (default %(default)s)",
    )
    serve.add_argument(
        "--max-long-polls", type=int, default=1024,
        help="long-polls held open at once (default %(default)s); beyond, 503 with Retry-After",
    )
    serve.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
        help="server log verbosity (default: %(default)s)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    project = _sub(sub, "project", "manage server projects")
    project_sub = project.add_subparsers(dest="project_command", required=True, metavar="ACTION")
    create = _sub(project_sub, "create", "create a project and print its id and key")
    _add_storage_options(create)
    create.add_argument("--id", help="choose the project id (default: random)")
    create.add_argument(
        "--url", default="http://127.0.0.1:8080",
        help="the server's URL as clients reach it, for the printed export line (default: %(default)s)",
    )
    create.add_argument("--json", action="store_true", help='print {"project_id": ..., "project_key": ...}')
    create.set_defaults(func=cmd_project_create)

    ls = _sub(sub, "ls", "list indexes")
    _add_client_options(ls)
    ls.set_defaults(func=cmd_ls)

    info = _sub(sub, "info", "show one index")
    info.add_argument("name", help="index name")
    _add_client_options(info)
    info.set_defaults(func=cmd_info)

    push = _sub(sub, "push", "create or replace an index from an artifact (.lix) or a JSONL file")
    push.add_argument("path", help="a .lix file (from pull or SessionIndex.save) or JSONL of {id, text, metadata?, embedding?}")
    push.add_argument("--name", help="index name (default: the artifact's, or the JSONL file's stem)")
    push.add_argument("--model-id", help="embedding model for JSONL (default lichen-minilm; 'custom' if every row has an embedding)")
    _add_client_options(push)
    push.set_defaults(func=cmd_push)

    pull = _sub(sub, "pull", "download an index to a .lix (or .jsonl) file")
    pull.add_argument("name", help="index name")
    pull.add_argument("-o", "--output", help="output path (default ./NAME.lix; .jsonl exports documents)")
    pull.add_argument("--embeddings", action="store_true", help="include embeddings in a .jsonl export")
    _add_client_options(pull)
    pull.set_defaults(func=cmd_pull)

    query = _sub(sub, "query", "query an index")
    query.add_argument("name", help="index name")
    query.add_argument("text", help="the query text")
    query.add_argument("--top-k", type=int, default=5, help="how many hits (default: %(default)s)")
    query.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"city": "Paris"}\'')
    query.add_argument(
        "--alpha", type=float, default=None,
        help="blend in BM25 keyword ranking: 1.0 pure vector (default) ... 0.0 pure keyword; below 1.0 the scores "
        "are rank-fusion scores, not cosine similarities",
    )
    _add_client_options(query)
    query.set_defaults(func=cmd_query)

    rm = _sub(sub, "rm", "delete an index")
    rm.add_argument("name", help="index name")
    _add_client_options(rm)
    rm.set_defaults(func=cmd_rm)
    _add_ingest_commands(sub)

    models = _sub(sub, "models", "list embedding models and re-rankers, build one from a directory or pull one from the Hub")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models_build = models_sub.add_parser(
        "build", help="turn a BERT sentence-transformers directory (bge, e5, gte, ...) into a Lichen model",
        description="Build SRC_DIR (config.json, model.safetensors, tokenizer.json, 1_Pooling/; mean or CLS pooling) "
        "into $LICHEN_HOME/models/NAME. Vectors are always L2-normalised. Needs: pip install 'lichen[build-model]'.",
    )
    models_build.add_argument("source", metavar="SRC_DIR", help="a sentence-transformers model directory on disk")
    models_build.add_argument("--id", required=True, metavar="NAME", help="model id to use as SessionIndex(model_id=NAME)")
    models_build.add_argument("--force", action="store_true", help="replace an existing model of that id")
    _add_model_options(models_build)
    models_build.set_defaults(func=cmd_models_build)
    models_pull = models_sub.add_parser(
        "pull", help="download a model from the Hugging Face Hub, verify it and build it",
        description="Download NAME (a `lichen models catalogue` name, pinned to a tested commit, or any BERT "
        "sentence-transformers or cross-encoder repository ORG/REPO) with huggingface_hub (its cache, resumed "
        "downloads, HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN), check every file against the Hub's hashes, and build it "
        "into $LICHEN_HOME/models. The only command that downloads a model. Needs: pip install 'lichen[hub]'.",
    )
    models_pull.add_argument("name", metavar="NAME", help="catalogue name (bge-small-en-v1.5, ...) or ORG/REPO")
    models_pull.add_argument("--revision", metavar="SHA", help="commit (or tag, branch) to pull; default: the catalogue's pin, or main")
    models_pull.add_argument("--id", metavar="NAME", help="model id to register (default: the catalogue name, or ORG--REPO)")
    models_pull.add_argument("--force", action="store_true", help="replace an existing model of that id")
    _add_model_options(models_pull)
    models_pull.set_defaults(func=cmd_models_pull)
    models_catalogue = models_sub.add_parser("catalogue", help="list the models `models pull` knows by name")
    models_catalogue.add_argument("--json", action="store_true", help="machine-readable output")
    models_catalogue.set_defaults(func=cmd_models_catalogue)
    models_ls = models_sub.add_parser("ls", help="list built-in, built and pulled models")
    models_ls.add_argument("--json", action="store_true", help="machine-readable output")
    models_ls.set_defaults(func=cmd_models_ls)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fp32", action="store_true", help="store float32 weights (default float16: half the size)")
    parser.add_argument("--pooling", choices=["mean", "cls"], help="pooling when the model does not declare it")
    parser.add_argument("--query-prompt", metavar="TEXT", help="put before every query (default: the model's own; '' for none)")
    parser.add_argument("--passage-prompt", metavar="TEXT", help="put before every document (default: the model's own; '' for none)")
    parser.add_argument(
        "--query-int8", action="store_true",
        help="also write an int8 query encoder (queries ~0.6x the time; check retrieval quality on your data)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (LichenError, OSError) as exc:  # OSError: an output path that cannot be written, say
        print(f"lichen: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":
    sys.exit(main())
