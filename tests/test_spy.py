"""Spy called directly, as a server would call it: transparency, failures, bounds and options.

These need control a real server does not give: an exception caught just outside Spy, a
message that is not a mapping, a scope full of odd objects, a message type no server
supports. Each drives ``Spy(Recorder(app))`` with a small in-process stand-in for a server.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asgispy
from asgispy import Spy
from asgispy.codec.jsonform import Opaque
from asgispy.codec.redact import Redactor
from tests.apps.raw import AppError, edge_app
from tests.apps.recording import Harness

MakeHarness = Callable[..., Harness]


class FakeServer:
    """Feeds ``incoming`` to the app's ``receive`` (then waits forever) and collects what it sends."""

    def __init__(self, incoming: list[Any]) -> None:
        self.incoming = list(incoming)
        self.given: list[Any] = []
        self.sent: list[Any] = []

    async def receive(self) -> Any:
        if not self.incoming:
            await asyncio.Event().wait()
        message = self.incoming.pop(0)
        self.given.append(message)
        return message

    async def send(self, message: Any) -> None:
        self.sent.append(message)


def http_scope(path: str = "/echo", method: str = "GET", **extra: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(extra)
    return scope


def run(app: Any, scope: dict[str, Any], incoming: list[Any]) -> FakeServer:
    server = FakeServer(incoming)
    asyncio.run(app(scope, server.receive, server.send))
    return server


REQUEST = {"type": "http.request", "body": b"", "more_body": False}


# Transparency ---------------------------------------------------------------------------------


def test_app_and_server_see_the_very_same_objects(harness: MakeHarness) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["scope"] = scope
        seen["message"] = await receive()
        seen["start"] = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]}
        await send(seen["start"])
        await send({"type": "http.response.body", "body": b"x"})

    h = harness(app)
    scope = http_scope()
    request = dict(REQUEST)
    server = run(h.spy, scope, [request])
    assert seen["scope"] is scope and seen["message"] is request
    assert server.sent[0] is seen["start"]
    h.check()


def test_what_the_app_adds_to_the_scope_stays_visible_outside(harness: MakeHarness) -> None:
    from tests.apps.starlette_app import app as starlette_app

    h = harness(starlette_app)
    scope = http_scope("/items/7", query_string=b"q=1")
    server = run(h.spy, scope, [REQUEST])
    assert server.sent[0]["status"] == 200
    # Starlette's router wrote the matched route into the scope it was given: the caller's.
    assert scope["route"].path == "/items/{item_id:int}" and scope["path_params"] == {"item_id": 7}
    session = h.check()
    assert session.connections[0].handler == {
        "route": "/items/{item_id:int}",
        "name": "item",
        "methods": ["GET", "HEAD"],
        "endpoint": "tests.apps.starlette_app.item",
        "path_params": {"item_id": 7},
    }


