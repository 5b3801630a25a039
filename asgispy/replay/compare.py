"""Compare two recordings of the same request: what the app answers now against what it answered.

Works on the store's model (:class:`~asgispy.model.connection.Connection`), so a replay, two session
files and the dashboard share one notion of "changed": status, response headers (those that
change on every run ignored), the body (JSON compared as JSON, down to the field; text as text;
anything else by size and hash), WebSocket frames and close codes, and how the app ended.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from asgispy.model.connection import Connection

__all__ = [
    "DEFAULT_IGNORED_HEADERS",
    "Difference",
    "Ignore",
    "compare",
    "difference_lines",
    "label",
    "match",
]

#: Response headers that differ on every run of the same app.
DEFAULT_IGNORED_HEADERS = frozenset(
    {"date", "server", "x-request-id", "request-id", "x-correlation-id", "traceparent", "x-trace-id", "age"}
)
_MISSING = object()


@dataclass(frozen=True)
class Difference:
    """One thing that differs: where (``status``, ``header etag``, ``body.items[0].name``), and
    what it was and is, as short text."""

    where: str
    before: str
    after: str


@dataclass
class Ignore:
    """What not to compare: header names, and JSON paths in the body (``body.items[*].created_at``)."""

    headers: set[str] = field(default_factory=lambda: set(DEFAULT_IGNORED_HEADERS))
    paths: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def from_rules(cls, rules: Iterable[str], defaults: bool = True) -> Ignore:
        """``rules``: header names, or JSON paths starting with ``body`` (``*`` any key or index)."""
        ignore = cls(set(DEFAULT_IGNORED_HEADERS) if defaults else set())
        for rule in rules:
            rule = rule.strip()
            if not rule:
                continue
            if rule == "body" or rule.startswith(("body.", "body[")):
                ignore.paths.append(_path_pattern(rule))
                # A field left out of the comparison may change the body's length too.
                ignore.headers.add("content-length")
            else:
                ignore.headers.add(rule.lower())
        return ignore

    def path(self, where: str) -> bool:
        return any(p.fullmatch(where) for p in self.paths)


def _path_pattern(rule: str) -> re.Pattern[str]:
    out = []
    for piece in re.split(r"(\[\*\]|\*)", rule):
        if piece == "[*]":
            out.append(r"\[\d+\]")
        elif piece == "*":
            out.append(r"[^.\[\]]+")
        else:
            out.append(re.escape(piece))
    # A path also covers everything below it.
    return re.compile("".join(out) + r"(?:[.\[].*)?")


def label(conn: Connection) -> str:
    """``GET /items?q=1`` (or ``WS /chat``): how a connection is named in a comparison."""
    if conn.type == "websocket":
        return f"WS {conn.target}"
    return f"{conn.method or conn.type.upper()} {conn.target}"


def compare(before: Connection, after: Connection, ignore: Ignore | None = None) -> list[Difference]:
    """What differs between two recordings of one request, in the order a reader checks them."""
    ignore = ignore or Ignore()
    out: list[Difference] = []
    if before.outcome != after.outcome:
        out.append(Difference("outcome", _ended(before), _ended(after)))
    elif before.error is not None and after.error is not None and before.error.type != after.error.type:
        out.append(Difference("exception", before.error.type, after.error.type))
    if before.status != after.status:
        out.append(Difference("status", str(before.status), str(after.status)))
    out += _headers(before.response_headers, after.response_headers, ignore)
    if before.type == "websocket" or after.type == "websocket":
        out += _frames(before, after)
        if before.close_code != after.close_code:
            out.append(Difference("close code", str(before.close_code), str(after.close_code)))
    else:
        out += _body(before.response_body(), after.response_body(), _content_type(after), ignore)
    return out


def _ended(conn: Connection) -> str:
    if conn.outcome == "exception" and conn.error is not None:
        return f"exception {conn.error.type}: {conn.error.message}"[:120]
    return conn.outcome


def _content_type(conn: Connection) -> str:
    for name, value in conn.response_headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1").lower()
    return ""


def _headers(
    before: Sequence[tuple[bytes, bytes]], after: Sequence[tuple[bytes, bytes]], ignore: Ignore
) -> list[Difference]:
    def table(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in headers:
            key = name.decode("latin-1").lower()
            if key not in ignore.headers:
                out.setdefault(key, []).append(value.decode("latin-1"))
        return out

    old, new = table(before), table(after)
    diffs = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) != new.get(name):
            diffs.append(
                Difference(
                    f"header {name}",
                    ", ".join(old[name]) if name in old else "(absent)",
                    ", ".join(new[name]) if name in new else "(absent)",
                )
            )
    return diffs


def _body(before: bytes, after: bytes, content_type: str, ignore: Ignore) -> list[Difference]:
    if before == after or ignore.path("body"):
        return []
    old, new = _json(before), _json(after)
    if old is not _MISSING and new is not _MISSING:
        diffs: list[Difference] = []
        _json_diff(old, new, "body", ignore, diffs)
        return diffs
    try:
        old_text, new_text = before.decode("utf-8"), after.decode("utf-8")
    except UnicodeDecodeError:
        return [Difference("body", _digest(before), _digest(after))]
    lines = list(
        difflib.unified_diff(
            old_text.splitlines(), new_text.splitlines(), "recorded", "now", lineterm="", n=1
        )
    )
    shown = "\n".join(lines[2:14]) + ("\n…" if len(lines) > 14 else "")
    return [Difference("body (text)", f"{len(before)} bytes", f"{len(after)} bytes\n{shown}")]


def _json(data: bytes) -> Any:
    if not data:
        return _MISSING
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _MISSING


def _digest(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:79] + "…"


def _json_diff(old: Any, new: Any, where: str, ignore: Ignore, out: list[Difference]) -> None:
    if ignore.path(where) or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            path = (
                f"{where}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) else f"{where}[{key!r}]"
            )
            if key not in new:
                if not ignore.path(path):
                    out.append(Difference(path, _short(old[key]), "(absent)"))
            elif key not in old:
                if not ignore.path(path):
                    out.append(Difference(path, "(absent)", _short(new[key])))
            else:
                _json_diff(old[key], new[key], path, ignore, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            path = f"{where}[{index}]"
            if index >= len(new):
                if not ignore.path(path):
                    out.append(Difference(path, _short(old[index]), "(absent)"))
            elif index >= len(old):
                if not ignore.path(path):
                    out.append(Difference(path, "(absent)", _short(new[index])))
            else:
                _json_diff(old[index], new[index], path, ignore, out)
        return
    out.append(Difference(where, _short(old), _short(new)))


def _frames(before: Connection, after: Connection) -> list[Difference]:
    def frames(conn: Connection) -> list[str]:
        out = []
        for event in conn.events:
            if event.type == "websocket.send":
                message = event.message if isinstance(event.message, dict) else {}
                text, data = message.get("text"), message.get("bytes")
                out.append(
                    repr(text) if text is not None else _digest(data) if isinstance(data, bytes) else "?"
                )
        return out

    old, new = frames(before), frames(after)
    diffs = []
    for index in range(max(len(old), len(new))):
        o = old[index] if index < len(old) else "(absent)"
        n = new[index] if index < len(new) else "(absent)"
        if o != n:
            diffs.append(Difference(f"frame {index + 1} sent", o, n))
    return diffs


def match(
    before: Sequence[Connection],
    after: Sequence[Connection],
    key: Callable[[Connection], Any] | None = None,
) -> list[tuple[Connection | None, Connection | None]]:
    """Pair connections of two recordings: by ``key`` (default: type, method and path) and, among
    those with the same key, in order. Lifespans are left out; unpaired ones come alone."""
    key = key or (lambda c: (c.type, c.method, c.path))
    waiting: dict[Any, list[Connection]] = {}
    for conn in after:
        if conn.type != "lifespan":
            waiting.setdefault(key(conn), []).append(conn)
    pairs: list[tuple[Connection | None, Connection | None]] = []
    for conn in before:
        if conn.type == "lifespan":
            continue
        candidates = waiting.get(key(conn))
        pairs.append((conn, candidates.pop(0) if candidates else None))
    for rest in waiting.values():
        pairs += [(None, conn) for conn in rest]
    return pairs


def difference_lines(differences: Sequence[Difference]) -> list[str]:
    """The differences as indented lines: ``  status: 200 → 404``; multi-line values indented."""
    lines = []
    for diff in differences:
        if "\n" in diff.after:
            head, _, rest = diff.after.partition("\n")
            lines.append(f"  {diff.where}: {diff.before} → {head}")
            lines += ["      " + line for line in rest.splitlines()]
        else:
            lines.append(f"  {diff.where}: {diff.before} → {diff.after}")
    return lines
