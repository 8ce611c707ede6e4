"""What an input is: documents, records, JSON text, files or folders, and the source id
each file is known by.

:func:`classify` sorts whatever a caller passed (one item or a list) into documents kept
as they are (``DocumentInfo``), records (dicts, JSON array or JSON Lines text) and files
(paths; folders are walked). It reads nothing but folder listings.

Source ids are POSIX paths: a file found in a folder is ``{prefix}{path relative to the
folder}``, where the prefix defaults to the folder's own name and a slash
(``docs/returns/refunds.md``), so an index keeps its ids when the folder moves, and two
folders synced into one index do not take each other's files for deleted ones. A file
given on its own is named by its path relative to the working directory (absolute when
it lies outside it), which agrees with the folder naming when the folder sits in the
working directory.

Globs (``include`` / ``exclude``) use ``*`` (within one path segment), ``**`` (any number
of segments), ``?`` and ``[...]``; a pattern without a slash matches a file's name in any
folder (``*.md``), one with a slash the path relative to the folder
(``guides/**/*.md``). An exclude pattern that matches a folder leaves out all of it
(``drafts``, ``**/node_modules``). As in a shell, ``*`` and ``?`` do not match a name's
leading dot: files and folders whose name starts with one are left out unless an include
pattern spells the dot (``.github/**/*.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from .._errors import InvalidArgumentError
from .._types import DocumentInfo
from .errors import SkippedSource, SourceError
from .readers import SUFFIXES, Record, parse_records

__all__ = [
    "SourceFile",
    "Inputs",
    "InputItem",
    "classify",
    "walk_directory",
    "default_prefix",
    "file_source_id",
    "glob_matcher",
    "record_from_dict",
]

InputItem = Union[DocumentInfo, dict, str, os.PathLike]


@dataclass(frozen=True)
class SourceFile:
    """A file to read, and the source id its chunks will carry."""

    source: str
    path: Path


@dataclass
class Inputs:
    """A caller's inputs, sorted: ``documents`` as given, ``records`` given in memory,
    ``files`` to read, and ``missing`` paths that are neither a file nor a folder."""

    documents: list[DocumentInfo] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    files: list[SourceFile] = field(default_factory=list)
    missing: list[SkippedSource] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.documents) + len(self.records) + len(self.files) + len(self.missing)


# ---------------------------------------------------------------------------- globs
@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regular expression over POSIX relative paths."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        at_segment_start = i == 0 or pattern[i - 1] == "/"
        if c == "*":
            out.append("(?!\\.)[^/]*" if at_segment_start else "[^/]*")  # as in a shell: no hidden names
        elif c == "?":
            out.append("(?!\\.)[^/]" if at_segment_start else "[^/]")
        elif c == "[":
            close = pattern.find("]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[]", i) else i + 1)
            if close < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : close]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = close + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_matcher(patterns: str | Sequence[str] | None, what: str) -> list[tuple[bool, re.Pattern[str]]]:
    """Compiled patterns: ``(matches the name only, regex)`` each."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidArgumentError(f"{what} patterns must be non-empty strings, got {pattern!r}")
        pattern = pattern.replace(os.sep, "/") if os.sep != "/" else pattern
        anchored = pattern.lstrip("/")
        compiled.append(("/" not in pattern.rstrip("/"), _glob_regex(anchored.rstrip("/"))))
    return compiled


