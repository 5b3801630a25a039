"""The JSON session file: many connection documents under a versioned envelope.

Written atomically (a temporary file in the same folder, then a rename), so a reader never
sees half a session, and an interrupted export leaves the previous file in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from asgispy.version import __version__

__all__ = ["FORMAT", "VERSION", "SessionFileError", "read_session", "session_document", "write_session"]

FORMAT = "asgispy-session"
VERSION = 1


class SessionFileError(ValueError):
    """The file is not an asgispy session this version can read."""


def session_document(
    connections: Iterable[Mapping[str, Any]],
    producers: Mapping[str, Mapping[str, Any]],
    dropped: int = 0,
) -> dict[str, Any]:

    return {
        "format": FORMAT,
        "version": VERSION,
        "asgispy": __version__,
        "created": time.time(),
        "producers": dict(producers),
        "dropped": dropped,
        "connections": list(connections),
    }


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def write_session(path: str | os.PathLike[str], document: Mapping[str, Any]) -> Path:
    """Write a session document to ``path`` atomically; returns the path."""
    return write_bytes_atomically(path, orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def read_session(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a session file's envelope; raises SessionFileError with the reason."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SessionFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SessionFileError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SessionFileError(f'{path} is not an asgispy session (no "format": "{FORMAT}")')
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SessionFileError(
            f"{path} is session format version {version!r}; this asgispy reads up to {VERSION}"
        )
    if not isinstance(doc.get("connections"), list):
        raise SessionFileError(f"{path} has no list of connections")
    return doc
