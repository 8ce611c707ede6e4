"""A local HTTP server standing in for the Hugging Face Hub (``HF_ENDPOINT``), so that
``lichen models pull`` is tested through the real ``huggingface_hub`` client without the
internet.

It serves, for repositories held in memory (path -> bytes at each commit), what the client
asks for: ``/api/models/{repo}/revision/{rev}`` (which commit a branch is),
``/api/models/{repo}/tree/{rev}`` (files with their git blob id, and sha256 + size for files
kept with LFS: ``*.safetensors`` here, as on the Hub) and ``/{repo}/resolve/{rev}/{path}``
(``HEAD`` with ``X-Repo-Commit``, ``ETag`` / ``X-Linked-Etag`` / ``X-Linked-Size``; ``GET``
with ``Range``). It can serve a file corrupted (same length, other bytes) or truncated while
announcing the true hash and size, and counts requests.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id


def is_lfs(path: str) -> bool:
    return path.endswith(".safetensors") or path.endswith(".bin")


class StandInHub:
    """``with StandInHub() as hub: hub.add(repo, files)``; ``hub.url`` is the endpoint."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> path -> bytes
        self.refs: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.corrupt: set[tuple[str, str]] = set()  # (repo, path) served with one byte flipped
        self.truncate: set[tuple[str, str]] = set()  # (repo, path) served cut in half
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: str, files: dict[str, bytes], *, branch: str = "main", commit: str | None = None) -> str:
        """Publish ``files`` as a new commit of ``repo`` (on ``branch``; its id ``commit``
        or one derived from the content); returns the commit."""
        commit = commit or hashlib.sha1(repr(sorted((p, git_blob_id(d)) for p, d in files.items())).encode()).hexdigest()  # noqa: S324
        self.repos.setdefault(repo, {})[commit] = dict(files)
        self.refs.setdefault(repo, {})[branch] = commit
        return commit

    def __enter__(self) -> StandInHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ the handler
    def _resolve(self, repo: str, revision: str) -> str | None:
        commits = self.repos.get(repo)
        if commits is None:
            return None
        if revision in commits:
            return revision
        return self.refs.get(repo, {}).get(revision)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, value: object) -> None:
                self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

            def _not_found(self, code: str) -> None:
                self._send(404, json.dumps({"error": code}).encode(),
                           {"Content-Type": "application/json", "X-Error-Code": code})

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)(/.*)?", path)
                if api:
                    repo, what, revision, _sub = api.groups()
                    commit = hub._resolve(repo, revision)
                    if repo not in hub.repos:
                        return self._not_found("RepoNotFound")
                    if commit is None:
                        return self._not_found("RevisionNotFound")
                    files = hub.repos[repo][commit]
                    if what == "revision":
                        return self._json({"id": repo, "sha": commit, "siblings": [{"rfilename": p} for p in files]})
                    return self._json([self._tree_entry(p, d) for p, d in sorted(files.items())])
                resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if not resolve:
                    return self._not_found("NotFound")
                repo, revision, name = resolve.groups()
                if repo not in hub.repos:
                    return self._not_found("RepoNotFound")
                commit = hub._resolve(repo, revision)
                if commit is None:
                    return self._not_found("RevisionNotFound")
                data = hub.repos[repo][commit].get(name)
                if data is None:
                    return self._not_found("EntryNotFound")
                etag = hashlib.sha256(data).hexdigest() if is_lfs(name) else git_blob_id(data)
                headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
                if is_lfs(name):
                    headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
                served = data
                if (repo, name) in hub.corrupt:
                    served = bytes([data[0] ^ 0xFF]) + data[1:]
                if (repo, name) in hub.truncate:
                    served = data[: len(data) // 2]
                start = 0
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if ranged and self.command == "GET":
                    start = int(ranged.group(1))
                body = served[start:]
                if self.command == "HEAD":
                    headers["Content-Length"] = str(len(data))
                    return self._send(200, b"", headers)
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(206 if start else 200, body, headers)

            @staticmethod
            def _tree_entry(name: str, data: bytes) -> dict:
                entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
                if is_lfs(name):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                return entry

        return Handler
