"""Real servers for the tests: ``lichen serve`` and ``moto`` (S3) as subprocesses on
127.0.0.1, each on a free port, waited for until they answer, stopped afterwards.

Nothing here patches anything in-process: the tests talk HTTP to separate processes,
as clients in production do.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
TEST_LIMITS = {"max_body_bytes": 16 << 20, "max_docs": 5_000}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = log_path.read_text(errors="replace") if log_path and log_path.exists() else ""
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}:\n{out}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _stop(process: subprocess.Popen | None, *, kill: bool = False) -> None:
    if process is None or process.poll() is not None:
        return
    if kill:
        process.send_signal(signal.SIGKILL)
    else:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class MotoServer:
    """A real S3-compatible server process (``moto`` in server mode)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **AWS_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_http(self.url, self.process)
        return self

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def storage_options(self, bucket: str) -> dict[str, str]:
        """``LichenServer`` keyword arguments for a server over ``bucket``."""
        return {"storage": f"s3://{bucket}/lichen", "s3_endpoint_url": self.url}

    def create_bucket(self) -> str:
        bucket = f"lichen-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class Credentials:
    project_id: str
    project_key: str

    def env(self, url: str) -> dict[str, str]:
        return {"LICHEN_URL": url, "LICHEN_PROJECT_ID": self.project_id, "LICHEN_PROJECT_KEY": self.project_key}


