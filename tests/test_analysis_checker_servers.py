"""The protocol checker at the real boundary: deliberately broken apps behind real servers.

Spy records a message before the server sees it, so a mistake is in the recording even when
the server then refuses it (uvicorn and Hypercorn raise into the app, or drop the message).
Each broken app below commits one mistake per path; it is served by a real server on
127.0.0.1, driven by a real client, and what Spy recorded is fed to ``check_events``: the
expected rule must fire on the expected event.

Rules no server lets an app commit, or that Spy cannot record, are covered by the unit tests
(tests/test_analysis_checker.py) only:

- ``message.malformed`` for a message that is not a dict: Spy copies each message with
  ``dict(message)``; a non-dict cannot be copied, so Spy notes it and records no event (a dict
  without ``type`` is recorded, and is tested here);
- ``message.unknown-type`` on *received* messages: servers only send the types they define;
- ``lifespan.served-after-failure`` on uvicorn: after ``lifespan.startup.failed`` uvicorn exits
  without sending ``lifespan.shutdown`` (Hypercorn goes on serving, and is tested here).

The last test is the other side: the apps in tests/apps under every server spec, driven with
ordinary requests, must produce no ``error`` at all.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from asgispy import Spy
from asgispy.analysis.checker import Violation, check_events
from asgispy.types import Receive, Scope, Send
from tests.apps.fastapi_app import app as fastapi_app
from tests.apps.raw import edge_app, seed_app
from tests.apps.starlette_app import app as starlette_app
from tests.servers import (
    HYPERCORN,
    SERVERS,
    UVICORN_H11,
    UVICORN_HTTPTOOLS,
    UVICORN_WSPROTO,
    ServerError,
    ServerSpec,
    serve,
)

# uvicorn warns that its legacy "websockets" implementation will be replaced; it is still one we test.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
]

Message = dict[str, Any]

TIMEOUT = 3.0


def violations_of(record: Any) -> list[Violation]:
    """Check one of ``spy.records`` the way the viewer does."""
    events = [(direction, message, cut) for direction, _t, message, cut, _wait in record.events]
    return check_events(record.type, record.scope.get("method"), events, record.outcome)


def found(violations: list[Violation]) -> list[tuple[str, int | None]]:
    return [(v.rule, v.event) for v in violations]


def record_for(spy: Spy, path: str) -> Any:
    (record,) = [r for r in spy.records if r.scope.get("path") == path]
    return record


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        time.sleep(0.01)


def start(status: object = 200, headers: object = None, **extra: object) -> Message:
    head = [(b"content-type", b"text/plain")] if headers is None else headers
    return {"type": "http.response.start", "status": status, "headers": head, **extra}


def body(data: object = b"done", more: object = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


# HTTP ----------------------------------------------------------------------------------------


async def broken_http(scope: Scope, receive: Receive, send: Send) -> None:
    """One mistake per path; the request is always received first (event 0)."""
    path = scope["path"]
    if path == "/after-disconnect":
        while (await receive())["type"] != "http.disconnect":
            pass
        await send(start())
        await send(body())
        return
    await receive()
    if path == "/start-twice":
        await send(start())
        await send(start())
        await send(body())
    elif path == "/start-after-body":
        with contextlib.suppress(Exception):  # the server refuses it; this app carries on regardless
            await send(body(b"early", more=True))
        await send(start())
        await send(body())
    elif path == "/body-before-start":
        await send(body())
    elif path == "/after-final":
        await send(start())
        await send(body())
        await send(body(b"late"))
    elif path == "/unfinished":
        await send(start())
    elif path == "/no-response":
        return
    elif path == "/trailers-misplaced":
        await send(start(trailers=True))
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")], "more_trailers": False})
        await send(body())
    elif path == "/body-type":
        await send(start())
        await send(body("text, not bytes"))
    elif path == "/status-type":
        await send(start("200"))
        await send(body())
    elif path == "/status-range":
        await send(start(700))
        await send(body())
    elif path == "/more-body-type":
        await send(start())
        await send(body(b"a", more="yes"))
        await send(body())
    elif path == "/headers-type":
        await send(start(headers=[("content-type", "text/plain")]))
        await send(body())
    elif path == "/header-case":
        await send(start(headers=[(b"X-Custom", b"1")]))
        await send(body())
    elif path == "/header-crlf":
        await send(start(headers=[(b"x-injected", b"a\r\nx-evil: 1")]))
        await send(body())
    elif path == "/length-over":
        await send(start(headers=[(b"content-length", b"4")]))
        await send(body(b"more than four"))
    elif path == "/length-under":
        await send(start(headers=[(b"content-length", b"100")]))
        await send(body(b"short"))
    elif path == "/no-content":
        await send(start(204))
        await send(body(b"surprise"))
    elif path == "/head":
        await send(start(headers=[(b"content-length", b"5")]))
        await send(body(b"hello"))
    elif path == "/unknown":
        await send({"type": "http.response.bogus"})
    elif path == "/no-type":
        await send({"status": 200})


#: path -> what must be found: (rule, event index), and the request method
HTTP_CASES: dict[str, tuple[list[tuple[str, int | None]], str]] = {
    "/start-twice": ([("http.start-twice", 2)], "GET"),
    "/start-after-body": ([("http.body-before-start", 1), ("http.start-after-body", 2)], "GET"),
    "/body-before-start": ([("http.body-before-start", 1)], "GET"),
    "/after-final": ([("http.after-final", 3)], "GET"),
    "/unfinished": ([("http.unfinished", None)], "GET"),
    "/no-response": ([("http.unfinished", None)], "GET"),
    "/trailers-misplaced": ([("http.trailers-misplaced", 2)], "GET"),
    "/body-type": ([("http.body-type", 2)], "GET"),
    "/status-type": ([("http.status-type", 1)], "GET"),
    "/status-range": ([("http.status-range", 1)], "GET"),
    "/more-body-type": ([("http.more-body-type", 2)], "GET"),
    "/headers-type": ([("http.headers-type", 1)], "GET"),
    "/header-case": ([("http.header-case", 1)], "GET"),
    "/header-crlf": ([("http.header-crlf", 1)], "GET"),
    "/length-over": ([("http.content-length", 2)], "GET"),
    "/length-under": ([("http.content-length", 2)], "POST"),
    "/no-content": ([("http.body-not-allowed", 2)], "GET"),
    "/head": ([("http.head-body", 2)], "HEAD"),
    "/unknown": ([("message.unknown-type", 1)], "GET"),
    "/no-type": ([("message.malformed", 1)], "GET"),
}


def _hang_up_after_the_request(spy: Spy, host: str, port: int, path: str) -> None:
    """Send a request, wait until the app has read it, then close the socket."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        wait_until(lambda: any(r.scope.get("path") == path and r.events for r in spy.records))