def test_exception_propagates_untouched(harness: MakeHarness) -> None:
    """The outer wrapper catches the very object the app raised, chain and traceback intact."""
    h = harness(edge_app)
    caught: list[tuple[BaseException, list[str]]] = []

    def wrap(app: Any) -> Any:
        async def outer(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            except BaseException as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                caught.append((exc, [f"{f.name}:{f.line}" for f in frames]))
                raise

        return outer

    with pytest.raises(AppError) as info:
        run(wrap(h.spy), http_scope("/raise"), [REQUEST])
    with pytest.raises(AppError):
        run(wrap(h.recorder), http_scope("/raise"), [REQUEST])  # the same stack without Spy
    (raised, frames), (_, bare_frames) = caught
    inner = h.calls[0].exception
    assert raised is inner is info.value
    assert isinstance(raised.__cause__, KeyError) and raised.__context__ is raised.__cause__
    assert raised.__suppress_context__ is True
    # The traceback is the bare one with one frame more: Spy's bare ``await``, then what it was.
    assert frames[0] == bare_frames[0] and frames[2:] == bare_frames[1:]
    assert frames[1] == "__call__:await app(scope, spy_receive, spy_send)"
    assert frames[-1] == 'edge_app:raise AppError("the endpoint failed") from cause'
    inner_frames = [frame.name for frame in traceback.extract_tb(raised.__cause__.__traceback__)]
    assert inner_frames == ["edge_app"]
    h.recorder.calls.pop()

    session = h.check()
    conn = session.connections[0]
    assert conn.outcome == "exception" and conn.error is not None
    assert conn.error.type == "tests.apps.raw.AppError" and conn.error.message == "the endpoint failed"
    assert "KeyError: 'missing'" in conn.error.traceback
    assert 'raise AppError("the endpoint failed") from cause' in conn.error.traceback


def test_the_record_does_not_keep_the_exception_alive(harness: MakeHarness) -> None:
    import weakref

    class Dropped(Exception):
        pass

    refs: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        exc = Dropped("gone")
        refs.append(weakref.ref(exc))
        raise exc

    spy = Spy(app)
    with pytest.raises(Dropped):
        run(spy, http_scope(), [])
    gc.collect()
    assert refs[0]() is None, "Spy holds the exception (and its frames) after the request"
    assert spy.document()["connections"][0]["error"]["type"].endswith("Dropped")


def test_cancellation_is_recorded_and_propagates(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(10)

    h = harness(app)

    async def main() -> None:
        server = FakeServer([REQUEST])
        task = asyncio.ensure_future(h.spy(http_scope(), server.receive, server.send))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    session = h.check()
    assert session.connections[0].outcome == "cancelled"
    assert [e.type for e in session.connections[0].events] == ["http.request"]


def test_a_message_changed_after_it_was_sent_is_recorded_as_sent(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        message["body"] = b"changed by the app"  # apps may reuse what they were given
        headers = [(b"x-a", b"1")]
        body = bytearray(b"first")
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        headers.append((b"x-late", b"2"))
        headers[0] = (b"x-a", b"changed")
        await send({"type": "http.response.body", "body": body, "more_body": True})
        body[:] = b"SECOND"
        await send({"type": "http.response.body", "body": body})

    h = harness(app)
    run(h.spy, http_scope(method="POST"), [{"type": "http.request", "body": b"original", "more_body": False}])
    session = h.check()
    events = session.connections[0].events
    assert events[0].message["body"] == b"original"
    assert events[1].message["headers"] == [(b"x-a", b"1")]
    assert [e.message["body"] for e in events[2:]] == [b"first", b"SECOND"]


# Failures of Spy's own never reach the app ---------------------------------------------------


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Hostile(dict):  # type: ignore[type-arg]
    """A message whose copy fails: iterating its keys raises."""

    def keys(self) -> Any:
        raise RuntimeError("cannot list my keys")

    def __iter__(self) -> Any:
        raise RuntimeError("cannot iterate me")


def test_messages_spy_cannot_copy_pass_through_and_are_noted(tmp_path: Path) -> None:
    weird_in = ["not", "a", "mapping"]
    weird_out = Hostile(type="http.response.start", status=200, headers=[])
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())
        await send(weird_out)
        await send({"type": "http.response.body", "body": b"fine"})

    spy = Spy(app)
    server = run(spy, http_scope(), [weird_in, REQUEST])
    assert got[0] is weird_in and got[1] is REQUEST
    assert server.sent[0] is weird_out and server.sent[1]["body"] == b"fine"
    (conn,) = asgispy.load(spy.export(tmp_path / "notes.json")).connections
    assert conn.outcome == "completed"
    assert [e.type for e in conn.events] == ["http.request", "http.response.body"]
    assert len(conn.notes) == 2
    assert conn.notes[0].startswith("could not record a received message")
    assert "could not record a sent message" in conn.notes[1]


def test_odd_scope_contents_export_as_opaque(harness: MakeHarness) -> None:
    lock = threading.Lock()
    scope = http_scope(
        state={"pool": lock, "broken": Unprintable(), "nested": {"fn": len}},
        extensions={"http.response.trailers": {}, "x-custom": {"obj": object()}},
        app=object(),
        weird_number=float("nan"),
        big=2**80,
    )
    h = harness(edge_app)
    run(h.spy, scope, [REQUEST])
    session = h.check()
    conn = session.connections[0]
    assert conn.scope["state"]["pool"] == Opaque("_thread.lock", repr(lock))
    assert conn.scope["state"]["broken"].repr == "<Unprintable whose repr raised RuntimeError>"
    assert conn.scope["extensions"]["http.response.trailers"] == {}
    assert conn.scope["big"] == 2**80


def test_a_scope_spy_cannot_copy_runs_the_app_unrecorded(caplog: pytest.LogCaptureFixture) -> None:
    class BadScope(dict):  # type: ignore[type-arg]
        def keys(self) -> Any:
            raise RuntimeError("no keys")

        def __iter__(self) -> Any:
            raise RuntimeError("no iteration")

        def items(self) -> Any:
            raise RuntimeError("no items")

    served: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        served.append(scope)

    spy = Spy(app)
    scope = BadScope(type="http")
    run(spy, scope, [])
    assert served == [scope] and served[0] is scope
    assert spy.records == [] and "could not start recording" in caplog.text


class HostileRoute:
    """A route object whose every attribute raises (routers are the app's own code)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} here")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def test_odd_route_objects_do_not_break_the_export(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = HostileRoute()
        scope["endpoint"] = HostileRoute()
        scope["path_params"] = {"id": object()}
        await edge_app(scope, receive, send)

    h = harness(app)
    run(h.spy, http_scope(), [REQUEST])
    conn = h.check().connections[0]
    assert conn.outcome == "completed" and conn.handler is not None
    assert conn.handler["endpoint"] == f"{__name__}.HostileRoute" and "route" not in conn.handler
    assert conn.handler["path_params"]["id"].type == "builtins.object"


def test_secret_headers_the_app_sends_with_str_names_are_masked(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [("Set-Cookie", b"sid=STR-NAME-SECRET"), [b"x-api-key", b"LIST-ITEM-SECRET"]]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    h = harness(app)
    run(h.spy, http_scope(), [REQUEST])
    conn = h.check(secrets=(b"STR-NAME-SECRET", b"LIST-ITEM-SECRET")).connections[0]
    assert conn.events[1].message["headers"] == [("Set-Cookie", b"[redacted]"), [b"x-api-key", b"[redacted]"]]


class PickyScope(dict):  # type: ignore[type-arg]
    """A scope whose ``get`` refuses the router's keys (servers may pass any mapping)."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key in ("route", "endpoint", "path_params"):
            raise LookupError(f"no {key} for you")
        return super().get(key, default)


def test_a_scope_that_hides_the_route_still_completes(tmp_path: Path) -> None:
    spy = Spy(edge_app)
    run(spy, PickyScope(http_scope("/binary")), [REQUEST])
    (conn,) = asgispy.load(spy.export(tmp_path / "s.json")).connections
    assert conn.outcome == "completed" and conn.handler is None
    assert conn.notes == ["could not read the matched route: LookupError('no route for you')"]


def test_custom_redact_list(harness: MakeHarness) -> None:
    h = harness(edge_app, redact=["x-tenant", "x-sig-*"])
    headers = [(b"x-tenant", b"TENANT-7"), (b"x-sig-v1", b"SIG-V1"), (b"authorization", b"Bearer shown")]
    run(h.spy, http_scope(headers=headers), [REQUEST])
    conn = h.check(secrets=(b"TENANT-7", b"SIG-V1")).connections[0]
    assert conn.request_headers[2] == (b"authorization", b"Bearer shown")  # the user chose what to mask


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("q=tea&page=2", "q=tea&page=2"),
        ("access_token=t0k&q=tea", "access_token=REDACTED&q=tea"),
        ("api%5Fkey=k&API-KEY=k2&flag&empty=", "api%5Fkey=REDACTED&API-KEY=REDACTED&flag&empty="),
        (
            "X-Amz-Signature=abc&AWSAccessKeyId=AKIA&sig=s",
            "X-Amz-Signature=REDACTED&AWSAccessKeyId=REDACTED&sig=REDACTED",
        ),
        ("password=a=b&token=x&token=y", "password=REDACTED&token=REDACTED&token=REDACTED"),
    ],
)
def test_secret_query_values_are_masked_for_what_leaves_the_machine(query: str, shown: str) -> None:
    """Names are read as the app would (percent-decoded, any case); what has no value stays."""
    assert Redactor().query(query) == shown
    assert Redactor(["x-tenant"]).query("token=x&tenant=y") == "token=x&tenant=y"  # the user's list