def _matches(matcher: list[tuple[bool, re.Pattern[str]]], relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(regex.match(name if name_only else relative) for name_only, regex in matcher)


# ---------------------------------------------------------------------------- walking
def default_prefix(directory: str | os.PathLike) -> str:
    """The folder's own name and a slash (``""`` for a file-system root)."""
    name = Path(os.path.abspath(directory)).name
    return f"{name}/" if name else ""


def file_source_id(path: str | os.PathLike) -> str:
    """A lone file's source id: its path relative to the working directory (POSIX), or
    absolute when it lies outside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


def walk_directory(
    directory: str | os.PathLike,
    *,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    prefix: str | None = None,
) -> list[SourceFile]:
    """The files under ``directory`` (recursively) that ``include`` selects (default:
    every suffix Lichen reads) and ``exclude`` does not, sorted by source id. Symbolic
    links to files are followed, links to folders are not (no cycles)."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidArgumentError(f"{directory} is not a folder")
    includes = glob_matcher(include, "include")
    excludes = glob_matcher(exclude, "exclude")
    patterns = [include] if isinstance(include, str) else list(include or [])
    names_hidden = any("/." in "/" + pattern for pattern in patterns)
    prefix = default_prefix(root) if prefix is None else _check_prefix(prefix)
    found: list[SourceFile] = []
    for folder, subfolders, names in os.walk(root):
        relative_folder = Path(folder).relative_to(root).as_posix()
        base = "" if relative_folder == "." else relative_folder + "/"
        kept = []
        for sub in sorted(subfolders):
            relative = base + sub
            if sub.startswith(".") and not names_hidden:
                continue
            if excludes and _matches(excludes, relative):
                continue
            kept.append(sub)
        subfolders[:] = kept
        for name in sorted(names):
            relative = base + name
            path = Path(folder) / name
            if includes:
                if not _matches(includes, relative):
                    continue
            elif name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            if excludes and _matches(excludes, relative):
                continue
            if not path.is_file():  # a broken link, a socket
                continue
            found.append(SourceFile(prefix + relative, path))
    found.sort(key=lambda item: item.source)
    return found


def _check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"prefix must be a string, got {type(prefix).__name__}")
    return prefix


# ---------------------------------------------------------------------------- inputs
def record_from_dict(value: dict, where: str) -> Record:
    """A record from a dict given in memory (``id``, ``text``, ``metadata``, ``embedding``;
    any other key goes into the metadata)."""
    from .readers import _BadRecord, _record

    try:
        return _record(value, where, None)
    except _BadRecord as exc:
        raise InvalidArgumentError(str(exc)) from None


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith("[") or stripped.startswith("{")


def classify(
    inputs: InputItem | Iterable[InputItem],
    *,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    prefix: str | None = None,
) -> Inputs:
    """Sort ``inputs`` (one item or a list of them) into documents, records and files.

    A string is JSON text when it starts with ``[`` or ``{`` (an array, one object, or
    JSON Lines) and names no existing file, else a path; ``os.PathLike`` objects are paths. Folders are walked with
    ``include`` / ``exclude``, their files named with ``prefix`` (default: the folder's
    name); a lone file is named by :func:`file_source_id`. A path that does not
    exist is reported in ``missing``. Malformed JSON text or dicts raise
    :class:`~lichen.InvalidArgumentError` at once (they are the caller's own values)."""
    if isinstance(inputs, (DocumentInfo, dict, str, os.PathLike)):
        items: list[Any] = [inputs]
    elif isinstance(inputs, Iterable) and not isinstance(inputs, (bytes, bytearray)):
        items = list(inputs)
    else:
        raise InvalidArgumentError(
            f"cannot add {type(inputs).__name__}: pass DocumentInfos, dicts, JSON text, paths or folders (or a list of them)"
        )
    sorted_inputs = Inputs()
    for position, item in enumerate(items):
        if isinstance(item, DocumentInfo):
            sorted_inputs.documents.append(item)
        elif isinstance(item, dict):
            sorted_inputs.records.append(record_from_dict(item, f"input {position}"))
        elif isinstance(item, str) and _looks_like_json(item) and not os.path.exists(item):
            try:
                sorted_inputs.records.extend(parse_records(item, f"input {position}"))
            except SourceError as exc:
                raise InvalidArgumentError(f"input {position} (JSON text): {exc.failures[0].reason}") from None
        elif isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                sorted_inputs.files.extend(walk_directory(path, include=include, exclude=exclude, prefix=prefix))
            elif path.exists():
                sorted_inputs.files.append(SourceFile(file_source_id(path), path))
            else:
                sorted_inputs.missing.append(SkippedSource(file_source_id(path), "no such file or folder"))
        else:
            raise InvalidArgumentError(
                f"input {position} is {type(item).__name__}: pass DocumentInfos, dicts, JSON text, paths or folders"
            )
    return sorted_inputs
