"""The parts of an entry every connection needs: its URL as scope fields, headers, times.

HAR holds text where ASGI holds bytes; header names become lowercase (as ASGI servers give
them), HTTP/2's pseudo-headers are left out (``:authority`` becomes ``host`` when there is none,
as HTTP/2 servers do), and a value holding several lines (how some tools join repeated
headers) becomes one header per line.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
from typing import Any
from urllib.parse import unquote, urlsplit

from asgispy.imports.har_file import EntryError

__all__ = [
    "Url",
    "field",
    "header_value",
    "headers",
    "http_version",
    "object_of",
    "parse_url",
    "phases",
    "server",
    "started_at",
    "text_bytes",
    "text_of",
]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def field(obj: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[name]`` when it is of ``kind``; else an EntryError naming ``where.name``."""
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise EntryError(f"{where}.{name} is missing" if value is None else f"{where}.{name} is not valid")
    return value


def text_of(obj: dict[str, Any], name: str) -> str:
    """``obj[name]`` when it is a string, else empty."""
    value = obj.get(name)
    return value if isinstance(value, str) else ""


def object_of(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """``obj[name]`` when it is an object, else an empty one."""
    value = obj.get(name)
    return value if isinstance(value, dict) else {}


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def text_bytes(text: str) -> bytes:
    """HAR text as the bytes it stood for: Latin-1 when it fits (header bytes), else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


class Url:
    """A request URL split as a scope holds it."""

    __slots__ = ("host", "netloc", "path", "port", "query", "raw_path", "scheme")

    def __init__(self, scheme: str, netloc: str, host: str, port: int, raw_path: str, query: str) -> None:
        self.scheme, self.netloc, self.host, self.port = scheme, netloc, host, port
        self.raw_path, self.query = raw_path, query
        self.path = unquote(raw_path)  # as servers decode it: UTF-8, bad bytes replaced


def parse_url(url: str) -> Url:
    """The URL's scheme, host, port, path and query; EntryError for one that is not HTTP(S)/WS."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EntryError(f"request.url {url[:80]!r} is not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise EntryError(f"request.url is a {scheme or 'relative'}: URL, not HTTP or WebSocket")
    if not parts.hostname:
        raise EntryError(f"request.url {url[:80]!r} has no host")
    netloc = parts.netloc.rpartition("@")[2]
    return Url(scheme, netloc, parts.hostname, port or _DEFAULT_PORTS[scheme], parts.path or "/", parts.query)


def http_version(text: Any) -> str:
    """``1.1``, ``2``, ``3`` from ``HTTP/1.1``, ``http/2.0``, ``h2``, ``h3`` (1.1 when unknown)."""
    value = text.strip().lower() if isinstance(text, str) else ""
    if value in ("h2", "h2c") or value.startswith("http/2"):
        return "2"
    if value == "h3" or value.startswith("http/3") or value.startswith("h3-"):
        return "3"
    if value in ("http/1.0", "1.0"):
        return "1.0"
    return "1.1"


def headers(items: Any, where: str) -> tuple[list[tuple[bytes, bytes]], str | None]:
    """A HAR header list as ASGI's ``[(name, value)]`` and the ``:authority`` it held, if any."""
    if items is None:
        return [], None
    if not isinstance(items, list):
        raise EntryError(f"{where}.headers is not a list")
    out: list[tuple[bytes, bytes]] = []
    authority = None
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(value, str):
            raise EntryError(f"{where}.headers has an item without a name and a value")
        name = name.strip().lower()
        if name.startswith(":"):
            if name == ":authority":
                authority = value
            continue
        if not name:
            continue
        for line in value.replace("\r\n", "\n").split("\n"):
            out.append((text_bytes(name), text_bytes(line.strip(" \t\r"))))
    return out, authority


def header_value(items: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in items:
        if key == name:
            return value
    return None


def server(entry: dict[str, Any], url: Url) -> tuple[str, int]:
    """(host, port) of the server: the address the client reached, else the URL's host."""
    address = entry.get("serverIPAddress")
    host = url.host
    if isinstance(address, str) and address.strip():
        candidate = address.strip().strip("[]")
        with contextlib.suppress(ValueError):
            host = str(ipaddress.ip_address(candidate))
    return host, url.port


def started_at(entry: dict[str, Any]) -> float:
    """``startedDateTime`` as seconds since the epoch (a time without a zone is taken as UTC)."""
    text = field(entry, "startedDateTime", str, "entry")
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise EntryError(f"entry.startedDateTime {text!r} is not an ISO 8601 time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _ms(value: Any) -> float:
    """A HAR timing in seconds; -1, null or missing (unknown) count as none."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / 1000
    return 0.0


def phases(entry: dict[str, Any]) -> tuple[float, float, float, float]:
    """(before, send, wait, receive) in seconds: ``before`` is blocked, DNS and connect, which
    come before the server sees the request (TLS is part of connect in HAR)."""
    timings = entry.get("timings")
    if not isinstance(timings, dict):
        timings = {}
    before = _ms(timings.get("blocked")) + _ms(timings.get("dns")) + _ms(timings.get("connect"))
    send, wait, receive = _ms(timings.get("send")), _ms(timings.get("wait")), _ms(timings.get("receive"))
    if send == wait == receive == 0.0:
        wait = _ms(entry.get("time"))  # no phases, only the total
    return before, send, wait, receive