def test_max_events_counts_what_it_does_not_keep(tmp_path: Path) -> None:
    spy = Spy(edge_app, max_events=5)
    run(spy, http_scope("/stream", query_string=b"n=50"), [REQUEST])
    (conn,) = asgispy.load(spy.export(tmp_path / "s.json")).connections
    assert len(conn.events) == 5 and conn.events_dropped == 53 - 5
    assert conn.outcome == "completed"


# Messages no server here supports ------------------------------------------------------------


def test_pathsend_without_a_server(harness: MakeHarness) -> None:
    h = harness(edge_app)
    scope = http_scope("/pathsend", extensions={"http.response.pathsend": {}})
    server = run(h.spy, scope, [REQUEST])
    assert server.sent[-1] == {"type": "http.response.pathsend", "path": "/etc/hostname"}
    session = h.check()
    assert session.connections[0].events[-1].message == server.sent[-1]


def test_unknown_scope_and_message_types(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "webtransport.accept", "session": message["session"], "datagram": b"\xff\x00"})
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})

    h = harness(app)
    run(
        h.spy,
        {"type": "webtransport", "path": "/wt", "extra": (1, 2.5, None)},
        [{"type": "webtransport.connect", "session": 7}],
    )
    session = h.check()
    conn = session.connections[0]
    assert conn.type == "webtransport" and conn.outcome == "completed"
    assert [e.type for e in conn.events] == [
        "webtransport.connect",
        "webtransport.accept",
        "http.response.early_hint",
    ]