@pytest.mark.parametrize("spec", [UVICORN_H11, UVICORN_HTTPTOOLS, HYPERCORN], ids=str)
def test_http_mistakes_are_caught(spec: ServerSpec) -> None:
    spy = Spy(broken_http, address=False)
    with serve(spy, spec, lifespan="off") as server, httpx.Client(timeout=TIMEOUT) as client:
        for path, (_, method) in HTTP_CASES.items():
            # Many of these end in a broken response or a closed connection: that is the point.
            # A fresh connection each time, as a broken response can leave the last one unusable.
            with contextlib.suppress(httpx.HTTPError):
                client.request(
                    method,
                    server.url(path),
                    content=b"x" if method == "POST" else None,
                    headers={"connection": "close"},
                )
        _hang_up_after_the_request(spy, server.host, server.port, "/after-disconnect")
        wait_until(lambda: record_for(spy, "/after-disconnect").outcome != "open")

    for path, (expected, _) in HTTP_CASES.items():
        record = record_for(spy, path)
        violations = found(violations_of(record))
        for hit in expected:
            assert hit in violations, (path, record.outcome, violations)

    record = record_for(spy, "/after-disconnect")
    kinds = [(direction, message.get("type")) for direction, _t, message, _cut, _wait in record.events]
    gone = kinds.index(("receive", "http.disconnect"))
    first_send = next(i for i, (direction, _) in enumerate(kinds) if direction == "send")
    assert gone < first_send
    assert ("http.send-after-disconnect", first_send) in found(violations_of(record))


def test_what_the_server_saw_is_what_was_checked() -> None:
    """The mistakes above really crossed the boundary: the servers refused or dropped them."""
    spy = Spy(broken_http, address=False)
    with serve(spy, UVICORN_H11, lifespan="off") as server, httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(server.url("/no-response")).status_code == 500  # uvicorn's own answer
        assert client.get(server.url("/header-case")).headers["x-custom"] == "1"  # lowercased on the wire
        head = client.head(server.url("/head"))
        assert head.status_code == 200 and head.content == b""  # the body was dropped
    assert record_for(spy, "/no-response").outcome == "completed"
    assert record_for(spy, "/head").events[-1][2]["body"] == b"hello"


# WebSocket -----------------------------------------------------------------------------------

ACCEPT: Message = {"type": "websocket.accept"}


