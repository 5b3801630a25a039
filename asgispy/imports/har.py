"""A HAR file becomes an asgispy session: one connection per entry, in the order they began.

Each entry's request becomes a scope (``http``, or ``websocket`` for an upgrade) and its
receive messages, its response the send messages, at the times its ``startedDateTime`` and
``timings`` give: the app sees the request once it was sent (``send``), answers after ``wait``
and finishes after ``receive``. A HAR holds neither the messages the app really received and
sent (one message stands for each body) nor their times, the client's address or the route, so
every connection's notes say so, and its producer says the file it came from. Secret headers
are masked as in every session asgispy writes, unless the caller keeps them.

A HAR that asgispy wrote carries asgispy's own fields (``_asgispy``: outcome, route, the
exception, the close code); they are read back. Entries that cannot be imported (a field
missing, bad base64, a ``data:`` URL, a response the browser's cache gave) are skipped, each
with its reason; the rest are imported.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgispy.codec import jsonform
from asgispy.codec.redact import DEFAULT_REDACT, Redactor
from asgispy.codec.sessionfile import session_document, write_session
from asgispy.imports import har_fields as fields
from asgispy.imports.har_bodies import request_body, response_body
from asgispy.imports.har_file import EntryError, HarError, creator_name, read_har
from asgispy.imports.har_websocket import websocket_events

__all__ = [
    "EntryError",
    "HarError",
    "Imported",
    "Skipped",
    "har_session",
    "import_har",
    "imported_note",
    "producer_tag",
    "read_har_session",
]

_OUTCOMES = frozenset({"completed", "exception", "cancelled", "cut off"})


@dataclass(frozen=True)
class Skipped:
    """An entry left out: its place in the HAR (from 1), what it was, and why."""

    number: int
    what: str
    reason: str


@dataclass
class Imported:
    """The session document made from a HAR, and the entries that could not be imported."""

    document: dict[str, Any]
    entries: int
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len(self.document["connections"])


def import_har(
    path: str | os.PathLike[str], output: str | os.PathLike[str], *, keep_secrets: bool = False
) -> Imported:
    """Read the HAR at ``path`` and write it as a session to ``output`` (atomically)."""
    imported = read_har_session(path, keep_secrets=keep_secrets)
    write_session(output, imported.document)
    return imported


def read_har_session(path: str | os.PathLike[str], *, keep_secrets: bool = False) -> Imported:
    """The session of the HAR file at ``path``; raises HarError for a file that is not one."""
    doc, raw = read_har(path)
    return har_session(doc, name=Path(path).name, tag=producer_tag(raw), keep_secrets=keep_secrets)


def producer_tag(raw: bytes) -> str:
    """The producer tag of a HAR's connections: the same file always gets the same one."""
    return "har" + hashlib.sha1(raw).hexdigest()[:6]


