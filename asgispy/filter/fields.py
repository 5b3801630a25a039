"""What each field of the filter language reads of a connection, and how it compares.

A field builder takes the text after ``field:`` and returns the predicate that runs on every
connection; :data:`FIELDS` and :data:`KEYWORDS` hold them with the one-line help that the
parser's messages and :func:`asgispy.filter.grammar.language` are made from. This is the
evaluating half of the language, apart from the parser (:mod:`asgispy.filter.grammar`),
which only knows words, ``or`` and ``-``. A value a field cannot read raises
:class:`BadValue` saying what was expected; the parser names the token and where it is.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable

from asgispy.filter.values import UNITS_SIZE, UNITS_TIME, comparison, text_matcher
from asgispy.filter.view import view_of
from asgispy.model.connection import Connection
from asgispy.model.inside import LogRecord, OutgoingCall, Query

__all__ = ["FIELDS", "KEYWORDS", "BadValue", "Predicate", "free_text"]

Predicate = Callable[[Connection], bool]
#: The text after ``field:`` -> the predicate; raises BadValue.
Builder = Callable[[str], Predicate]


class BadValue(ValueError):
    """A field's value it cannot read; ``expected`` says what would do, for the parser's message."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _duration(conn: Connection) -> float | None:
    """The app's time: the whole connection less what breakpoints held (docs/intercept.md)."""
    if conn.duration is not None:
        return conn.app_time(conn.duration)
    if conn.outcome == "open" and conn.started:
        return conn.app_time(max(0.0, time.time() - conn.started))  # still running: so far
    return None


def _bodies(conn: Connection) -> Iterable[bytes | str]:
    for event in conn.events:
        if event.type in ("http.request", "http.response.body", "websocket.receive", "websocket.send"):
            message = event.message
            for name in ("body", "bytes", "text"):
                value = message.get(name)
                if value:
                    yield value


def _field_method(value: str) -> Predicate:
    methods = frozenset(m.strip().upper() for m in value.split(",") if m.strip())
    return lambda conn: conn.scope.get("method") in methods


def _field_status(value: str) -> Predicate:
    test = comparison(value, None)
    if test is None:
        raise BadValue("a status like 404, 4xx, >=400 or 200-299")

    def status(conn: Connection) -> bool:
        code = conn.status
        return code is not None and test(code)

    return status


def _field_path(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.path)


def _field_query(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.query_string.decode("latin-1"))


