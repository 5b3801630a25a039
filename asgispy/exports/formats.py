"""Every export format as bytes: what ``asgispy export`` and the dashboard's ``e`` write.

One place turns a :class:`Session` into a file's bytes, so the command line and the dashboard
write exactly the same thing for the same format, and the format a file name implies is
decided the same way in both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from asgispy.model.session import Session

__all__ = [
    "DESCRIPTIONS",
    "EXTENSIONS",
    "FORMATS",
    "TITLES",
    "Export",
    "Format",
    "export_bytes",
    "format_for",
    "with_format",
]

#: In the order they are offered: the two most asked for first.
Format = Literal["json", "har", "jsonl", "curl"]
FORMATS: tuple[Format, ...] = get_args(Format)

#: The extension each format gets when a name is made for it.
EXTENSIONS: dict[Format, str] = {"json": ".json", "jsonl": ".jsonl", "har": ".har", "curl": ".sh"}
#: Extensions that name a format, the canonical ones and ``.curl``.
_BY_EXTENSION: dict[str, Format] = {**{ext: fmt for fmt, ext in EXTENSIONS.items()}, ".curl": "curl"}

TITLES: dict[Format, str] = {
    "json": "JSON session",
    "har": "HAR 1.2",
    "jsonl": "JSON lines",
    "curl": "curl commands",
}
#: What each format is for and what it leaves out, in one line (the dashboard shows it).
DESCRIPTIONS: dict[Format, str] = {
    "json": "lossless; asgispy open and asgispy.load() read it back",
    "har": "for browsers' DevTools and HAR viewers; lifespan connections are left out",
    "jsonl": "the event log asgispy record --jsonl writes; asgispy.load() reads it back",
    "curl": "one command per HTTP request; other connections are left out",
}


@dataclass(frozen=True)
class Export:
    """A file's bytes, and how many connections made it in (HAR and curl leave some out)."""

    data: bytes
    count: int


def format_for(path: str | PurePath | None) -> Format | None:
    """The format a file name's extension names, or None (no name, or an unknown extension)."""
    if not path:
        return None
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())


def with_format(name: str, fmt: Format) -> str:
    """``name`` with the extension of ``fmt``: a known or missing one is replaced or added.

    An unknown extension (``notes.txt``) is kept and the format's one added, so a name the
    user typed on purpose is never cut short.
    """
    if not name or format_for(name) == fmt:
        return name
    path = PurePath(name)
    if not path.name:
        return name
    stem = name[: -len(path.suffix)] if format_for(name) is not None else name
    return stem + EXTENSIONS[fmt]


def export_bytes(session: Session, fmt: Format, *, comment: str | None = None) -> Export:
    """``session`` in ``fmt``: a JSON session, a JSON-lines event log, HAR 1.2 or curl commands.

    ``comment`` goes into the HAR log (where it came from); the other formats have no place
    for it. JSON and JSON lines load back with ``asgispy.load``.
    """
    import orjson

    connections = session.connections
    if fmt == "json":
        data = orjson.dumps(session.document(), option=orjson.OPT_INDENT_2) + b"\n"
        return Export(data, len(connections))
    if fmt == "jsonl":
        from asgispy.store.load import EVENT_LOG_FORMAT, EVENT_LOG_VERSION

        tags = {conn.producer for conn in connections}
        lines: list[dict[str, object]] = [
            {"format": EVENT_LOG_FORMAT, "version": EVENT_LOG_VERSION, "created": time.time()}
        ]
        lines += [
            {"type": "producer", "tag": tag, **info.document()}
            for tag, info in session.producers.items()
            if tag in tags
        ]
        lines += [{"type": "open", "connection": conn.document()} for conn in connections]
        return Export(b"".join(orjson.dumps(line) + b"\n" for line in lines), len(connections))
    if fmt == "har":
        from asgispy.exports.har import to_har

        har = to_har(connections, comment=comment)
        data = orjson.dumps(har, option=orjson.OPT_INDENT_2) + b"\n"
        # Outgoing calls are entries of their own, but not connections.
        made = sum(1 for e in har["log"]["entries"] if e["_asgispy"].get("kind") != "outgoing")
        return Export(data, made)
    if fmt == "curl":
        from asgispy.exports.curl import to_curl

        commands = [to_curl(conn) for conn in connections if conn.type == "http"]
        return Export(("\n\n".join(commands) + "\n").encode(), len(commands))
    raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