async def broken_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """One mistake per path; ``websocket.connect`` is always received first (event 0)."""
    path = scope["path"]
    await receive()
    if path == "/ws/send-before-accept":
        await send({"type": "websocket.send", "text": "too early"})
        return
    if path == "/ws/denial-after-accept":
        await send(ACCEPT)
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        return
    await send(ACCEPT)
    if path == "/ws/accept-twice":
        await send(ACCEPT)
    elif path == "/ws/after-close":
        await send({"type": "websocket.close", "code": 1000})
        await send({"type": "websocket.send", "text": "too late"})
    elif path == "/ws/after-disconnect":
        while (await receive())["type"] != "websocket.disconnect":
            pass
        await send({"type": "websocket.send", "text": "anyone there?"})
    elif path == "/ws/close-code":
        await send({"type": "websocket.close", "code": 1005})
    elif path == "/ws/long-reason":
        await send({"type": "websocket.close", "code": 1000, "reason": "x" * 200})
    elif path == "/ws/unknown":
        await send({"type": "websocket.bogus"})
    else:
        if path == "/ws/both-payloads":
            await send({"type": "websocket.send", "text": "a", "bytes": b"b"})
        elif path == "/ws/text-bytes":
            await send({"type": "websocket.send", "text": b"bytes in text"})
        await send({"type": "websocket.close", "code": 1000})


WS_CASES: dict[str, tuple[str, int]] = {
    "/ws/send-before-accept": ("websocket.send-before-accept", 1),
    "/ws/accept-twice": ("websocket.accept-twice", 2),
    "/ws/after-close": ("websocket.after-close", 3),
    "/ws/after-disconnect": ("websocket.send-after-disconnect", 3),
    "/ws/close-code": ("websocket.close-code", 2),
    "/ws/long-reason": ("websocket.close-reason-length", 2),
    "/ws/both-payloads": ("websocket.send-payload", 2),
    "/ws/text-bytes": ("websocket.field-type", 2),
    "/ws/denial-after-accept": ("websocket.denial-order", 2),
    "/ws/unknown": ("message.unknown-type", 2),
}


def poke_websocket(url: str, wait: bool = True) -> None:
    """Connect and (unless ``wait`` is False) wait a moment for a message, tolerating whatever
    the broken app does to the handshake or the connection."""
    with contextlib.suppress(Exception), connect(url, open_timeout=TIMEOUT, close_timeout=1) as ws:
        if wait:
            ws.recv(timeout=1)


@pytest.mark.parametrize("spec", [UVICORN_H11, UVICORN_WSPROTO, HYPERCORN], ids=str)
def test_websocket_mistakes_are_caught(spec: ServerSpec) -> None:
    spy = Spy(broken_websocket, address=False)
    with serve(spy, spec, lifespan="off") as server:
        for path in WS_CASES:
            hang_up = path == "/ws/after-disconnect"
            poke_websocket(server.ws_url(path), wait=not hang_up)
            if hang_up:
                wait_until(lambda: record_for(spy, "/ws/after-disconnect").outcome != "open")

    for path, hit in WS_CASES.items():
        record = record_for(spy, path)
        violations = found(violations_of(record))
        assert hit in violations, (path, record.outcome, violations)


# Lifespan --------------------------------------------------------------------------------------


async def startup_twice(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.complete"})
    with contextlib.suppress(Exception):  # uvicorn asserts; this app ignores it
        await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


async def shutdown_twice(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})
    with contextlib.suppress(Exception):  # uvicorn asserts, Hypercorn raises LifespanFailureError
        await send({"type": "lifespan.shutdown.failed", "message": "could not close the pool"})


async def answers_too_early(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "lifespan.startup.complete"})  # before lifespan.startup arrived
    await receive()
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


