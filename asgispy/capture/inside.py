"""What the app did inside a connection, as the record keeps it and as it leaves the process.

The hooks of :mod:`asgispy.inside` append plain dicts to a record while the app runs (raw
header pairs and bytes bodies, already cut to the record's bound); here they become the JSON
entries of a session's ``"inside"`` array (docs/format.md): secret header values masked,
bodies in the codec's tagged form, and each entry marked ``after_response`` when it began
after the response was complete (a background task), which is worked out here, off the request
path, from the recorded messages rather than checked on every ``send``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from asgispy.codec import jsonform
from asgispy.codec.redact import REDACTED_TEXT, Redactor

__all__ = ["MAX_INSIDE", "InsideOptions", "inside_documents", "response_done"]

#: entries kept per connection; more are counted in a note
MAX_INSIDE = 1000


@dataclass(frozen=True)
class InsideOptions:
    """What one Spy records inside its connections (carried by each record it makes)."""

    kinds: frozenset[str]
    level: int = 20
    max_body: int = 1024 * 1024
    sql_params: bool = False


def response_done(events: Iterable[Sequence[Any]]) -> float | None:
    """When the response was complete: the last body of an HTTP response, or a WebSocket's close."""
    for event in events:
        message = event[2]
        kind = message.get("type")
        if (kind == "http.response.body" and not message.get("more_body")) or kind == "websocket.close":
            return float(event[1])
    return None


def _headers(pairs: Any, redactor: Redactor | None) -> list[list[str]]:
    out = []
    for name, value in pairs or ():
        secret = redactor is not None and redactor.is_secret(name.lower().encode("latin-1"))
        out.append([name, REDACTED_TEXT if secret else value])
    return out


def inside_documents(
    entries: Iterable[dict[str, Any]], redactor: Redactor | None, done: float | None
) -> list[dict[str, Any]]:
    """The JSON entries of what a record holds, masked with ``redactor``."""
    docs = []
    for entry in entries:
        doc = dict(entry)
        if done is not None and float(doc.get("t", 0.0)) > done:
            doc["after_response"] = True
        if doc.get("kind") == "http":
            url = str(doc.get("url", ""))
            if redactor is not None and "?" in url:
                base, _, query = url.partition("?")
                doc["url"] = f"{base}?{redactor.query(query)}"
            doc["request_headers"] = _headers(doc.get("request_headers"), redactor)
            doc["response_headers"] = _headers(doc.get("response_headers"), redactor)
            doc["request_body"] = jsonform.encode(doc.get("request_body") or b"")
            doc["response_body"] = jsonform.encode(doc.get("response_body") or b"")
        elif "parameters" in doc:
            doc["parameters"] = jsonform.encode(doc["parameters"])
        docs.append(doc)
    return docs
