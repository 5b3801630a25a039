"""What the app did inside a connection: the outgoing HTTP calls it made, the log records it
emitted and the SQL statements it ran, each at its time among the connection's messages.

Recorded by ``Spy(app, inside=True)`` (see :mod:`asgispy.inside`); in a session file each is
a JSON object in the connection's ``"inside"`` array (docs/format.md), read back here as one of
three small classes sharing :class:`Inside`: ``kind`` (``"http"``, ``"log"`` or ``"sql"``),
``t`` (seconds from the connection's start, like events) and ``after_response`` (it happened
after the response was complete: a background task).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asgispy.codec import jsonform

__all__ = ["Inside", "LogRecord", "OutgoingCall", "Query", "inside_from_document"]


def _float(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _pairs(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return []
    return [(str(p[0]), str(p[1])) for p in value if isinstance(p, (list, tuple)) and len(p) == 2]


def _bytes(value: Any) -> bytes:
    decoded = jsonform.decode(value) if value is not None else b""
    return decoded if isinstance(decoded, bytes) else b""


@dataclass
class Inside:
    """One thing the app did while serving a connection."""

    kind: ClassVar[str] = ""
    t: float = 0.0
    after_response: bool = False

    @property
    def end(self) -> float:
        """When it ended (seconds from the connection's start): ``t`` plus its duration, if any."""
        duration = getattr(self, "duration", None)
        return self.t + (duration or 0.0)

    def _common(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "t": self.t}
        if self.after_response:
            doc["after_response"] = True
        return doc

    def document(self) -> dict[str, Any]:
        return self._common()


@dataclass
class OutgoingCall(Inside):
    """An HTTP request the app made (httpx, requests, aiohttp) and what came back."""

    kind: ClassVar[str] = "http"
    library: str = ""
    method: str = "GET"
    url: str = ""
    status: int | None = None
    duration: float | None = None
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    request_body: bytes = b""
    response_body: bytes = b""
    #: the true sizes, when known (a body is kept up to the Spy's ``max_body``)
    request_size: int | None = None
    response_size: int | None = None
    #: the call failed: its exception as ``Type: message``
    error: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            **self._common(),
            "library": self.library,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "duration": self.duration,
            "request_headers": [list(p) for p in self.request_headers],
            "response_headers": [list(p) for p in self.response_headers],
            "request_body": jsonform.encode(self.request_body),
            "response_body": jsonform.encode(self.response_body),
            "request_size": self.request_size,
            "response_size": self.response_size,
            "error": self.error,
        }


@dataclass
class LogRecord(Inside):
    """A record of the standard ``logging`` module emitted while serving the connection."""

    kind: ClassVar[str] = "log"
    level: str = "INFO"
    levelno: int = 20
    logger: str = ""
    message: str = ""
    #: where it was logged from, ``path:line``
    where: str = ""
    #: the exception logged with it, with its traceback, as text
    exception: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            **self._common(),
            "level": self.level,
            "levelno": self.levelno,
            "logger": self.logger,
            "message": self.message,
            "where": self.where,
            "exception": self.exception,
        }


@dataclass
class Query(Inside):
    """A SQL statement run while serving the connection (SQLAlchemy's engine events)."""

    kind: ClassVar[str] = "sql"
    statement: str = ""
    duration: float | None = None
    #: rows returned or changed, where the driver says (None: unknown)
    rows: int | None = None
    #: one statement for many parameter sets (``executemany``)
    many: bool = False
    #: the parameters, only when asked for (``--inside-sql-params``): they are user data
    parameters: Any = None
    database: str = ""
    error: str | None = None

    def document(self) -> dict[str, Any]:
        doc = {
            **self._common(),
            "statement": self.statement,
            "duration": self.duration,
            "rows": self.rows,
            "many": self.many,
            "database": self.database,
            "error": self.error,
        }
        if self.parameters is not None:
            doc["parameters"] = jsonform.encode(self.parameters)
        return doc


def inside_from_document(doc: Mapping[str, Any]) -> Inside | None:
    """One entry of a connection's ``"inside"`` array (None for a kind this version does not know)."""
    kind = doc.get("kind")
    t = _float(doc.get("t"), 0.0) or 0.0
    after = bool(doc.get("after_response", False))
    if kind == "http":
        return OutgoingCall(
            t=t,
            after_response=after,
            library=_text(doc.get("library")) or "",
            method=_text(doc.get("method")) or "GET",
            url=_text(doc.get("url")) or "",
            status=_int(doc.get("status")),
            duration=_float(doc.get("duration")),
            request_headers=_pairs(doc.get("request_headers")),
            response_headers=_pairs(doc.get("response_headers")),
            request_body=_bytes(doc.get("request_body")),
            response_body=_bytes(doc.get("response_body")),
            request_size=_int(doc.get("request_size")),
            response_size=_int(doc.get("response_size")),
            error=_text(doc.get("error")),
        )
    if kind == "log":
        return LogRecord(
            t=t,
            after_response=after,
            level=_text(doc.get("level")) or "INFO",
            levelno=_int(doc.get("levelno")) or 0,
            logger=_text(doc.get("logger")) or "",
            message=_text(doc.get("message")) or "",
            where=_text(doc.get("where")) or "",
            exception=_text(doc.get("exception")),
        )
    if kind == "sql":
        parameters = doc.get("parameters")
        return Query(
            t=t,
            after_response=after,
            statement=_text(doc.get("statement")) or "",
            duration=_float(doc.get("duration")),
            rows=_int(doc.get("rows")),
            many=bool(doc.get("many", False)),
            parameters=jsonform.decode(parameters) if parameters is not None else None,
            database=_text(doc.get("database")) or "",
            error=_text(doc.get("error")),
        )
    return None