def test_lifespan_startup_failure_is_recorded(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})

    h = harness(app)
    run(h.spy, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, [{"type": "lifespan.startup"}])
    conn = h.check().connections[0]
    assert conn.type == "lifespan" and conn.events[-1].message["message"] == "database unreachable"


# Options --------------------------------------------------------------------------------------


def test_disabled_spy_is_a_plain_pass_through() -> None:
    passed: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        passed.extend([scope, receive, send])

    spy = Spy(app, enabled=False)
    server = FakeServer([])
    scope = http_scope()
    asyncio.run(spy(scope, server.receive, server.send))
    assert passed[0] is scope
    assert passed[1] == server.receive and passed[2] == server.send  # the server's own callables
    assert spy.records == [] and spy.document()["connections"] == []


def test_max_body_cuts_every_payload_kind(harness: MakeHarness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "é" * 50})
        await send({"type": "websocket.send", "bytes": bytearray(b"\xff" * 50)})
        await send({"type": "websocket.send", "bytes": memoryview(b"m" * 50)})
        await send({"type": "websocket.send", "bytes": b"short"})
        await send({"type": "websocket.close", "code": 1000})

    h = harness(app, max_body=10)
    run(h.spy, {"type": "websocket", "path": "/ws", "headers": []}, [{"type": "websocket.connect"}])
    session = h.check(max_body=10)
    events = session.connections[0].events
    assert [e.cut for e in events] == [None, None, {"text": 50}, {"bytes": 50}, {"bytes": 50}, None, None]
    assert events[2].message["text"] == "é" * 10 and events[3].message["bytes"] == b"\xff" * 10
    assert events[4].message["bytes"] == b"m" * 10 and events[5].message["bytes"] == b"short"
    assert session.connections[0].response_bytes == 50 * 3 + 5


def test_max_body_zero_keeps_sizes_only(harness: MakeHarness) -> None:
    h = harness(edge_app, max_body=0)
    run(h.spy, http_scope("/binary"), [REQUEST])
    conn = h.check(max_body=0).connections[0]
    assert conn.response_body() == b"" and conn.response_bytes == 256