async def ignores_its_failure(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await receive()
        await send(start())
        await send(body(b"serving anyway"))
        return
    await receive()
    # Hypercorn raises into the app here; an app that swallows that keeps Hypercorn serving.
    with contextlib.suppress(Exception):
        await send({"type": "lifespan.startup.failed", "message": "no database"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


LIFESPAN_CASES = [
    (startup_twice, ("lifespan.startup-twice", 2)),
    (shutdown_twice, ("lifespan.shutdown-twice", 4)),
    (answers_too_early, ("lifespan.out-of-order", 0)),
]


@pytest.mark.parametrize("spec", [UVICORN_H11, HYPERCORN], ids=str)
@pytest.mark.parametrize(("app", "hit"), LIFESPAN_CASES, ids=lambda value: getattr(value, "__name__", ""))
def test_lifespan_mistakes_are_caught(spec: ServerSpec, app: Any, hit: tuple[str, int]) -> None:
    spy = Spy(app, address=False)
    # A server may refuse to start or stop cleanly after these; the recording is what matters.
    with contextlib.suppress(ServerError), serve(spy, spec, lifespan="on", timeout=5):
        pass
    (record,) = [r for r in spy.records if r.type == "lifespan"]
    assert hit in found(violations_of(record)), record.events


def test_serving_after_a_failed_startup_is_caught() -> None:
    spy = Spy(ignores_its_failure, address=False)
    with serve(spy, HYPERCORN, lifespan="on", timeout=5) as server, httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(server.url("/")).text == "serving anyway"
    (record,) = [r for r in spy.records if r.type == "lifespan"]
    assert [m["type"] for _, _, m, _, _ in record.events] == [
        "lifespan.startup",
        "lifespan.startup.failed",
        "lifespan.shutdown",
        "lifespan.shutdown.complete",
    ]
    assert found(violations_of(record)) == [("lifespan.served-after-failure", 2)]


# No false alarms --------------------------------------------------------------------------------


def _drive_raw(client: httpx.Client, url: Callable[[str], str], ws_url: Callable[[str], str]) -> None:
    client.get(url("/echo?q=1"))
    client.post(url("/echo"), content=b"x" * 50_000)
    client.get(url("/stream?n=30"))
    client.get(url("/nothing"))
    client.get(url("/binary"))
    client.head(url("/binary"))
    client.get(url("/raise"))
    client.get(url("/missing"))
    with connect(ws_url("/ws"), open_timeout=TIMEOUT, close_timeout=1) as ws:
        ws.send("hi")
        ws.recv(timeout=TIMEOUT)
        ws.send(b"\x00\x01")
        ws.recv(timeout=TIMEOUT)
        ws.send("bye")
        with contextlib.suppress(Exception):
            ws.recv(timeout=TIMEOUT)
    for path in ("/ws-reject", "/ws-deny"):
        with contextlib.suppress(Exception), connect(ws_url(path), open_timeout=TIMEOUT, close_timeout=1):
            pass


def _drive_seed(client: httpx.Client, url: Callable[[str], str], ws_url: Callable[[str], str]) -> None:
    client.get(url("/"))
    client.post(url("/"), content=b"payload")


def _drive_framework(client: httpx.Client, url: Callable[[str], str], ws_url: Callable[[str], str]) -> None:
    client.get(url("/items/42?q=x"))
    client.head(url("/items/42"))
    client.post(url("/upload"), content=b"y" * 50_000)
    client.get(url("/stream"))
    client.get(url("/nothing"))
    client.get(url("/missing"))
    client.get(url("/raise"))
    with connect(ws_url("/ws"), open_timeout=TIMEOUT, close_timeout=1) as ws:
        ws.send("hello")
        ws.recv(timeout=TIMEOUT)
        ws.send(b"\x00\x01")
        ws.recv(timeout=TIMEOUT)
        with contextlib.suppress(Exception):
            ws.recv(timeout=TIMEOUT)


def _drive_django(client: httpx.Client, url: Callable[[str], str], ws_url: Callable[[str], str]) -> None:
    client.get(url("/items/42?q=x"))
    client.post(url("/upload"), content=b"z" * 50_000)
    client.get(url("/missing"))
    client.get(url("/raise"))


def _django_app() -> Any:
    # Imported by name, so that mypy does not follow it into the untyped Django package.
    try:
        module = importlib.import_module("tests.apps.django_app")
    except ImportError:  # pragma: no cover - Django is in the test extra
        pytest.skip("Django is not installed")
    return module.app


APPS: dict[str, tuple[Callable[[], Any], Callable[..., None]]] = {
    "raw-edge": (lambda: edge_app, _drive_raw),
    "raw-seed": (lambda: seed_app, _drive_seed),
    "starlette": (lambda: starlette_app, _drive_framework),
    "fastapi": (lambda: fastapi_app, _drive_framework),
    "django": (_django_app, _drive_django),
}

#: No app is let off any error. (Django sends header names in their original case,
#: "Content-Type", on purpose; the spec says they must be lowercased, and servers lowercase
#: them on the way out, so that rule is a warning, and Django's sessions pass ``asgispy check``.)
EXPECTED_ERRORS: dict[str, set[str]] = {}


@pytest.mark.parametrize("spec", SERVERS, ids=str)
@pytest.mark.parametrize("name", APPS)
def test_real_apps_raise_no_errors(name: str, spec: ServerSpec) -> None:
    make, drive = APPS[name]
    spy = Spy(make(), address=False)
    with serve(spy, spec) as server, httpx.Client(timeout=TIMEOUT) as client:
        drive(client, server.url, server.ws_url)
    assert spy.records, "nothing was recorded"
    errors = {}
    for record in spy.records:
        assert record.outcome != "open"
        for violation in violations_of(record):
            if violation.severity == "error" and violation.rule not in EXPECTED_ERRORS.get(name, set()):
                errors[f"{record.type} {record.scope.get('path', '')}"] = violation
    assert not errors
