"""Reading a HAR file: JSON (or mitmproxy's zlib-compressed ``.zhar``) holding ``log.entries``.

What makes a file unusable as a whole is a :class:`HarError`; what makes one entry unusable is
an :class:`EntryError`, which skips that entry alone.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import orjson

__all__ = ["EntryError", "HarError", "creator_name", "read_har"]


class HarError(ValueError):
    """The file cannot be read as a HAR at all."""


class EntryError(ValueError):
    """One entry cannot be imported (a field missing, bad base64, not HTTP): it is skipped."""


def read_har(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The HAR document at ``path`` and the file's bytes; raises HarError with the reason."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise HarError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data = raw
    if raw[:1] == b"\x78":  # a zlib stream: mitmproxy writes .zhar files so
        try:
            data = zlib.decompress(raw)
        except zlib.error:
            data = raw
    if data.startswith(b"\xef\xbb\xbf"):  # a byte order mark, as some Windows tools write
        data = data[3:]
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise HarError(f"{path} is not JSON: {exc}") from exc
    log = doc.get("log") if isinstance(doc, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(f'{path} is not a HAR file (no "log" object with a list of "entries")')
    return doc, raw


def creator_name(log: dict[str, Any]) -> str:
    """``Firefox 120.0``, ``WebInspector 537.36``: who wrote the HAR, as its creator says."""
    parts = []
    for key in ("creator", "browser"):
        who = log.get(key)
        if isinstance(who, dict) and isinstance(who.get("name"), str):
            name = who["name"]
            version = who.get("version")
            text = f"{name} {version}" if isinstance(version, str) and version else name
            if text not in parts:
                parts.append(text)
    return ", ".join(parts) or "an unknown tool"