class LichenServer:
    """``lichen serve`` in a subprocess over one storage (file system or S3)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        storage: str | None = None,
        s3_endpoint_url: str | None = None,
        limits: dict[str, int] | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.storage = storage
        self.s3_endpoint_url = s3_endpoint_url
        self.limits = TEST_LIMITS if limits is None else limits
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def storage_args(self) -> list[str]:
        args = ["--data", str(self.data_dir)]
        if self.storage:
            args += ["--storage", self.storage]
        if self.s3_endpoint_url:
            args += ["--s3-endpoint-url", self.s3_endpoint_url]
        return args

    def start(self) -> LichenServer:
        command = [sys.executable, "-m", "lichen.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += self.storage_args()
        for key, value in self.limits.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        # A file, not a pipe: nobody reads a pipe while tests run, and a full one would
        # block the server on its next log line.
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env={**os.environ, **AWS_ENV}, stdout=log, stderr=subprocess.STDOUT)
        _wait_http(f"{self.url}/v1/project", self.process, log_path=self.log_path)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        _stop(self.process)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, like a crash or an OOM kill."""
        _stop(self.process, kill=True)

    def create_project_cli(self) -> Credentials:
        """``lichen project create --json`` as a user runs it."""
        out = subprocess.run(
            [sys.executable, "-m", "lichen.cli", "project", "create", *self.storage_args(), "--json"],
            env={**os.environ, **AWS_ENV}, capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        return Credentials(**json.loads(out))

    def open_storage(self):
        from lichen.server.storage import open_storage

        for key, value in AWS_ENV.items():
            os.environ.setdefault(key, value)
        return open_storage(self.data_dir, self.storage, s3_endpoint_url=self.s3_endpoint_url)

    def create_project(self) -> Credentials:
        """The same as :meth:`create_project_cli`, in-process (faster)."""
        from lichen.server.auth import create_project

        created = create_project(self.open_storage())
        return Credentials(created.project_id, created.project_key)

    def client(self, credentials: Credentials, **options):
        from lichen import Client

        return Client(credentials.project_id, credentials.project_key, url=self.url, **options)


@contextlib.contextmanager
def running(server: LichenServer) -> Iterator[LichenServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Deployment:
    """One storage backend with a server (and, lazily, a second replica) over it."""

    def __init__(self, backend: str, root: Path, moto: MotoServer | None) -> None:
        self.backend = backend
        self.root = root
        self.moto = moto
        self.bucket = moto.create_bucket() if moto else None
        self.server = self.new_server().start()
        self._replica: LichenServer | None = None

    def new_server(self, **kwargs) -> LichenServer:
        if self.backend == "s3":
            assert self.moto is not None
            return LichenServer(
                self.root / f"spool-{uuid.uuid4().hex[:6]}", **self.moto.storage_options(self.bucket), **kwargs
            )
        return LichenServer(self.root / "data", **kwargs)

    @property
    def replica(self) -> LichenServer:
        """A second server process over the same storage (a scale-out replica)."""
        if self._replica is None:
            self._replica = self.new_server().start()
        return self._replica

    def stop(self) -> None:
        self.server.stop()
        if self._replica is not None:
            self._replica.stop()

    # ---- reaching into the storage, to damage it on purpose
    def artifact_location(self, credentials: Credentials, name: str) -> str:
        storage = self.server.open_storage()
        head = storage.head(credentials.project_id, name)
        assert head is not None
        from lichen.server.storage import storage_key

        if self.backend == "fs":
            return str(self.server.data_dir / "indexes" / credentials.project_id / storage_key(name) / head.object)
        return f"lichen/indexes/{credentials.project_id}/{storage_key(name)}/{head.object}"

    def read_artifact_bytes(self, credentials: Credentials, name: str) -> bytes:
        location = self.artifact_location(credentials, name)
        if self.backend == "fs":
            return Path(location).read_bytes()
        return self.moto.client().get_object(Bucket=self.bucket, Key=location)["Body"].read()

    def stored_objects(self, credentials: Credentials, name: str) -> dict[str, str]:
        """Every file or object the storage holds for one index, with a digest of its
        bytes: equal before and after means nothing stored changed."""
        import hashlib

        from lichen.server.storage import storage_key

        if self.backend == "fs":
            directory = self.server.data_dir / "indexes" / credentials.project_id / storage_key(name)
            if not directory.exists():
                return {}
            return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}
        prefix = f"lichen/indexes/{credentials.project_id}/{storage_key(name)}/"
        listed = self.moto.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return {obj["Key"][len(prefix):]: obj["ETag"] for obj in listed}

    def spooled_files(self, server: LichenServer | None = None) -> list[Path]:
        """Upload spool files of ``server`` (the main one by default)."""
        return sorted((server or self.server).data_dir.joinpath("tmp").glob(".upload-*"))

    def overwrite_artifact_bytes(self, credentials: Credentials, name: str, data: bytes) -> None:
        location = self.artifact_location(credentials, name)
        if self.backend == "fs":
            Path(location).write_bytes(data)
        else:
            self.moto.client().put_object(Bucket=self.bucket, Key=location, Body=data)


_MOTO: MotoServer | None = None


def fresh_storage(backend: str) -> dict[str, str]:
    """``LichenServer`` keyword arguments for a server's own storage: none for ``"fs"``
    (its data directory), a fresh bucket of the shared S3-compatible server for ``"s3"``
    (a server started again with them sees what the first one stored)."""
    if backend == "fs":
        return {}
    moto = shared_moto()
    return moto.storage_options(moto.create_bucket())


def shared_moto() -> MotoServer:
    """One moto process for the whole test session (it starts in ~1 s, buckets keep the
    tests apart)."""
    global _MOTO
    if _MOTO is None:
        import atexit

        _MOTO = MotoServer().start()
        atexit.register(_MOTO.stop)
    return _MOTO


def auth(credentials: Credentials) -> dict[str, str]:
    """The ``Authorization`` header for raw HTTP requests."""
    return {"Authorization": f"Bearer {credentials.project_id}:{credentials.project_key}"}


def snapshot_of(name: str, n: int, *, dim: int = 8, prefix: str = "d", seed: int = 0):
    """A valid ``IndexSnapshot`` of ``n`` documents with unit random vectors (model "custom")."""
    import numpy as np

    from lichen.format.snapshot import IndexSnapshot

    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return IndexSnapshot(
        name=name, model_id="custom", dimension=dim, ids=[f"{prefix}{i}" for i in range(n)],
        texts=[f"text {i}" for i in range(n)], metadata=[{"i": i} for i in range(n)], matrix=matrix,
    )


# ---- artifacts a buggy or hostile client could send
def element_starts(columns: list[bytes], doc_count: int) -> bytes:
    """The format-3 offsets section for three JSON array sections, computed independently
    of the writer: where each element starts (``[`` and one comma before each but the
    first), then the section's length. A column that is not a JSON array gets zeros of
    the right length, so a reader reports the column's own defect."""
    import numpy as np
    import orjson

    if not (type(doc_count) is int and 0 <= doc_count <= 1 << 20):
        doc_count = 0  # a manifest whose doc_count is no count: the reader refuses it first
    rows = []
    for data in columns:
        starts = np.zeros(doc_count + 1, dtype="<u8")
        try:
            values = orjson.loads(data)
        except orjson.JSONDecodeError:
            values = None
        if isinstance(values, list) and len(values) == doc_count:
            position = 1
            for i, value in enumerate(values):
                starts[i] = position
                position += len(orjson.dumps(value)) + 1
            starts[doc_count] = len(data)
        rows.append(starts)
    return np.stack(rows).tobytes()


def with_offsets_changed(artifact: bytes, change) -> bytes:
    """``artifact`` with its format-3 offsets section changed in place by ``change`` (it
    gets the (3, doc_count + 1) array) and every checksum recomputed: damage that only the
    offsets' meaning can reveal."""
    import numpy as np
    import orjson
    import xxhash

    from lichen.format.artifact import read_manifest

    data = bytearray(artifact)
    sec = read_manifest(artifact).sections["offsets"]
    offsets = np.frombuffer(artifact[sec.offset : sec.offset + sec.length], dtype="<u8").reshape(3, -1).copy()
    change(offsets)
    data[sec.offset : sec.offset + sec.length] = offsets.tobytes()
    manifest_end = 40 + int.from_bytes(data[16:24], "little")
    raw = orjson.loads(bytes(data[40:manifest_end]))
    raw["sections"]["offsets"]["xxh3_128"] = xxhash.xxh3_128_hexdigest(offsets.tobytes())
    manifest = orjson.dumps(raw)
    assert len(manifest) == manifest_end - 40  # checksums are fixed-width: the layout stays
    data[40:manifest_end] = manifest
    data[24:40] = xxhash.xxh3_128_digest(manifest)
    return bytes(data)


def forge_artifact(
    name: str,
    /,
    *,
    ids: object,
    texts: object,
    metadata: object,
    matrix: bytes,
    doc_count: int,
    dimension: int,
    **manifest_fields: object,
) -> bytes:
    """An artifact whose every checksum is right but whose sections hold whatever was
    given: what ``encode_artifact`` refuses to write, byte for byte as the format lays it
    out (``lichen.format.artifact`` module docstring). ``manifest_fields`` override or add
    manifest entries (``version=-1``, ``model_id=""``...)."""
    import struct

    import orjson
    import xxhash

    from lichen.format.artifact import ALIGNMENT, FORMAT_VERSION, MAGIC

    def align(n: int) -> int:
        return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT

    columns = [orjson.dumps(ids), orjson.dumps(texts), orjson.dumps(metadata)]
    docs_length = sum(map(len, columns))
    matrix_offset = align(docs_length)
    sections, offset = {}, 0
    for key, data in zip(("ids", "texts", "metadata"), columns):
        sections[key] = {"offset": offset, "length": len(data), "xxh3_128": xxhash.xxh3_128_hexdigest(data)}
        offset += len(data)
    sections["matrix"] = {"offset": matrix_offset, "length": len(matrix), "xxh3_128": xxhash.xxh3_128_hexdigest(matrix)}
    offsets = element_starts(columns, doc_count)
    offsets_offset = align(matrix_offset + len(matrix))
    sections["offsets"] = {"offset": offsets_offset, "length": len(offsets), "xxh3_128": xxhash.xxh3_128_hexdigest(offsets)}
    manifest = {
        "format_version": FORMAT_VERSION, "name": name, "model_id": "custom", "dimension": dimension,
        "doc_count": doc_count, "version": 1, "created_at": "", "updated_at": "", "dtype": "float32",
        "byte_order": "little", "body_length": offsets_offset + len(offsets), "sections": sections, "extra": {},
        **manifest_fields,
    }
    manifest_bytes = orjson.dumps(manifest)
    header = struct.pack("<8sIIQ16s", MAGIC, FORMAT_VERSION, 0, len(manifest_bytes), xxhash.xxh3_128_digest(manifest_bytes))
    head = header + manifest_bytes
    return b"".join((
        head, bytes(align(len(head)) - len(head)), *columns, bytes(matrix_offset - docs_length), matrix,
        bytes(offsets_offset - matrix_offset - len(matrix)), offsets,
    ))