def test_history_is_bounded_in_count(harness: MakeHarness) -> None:
    spy = Spy(edge_app, history=3)
    for i in range(10):
        run(spy, http_scope(f"/n{i}"), [REQUEST])
    assert [r.scope["path"] for r in spy.records] == ["/n7", "/n8", "/n9"]
    assert spy.history.evicted == 7
    assert [c["scope"]["path"] for c in spy.document()["connections"]] == ["/n7", "/n8", "/n9"]


def test_history_is_bounded_in_bytes() -> None:
    spy = Spy(edge_app, history=1000, history_bytes=200_000)
    big = {"type": "http.request", "body": b"x" * 50_000, "more_body": False}
    for i in range(20):
        run(spy, http_scope(f"/b{i}", "POST"), [big])
        assert spy.history.used <= 200_000
    kept = [r.scope["path"] for r in spy.records]
    assert 1 <= len(kept) < 20 and kept[-1] == "/b19"
    assert spy.history.used == sum(r.size for r in spy.records)


def test_history_zero_keeps_nothing_but_the_app_runs() -> None:
    spy = Spy(edge_app, history=0)
    server = run(spy, http_scope("/binary"), [REQUEST])
    assert server.sent[-1]["body"] == bytes(range(256))
    assert spy.records == []


def test_open_connections_are_kept_while_they_run() -> None:
    """A lifespan (open for the whole run) survives eviction, so an export still shows startup."""
    spy = Spy(edge_app, history=2)
    started = asyncio.Event()

    async def main() -> None:
        lifespan = FakeServer([{"type": "lifespan.startup"}])
        task = asyncio.ensure_future(spy({"type": "lifespan", "state": {}}, lifespan.receive, lifespan.send))
        await asyncio.sleep(0)
        started.set()
        for i in range(5):
            server = FakeServer([REQUEST])
            await spy(http_scope(f"/r{i}"), server.receive, server.send)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    types = [(r.type, r.outcome) for r in spy.records]
    assert types[0] == ("lifespan", "cancelled") and len(types) <= 3


def test_spy_is_recognised_as_asgi3() -> None:
    import inspect

    import uvicorn
    from starlette._utils import is_async_callable

    spy = Spy(edge_app)
    assert inspect.iscoroutinefunction(Spy.__call__) and is_async_callable(spy)
    config = uvicorn.Config(spy, log_config=None)
    config.load()
    assert config.interface == "asgi3"


