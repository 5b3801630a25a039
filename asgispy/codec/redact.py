"""Masking of secret header values before anything leaves the process.

Redaction happens when a record is encoded (for export or for the wire), never on the
request path: the in-memory record keeps what the app saw, only its serialised form is
masked. Query strings are masked only where traffic leaves the machine (:meth:`Redactor.query`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["DEFAULT_REDACT", "QUERY_REDACTED", "REDACTED", "Redactor"]

REDACTED = b"[redacted]"
#: the same, as text (what an editor, an agent or a span shows)
REDACTED_TEXT = REDACTED.decode("ascii")

#: What a secret query parameter's value becomes: URL-safe, unlike ``[redacted]``.
QUERY_REDACTED = "REDACTED"

#: Query parameters that carry signatures (pre-signed URLs), masked whatever the header list
#: says: OpenTelemetry's HTTP semantic conventions name these.
_QUERY_SECRETS = frozenset({"awsaccesskeyid", "signature", "sig", "x-goog-signature"})

#: Header names (case-insensitive; ``*`` globs allowed) whose values are masked by default.
DEFAULT_REDACT: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "*api-key*",
    "*api_key*",
    "*apikey*",
    "*token*",
    "*secret*",
    "*password*",
    "*session-id*",
    "x-auth*",
    "x-*-signature",
)

_HEADER_FIELDS = ("headers",)


class Redactor:
    """Decides which header values to mask, from names and glob patterns."""

    def __init__(self, names: Iterable[str] = DEFAULT_REDACT) -> None:
        if isinstance(names, (str, bytes)):
            raise TypeError("redact takes a list of header names, not a single string")
        patterns = [n.lower() if isinstance(n, str) else n.decode("latin-1").lower() for n in names]
        self.patterns: tuple[str, ...] = tuple(patterns)
        regex = "|".join(fnmatch.translate(p) for p in patterns)
        self._match = re.compile(regex).match if regex else None
        #: header names judged so far (bytes to whether secret), for callers that test many
        self.known: dict[bytes, bool] = {}
        self._public: set[bytes] = set()  # names known not to be secret, for any_secret

    def __bool__(self) -> bool:
        return self._match is not None

    def is_secret(self, name: bytes) -> bool:
        """Whether the header called ``name`` has its value masked."""
        if self._match is None:
            return False
        known = self.known.get(name)
        if known is None:
            known = self._match(name.decode("latin-1").lower()) is not None
            if len(self.known) < 4096:
                self.known[name] = known
        return known

    def any_secret(self, names: set[bytes]) -> bool:
        """Whether any of the header ``names`` is secret: two set operations when all are known."""
        if self._match is None:
            return False
        unknown = names - self._public
        if not unknown:
            return False
        found = False
        for name in unknown:
            if self.is_secret(name):
                found = True
            elif len(self._public) < 4096:
                self._public.add(name)
        return found

    def headers(self, headers: Any) -> Any:
        """A copy of ``headers`` with secret values masked (the same object when none is)."""
        if self._match is None or type(headers) not in (list, tuple):
            return headers
        out = None
        for i, item in enumerate(headers):
            try:
                name, value = item
            except (TypeError, ValueError):
                continue
            if type(value) is bytes and value == REDACTED:
                continue
            if isinstance(name, (bytes, bytearray)):
                secret = self.is_secret(bytes(name))
            elif isinstance(name, str):  # not ASGI, but an app may send it: mask it all the same
                secret = self.is_secret(name.encode("utf-8", "replace"))
            else:
                continue
            if secret:
                if out is None:
                    out = list(headers)
                out[i] = type(item)((name, REDACTED)) if type(item) in (tuple, list) else (name, REDACTED)
        if out is None:
            return headers
        return tuple(out) if type(headers) is tuple else out

    def query(self, query: str) -> str:
        """The query string with secret values masked: parameters whose names the header
        patterns match (``access_token``, ``api_key``...) or that carry a signature. The same
        string when none is. For what leaves the machine (OTLP spans, answers to agents); the
        recording keeps the query as the app saw it."""
        if "=" not in query:
            return query
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, sep, value = part.partition("=")
            if not sep or not value or value == QUERY_REDACTED:
                continue
            plain = unquote_plus(name)
            if plain.lower() in _QUERY_SECRETS or self.is_secret(plain.encode("utf-8", "replace")):
                parts[i] = f"{name}={QUERY_REDACTED}"
                changed = True
        return "&".join(parts) if changed else query

    def message(self, message: Any) -> Any:
        """A shallow copy of a scope or message with its header values masked where needed."""
        if self._match is None or not isinstance(message, dict):
            return message
        for field in _HEADER_FIELDS:
            headers = message.get(field)
            if headers is not None:
                masked = self.headers(headers)
                if masked is not headers:
                    message = {**message, field: masked}
        return message
