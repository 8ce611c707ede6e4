"""Projects and their keys: creation, hashing, and checking a request's credentials.

A project is a tenant: an id (public, names its storage prefix) and a key (secret, shown
once at creation). Only a salted scrypt hash of the key is stored, in the project
registry of the storage, so every replica over the same storage knows every project.
Checks compare in constant time; a verified key is remembered briefly (as a SHA-256
digest, compared in constant time too) so scrypt's deliberate cost is paid once per
replica and key rather than per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .._errors import ConflictError, InvalidArgumentError, UnauthorizedError
from ..protocol import PROJECT_ID_PATTERN

if TYPE_CHECKING:
    from .storage import Storage

__all__ = [
    "ProjectCredentials",
    "create_project",
    "hash_key",
    "verify_key",
    "parse_authorization",
    "Authenticator",
]

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # ~16 MiB and tens of ms per check
_VERIFIED_TTL_S = 60.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$digest``: what the registry stores instead of the key."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_key(key: str, stored: str) -> bool:
    """Constant-time check of ``key`` against a :func:`hash_key` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            key.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class ProjectCredentials:
    project_id: str
    project_key: str


def create_project(storage: Storage, *, project_id: str | None = None) -> ProjectCredentials:
    """Register a new project in ``storage`` and return its credentials (the key is not
    recoverable afterwards)."""
    project_id = project_id or f"prj_{secrets.token_hex(8)}"
    if not PROJECT_ID_PATTERN.match(project_id):
        raise InvalidArgumentError(f"project id {project_id!r} must match {PROJECT_ID_PATTERN.pattern}")
    key = f"lk_{secrets.token_urlsafe(32)}"
    record = {
        "project_id": project_id,
        "key_hash": hash_key(key),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if not storage.create_project(record):
        raise ConflictError(f"project {project_id!r} already exists")
    return ProjectCredentials(project_id, key)


def parse_authorization(header: str | None) -> tuple[str, str]:
    """``Authorization: Bearer <project_id>:<project_key>`` -> ``(id, key)``."""
    if not header:
        raise UnauthorizedError("missing Authorization header: send 'Bearer <project_id>:<project_key>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or ":" not in token:
        raise UnauthorizedError("malformed Authorization header: send 'Bearer <project_id>:<project_key>'")
    project_id, _, key = token.strip().partition(":")
    if not PROJECT_ID_PATTERN.match(project_id) or not key:
        raise UnauthorizedError("malformed Authorization header: send 'Bearer <project_id>:<project_key>'")
    return project_id, key


class Authenticator:
    """Checks credentials against the storage's project registry."""

    def __init__(self, storage: Storage, *, ttl_s: float = _VERIFIED_TTL_S) -> None:
        self.storage = storage
        self.ttl_s = ttl_s
        self._verified: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None) -> str:
        """Return the project id, or raise ``UnauthorizedError`` (one message for an
        unknown project and a wrong key, so ids cannot be probed)."""
        project_id, key = parse_authorization(header)
        fingerprint = hashlib.sha256(key.encode("utf-8")).digest()
        now = time.monotonic()
        with self._lock:
            cached = self._verified.get(project_id)
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], fingerprint):
            return project_id
        record = self.storage.get_project(project_id)
        stored = record.get("key_hash") if record else None
        if not stored:
            hash_key(key)  # same cost as a real check: do not reveal which ids exist
            raise UnauthorizedError("invalid project id or key")
        if not verify_key(key, stored):
            raise UnauthorizedError("invalid project id or key")
        with self._lock:
            self._verified[project_id] = (fingerprint, now + self.ttl_s)
        return project_id
