"""The filter language of the dashboard's ``/``: typed text becomes a predicate over connections.

::

    items                      free text: method, path, query, route, status, type, endpoint,
                               request header values (case-insensitive substring)
    method:POST  status:>=400  status:4xx  status:200-299  path:/api/*  type:websocket
    route:/items/{id}  host:localhost  header:content-type=application/json  body:teapot
    duration:>100ms  size:>10k  error  cut  open  -path:/health  !type:lifespan
    ttfb:>200ms  gap:>1s  blocked:>50ms  waited:>1s  violation  rule:http.content-length
    status:5xx or error        groups of terms (all must match) joined by ``or`` / ``|``

:func:`parse` compiles the text once into a :class:`Filter`, a plain callable that is cheap
enough to run over every connection the store holds on each keystroke. Mistakes raise
:class:`FilterError` naming the offending token and where it is, so a view can show it as
the user types. docs/filters.md is the user's guide.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from asgispy.filter.values import UNITS_SIZE, UNITS_TIME, comparison, text_matcher
from asgispy.filter.view import view_of
from asgispy.model.connection import Connection

__all__ = ["FIELDS", "Filter", "FilterError", "language", "parse"]

Predicate = Callable[[Connection], bool]


class FilterError(ValueError):
    """A filter that cannot be understood; ``start``/``end`` locate the bad token in the text."""

    def __init__(self, message: str, start: int = 0, end: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = max(end, start)

    def __str__(self) -> str:
        return f"{self.message} (column {self.start + 1})"


# Tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str  # with quotes removed
    quoted: tuple[bool, ...]  # per character of ``text``: did it come from inside quotes?
    start: int
    end: int

    @property
    def raw(self) -> str:
        return self.text if not any(self.quoted) else repr(self.text)

    def unquoted(self, i: int, char: str) -> bool:
        return 0 <= i < len(self.text) and self.text[i] == char and not self.quoted[i]

    def word(self) -> str | None:
        """The token as a bare word (no quotes anywhere), lower-cased; None when quoted."""
        return None if any(self.quoted) else self.text.lower()


_OR = "|"


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char == _OR:
            tokens.append(_Token(_OR, (False,), i, i + 1))
            i += 1
            continue
        start = i
        chars: list[str] = []
        quoted: list[bool] = []
        while i < n and not text[i].isspace() and text[i] != _OR:
            if text[i] in "\"'":
                quote = text[i]
                close = text.find(quote, i + 1)
                if close < 0:
                    raise FilterError(f"unclosed quote {quote} in {text[start:]!r}", i, n)
                chars.extend(text[i + 1 : close])
                quoted.extend([True] * (close - i - 1))
                i = close + 1
            else:
                chars.append(text[i])
                quoted.append(False)
                i += 1
        word = "".join(chars)
        # A token that is only quotes ("") is an empty quoted text.
        tokens.append(_Token(word, tuple(quoted) or (True,), start, i))
    return tokens


def _duration(conn: Connection) -> float | None:
    if conn.duration is not None:
        return conn.duration
    if conn.outcome == "open" and conn.started:
        return max(0.0, time.time() - conn.started)  # still running: how long so far
    return None


def _bodies(conn: Connection) -> Iterable[bytes | str]:
    for event in conn.events:
        if event.type in ("http.request", "http.response.body", "websocket.receive", "websocket.send"):
            message = event.message
            for name in ("body", "bytes", "text"):
                value = message.get(name)
                if value:
                    yield value


# Fields --------------------------------------------------------------------------------------

Builder = Callable[[str, _Token], Predicate]


def _field_method(value: str, token: _Token) -> Predicate:
    methods = frozenset(m.strip().upper() for m in value.split(",") if m.strip())
    return lambda conn: conn.scope.get("method") in methods


def _field_status(value: str, token: _Token) -> Predicate:
    test = comparison(value, None)
    if test is None:
        raise _bad_value(token, "a status like 404, 4xx, >=400 or 200-299")

    def status(conn: Connection) -> bool:
        code = conn.status
        return code is not None and test(code)

    return status


def _field_path(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.path)


def _field_query(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.query_string.decode("latin-1"))


def _field_route(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: conn.handler is not None and match(str(conn.handler.get("route") or ""))


def _field_endpoint(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: conn.handler is not None and match(str(conn.handler.get("endpoint") or ""))


def _field_host(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(view_of(conn).host(conn))


_TYPE_ALIASES = {"ws": "websocket", "websockets": "websocket", "https": "http"}


def _field_type(value: str, token: _Token) -> Predicate:
    kinds = frozenset(_TYPE_ALIASES.get(k, k) for k in (k.strip().lower() for k in value.split(",")) if k)
    return lambda conn: conn.type in kinds


_OUTCOME_ALIASES = {"cutoff": "cut off", "cut-off": "cut off", "cut_off": "cut off", "error": "exception"}


def _field_outcome(value: str, token: _Token) -> Predicate:
    outcomes = frozenset(_OUTCOME_ALIASES.get(o, o) for o in (o.strip().lower() for o in value.split(",")))
    return lambda conn: conn.outcome in outcomes


def _field_id(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.id)


def _field_producer(value: str, token: _Token) -> Predicate:
    match = text_matcher(value)
    return lambda conn: match(conn.producer)


def _field_header(value: str, token: _Token) -> Predicate:
    name, has_value, wanted = value.partition("=")
    name = name.strip().lower()
    if not name:
        raise _bad_value(token, "a header name, optionally with =value: header:content-type=application/json")
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


def _field_body(value: str, token: _Token) -> Predicate:
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


def _field_duration(value: str, token: _Token) -> Predicate:
    test = comparison(value, UNITS_TIME)
    if test is None:
        raise _bad_value(token, "a time like >100ms, <2s, >=500us or 10ms-1s (plain numbers are ms)")

    def duration(conn: Connection) -> bool:
        seconds = _duration(conn)
        return seconds is not None and test(seconds)

    return duration


def _timing(name: str, read: Callable[[Connection], float | None]) -> Builder:
    """A field over one of a connection's timings (absent timings never match)."""

    def build(value: str, token: _Token) -> Predicate:
        test = comparison(value, UNITS_TIME)
        if test is None:
            raise _bad_value(token, f"a time like {name}:>200ms, {name}:<1s (plain numbers are ms)")

        def timing(conn: Connection) -> bool:
            seconds = read(conn)
            return seconds is not None and test(seconds)

        return timing

    return build


