"""layer_changes: what one middleware layer did, from what crossed its outer and inner sides."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgispy.analysis.layerchanges import Changes, ExceptionChange
from asgispy.analysis.layerdiff import Side, layer_changes
from asgispy.analysis.summaries import format_size, summarize
from asgispy.codec.jsonform import Opaque

Headers = list[tuple[bytes, bytes]]
Event = tuple[str, float, Any, float | None]

SCOPE_HEADERS: Headers = [(b"host", b"example.org"), (b"accept", b"*/*")]


def scope(headers: Headers = SCOPE_HEADERS, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/items/3", "root_path": "", "headers": headers, **extra}


def request(t: float, body: bytes = b"", more: bool = False) -> Event:
    return ("receive", t, {"type": "http.request", "body": body, "more_body": more}, None)


def start(t: float, status: int = 200, headers: Headers | None = None) -> Event:
    message = {"type": "http.response.start", "status": status, "headers": headers or []}
    return ("send", t, message, None)


def body(t: float, data: bytes, more: bool = False) -> Event:
    return ("send", t, {"type": "http.response.body", "body": data, "more_body": more}, None)


def response(t: float, data: bytes = b"hello", headers: Headers | None = None) -> list[Event]:
    return [start(t, 200, headers or [(b"content-type", b"text/plain")]), body(t, data)]


def passed(events: list[Event], **kwargs: Any) -> tuple[Side, Side]:
    """The same messages on both sides: a layer that changed nothing."""
    return Side(scope(), events, 0.0, 1.0, **kwargs), Side(scope(), list(events), 0.1, 0.9, **kwargs)


def test_a_pass_through_layer_changed_nothing_but_took_time() -> None:
    outer, inner = passed([request(0.1, b"abc"), *response(0.5)])
    changes = layer_changes(outer, inner)
    assert changes.changed is False
    assert changes.words() == []
    assert changes.time_inside == pytest.approx(0.2)
    assert changes.called_inward is True


def test_response_headers_added_removed_and_changed_compare_names_case_insensitively() -> None:
    before = [(b"content-type", b"text/plain"), (b"content-length", b"5"), (b"x-same", b"1")]
    after = [(b"Content-Type", b"text/html"), (b"X-Same", b"1"), (b"server", b"spy/1")]
    outer = Side(scope(), response(0.5, headers=after), 0.0, 1.0)
    inner = Side(scope(), response(0.5, headers=before), 0.0, 1.0)
    changes = layer_changes(outer, inner)
    assert changes.changed
    assert changes.response_headers.added == (("server", "spy/1"),)
    assert changes.response_headers.removed == (("content-length", "5"),)
    assert changes.response_headers.changed == (("content-type", "text/plain", "text/html"),)
    assert changes.words() == [
        "+ server: spy/1",
        "- content-length: 5",
        "~ content-type: text/plain → text/html",
    ]


def test_a_repeated_header_reports_only_the_values_that_differ() -> None:
    before = [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    after = [*before, (b"set-cookie", b"c=\xe9")]
    outer = Side(scope(), response(0.5, headers=after))
    inner = Side(scope(), response(0.5, headers=before))
    assert layer_changes(outer, inner).words() == ["+ set-cookie: c=é"]


def test_request_headers_set_by_the_layer_are_read_from_the_two_scopes() -> None:
    outer_headers = [(b"host", b"example.org"), (b"authorization", b"Bearer x"), (b"accept", b"*/*")]
    inner_headers = [(b"host", b"example.org"), (b"accept", b"text/html"), (b"x-request-id", b"42")]
    events = response(0.5)
    changes = layer_changes(Side(scope(outer_headers), events), Side(scope(inner_headers), list(events)))
    assert changes.request_headers.added == (("x-request-id", "42"),)
    assert changes.words() == [
        "request + x-request-id: 42",
        "request - authorization: Bearer x",
        "request ~ accept: */* → text/html",
    ]
    assert not changes.response_headers


def test_a_gzip_layer_rewrites_the_body_and_its_headers() -> None:
    data = b"hello world, " * 400
    packed = gzip.compress(data)
    inner_headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())]
    outer_headers = [
        (b"content-type", b"text/plain"),
        (b"content-encoding", b"gzip"),
        (b"vary", b"Accept-Encoding"),
    ]
    outer = Side(scope(), [start(0.5, 200, outer_headers), body(0.501, packed)], 0.0, 0.6)
    inner = Side(scope(), [start(0.5, 200, inner_headers), body(0.5, data)], 0.1, 0.5)
    changes = layer_changes(outer, inner)
    assert changes.response_body is not None
    assert (changes.response_body.before, changes.response_body.after) == (len(data), len(packed))
    assert changes.response_body.rewritten and changes.response_body.encoding == "gzip"
    assert changes.hold is None  # a millisecond of compressing is no hold
    assert changes.words() == [
        "+ content-encoding: gzip",
        "+ vary: Accept-Encoding",
        f"- content-length: {len(data)}",
        f"response body rewritten: 5.1 KiB → {format_size(len(packed))} (gzip)",
    ]
    assert changes.time_inside == pytest.approx(0.2)


def test_a_buffering_layer_holds_every_chunk_and_releases_them_together() -> None:
    chunks = [body(0.1 * (k + 1), b"chunk %d\n" % k, more=k < 7) for k in range(8)]
    inner = Side(scope(), [start(0.1), *chunks], 0.0, 0.85)
    released = b"".join(b"chunk %d\n" % k for k in range(8))
    outer = Side(scope(), [start(0.912), body(0.912, released)], 0.0, 0.95)
    changes = layer_changes(outer, inner)
    assert changes.hold is not None
    assert changes.hold.seconds == pytest.approx(0.812)
    assert (changes.hold.chunks, changes.hold.chunks_before, changes.hold.chunks_after) == (8, 8, 1)
    assert changes.words() == ["merged 8 messages into 1", "held 8 chunks for 812.0 ms, released together"]


def test_a_hold_is_measured_through_a_rewrite_and_an_empty_closing_message() -> None:
    data = [b"x" * 1000 for _ in range(4)]
    inner = Side(
        scope(), [start(0.0), *(body(0.05 * k, d, more=True) for k, d in enumerate(data)), body(0.2, b"")]
    )
    packed = gzip.compress(b"".join(data))
    outer = Side(scope(), [start(0.3), body(0.3, packed[:10], more=True), body(0.31, packed[10:])])
    hold = layer_changes(outer, inner).hold
    # The first chunk waited longest: from 0.0 until the gzip header released it at 0.3.
    assert hold is not None and hold.seconds == pytest.approx(0.3)
    assert (hold.chunks_before, hold.chunks_after) == (4, 2)


def test_split_and_merge_of_the_same_bytes() -> None:
    data = bytes(range(256)) * 12
    one = [start(0.2), body(0.2, data)]
    three = [start(0.2), *(body(0.2, data[i : i + 1024], more=i < 2048) for i in range(0, 3072, 1024))]
    split = layer_changes(Side(scope(), three), Side(scope(), one))
    assert split.words() == ["split 1 message into 3"]
    assert split.response_body is not None and not split.response_body.rewritten
    merged = layer_changes(Side(scope(), one), Side(scope(), three))
    assert merged.words() == ["merged 3 messages into 1"]
    # An extra empty closing message carries no bytes: not a split.
    closed = [start(0.2), body(0.2, data, more=True), body(0.2, b"")]
    assert not layer_changes(Side(scope(), closed), Side(scope(), one)).changed


def test_the_request_body_rewritten_or_rechunked_on_its_way_in() -> None:
    outer = Side(scope(), [request(0.0, b"ab", more=True), request(0.01, b"c"), *response(0.5)])
    same = Side(scope(), [request(0.02, b"abc"), *response(0.5)])
    assert layer_changes(outer, same).words() == ["merged 2 request messages into 1"]
    other = Side(scope(), [request(0.02, b'{"a": 1}'), *response(0.5)])
    assert layer_changes(outer, other).words() == ["request body rewritten: 3 B → 8 B, 2 messages → 1"]


def test_an_exception_turned_into_a_500() -> None:
    outer = Side(
        scope(), [start(0.3, 500, [(b"content-type", b"text/plain")]), body(0.3, b"Internal Server Error")]
    )
    inner = Side(scope(), [], 0.1, 0.2, "RuntimeError: boom")
    changes = layer_changes(outer, inner)
    assert changes.exception == ExceptionChange("RuntimeError: boom", None, 500)
    assert changes.exception.fate == "handled"
    # The response the layer made up is no header or body rewrite of the inner one.
    assert changes.words() == ["RuntimeError: boom → 500"]


def test_an_exception_that_passes_through_is_propagated_and_no_change() -> None:
    outer, inner = passed([request(0.1)], error="RuntimeError: boom")
    changes = layer_changes(outer, inner)
    assert changes.exception is not None and changes.exception.fate == "propagated"
    assert changes.changed is False and changes.words() == []
    # Starlette's ServerErrorMiddleware sends a 500 and raises on: that is a change.
    outer = Side(scope(), [start(0.3, 500), body(0.3, b"")], 0.0, 0.3, "RuntimeError: boom")
    sent = layer_changes(outer, inner)
    assert sent.words() == ["RuntimeError: boom → 500, propagated"]
    # An exception raised after the inner side started its response leaves no status to blame.
    started = Side(scope(), [start(0.1), body(0.1, b"part", more=True)], 0.0, 0.2, "RuntimeError: boom")
    outer = Side(scope(), [start(0.1), body(0.1, b"part", more=True)], 0.0, 0.2)
    assert layer_changes(outer, started).words() == ["RuntimeError: boom swallowed"]


class Route:
    path = "/items/{id}"
    path_format = "/items/{id}"


class App:
    pass


class Pool:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Weird:
    def __eq__(self, other: object) -> bool:
        raise TypeError("no eq")

    __hash__ = object.__hash__


def test_scope_keys_added_or_changed_show_short_summaries_of_any_object() -> None:
    outer_scope = scope(weird=Weird(), gone=1)
    inner_scope = scope(
        root_path="/api",
        route=Route(),
        path_params={"id": "3"},
        app=App(),
        state={"pool": Pool(), "n": 1},
        router=Opaque("starlette.routing.Router", "<starlette.routing.Router object at 0x7f00>"),
        endpoint=Opaque("fastapi.routing.APIRoute", "APIRoute(path='/items/{id}', name='item')"),
        user="x" * 500,
        weird=Weird(),
    )
    events = response(0.5)
    changes = layer_changes(Side(outer_scope, events), Side(inner_scope, list(events)))
    words = changes.words()
    assert words == [
        "scope ~ root_path: '' → '/api'",
        "scope + route: /items/{id}",
        "scope + path_params: {'id': '3'}",
        "scope + app: <App>",
        "scope + state: {'pool': <Pool>, 'n': 1}",
        "scope + router: <Router>",
        "scope + endpoint: /items/{id}",
        "scope + user: " + summarize("x" * 500),
        "scope - gone: 1",
    ]
    # Objects whose == raises are compared by their summaries: two <Weird> are the same.
    assert len(summarize("x" * 500)) <= 60 and summarize("x" * 500).endswith("…")
    assert not changes.request_headers and changes.changed


def test_the_innermost_layer_gives_only_its_time() -> None:
    outer = Side(scope(), [request(0.1, b"abc"), *response(0.5)], 0.25, 1.0, "RuntimeError: boom")
    changes = layer_changes(outer, None)
    assert changes == Changes(time_inside=0.75)
    assert changes.words() == [] and not changes.changed
    assert layer_changes(Side(scope(), [], None, 1.0), None).time_inside is None


def test_a_layer_that_answers_without_calling_inward() -> None:
    outer = Side(scope(), [start(0.01, 400), body(0.01, b"Invalid host header")], 0.0, 0.02)
    changes = layer_changes(outer, Side(None, []))
    assert changes.called_inward is False and changes.answered == 400
    assert changes.words() == ["answered 400 without calling inward"]
    assert changes.time_inside == pytest.approx(0.02)


def ws(direction: str, kind: str, text: str | None = None) -> Event:
    message: dict[str, Any] = {"type": kind}
    if text is not None:
        message["text"] = text
    return (direction, 0.1, message, None)


def test_websocket_frames_dropped_added_and_rewritten() -> None:
    accept = ws("send", "websocket.accept")
    received = [ws("receive", "websocket.receive", text) for text in "ab"]
    sent = [ws("send", "websocket.send", text) for text in "Xyz"]
    outer = Side(scope(type="websocket"), [accept, *received, *sent])
    inner = Side(scope(type="websocket"), [accept, received[0], ws("send", "websocket.send", "x"), sent[1]])
    changes = layer_changes(outer, inner)
    assert changes.words() == ["dropped 1 of 2 received frames", "rewrote 1 sent frame", "added 1 sent frame"]
    echo = [accept, ws("receive", "websocket.receive", "hi"), ws("send", "websocket.send", "echo hi")]
    assert not layer_changes(*passed(echo)).changed


def test_document_round_trips_through_json() -> None:
    data = b"hello world, " * 400
    inner = Side(
        scope(),
        [request(0.0, b"a"), start(0.1, 201, [(b"content-length", b"5200")]), body(0.1, data)],
        0.0,
        0.2,
        "ValueError: \xe9",
    )
    outer = Side(
        scope([(b"host", b"\xe9.org")], route=Route(), state={"p": Pool()}),
        [
            request(0.0, b"ab"),
            start(0.4, 200, [(b"content-encoding", b"gzip")]),
            body(0.4, gzip.compress(data)),
        ],
        0.0,
        0.5,
        "KeyError: 'x'",
    )
    changes = layer_changes(outer, inner)
    assert changes.status == (201, 200) and changes.hold is not None and changes.exception is not None
    doc = json.loads(json.dumps(changes.document()))
    assert Changes.from_document(doc) == changes
    assert Changes.from_document(doc).words() == changes.words()
    assert Changes().document() == {} and Changes.from_document({}) == Changes()


leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=8)
    | st.sampled_from(["http.request", "http.response.start", "http.response.body", "websocket.send"])
    | st.sampled_from(["websocket.receive", "websocket.accept", "receive", "send", "gzip"])
)
# Flat on purpose: a recursive strategy spends the test's time generating, not diffing.
junk = leaf | st.lists(leaf | st.tuples(leaf, leaf) | st.lists(leaf, max_size=3), max_size=3)
message = st.dictionaries(
    st.sampled_from(["type", "body", "headers", "status", "more_body", "text", "bytes"]), junk, max_size=4
)
events = st.lists(
    st.tuples(st.sampled_from(["receive", "send"]) | leaf, st.floats(0, 2) | leaf, message | junk, leaf)
    | junk,
    max_size=6,
)
sides = st.builds(
    Side,
    st.none()
    | st.dictionaries(st.sampled_from(["headers", "path", "app", "state"]) | st.text(max_size=3), junk),
    events,
    st.none() | st.floats() | junk,
    st.none() | st.floats() | junk,
    st.none() | st.text(max_size=5) | junk,
)


@settings(max_examples=200, deadline=None)
@given(sides, st.none() | sides)
def test_junk_never_raises_and_always_round_trips(outer: Side, inner: Side | None) -> None:
    changes = layer_changes(outer, inner)
    assert all(isinstance(line, str) for line in changes.words())
    assert changes.changed == bool(changes.words())
    doc = json.loads(json.dumps(changes.document()))
    assert Changes.from_document(doc).words() == changes.words()


@given(junk)
def test_from_document_reads_junk_without_raising(doc: Any) -> None:
    Changes.from_document(doc).words()
    Changes.from_document({"scope": doc, "hold": doc, "frames": doc, "status": doc, "response_body": doc})
