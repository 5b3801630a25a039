"""The filter language, run over connections of real recorded sessions.

The demo app is served by a real uvicorn and driven by its traffic (``run_headless``), and its
exported session is loaded back; a second session, recorded with a small ``max_body`` while a
stream was still in flight, supplies cut bodies and an open connection. Expected results are
either known facts of the demo's traffic or computed directly from the connections.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import asgispy
from asgispy.codec.sessionfile import write_session
from asgispy.demo.app import app as demo_app
from asgispy.demo.headless import run_headless
from asgispy.filter.fields import FIELDS
from asgispy.filter.grammar import Filter, FilterError, parse
from asgispy.model.connection import Connection
from tests.inside_sessions import inside_session
from tests.servers import serve

Conns = list[Connection]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Conns:
    path = tmp_path_factory.mktemp("demo") / "demo.json"
    assert run_headless(rounds=1, output=str(path), delay=0, out=io.StringIO()) == 0
    return asgispy.load(path).connections


@pytest.fixture(scope="module")
def in_flight(tmp_path_factory: pytest.TempPathFactory) -> Conns:
    """Cut bodies (max_body=64) and a stream still open when the session was exported."""
    spy = asgispy.Spy(demo_app, max_body=64)
    with (
        serve(spy, lifespan="on") as server,
        httpx.Client(base_url=server.base_url, trust_env=False) as client,
    ):
        client.get("/logo.png")
        client.post("/feedback", data={"name": "Ada", "message": "x" * 100})
        with client.stream("GET", "/stream", params={"chunks": "100"}) as response:
            # Held in a name: a generator dropped at once would close the response, and the
            # stream would end (disconnected) before the document is taken.
            chunks = response.iter_raw()
            next(chunks)
            document = spy.document()
    path = write_session(tmp_path_factory.mktemp("flight") / "flight.json", document)
    return asgispy.load(path).connections


def ids(conns: Conns, predicate: Callable[[Connection], bool]) -> set[str]:
    return {c.id for c in conns if predicate(c)}


def matched(conns: Conns, text: str) -> set[str]:
    return {c.id for c in parse(text).select(conns)}


def shown(conns: Conns, text: str) -> set[tuple[str, str]]:
    """(method or type, target) of the matching connections: readable expectations."""
    return {(c.method or c.type, c.target) for c in parse(text).select(conns)}


def header(conn: Connection, name: bytes) -> list[bytes]:
    return [v for k, v in conn.request_headers + conn.response_headers if k.lower() == name]


def test_method_status_and_type(demo: Conns) -> None:
    assert matched(demo, "method:POST") == ids(demo, lambda c: c.method == "POST") != set()
    assert matched(demo, "method:get,head") == ids(demo, lambda c: c.method in ("GET", "HEAD"))
    errors = {
        ("GET", "/boom"),
        ("GET", "/api/quote?item=3&busy=1"),  # the carrier was busy: 502
        ("POST", "/api/items"),
        ("GET", "/api/items?limit=lots"),
        ("GET", "/api/items/999"),
        ("GET", "/no/such/page"),
    }
    assert {(m, t.split("?order=")[0]) for m, t in shown(demo, "status:>=400")} == errors
    assert {(m, t.split("?order=")[0]) for m, t in shown(demo, "status:4xx")} == errors - {
        ("GET", "/boom"),
        ("GET", "/api/quote?item=3&busy=1"),
    }
    assert shown(demo, "status:404") == {("GET", "/api/items/999"), ("GET", "/no/such/page")}
    assert matched(demo, "status:200-299") == ids(
        demo, lambda c: c.status is not None and 200 <= c.status <= 299
    )
    assert matched(demo, "status:<200") == ids(demo, lambda c: c.type == "websocket")  # 101
    assert matched(demo, "status:404,500") == matched(demo, "status:404") | matched(demo, "outcome:exception")
    assert len(matched(demo, "type:websocket")) == 2 and matched(demo, "type:ws") == matched(
        demo, "type:websocket"
    )
    assert shown(demo, "type:lifespan") == {("lifespan", "")}
    assert matched(demo, "type:http,lifespan") == ids(demo, lambda c: c.type != "websocket")


def test_path_route_host_and_query(demo: Conns) -> None:
    assert matched(demo, "path:/api/*") == ids(demo, lambda c: c.path.startswith("/api/"))
    assert matched(demo, "path:items") == ids(demo, lambda c: "items" in c.path)
    assert ("GET", "/old-items") in shown(demo, "path:items")
    assert matched(demo, "path:/API/ITEMS") == matched(demo, "path:/api/items")  # case-insensitive
    item = ids(demo, lambda c: c.route == "/api/items/{item_id:int}")
    assert {c.method for c in demo if c.id in item} == {"GET", "DELETE"}
    assert matched(demo, "route:/api/items/{item_id:int}") == item
    assert matched(demo, "route:'/api/items/{*}'") == item
    assert matched(demo, "endpoint:get_item") == ids(
        demo, lambda c: c.route == "/api/items/{item_id:int}" and c.method == "GET"
    )
    assert matched(demo, "host:127.0.0.1") == ids(demo, lambda c: c.type != "lifespan")
    assert matched(demo, "host:example.com") == set()
    assert matched(demo, "query:limit=") == ids(demo, lambda c: b"limit=" in c.query_string) != set()
    assert shown(demo, "query:limit=lots") == {("GET", "/api/items?limit=lots")}
    conn = demo[3]
    assert matched(demo, f"id:{conn.id}") == {conn.id}
    assert matched(demo, f"producer:{conn.producer}") == {c.id for c in demo}


def test_headers_and_bodies(demo: Conns) -> None:
    json_ids = ids(demo, lambda c: any(b"application/json" in v for v in header(c, b"content-type")))
    assert matched(demo, "header:content-type=application/json") == json_ids
    # A glob matches the whole value: JSON and JSON lines (application/x-ndjson) both end in json.
    json_like = ids(
        demo, lambda c: any(v.split(b";")[0].endswith(b"json") for v in header(c, b"content-type"))
    )
    assert matched(demo, "header:content-type=*json") == json_like > json_ids
    assert shown(demo, "header:set-cookie") == {("GET", "/api/me")}
    # Secrets are redacted in the recording: the filter finds the mask, never the value.
    assert ("GET", "/api/me") in shown(demo, "header:authorization=redacted")
    assert matched(demo, "header:authorization=bearer") == set()
    assert matched(demo, "header:x-*") == set()
    assert matched(demo, "header:*agent=asgispy-demo*") == ids(demo, lambda c: c.type != "lifespan")

    assert shown(demo, 'body:"welcome, alice"') == {("websocket", "/ws/chat?name=alice")}
    assert shown(demo, 'body:"chunk 6 of 6"') == {("GET", "/stream?chunks=6")}
    assert matched(demo, "body:TEAPOT") == ids(
        demo, lambda c: b"teapot" in c.request_body() + c.response_body()
    )
    assert ("POST", "/feedback") in shown(demo, "body:name=ada")  # request bodies too
    assert matched(demo, "body:png") >= ids(demo, lambda c: c.path in ("/upload", "/logo.png"))


def test_duration_size_error_and_keywords(demo: Conns) -> None:
    slow = matched(demo, "duration:>100ms")
    assert slow == ids(demo, lambda c: (c.duration or 0) > 0.1)
    assert {("GET", "/events"), ("GET", "/stream?chunks=6"), ("lifespan", "")} <= shown(
        demo, "duration:>100ms"
    )
    assert matched(demo, "duration:<=100ms") == {c.id for c in demo} - slow
    assert matched(demo, "duration:0.05s-1m") == ids(demo, lambda c: 0.05 <= (c.duration or 0) <= 60)
    assert matched(demo, "size:>300") == ids(demo, lambda c: c.request_bytes + c.response_bytes > 300)
    assert matched(demo, "size:>0.25k") == ids(demo, lambda c: c.request_bytes + c.response_bytes > 256)
    assert matched(demo, "size:0") == ids(demo, lambda c: c.request_bytes + c.response_bytes == 0)
    assert {m for m, _ in shown(demo, "error")} == {"GET"}
    assert sorted(t.split("?")[0] for _, t in shown(demo, "error")) == ["/api/quote", "/boom"]  # 5xx too
    assert matched(demo, "error") == matched(demo, "outcome:exception") | matched(demo, "status:5xx")
    assert matched(demo, "-error") == {c.id for c in demo} - matched(demo, "error")
    assert matched(demo, "cut") == matched(demo, "open") == set()


def test_free_text(demo: Conns) -> None:
    assert shown(demo, "delete") == {("DELETE", c.target) for c in demo if c.method == "DELETE"}
    # Two requests answered 422; any other match can only be a header value (a port with 422 in it)
    # or a target (the demo's random order numbers: /boom?order=422).
    statuses = ids(demo, lambda c: c.status == 422)
    assert len(statuses) == 2
    in_headers = ids(demo, lambda c: any(b"422" in v for _, v in c.request_headers))
    in_targets = ids(demo, lambda c: "422" in c.target)
    assert matched(demo, "422") == statuses | in_headers | in_targets
    assert matched(demo, "websocket") == matched(demo, "type:websocket")
    assert matched(demo, "ASGISPY-DEMO") == ids(
        demo, lambda c: c.type != "lifespan"
    )  # a request header value
    assert matched(demo, "[redacted]") == ids(
        demo, lambda c: b"[redacted]" in dict(c.request_headers).values()
    )
    assert matched(demo, "item_id") == ids(demo, lambda c: c.route == "/api/items/{item_id:int}")
    assert matched(demo, "get_item") == matched(demo, "endpoint:get_item")
    assert matched(demo, "teapot") == set()  # free text does not search bodies; body: does
    assert matched(demo, "api items") == ids(demo, lambda c: "/api/items" in c.target)
    assert matched(demo, '"ws/chat?name=bob"') == ids(demo, lambda c: c.target == "/ws/chat?name=bob")
    assert matched(demo, '"-x"') == set()  # a quoted dash is text, not a negation


def test_combining(demo: Conns) -> None:
    everyone = {c.id for c in demo}
    assert matched(demo, "method:GET status:2xx path:/api/*") == ids(
        demo, lambda c: c.method == "GET" and 200 <= (c.status or 0) < 300 and c.path.startswith("/api/")
    )
    assert shown(demo, "status:5xx or type:lifespan") == shown(demo, "error") | {("lifespan", "")}
    assert matched(demo, "status:404 | status:422") == matched(demo, "status:404,422")
    assert matched(demo, "status:404|status:422") == matched(demo, "status:404,422")
    assert matched(demo, "-path:/health !type:lifespan") == ids(
        demo, lambda c: c.path != "/health" and c.type != "lifespan"
    )
    assert matched(demo, "method:POST OR -type:http") == matched(demo, "method:POST") | ids(
        demo, lambda c: c.type != "http"
    )
    assert matched(demo, "") == matched(demo, "   ") == everyone
    assert parse("").matches_all and not parse("error").matches_all


def test_cut_and_open(in_flight: Conns) -> None:
    # The server was still running: its lifespan was open too.
    assert shown(in_flight, "open") == {("GET", "/stream?chunks=100"), ("lifespan", "")}
    assert shown(in_flight, "cut") == {("GET", "/logo.png"), ("POST", "/feedback")}
    assert shown(in_flight, "cut -body:xxxxx") == {("GET", "/logo.png")}  # what was kept is searched
    # A connection still open is as long as it has lasted so far.
    assert ("GET", "/stream?chunks=100") in shown(in_flight, "duration:>0")
    assert shown(in_flight, "outcome:open") == shown(in_flight, "open")


@pytest.mark.parametrize(
    ("text", "span", "words"),
    [
        ("method:GET foo:bar", (11, 15), ["unknown field 'foo'", "fields: method"]),
        ("status:abc", (0, 10), ["status:abc", "4xx"]),
        ("status:300-200", (0, 14), ["200-299"]),
        ("duration:>1x", (0, 12), ["100ms"]),
        ("size:1k-", (0, 8), ["size:1k-"]),
        ("method:", (0, 7), ["method: needs a value"]),
        ("error -", (6, 7), ["needs something to negate"]),
        ("or error", (0, 2), ["'or' needs a filter before it"]),
        ("error |", (6, 7), ["'or' needs a filter after it"]),
        ("error or or open", (9, 11), ["'or' needs a filter before it"]),
        ('path:"/a b', (5, 10), ["unclosed quote"]),
        (":x", (0, 2), ["field name goes before"]),
        ("header:=json", (0, 12), ["header name"]),
    ],
)
def test_errors_point_at_the_bad_token(text: str, span: tuple[int, int], words: list[str]) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text)
    error = caught.value
    assert (error.start, error.end) == span
    for word in words:
        assert word in str(error)
    assert str(error).endswith(f"(column {span[0] + 1})")


def test_a_filter_is_a_plain_predicate(demo: Conns) -> None:
    only_posts = parse("method:POST")
    assert isinstance(only_posts, Filter)
    assert [only_posts(c) for c in demo] == [c.method == "POST" for c in demo]
    assert only_posts.select(demo) == [c for c in demo if c.method == "POST"]  # order kept
    assert list(filter(only_posts.predicate, demo)) == only_posts.select(demo)
    assert set(FIELDS) >= {"method", "status", "path", "type", "route", "host", "header", "body", "duration"}


def test_docs_cover_every_field() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "filters.md").read_text()
    for name in FIELDS:
        assert f"`{name}:" in docs, name
    for keyword in ("`error`", "`cut`", "`open`", "`or`", "`-`", "`!`"):
        assert keyword in docs


def paths(conns: Conns, text: str) -> set[str]:
    return {c.path for c in parse(text).select(conns)}


def test_inside_counts_calls_and_queries() -> None:
    conns = inside_session().connections  # /checkout: 3 calls, 41 queries; /quiet: 2 queries
    assert paths(conns, "calls:>2") == {"/checkout"}
    assert paths(conns, "calls:0") == {"/quiet", "/plain"}
    assert paths(conns, "calls:3 queries:41") == {"/checkout"}
    assert paths(conns, "queries:>10") == {"/checkout"}
    assert paths(conns, "queries:1-5") == {"/quiet"}
    assert paths(conns, "-queries:0") == {"/checkout", "/quiet"}


def test_inside_log_levels_mean_that_level_or_worse() -> None:
    conns = inside_session().connections  # /checkout: WARNING and ERROR; /quiet: INFO
    assert paths(conns, "log:warning") == {"/checkout"}
    assert paths(conns, "log:WARN") == {"/checkout"}
    assert paths(conns, "log:Error") == {"/checkout"}
    assert paths(conns, "log:critical") == set()
    assert paths(conns, "log:info") == paths(conns, "log:debug") == {"/checkout", "/quiet"}
    with pytest.raises(FilterError) as caught:
        parse("log:loud")
    assert "logging level" in str(caught.value) and "warning" in str(caught.value)


def test_inside_call_urls_as_substring_or_glob() -> None:
    conns = inside_session().connections
    assert paths(conns, "call:pay.example") == {"/checkout"}
    assert paths(conns, "call:https://mail.*/send") == {"/checkout"}
    assert paths(conns, "call:*attempt=2") == {"/checkout"}
    assert paths(conns, "call:https://pay.example") == {"/checkout"}
    assert paths(conns, "call:nowhere") == set()
    assert paths(conns, "call:https://pay.example/*") == {"/checkout"}
    assert paths(conns, "call:/charge") == {"/checkout"}
    assert paths(conns, "-call:pay") == {"/quiet", "/plain"}
    with pytest.raises(FilterError):
        parse("calls:lots")
