"""The header side of HAR's request and response objects: headers, cookies, version, status text.

HTTP and WebSocket entries share these, so they sit apart from both. Cookies are parsed from
the Cookie and Set-Cookie headers; a header redacted when recorded yields no cookies, and the
caller is told so that the entry can say why they are missing rather than look cookie-less.
"""

from __future__ import annotations

import http
from http.cookies import CookieError, SimpleCookie
from typing import Any

from asgispy.codec.redact import REDACTED
from asgispy.model.connection import Connection

__all__ = ["header_list", "http_version", "request_cookies", "response_cookies", "status_text"]


def header_list(headers: list[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    """Headers as HAR's ``[{"name": ..., "value": ...}]``, in the order they were sent."""
    return [{"name": k.decode("latin-1"), "value": v.decode("latin-1")} for k, v in headers]


def http_version(conn: Connection) -> str:
    """``HTTP/1.1``, ``HTTP/2``: the scope's version, HTTP/1.1 when the server gave none."""
    version = conn.scope.get("http_version")
    return f"HTTP/{version}" if isinstance(version, str) and version else "HTTP/1.1"


def status_text(status: int) -> str:
    """The standard reason phrase of ``status``; empty for 0 (no response) or an unknown code."""
    if status == 0:
        return ""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def request_cookies(headers: list[tuple[bytes, bytes]]) -> tuple[list[dict[str, Any]], bool]:
    """Cookies from Cookie headers; True as second item when a header was redacted."""
    cookies: list[dict[str, Any]] = []
    redacted = False
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        if value == REDACTED:
            redacted = True
            continue
        for pair in value.decode("latin-1").split(";"):
            name, sep, val = pair.strip().partition("=")
            if name and sep:
                cookies.append({"name": name, "value": val})
    return cookies, redacted


def response_cookies(headers: list[tuple[bytes, bytes]]) -> tuple[list[dict[str, Any]], bool]:
    """Cookies from Set-Cookie headers, with their attributes; True as second item when redacted."""
    cookies: list[dict[str, Any]] = []
    redacted = False
    for key, value in headers:
        if key.lower() != b"set-cookie":
            continue
        if value == REDACTED:
            redacted = True
            continue
        parsed = SimpleCookie()
        try:
            parsed.load(value.decode("latin-1"))
        except CookieError:
            continue
        for morsel in parsed.values():
            cookie: dict[str, Any] = {"name": morsel.key, "value": morsel.value}
            for attr, har_name in (("path", "path"), ("domain", "domain"), ("expires", "expires")):
                if morsel[attr]:
                    cookie[har_name] = _cookie_expiry(morsel[attr]) if attr == "expires" else morsel[attr]
            if morsel["httponly"]:
                cookie["httpOnly"] = True
            if morsel["secure"]:
                cookie["secure"] = True
            cookies.append(cookie)
    return cookies, redacted


def _cookie_expiry(text: str) -> str:
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(text).isoformat()
    except (TypeError, ValueError):
        return text