def test_import_asgispy_stays_light() -> None:
    code = (
        "import sys, asgispy\n"
        "from asgispy import Spy\n"
        "names = ('textual', 'uvicorn', 'starlette', 'httpx', 'websockets', 'rich')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == ""


def test_skip_leaves_paths_and_scope_types_unrecorded() -> None:
    spy = Spy(edge_app, skip=["/health", "/metrics*", "lifespan"])
    for path in ("/health", "/metrics", "/metrics/cpu", "/binary", "/healthy"):
        server = run(spy, http_scope(path), [REQUEST])
        assert server.sent[-1]["type"] == "http.response.body"  # the app ran all the same
    assert [r.scope["path"] for r in spy.records] == ["/binary", "/healthy"]


@pytest.mark.parametrize("rules", [["health"], [""], "/health"])
def test_skip_rules_that_mean_nothing_are_refused_clearly(rules: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="skip"):
        Spy(edge_app, skip=rules)


@pytest.mark.parametrize("compact", [False, True])
def test_ended_connections_are_kept_and_read_back_exactly(compact: bool) -> None:
    """Compacted, the history holds an ended connection as bytes, not a tree; either way, reading
    it gives what the app saw, and its bytes are counted against the bound."""
    spy = Spy(edge_app, address=False, compact=compact)
    scope = http_scope("/binary", headers=[(b"authorization", b"Bearer live"), (b"x-big", b"\xff\x00")])
    scope["client"] = ("10.0.0.1", 1234)
    server = run(spy, scope, [REQUEST])
    (record,) = spy.records
    if compact:
        assert isinstance(record.kept, bytes) and record._scope is None and record._flat is None
        assert record.size == spy.history.used > len(record.kept)
    else:
        assert record.kept is None and record._scope is not None
        # The estimate counts the payloads: the bytes the app sent are in it.
        assert record.size == spy.history.used > sum(len(e[2].get("body", b"")) for e in record.events)
    assert record.scope["client"] == ("10.0.0.1", 1234) and type(record.scope["client"]) is tuple
    assert (b"authorization", b"Bearer live") in record.scope["headers"]  # the app's own view
    assert [e[2] for e in record.events] == [REQUEST, *server.sent]


def test_a_scope_holding_objects_is_kept_as_it_is_and_still_exports(tmp_path: Path) -> None:
    spy = Spy(edge_app, address=False, compact=True)
    scope = http_scope("/binary", state={"pool": threading.Lock()})
    run(spy, scope, [REQUEST])
    (record,) = spy.records
    assert record.kept is None and record._scope is not None  # not data: left as recorded
    (conn,) = asgispy.load(spy.export(tmp_path / "s.json")).connections
    assert conn.scope["state"]["pool"].type == "_thread.lock"


# Timing the calls -------------------------------------------------------------------------------


@pytest.mark.parametrize("time_sends", [False, True])
def test_receive_is_always_timed_and_send_only_when_asked(time_sends: bool) -> None:
    """By default a send is recorded as it is handed over and passed on as the server's own
    awaitable (no frame of Spy's per message); time_sends times it to its end too."""
    slow = 0.05

    class SlowServer(FakeServer):
        async def send(self, message: Any) -> None:
            await asyncio.sleep(slow)
            await super().send(message)

    spy = Spy(edge_app, address=False, time_sends=time_sends)
    server = SlowServer([{"type": "http.request", "body": b"hello", "more_body": False}])
    asyncio.run(spy(http_scope("/echo", "POST"), server.receive, server.send))
    assert [m["type"] for m in server.sent] == ["http.response.start", "http.response.body"]
    (record,) = spy.records
    received = [e for e in record.events if e[0] == "receive"]
    sent = [e for e in record.events if e[0] == "send"]
    assert received and all(isinstance(e[4], float) and e[4] >= 0 for e in received)
    assert len(sent) == 2 and [e[2]["type"] for e in sent] == ["http.response.start", "http.response.body"]
    if time_sends:
        assert all(e[4] is not None and e[4] >= slow * 0.9 for e in sent)
    else:
        assert all(e[4] is None for e in sent)
        # Handed over one after the other, each taking the server's 50 ms.
        assert sent[1][1] - sent[0][1] >= slow * 0.9


def test_websocket_text_is_kept_whole_within_bounds_and_cut_past_them() -> None:
    """Text frames take the quick way when within max_body; longer ones are cut (their size noted),
    and a frame carrying both text and bytes (against the spec) is still recorded, the general way."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"].upper()})

    spy = Spy(app, address=False, max_body=8)
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "short"},
        {"type": "websocket.receive", "text": "much longer than eight", "bytes": None},
        {"type": "websocket.receive", "text": "both", "bytes": bytearray(b"odd")},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    scope = {"type": "websocket", "path": "/ws", "headers": [], "subprotocols": []}
    server = run(spy, scope, incoming)
    assert [m.get("text") for m in server.sent] == [None, "SHORT", "MUCH LONGER THAN EIGHT", "BOTH"]
    (record,) = spy.records
    kept = [(e[0], e[2].get("text"), e[3]) for e in record.events]
    assert kept == [
        ("receive", None, None),
        ("send", None, None),
        ("receive", "short", None),
        ("send", "SHORT", None),
        ("receive", "much lon", {"text": 22}),
        ("send", "MUCH LON", {"text": 22}),
        ("receive", "both", None),
        ("send", "BOTH", None),
        ("receive", None, None),
    ]
    odd = record.events[6][2]
    assert odd["bytes"] == b"odd" and type(odd["bytes"]) is bytes  # the bytearray was copied