def har_session(
    doc: dict[str, Any], *, name: str = "HAR", tag: str = "har", keep_secrets: bool = False
) -> Imported:
    """The session document of a HAR document (``{"log": {"entries": [...]}}``)."""
    log = doc.get("log") if isinstance(doc, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(f'{name} is not a HAR (no "log" object with a list of "entries")')
    redactor = Redactor(() if keep_secrets else DEFAULT_REDACT)
    creator = creator_name(log)
    made: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for number, entry in enumerate(log["entries"], 1):
        try:
            made.append(_connection(entry, creator, redactor))
        except EntryError as exc:
            skipped.append(Skipped(number, _what(entry), str(exc)))
    made.sort(key=lambda c: c["started"])
    for seq, conn in enumerate(made, 1):
        conn["id"], conn["seq"], conn["producer"] = f"{tag}-{seq}", seq, tag
    producer = {
        "host": "",
        "pid": 0,
        "app": f"{name} (HAR by {creator})",
        "started": made[0]["started"] if made else time.time(),
        "imported": {"format": "har", "file": name, "creator": creator},
    }
    document = session_document(made, {tag: producer} if made else {})
    return Imported(document, len(log["entries"]), skipped)


def _what(entry: Any) -> str:
    request = entry.get("request") if isinstance(entry, dict) else None
    if isinstance(request, dict):
        method, url = request.get("method"), request.get("url")
        return f"{method if isinstance(method, str) else '?'} {str(url)[:100] if url else '?'}"
    return "an entry without a request"


def _connection(entry: Any, creator: str, redactor: Redactor) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise EntryError("the entry is not an object")
    request = fields.field(entry, "request", dict, "entry")
    response = entry.get("response")
    if response is None:
        response = {"status": 0}  # some tools leave it out for a request that got no answer
    if not isinstance(response, dict):
        raise EntryError("entry.response is not an object")
    url = fields.parse_url(fields.field(request, "url", str, "request"))
    method = fields.field(request, "method", str, "request").upper()
    if fields.object_of(entry, "_asgispy").get("kind") == "outgoing":
        # asgispy's HAR puts the app's own outgoing calls beside its requests; they are what
        # the app did inside one, not traffic the app was sent, so they make no connection.
        raise EntryError("an outgoing call the app made while serving a request, not a request to it")
    if entry.get("_fromCache") in ("disk", "memory"):
        raise EntryError(f"served from the browser's {entry['_fromCache']} cache: it never reached a server")
    status = response.get("status", 0)
    if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status < 1000:
        raise EntryError("response.status is not a status code")
    started = fields.started_at(entry)
    before, send, wait, receive = fields.phases(entry)
    req_headers, authority = fields.headers(request.get("headers"), "request")
    res_headers, _ = fields.headers(response.get("headers"), "response")
    notes = []
    if fields.header_value(req_headers, b"host") is None:
        host = authority if authority is not None else url.netloc
        req_headers.insert(0, (b"host", fields.text_bytes(host)))
        if authority is None:
            notes.append("no host header in the HAR: taken from the URL")
    ours = fields.object_of(entry, "_asgispy")
    websocket = _is_websocket(entry, url, req_headers, status)
    scope: dict[str, Any] = {
        "type": "websocket" if websocket else "http",
        "asgi": {"version": "3.0"},
        "http_version": fields.http_version(request.get("httpVersion") or response.get("httpVersion")),
        "server": fields.server(entry, url),
        "client": None,
        "scheme": _scheme(url.scheme, websocket),
        "root_path": "",
        "path": url.path,
        "raw_path": url.raw_path.encode("utf-8"),
        "query_string": url.query.encode("utf-8"),
        "headers": req_headers,
    }
    if websocket:
        protocols = fields.header_value(req_headers, b"sec-websocket-protocol")
        scope["subprotocols"] = (
            [p.strip() for p in protocols.decode("latin-1").split(",") if p.strip()] if protocols else []
        )
        close = ours.get("closeCode") if isinstance(ours.get("closeCode"), int) else None
        events, duration, more = websocket_events(
            entry, response, res_headers, status, started, send + wait, close
        )
    else:
        scope["method"] = method
        events, duration, more = _http_events(
            request, response, req_headers, res_headers, status, method, send, wait, receive
        )
    notes += more
    error = response.get("_error")
    if isinstance(error, str) and error:
        notes.append(f"the HAR says the request failed: {error}")
    notes.insert(0, imported_note(creator, route_known=bool(ours.get("route"))))
    conn: dict[str, Any] = {
        "type": scope["type"],
        "started": round(started + before, 6),
        "duration": round(duration, 6),
        "outcome": ours.get("outcome") if ours.get("outcome") in _OUTCOMES else "completed",
        "scope": jsonform.encode(redactor.message(scope)),
        "events": [_event(e, redactor) for e in events],
        "events_dropped": 0,
        "error": _error(ours.get("error")),
        "handler": _handler(ours),
        "notes": notes + [str(n) for n in ours.get("notes", ()) if isinstance(n, str)],
    }
    return conn


def imported_note(creator: str, *, route_known: bool = False) -> str:
    """The note every imported connection starts with: where it came from, what is unknown."""
    unknown = ["the app's message boundaries", "their times", "the client's address"]
    if not route_known:
        unknown.append("the route")
    return (
        f"imported from a HAR written by {creator}: {', '.join(unknown[:-1])} and {unknown[-1]} are unknown"
    )


def _is_websocket(
    entry: dict[str, Any], url: fields.Url, headers: list[tuple[bytes, bytes]], status: int
) -> bool:
    if entry.get("_resourceType") == "websocket" or "_webSocketMessages" in entry:
        return True
    if url.scheme in ("ws", "wss"):
        return True
    upgrade = fields.header_value(headers, b"upgrade")
    return upgrade is not None and upgrade.strip().lower() == b"websocket"


def _scheme(scheme: str, websocket: bool) -> str:
    if websocket:
        return {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def _http_events(
    request: dict[str, Any],
    response: dict[str, Any],
    req_headers: list[tuple[bytes, bytes]],
    res_headers: list[tuple[bytes, bytes]],
    status: int,
    method: str,
    send: float,
    wait: float,
    receive: float,
) -> tuple[list[dict[str, Any]], float, list[str]]:
    body = request_body(request, req_headers)
    notes = list(body.notes)
    events: list[dict[str, Any]] = [
        _with_cut({"type": "http.request", "body": body.data, "more_body": False}, "receive", send, body.full)
    ]
    if status == 0:
        events.append({"direction": "receive", "t": send + wait, "message": {"type": "http.disconnect"}})
        return events, send + wait, [*notes, "the HAR holds no response"]
    answer, headers = response_body(response, res_headers, status, method == "HEAD")
    notes += answer.notes
    start = {"type": "http.response.start", "status": status, "headers": headers}
    events.append({"direction": "send", "t": send + wait, "message": start})
    end = send + wait + receive
    events.append(
        _with_cut(
            {"type": "http.response.body", "body": answer.data, "more_body": False}, "send", end, answer.full
        )
    )
    return events, end, notes


def _with_cut(message: dict[str, Any], direction: str, t: float, full: int | None) -> dict[str, Any]:
    event: dict[str, Any] = {"direction": direction, "t": t, "message": message}
    if full is not None and full != len(message["body"]):
        event["cut"] = {"body": full}
    return event


def _event(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    return {
        **event,
        "t": round(event["t"], 6),
        "message": jsonform.encode(redactor.message(event["message"])),
    }


def _error(value: Any) -> dict[str, str] | None:
    if isinstance(value, dict) and all(
        isinstance(value.get(k), str) for k in ("type", "message", "traceback")
    ):
        return {k: value[k] for k in ("type", "message", "traceback")}
    return None


def _handler(ours: dict[str, Any]) -> dict[str, Any] | None:
    handler = {k: ours[k] for k in ("route", "endpoint") if isinstance(ours.get(k), str)}
    return handler or None
