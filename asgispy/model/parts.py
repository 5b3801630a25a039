"""The small values a connection is described by: the error it raised, its client and server, its
headers and the route it matched, read leniently from whatever the server and the file gave."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from asgispy.codec import jsonform

__all__ = [
    "Endpoint",
    "ErrorInfo",
    "endpoint",
    "first_header",
    "handler_document",
    "header_pairs",
    "scope_from_document",
]


@dataclass(frozen=True)
class ErrorInfo:
    """An exception the app raised: its type name, message and formatted traceback."""

    type: str
    message: str
    traceback: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> ErrorInfo | None:
        if not doc:
            return None
        return cls(str(doc.get("type", "?")), str(doc.get("message", "")), str(doc.get("traceback", "")))

    def document(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


class Endpoint(NamedTuple):
    """A scope's ``client`` or ``server``. The spec says a (host, port) pair of str and int; in
    the wild Daphne gives a list and Granian the port as a string (docs/servers.md), so the
    scope keeps what the server gave and views read this instead."""

    host: str
    port: int | None


def endpoint(value: Any) -> Endpoint | None:
    """The :class:`Endpoint` of a scope's ``client`` or ``server`` value, None when it names none."""
    if not isinstance(value, (tuple, list)) or not value or value[0] is None:
        return None
    port = value[1] if len(value) > 1 else None
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    return Endpoint(str(value[0]), port if type(port) is int else None)


def scope_from_document(doc: Any) -> dict[str, Any]:
    """The scope a document encodes; an empty one for a document that is not a readable dict."""
    try:
        scope = jsonform.decode(doc)
    except ValueError:
        return {}
    return scope if isinstance(scope, dict) else {}


def first_header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case) as text, or None."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def header_pairs(value: Any) -> list[tuple[bytes, bytes]]:
    """The (name, value) byte pairs of a header list, skipping items that are not such a pair."""
    out = []
    for item in value or ():
        try:
            name, val = item
        except (TypeError, ValueError):
            continue
        if isinstance(name, bytes) and isinstance(val, bytes):
            out.append((name, val))
    return out


def handler_document(handler: dict[str, Any] | None) -> dict[str, Any] | None:
    """The matched route as a session file keeps it (its path parameters encoded)."""
    if handler is None:
        return None
    doc = dict(handler)
    if "path_params" in doc:
        doc["path_params"] = jsonform.encode(doc["path_params"])
    return doc