def _field_rule(value: str, token: _Token) -> Predicate:
    wanted = value.lower()
    if not wanted:
        raise _bad_value(token, "a rule id or glob: rule:http.content-length, rule:websocket.*")
    if any(c in wanted for c in "*?["):
        return lambda conn: any(fnmatch.fnmatchcase(v.rule, wanted) for v in conn.violations)
    return lambda conn: any(v.rule == wanted for v in conn.violations)


def _field_layer(value: str, token: _Token) -> Predicate:
    if not value:
        raise _bad_value(token, "a middleware class name or glob: layer:GZipMiddleware, layer:*Cors*")
    matches = text_matcher(value)

    def layer(conn: Connection) -> bool:
        return any(
            matches(layer.name) and layer.changes is not None and layer.changes.changed
            for layer in conn.layers
        )

    return layer


def _field_size(value: str, token: _Token) -> Predicate:
    test = comparison(value, {k: float(v) for k, v in UNITS_SIZE.items()})
    if test is None:
        raise _bad_value(token, "a size like >10k, <=512, >1.5m or 1k-64k (k = 1024 bytes)")
    return lambda conn: test(conn.request_bytes + conn.response_bytes)


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
    "duration": (_field_duration, "time taken (so far, if open): duration:>100ms, duration:<1s"),
    "size": (_field_size, "request + response payload bytes: size:>10k, size:0"),
    "ttfb": (
        _timing("ttfb", lambda c: c.ttfb),
        "time to the response start (WebSocket: accept): ttfb:>200ms",
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
    "id": (_field_id, "connection id: id:3f2a1c-12"),
    "producer": (_field_producer, "the recording process's tag: producer:3f2a1c"),
}

