"""Scopes and messages as plain, compact JSON for an agent to read.

The session format (docs/format.md) is lossless: bytes are tagged, tuples are tagged,
nothing is cut. An agent pays for every token it reads and needs none of that, so here
text is plain text (bytes read as UTF-8, else Latin-1), tuples are lists, headers are
``[name, value]`` pairs, and payloads are bounded, with what was cut said plainly.

Header values are masked here again, with the default secret names, whatever the
recording did: ``Spy(app, redact=[])`` keeps them in a session file, and an agent's
transcript is no place for a bearer token. So are the values of secret-looking query
parameters (``access_token=``, ``api_key=``, signatures), which no recording masks.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from asgispy.codec.jsonform import Opaque, text_prefix
from asgispy.codec.redact import DEFAULT_REDACT, REDACTED_TEXT, Redactor
from asgispy.model.connection import Connection
from asgispy.model.event import Event
from asgispy.types import PAYLOAD_FIELDS

__all__ = [
    "BINARY_PREVIEW",
    "event_fields",
    "headers",
    "masked",
    "ms",
    "plain",
    "query",
    "redactor",
    "target",
]

#: The most bytes of a binary payload shown (as base64): an agent learns little more from more.
BINARY_PREVIEW = 256
#: Events waiting less than this long inside receive() or send() do not show their wait.
NOTABLE_WAIT = 0.001
_MAX_DEPTH = 16
_MASKED = REDACTED_TEXT

redactor = Redactor(DEFAULT_REDACT)


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, to the microsecond: what a person reads first."""
    return None if seconds is None else round(seconds * 1000, 3)


def text_of(data: bytes) -> str:
    """Bytes as text: UTF-8 where they are, else Latin-1 (which reads any bytes)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def clip(text: str, bound: int) -> str:
    """``text``, or its first ``bound`` characters and how long it was."""
    if len(text) <= bound:
        return text
    return f"{text[:bound]}… [{len(text)} chars]"


def _name_bytes(name: Any) -> bytes | None:
    if isinstance(name, (bytes, bytearray, memoryview)):
        return bytes(name)
    if isinstance(name, str):
        return name.encode("utf-8", "replace")
    return None


def query(value: bytes | str) -> str:
    """A query string as text (Latin-1, as HTTP carries it), secret values masked."""
    return redactor.query(value.decode("latin-1") if isinstance(value, bytes) else value)


def target(conn: Connection) -> str:
    """Path and query as a client wrote them, secret query values masked."""
    raw = conn.query_string
    return f"{conn.path}?{query(raw)}" if raw else conn.path


def masked(conn: Connection) -> Connection:
    """The connection with secret request header values masked (it already is, unless recorded
    with ``Spy(redact=[])`` or narrower), and secret query values too (no recording masks them):
    for what is made from the whole connection (a summary line, a curl command)."""
    scope = conn.scope
    hidden = redactor.message(scope)
    raw = scope.get("query_string") if isinstance(scope, dict) else None
    if isinstance(raw, bytes) and raw:
        text = query(raw)
        if text != raw.decode("latin-1"):
            hidden = {**hidden, "query_string": text.encode("latin-1")}
    if hidden is scope:
        return conn
    events = [(e.direction, e.t, e.peek(), e.cut, e.wait) for e in conn.events]
    return Connection.from_values(
        conn.id,
        conn.type,
        hidden,
        events,
        {"outcome": conn.outcome, "duration": conn.duration},
        seq=conn.seq,
        producer=conn.producer,
        started=conn.started,
    )


def headers(value: Any, bound: int) -> Any:
    """Header pairs as ``[name, value]`` text, secret values masked. What is not a header pair
    (an app's mistake, which the checker reports) is shown as it is, not dropped."""
    if not isinstance(value, (list, tuple)):
        return plain(value, bound)
    out: list[Any] = []
    for item in value:
        pair = item if isinstance(item, (list, tuple)) and len(item) == 2 else None
        name_bytes = _name_bytes(pair[0]) if pair is not None else None
        if pair is None or name_bytes is None:
            out.append(plain(item, bound))
            continue
        shown = _MASKED if redactor.is_secret(name_bytes) else plain(pair[1], bound)
        out.append([text_of(name_bytes), shown])
    return out


def plain(value: Any, bound: int, _depth: int = 0) -> Any:
    """``value`` as plain JSON: text for bytes, lists for tuples, masked ``headers``, bounded strings."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # JSON numbers beyond 64 bits are not read alike everywhere: text is.
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, str):
        return clip(value, bound)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return clip(text_of(bytes(value)), bound)
    if _depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(plain(key, bound, _depth + 1))
            if name == "headers":
                out[name] = headers(item, bound)
            elif name == "query_string" and isinstance(item, (bytes, str)):
                out[name] = clip(query(item), bound)
            else:
                out[name] = plain(item, bound, _depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [plain(item, bound, _depth + 1) for item in value]
    if isinstance(value, Opaque):
        return clip(f"<{value.type}> {value.repr}", bound)
    return clip(repr(value), bound)


def _json_of(text: str) -> tuple[bool, Any]:
    """The parsed JSON of ``text`` when it is an object or an array (a bare ``42`` stays text)."""
    start = text.lstrip()[:1]
    if start not in ("{", "["):
        return False, None
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def payload(name: str, value: bytes | str, size: int, bound: int) -> dict[str, Any]:
    """One payload field (``body``, ``bytes`` or ``text``), bounded.

    Whole JSON objects and arrays come as ``<name>_json``, text as ``<name>``, anything else
    as ``<name>_base64`` (at most :data:`BINARY_PREVIEW` bytes). When less than all of it is
    shown, ``<name>_cut`` says how much: ``shown`` of ``size`` (bytes; characters for
    ``text``), and ``recorded`` when the recording itself kept less than ``size``.
    """
    recorded = len(value)
    out: dict[str, Any] = {}
    text: str | None
    if isinstance(value, str):
        text = value[:bound]
        shown = len(text)
    else:
        head = value[:bound]
        text = text_prefix(head)
        if text is not None:
            shown = len(text.encode("utf-8"))
        else:
            head = value[: min(bound, BINARY_PREVIEW)]
            shown = len(head)
            out[f"{name}_base64"] = base64.b64encode(head).decode("ascii")
    if text is not None:
        whole = shown == recorded == size
        is_json, parsed = _json_of(text) if whole else (False, None)
        if is_json:
            out[f"{name}_json"] = parsed
        else:
            out[name] = text
    if shown < size:
        cut: dict[str, int] = {"shown": shown, "size": size}
        if recorded < size:
            cut["recorded"] = recorded
        out[f"{name}_cut"] = cut
    return out


def event_fields(event: Event, bound: int) -> dict[str, Any]:
    """An event as ``t`` (ms since the connection began), ``dir``, ``type`` and its fields."""
    out: dict[str, Any] = {"t": ms(event.t), "dir": event.direction, "type": event.type}
    if event.wait is not None and event.wait >= NOTABLE_WAIT:
        out["wait"] = ms(event.wait)
    message = event.peek()
    if not isinstance(message, dict):
        out["message"] = plain(message, bound)
        return out
    cut = event.cut or {}
    for key, value in message.items():
        if key == "type":
            continue
        if key in PAYLOAD_FIELDS and isinstance(value, (bytes, str)):
            out.update(payload(key, value, int(cut.get(key, len(value))), bound))
        elif key == "headers":
            out[key] = headers(value, bound)
        else:
            out[str(key)] = plain(value, bound)
    return out
