"""The demo: its app under a real uvicorn, driven by its traffic, and ``asgispy demo --headless``.

The recorded session is loaded back and every route must be there with the outcome the demo
promises a newcomer: the failure with its traceback, the chat with its close code, the SSE
chunks, the upload bodies, lifespan, and secrets masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import asgispy
from asgispy.analysis.streams import records
from asgispy.demo.app import CHAT_CLOSE_CODE, DEMO_TOKEN, png_bytes, routes
from asgispy.demo.app import app as demo_app
from asgispy.demo.headless import run_headless
from asgispy.demo.traffic import TrafficStats, drive
from asgispy.model.connection import Connection
from tests.servers import CLEAN_LIFESPAN, UVICORN_HTTPTOOLS, UVICORN_WSPROTO, ServerSpec, serve

ROOT = Path(__file__).resolve().parent.parent


def record_demo(spec: ServerSpec, tmp_path: Path, seed: int) -> tuple[list[Connection], TrafficStats, bytes]:
    spy = asgispy.Spy(demo_app, address=False)
    with serve(spy, spec, lifespan="on") as server:
        stats = asyncio.run(asyncio.wait_for(drive(server.base_url, rounds=1, delay=0, seed=seed), 30))
    path = spy.export(tmp_path / "demo.json")
    return asgispy.load(path).connections, stats, path.read_bytes()


def one(conns: list[Connection], path: str, method: str = "GET", **where: Any) -> Connection:
    found = [
        c
        for c in conns
        if c.path == path and c.method == method and all(getattr(c, k) == v for k, v in where.items())
    ]
    assert len(found) == 1, (path, method, where, found)
    return found[0]


def types(conn: Connection) -> list[str]:
    return [e.type for e in conn.events]


@pytest.mark.parametrize("spec", [UVICORN_HTTPTOOLS, UVICORN_WSPROTO], ids=str)
def test_demo_traffic_shows_every_kind_of_event(spec: ServerSpec, tmp_path: Path) -> None:
    conns, stats, raw = record_demo(spec, tmp_path, seed=7)
    http = [c for c in conns if c.type == "http"]
    assert stats.stopped is None and stats.failures == 0 and stats.rounds == 1
    assert stats.requests == len(http)
    assert sum(stats.statuses.values()) == len(http)
    assert all(c.outcome != "open" for c in conns)

    # Every route of the app was visited (the traffic covers the whole app).
    visited = {c.route for c in conns if c.route}
    assert visited == {r.path for r in routes}

    # The protocol checker finds no error in it, under every server (only the notice that
    # Starlette answers HEAD with a body, which servers drop).
    found = {(c.method or c.type, c.path, v.rule, v.severity) for c in conns for v in c.violations}
    assert found <= {("HEAD", "/api/items", "http.head-body", "notice")}, found

    # The JSON lines held back, then released: the gap is in the timing and the lines are read.
    export = one(conns, "/api/items/export")
    assert export.max_gap is not None and export.max_gap >= 0.5
    assert [r.json.get("export") for r in records(export)][:1] == ["items"]
    slow = one(conns, "/api/items/import", "POST", status=202)
    assert slow.waited is not None and slow.waited >= 0.4  # the client sent its lines slowly

    # The JSON API: list with query parameters, get with a path parameter, 201 / 204 / 404 / 422.
    listing = next(c for c in http if c.path == "/api/items" and c.query_string in (b"limit=2", b"limit=10"))
    assert json.loads(listing.response_body())["count"] >= 2
    created = one(conns, "/api/items", "POST", status=201)
    location = dict(created.response_headers)[b"location"].decode()
    assert one(conns, location, "DELETE").status == 204
    assert one(conns, location).handler == {
        "route": "/api/items/{item_id:int}",
        "name": "get_item",
        "methods": ["GET", "HEAD"],
        "endpoint": "asgispy.demo.app.get_item",
        "path_params": {"item_id": int(location.rsplit("/", 1)[1])},
    }
    assert one(conns, "/api/items/999").status == 404
    assert one(conns, "/no/such/page").status == 404
    assert one(conns, "/api/items", "POST", status=422).request_body() == b'{"price":"free"}'
    assert one(conns, "/api/items", query_string=b"limit=lots").status == 422
    assert one(conns, "/api/items", "HEAD").status == 200

    # The endpoint that fails: a 500 on the wire, the exception and its traceback in the record.
    boom = next(c for c in http if c.path == "/boom")
    assert (boom.status, boom.outcome) == (500, "exception")
    assert boom.error is not None and boom.error.type == "RuntimeError"
    assert "payment service unreachable for order" in boom.error.message
    assert 'in boom\n    raise RuntimeError(f"payment service unreachable' in boom.error.traceback

    # Forms: multipart with a small binary file, and urlencoded.
    upload = one(conns, "/upload", "POST")
    assert upload.status == 201 and png_bytes(8) in upload.request_body()
    part = json.loads(upload.response_body())["fields"]["file"]
    assert part == {
        "filename": "logo.png",
        "size": len(png_bytes(8)),
        "sha256": hashlib.sha256(png_bytes(8)).hexdigest(),
    }
    feedback = one(conns, "/feedback", "POST")
    assert feedback.request_body().startswith(b"name=Ada&message=")
    assert dict(feedback.request_headers)[b"content-type"] == b"application/x-www-form-urlencoded"

    # Streaming: every chunk is its own message; the client that left early shows up.
    full = one(conns, "/stream", query_string=b"chunks=6")
    chunks = [e for e in full.events if e.type == "http.response.body" and e.message["body"]]
    assert [e.message["body"] for e in chunks] == [f"chunk {i} of 6\n".encode() for i in range(1, 7)]
    assert all(e.message["more_body"] for e in chunks)
    left = one(conns, "/stream", query_string=b"chunks=100")
    assert "http.disconnect" in types(left)
    assert sum(1 for t in types(left) if t == "http.response.body") < 100

    # Server-sent events: a finite stream of ticks, then "done".
    sse = one(conns, "/events")
    assert dict(sse.response_headers)[b"content-type"].startswith(b"text/event-stream")
    ticks = [e.message["body"] for e in sse.events if e.type == "http.response.body" and e.message["body"]]
    assert len(ticks) == 7 and ticks[-1] == b"event: done\ndata: bye\n\n"
    assert all(b"event: tick" in t for t in ticks[1:6])

    # Redirect, binary body, HEAD/204 seen above, health.
    redirect = one(conns, "/old-items")
    assert (redirect.status, dict(redirect.response_headers)[b"location"]) == (307, b"/api/items")
    assert one(conns, "/logo.png").response_body() == png_bytes()
    assert one(conns, "/health").response_body() == b"ok"

    # The WebSocket chat: text broadcast, bytes echoed, the server closing with its code after "bye".
    chats = {c.query_string: c for c in conns if c.type == "websocket"}
    alice, bob = chats[b"name=alice"], chats[b"name=bob"]
    assert alice.status == bob.status == 101
    assert alice.close_code == CHAT_CLOSE_CODE
    close = alice.events[-1]
    assert close.type == "websocket.close" and close.message == {
        "type": "websocket.close",
        "code": CHAT_CLOSE_CODE,
        "reason": "bye",
    }
    said = [e.message.get("text") for e in alice.events if e.type == "websocket.receive"]
    assert said == ["hello bob", "bye"]
    heard = [
        json.loads(e.message["text"])
        for e in bob.events
        if e.type == "websocket.send" and e.message.get("text")
    ]
    assert {"from": "alice", "text": "hello bob"} in heard
    echoes = [e.message.get("bytes") for e in bob.events if e.type in ("websocket.receive", "websocket.send")]
    assert echoes.count(b"\x00\x01 binary \xff\xfe") == 2
    assert types(bob)[-1] == "websocket.disconnect" and bob.close_code == 1000

    # Lifespan: startup and shutdown, both completed.
    (life,) = [c for c in conns if c.type == "lifespan"]
    assert types(life) == CLEAN_LIFESPAN

    # Secrets: the app got them (200 from /api/me); the file has only the mask.
    me = one(conns, "/api/me")
    assert me.status == 200 and json.loads(me.response_body())["user"] == "demo"
    headers = dict(me.request_headers)
    assert headers[b"authorization"] == headers[b"cookie"] == b"[redacted]"
    assert dict(me.response_headers)[b"set-cookie"] == b"[redacted]"
    assert DEMO_TOKEN.encode() not in raw and b"s3cr3t" not in raw and b"visits=" not in raw


def test_traffic_stops_quietly_when_the_server_goes_away(capsys: pytest.CaptureFixture[str]) -> None:
    said: list[str] = []
    spy = asgispy.Spy(demo_app, address=False)
    context = serve(spy, lifespan="on")
    server = context.__enter__()
    stopper = threading.Timer(0.4, context.__exit__, (None, None, None))
    stopper.start()
    try:
        stats = asyncio.run(
            asyncio.wait_for(drive(server.base_url, rounds=None, delay=0.01, log=said.append), 30)
        )
    finally:
        stopper.join()
    assert stats.requests > 0
    assert stats.stopped is not None and stats.stopped.startswith(
        f"the demo server at {server.base_url} went away"
    )
    assert said[-1] == stats.stopped
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_traffic_to_nothing_stops_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        stats = asyncio.run(asyncio.wait_for(drive(f"http://127.0.0.1:{port}", rounds=3, delay=0), 10))
    assert stats.rounds == 0 and stats.requests == 0
    assert stats.stopped is not None and "went away" in stats.stopped


def test_traffic_stops_when_asked(tmp_path: Path) -> None:
    async def drive_then_stop(url: str) -> TrafficStats:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        return await asyncio.wait_for(drive(url, rounds=None, delay=0.05, stop=stop), 30)

    with serve(asgispy.Spy(demo_app, address=False), lifespan="on") as server:
        stats = asyncio.run(drive_then_stop(server.base_url))
    assert stats.stopped is None and stats.failures == 0
    assert stats.requests > 0 and stats.elapsed < 10


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.1:8000", "ftp://127.0.0.1"])
def test_traffic_only_goes_to_loopback(url: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|http://"):
        asyncio.run(drive(url))


def test_asgispy_demo_headless_end_to_end(tmp_path: Path) -> None:
    output = tmp_path / "demo-session.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGISPY")}
    result = subprocess.run(
        [sys.executable, "-m", "asgispy", "demo", "--headless", "--rounds", "1", "-o", str(output)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    session = asgispy.load(output)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("asgispy demo (headless): serving the demo app on http://127.0.0.1:")
    connection_lines = [line for line in lines if re.match(r"\d\d:\d\d:\d\d ", line)]
    # One line per connection, each as it finished; lifespan last, once the server stopped.
    assert len(connection_lines) == len(session.connections)
    assert re.match(
        r"\d\d:\d\d:\d\d LIFESPAN startup startup.complete shutdown shutdown.complete ", connection_lines[-1]
    )
    assert any(
        " GET /boom?order=" in line and "[raised RuntimeError: payment service" in line for line in lines
    )
    assert any(" WS /ws/chat?name=alice 101 " in line and "close 4000" in line for line in lines)
    # what the demo did inside /api/quote: its call to the carrier, and its logs
    busy = next(c for c in session if c.path == "/api/quote" and b"busy" in c.query_string)
    call = next(i for i in busy.inside if i.kind == "http")
    assert (call.status, call.url.split("?")[0]) == (503, "http://carrier.example/quote")  # type: ignore[attr-defined]
    assert call.duration and call.duration >= 0.3  # type: ignore[attr-defined]
    assert [i.level for i in busy.inside if i.kind == "log"] == ["INFO", "WARNING"]  # type: ignore[attr-defined]
    assert f"recorded {len(session.connections)} connections" in result.stdout
    assert f"session written to {output}" in result.stdout


def test_headless_says_so_when_the_port_is_taken() -> None:
    err = io.StringIO()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        status = run_headless(port=taken.getsockname()[1], out=io.StringIO(), err=err)
    assert status == 1
    assert err.getvalue().startswith("asgispy demo: cannot listen on 127.0.0.1:")