_KEYWORDS: dict[str, tuple[Predicate, str]] = {
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
}


def language() -> str:
    """The filter language in one paragraph, made from the fields' and keywords' own
    descriptions, for help that cannot drift from what parses (an agent's tool description)."""
    fields = "; ".join(f"{name}: {text}" for name, (_, text) in FIELDS.items())
    words = "; ".join(f"{word}: {text}" for word, (_, text) in _KEYWORDS.items())
    return (
        "space-separated terms that must all match; 'or' between alternatives; '-' before a term "
        f"negates it. Fields: {fields}. Keywords: {words}. Other words are searched in the method, "
        "path and query, route, endpoint, status, type and request header values. Empty: everything."
    )


def _bad_value(token: _Token, expected: str) -> FilterError:
    return FilterError(f"{token.raw}: expected {expected}", token.start, token.end)


# Parsing -------------------------------------------------------------------------------------


def _term(token: _Token) -> Predicate:
    negate = token.unquoted(0, "-") or token.unquoted(0, "!")
    if negate:
        if len(token.text) == 1:
            raise FilterError(
                f"{token.text} needs something to negate, as in -path:/health", token.start, token.end
            )
        token = _Token(token.text[1:], token.quoted[1:], token.start + 1, token.end)
    predicate = _positive_term(token)
    if negate:
        return lambda conn: not predicate(conn)
    return predicate


def _positive_term(token: _Token) -> Predicate:
    colon = next((i for i, c in enumerate(token.text) if c == ":" and not token.quoted[i]), -1)
    if colon < 0:
        word = token.word()
        if word in _KEYWORDS:
            return _KEYWORDS[word][0]
        needle = token.text.lower()
        return lambda conn: needle in view_of(conn).text(conn)
    name = token.text[:colon].lower()
    value = token.text[colon + 1 :]
    if not name:
        raise FilterError(
            f"{token.raw}: a field name goes before the ':' (as in path:/api)", token.start, token.end
        )
    entry = FIELDS.get(name)
    if entry is None:
        known = ", ".join(FIELDS)
        raise FilterError(
            f"unknown field {name!r} in {token.raw} (fields: {known}; quote text with a ':' to find it)",
            token.start,
            token.start + colon + 1,
        )
    if not value.strip():
        example = entry[1].split(": ", 1)[-1]
        raise FilterError(f"{name}: needs a value, as in {example}", token.start, token.end)
    return entry[0](value, token)


def _all(predicates: list[Predicate]) -> Predicate:
    first, *rest = predicates
    if not rest:
        return first
    then = _all(rest)
    return lambda conn: first(conn) and then(conn)


def _any(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda conn: any(p(conn) for p in predicates)


def _everything(conn: Connection) -> bool:
    return True


class Filter:
    """A compiled filter: call it with a connection. The empty filter matches everything."""

    __slots__ = ("predicate", "text")

    def __init__(self, text: str, predicate: Predicate) -> None:
        self.text = text
        #: The compiled predicate itself; passing it around saves a call per connection.
        self.predicate = predicate

    def __call__(self, conn: Connection) -> bool:
        return self.predicate(conn)

    @property
    def matches_all(self) -> bool:
        return self.predicate is _everything

    def select(self, connections: Iterable[Connection]) -> list[Connection]:
        """The connections that match, in order."""
        return list(filter(self.predicate, connections))

    def __repr__(self) -> str:
        return f"<Filter {self.text!r}>"


def parse(text: str) -> Filter:
    """Compile ``text``; raises FilterError pointing at the first token it cannot understand."""
    groups: list[list[Predicate]] = [[]]
    last_or: _Token | None = None
    for token in _tokens(text):
        if (token.text == _OR and not token.quoted[0]) or token.word() == "or":
            if not groups[-1]:
                raise FilterError("'or' needs a filter before it", token.start, token.end)
            groups.append([])
            last_or = token
            continue
        groups[-1].append(_term(token))
    if not groups[-1]:
        if last_or is not None:
            raise FilterError("'or' needs a filter after it", last_or.start, last_or.end)
        return Filter(text, _everything)
    return Filter(text, _any([_all(group) for group in groups]))