def _field_route(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: conn.handler is not None and match(str(conn.handler.get("route") or ""))


def _field_endpoint(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: conn.handler is not None and match(str(conn.handler.get("endpoint") or ""))


def _field_host(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(view_of(conn).host(conn))


_TYPE_ALIASES = {"ws": "websocket", "websockets": "websocket", "https": "http"}


def _field_type(value: str) -> Predicate:
    kinds = frozenset(_TYPE_ALIASES.get(k, k) for k in (k.strip().lower() for k in value.split(",")) if k)
    return lambda conn: conn.type in kinds


_OUTCOME_ALIASES = {"cutoff": "cut off", "cut-off": "cut off", "cut_off": "cut off", "error": "exception"}


def _field_outcome(value: str) -> Predicate:
    outcomes = frozenset(_OUTCOME_ALIASES.get(o, o) for o in (o.strip().lower() for o in value.split(",")))
    return lambda conn: conn.outcome in outcomes


def _field_id(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.id)


def _field_producer(value: str) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.producer)


def _field_header(value: str) -> Predicate:
    name, has_value, wanted = value.partition("=")
    name = name.strip().lower()
    if not name:
        raise BadValue("a header name, optionally with =value: header:content-type=application/json")
    name_glob = text_matcher(name) if any(c in name for c in "*?[") else None
    value_match = text_matcher(wanted) if has_value else None

    def header(conn: Connection) -> bool:
        for key, val in view_of(conn).headers(conn):
            if key != name and (name_glob is None or not name_glob(key)):
                continue
            if value_match is None or value_match(val):
                return True
        return False

    return header


def _field_body(value: str) -> Predicate:
    needle = value.lower()
    raw = needle.encode("utf-8")

    def body(conn: Connection) -> bool:
        for chunk in _bodies(conn):
            if isinstance(chunk, str):
                if needle in chunk.lower():
                    return True
            elif raw in chunk.lower() or needle in chunk.decode("utf-8", "replace").lower():
                return True
        return False

    return body


def _field_duration(value: str) -> Predicate:
    test = comparison(value, UNITS_TIME)
    if test is None:
        raise BadValue("a time like >100ms, <2s, >=500us or 10ms-1s (plain numbers are ms)")

    def duration(conn: Connection) -> bool:
        seconds = _duration(conn)
        return seconds is not None and test(seconds)

    return duration


def _timing(name: str, read: Callable[[Connection], float | None]) -> Builder:
    """A field over one of a connection's timings (absent timings never match)."""

    def build(value: str) -> Predicate:
        test = comparison(value, UNITS_TIME)
        if test is None:
            raise BadValue(f"a time like {name}:>200ms, {name}:<1s (plain numbers are ms)")

        def timing(conn: Connection) -> bool:
            seconds = read(conn)
            return seconds is not None and test(seconds)

        return timing

    return build


def _field_rule(value: str) -> Predicate:
    wanted = value.lower()
    if not wanted:
        raise BadValue("a rule id or glob: rule:http.content-length, rule:websocket.*")
    if any(c in wanted for c in "*?["):
        return lambda conn: any(fnmatch.fnmatchcase(v.rule, wanted) for v in conn.violations)
    return lambda conn: any(v.rule == wanted for v in conn.violations)


def _field_layer(value: str) -> Predicate:
    if not value:
        raise BadValue("a middleware class name or glob: layer:GZipMiddleware, layer:*Cors*")
    matches = text_matcher(value)

    def layer(conn: Connection) -> bool:
        return any(
            matches(layer.name) and layer.changes is not None and layer.changes.changed
            for layer in conn.layers
        )

    return layer


def _field_size(value: str) -> Predicate:
    test = comparison(value, {k: float(v) for k, v in UNITS_SIZE.items()})
    if test is None:
        raise BadValue("a size like >10k, <=512, >1.5m or 1k-64k (k = 1024 bytes)")
    return lambda conn: test(conn.request_bytes + conn.response_bytes)


def _count(name: str, kind: type[OutgoingCall] | type[Query]) -> Builder:
    """A field over how many of one kind of inside item a connection has (``Spy(inside=True)``)."""

    def build(value: str) -> Predicate:
        test = comparison(value, None)
        if test is None:
            raise BadValue(f"a count like {name}:>3, {name}:0, {name}:1-5")
        return lambda conn: test(sum(1 for item in conn.inside if isinstance(item, kind)))

    return build


#: The standard logging levels, by name, as ``log:`` reads them (``warn`` and ``fatal`` too).
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50, "fatal": 50}


def _field_log(value: str) -> Predicate:
    least = _LEVELS.get(value.strip().lower())
    if least is None:
        raise BadValue(
            "a logging level, meaning that level or worse: log:debug, info, warning, error, critical"
        )
    return lambda conn: any(isinstance(i, LogRecord) and i.levelno >= least for i in conn.inside)


def _field_call(value: str) -> Predicate:
    if not value:
        raise BadValue("an outgoing call's URL, substring or glob: call:pay.example, call:https://*/charge*")
    match = text_matcher(value)
    return lambda conn: any(isinstance(i, OutgoingCall) and match(i.url) for i in conn.inside)


#: Field name -> (builder, one-line help). The help text is what docs/filters.md expands on.
FIELDS: dict[str, tuple[Builder, str]] = {
    "method": (_field_method, "request method, exactly: method:POST, method:get,head"),
    "status": (_field_status, "response status: status:404, status:4xx, status:>=400, status:200-299"),
    "path": (_field_path, "path, substring or glob: path:items, path:/api/*"),
    "query": (_field_query, "query string, substring or glob: query:limit="),
    "route": (_field_route, "the matched route template: route:/items/{id}"),
    "endpoint": (_field_endpoint, "the handler that ran: endpoint:create_item"),
    "host": (_field_host, "Host header (or the server address): host:localhost"),
    "type": (_field_type, "connection type: type:http, type:websocket (ws), type:lifespan"),
    "outcome": (_field_outcome, "how it ended: completed, exception, cancelled, cut-off, open"),
    "header": (_field_header, "request or response header: header:content-type=*json*, header:x-request-id"),
    "body": (_field_body, "request/response bodies and WebSocket frames contain the text: body:teapot"),
    "duration": (
        _field_duration,
        "time taken (so far, if open; breakpoint holds left out): duration:>100ms, duration:<1s",
    ),
    "size": (_field_size, "request + response payload bytes: size:>10k, size:0"),
    "ttfb": (
        _timing("ttfb", lambda c: c.app_time(c.ttfb)),
        "time to the response start (WebSocket: accept; holds left out): ttfb:>200ms",
    ),
    "held": (
        _timing("held", lambda c: c.held or None),
        "time asgispy held it at breakpoints: held:>1s",
    ),
    "gap": (
        _timing("gap", lambda c: c.max_gap),
        "largest gap between response messages or WebSocket frames: gap:>1s",
    ),
    "blocked": (
        _timing("blocked", lambda c: c.blocked),
        "time the app was held in send() (backpressure): blocked:>50ms",
    ),
    "waited": (
        _timing("waited", lambda c: c.waited),
        "time the app waited in receive() (a slow client): waited:>1s",
    ),
    "layer": (
        _field_layer,
        "a middleware layer that changed something (layers mode): layer:GZipMiddleware, layer:*cors*",
    ),
    "rule": (_field_rule, "broke this protocol rule (docs/rules.md): rule:http.content-length, rule:ws*"),
    "calls": (
        _count("calls", OutgoingCall),
        "how many outgoing HTTP calls the app made (inside mode): calls:>3",
    ),
    "call": (_field_call, "an outgoing call's URL, substring or glob (inside mode): call:pay.example/*"),
    "queries": (_count("queries", Query), "how many SQL statements the app ran (inside mode): queries:>10"),
    "log": (_field_log, "logged at this level or worse (inside mode): log:warning, log:error"),
    "id": (_field_id, "connection id: id:3f2a1c-12"),
    "producer": (_field_producer, "the recording process's tag: producer:3f2a1c"),
}

KEYWORDS: dict[str, tuple[Predicate, str]] = {
    "error": (
        lambda conn: conn.outcome == "exception" or (conn.status is not None and conn.status >= 500),
        "the app raised, or answered 5xx",
    ),
    "cut": (
        lambda conn: conn.outcome == "cut off" or conn.events_dropped > 0 or conn.body_cut,
        "something was not kept: a body cut at max_body, dropped events, or a producer that vanished",
    ),
    "open": (lambda conn: conn.outcome == "open", "still in progress"),
    "violation": (
        lambda conn: bool(conn.violations),
        "broke a rule of the ASGI spec (any severity; see docs/rules.md)",
    ),
    "changed": (
        lambda conn: bool(conn.interventions),
        "asgispy's rules, addons or a breakpoint changed it (docs/intercept.md)",
    ),
    "resent": (lambda conn: conn.resent_from is not None, "sent again from a viewer (edit and resend)"),
}


def free_text(word: str) -> Predicate:
    """A word that is no field nor keyword: found anywhere in the free-text haystack."""
    needle = word.lower()
    return lambda conn: needle in view_of(conn).text(conn)
