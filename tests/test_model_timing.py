"""Timing, streams and the protocol checker at the real boundary: a real uvicorn on loopback,
real clients (httpx, raw sockets, websockets), what Spy recorded read back as a user would
(``spy.export`` then ``asgispy.load``, or live through a collector)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

import asgispy
from asgispy import Spy
from asgispy.analysis.streams import records as stream_records
from asgispy.analysis.streams import stream_kind_of
from asgispy.filter.grammar import parse
from asgispy.model.connection import Connection
from tests.servers import UVICORN_H11, UVICORN_HTTPTOOLS, serve
from tests.test_wire_collector import CollectorThread

TIMEOUT = 10
HOLD = 0.4  # seconds a response is held back, a client stalls, ...
BIG = 24  # MiB sent to a client that reads slowly


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app with one route per timing story."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "bye":
                await send({"type": "websocket.close", "code": 1000, "reason": "done"})
                return
            await send({"type": "websocket.send", "text": json.dumps({"echo": message.get("text")})})
            await send({"type": "websocket.send", "bytes": b"\x00\x01\x02"})
    path = scope["path"]
    if path == "/upload":
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/held":
        # A stream held back, then released at once: the gap and the burst show in the timing.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await asyncio.sleep(HOLD)
        for n in range(5):
            await send({"type": "http.response.body", "body": b"burst %d\n" % n, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        # More than the kernel's socket buffers hold on loopback: a client that does not read
        # makes the server hold the app in send().
        chunk = b"x" * (1024 * 1024)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % (BIG * len(chunk)))],
            }
        )
        for n in range(BIG):
            await send({"type": "http.response.body", "body": chunk, "more_body": n < BIG - 1})
    elif path == "/sse":
        # Events split across chunk boundaries, a comment, an id, a retry, JSON and text data.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for piece in (
            b': hello\n\nid: 1\nevent: tick\ndata: {"n"',
            b": 1}\n\n",
            b"retry: 3000\ndata: plain\n",
            b"data: two lines\n\n",
        ):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0.02)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/ndjson":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")],
            }
        )
        for piece in (b'{"a": 1}\n{"a"', b": 2}\nnot json\n", b'{"a": 3}'):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/wrong-length":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"only4"})
    else:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def loaded(spy: Spy, tmp_path: Path) -> list[Connection]:
    """What Spy recorded, once every request has ended (a client may have its response a moment
    before the app's last send() returns)."""
    deadline = time.monotonic() + TIMEOUT
    while any(r.outcome == "open" for r in spy.records if r.type != "lifespan"):
        assert time.monotonic() < deadline, "a connection never ended"
        time.sleep(0.01)
    return asgispy.load(spy.export(tmp_path / "s.json")).connections


def only(conns: list[Connection], path: str) -> Connection:
    (conn,) = [c for c in conns if c.path == path]
    return conn


def read_slowly(port: int) -> int:
    """GET /big on a raw socket with a small receive buffer, read nothing for a while, then all
    of it: the server must hold the app in send() meanwhile. Returns the bytes of body read."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n")
        time.sleep(HOLD * 2)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        received = len(data.split(b"\r\n\r\n", 1)[1])
        while received < BIG * 1024 * 1024:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    return received


@pytest.fixture
def served() -> Iterator[tuple[Spy, Any]]:
    spy = Spy(app, address=False, time_sends=True)
    with serve(spy, UVICORN_H11) as server:
        yield spy, server


def test_a_slow_upload_shows_the_app_waiting_in_receive(served: tuple[Spy, Any], tmp_path: Path) -> None:
    spy, server = served

    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        time.sleep(HOLD)
        yield b"b" * 1000
        time.sleep(HOLD)
        yield b"c" * 1000

    response = httpx.post(server.url("/upload"), content=chunks(), timeout=TIMEOUT)
    assert response.text == "3000"
    conn = only(loaded(spy, tmp_path), "/upload")
    requests = [e for e in conn.events if e.type == "http.request"]
    assert len(requests) >= 3  # the chunks as the server passed them on
    assert all(e.wait is not None for e in conn.events)  # every message was timed
    # The app asked for the body before the client sent it: it waited about HOLD each time.
    assert sorted(e.wait or 0.0 for e in requests)[-2] >= HOLD * 0.8
    assert conn.waited is not None and conn.waited >= 2 * HOLD * 0.8
    # And it answered at once once the body was in.
    assert conn.blocked is not None and conn.blocked < HOLD
    assert parse("waited:>600ms").select([conn]) == [conn]
    assert parse("waited:<100ms").select([conn]) == []


def test_a_held_back_stream_shows_its_gap_ttfb_and_last_byte(served: tuple[Spy, Any], tmp_path: Path) -> None:
    spy, server = served
    with httpx.stream("GET", server.url("/held"), timeout=TIMEOUT) as response:
        arrivals = []
        for _ in response.iter_raw():
            arrivals.append(time.monotonic())
    conn = only(loaded(spy, tmp_path), "/held")
    assert conn.ttfb is not None and conn.first_byte is not None and conn.last_byte is not None
    assert conn.ttfb <= conn.first_byte < HOLD <= conn.last_byte
    assert conn.max_gap is not None and conn.max_gap >= HOLD * 0.9
    assert conn.last_byte <= (conn.duration or 0.0)
    assert parse("gap:>300ms").select([conn]) == [conn]
    assert parse("ttfb:>300ms").select([conn]) == []
    assert parse("ttfb:<300ms gap:>300ms").select([conn]) == [conn]


def test_a_slow_reader_shows_the_app_blocked_in_send(served: tuple[Spy, Any], tmp_path: Path) -> None:
    """24 MiB to a client that reads nothing for a while: uvicorn holds the app in send()."""
    spy, server = served
    assert read_slowly(server.port) == BIG * 1024 * 1024
    conn = only(loaded(spy, tmp_path), "/big")
    sends = [e for e in conn.events if e.type == "http.response.body"]
    assert conn.blocked is not None and conn.blocked >= HOLD
    assert max(e.wait or 0.0 for e in sends) >= HOLD * 0.5  # one send held by backpressure
    assert parse("blocked:>300ms").select([conn]) == [conn]


def test_server_sent_events_and_json_lines_are_read_as_records(
    served: tuple[Spy, Any], tmp_path: Path
) -> None:
    spy, server = served
    with httpx.Client(timeout=TIMEOUT) as client:
        sse_text = client.get(server.url("/sse")).text
        client.get(server.url("/ndjson"))
    conns = loaded(spy, tmp_path)
    sse = only(conns, "/sse")
    assert stream_kind_of(sse) == "sse" and "data: plain" in sse_text
    records = stream_records(sse)
    assert [(r.kind, r.event, r.data) for r in records] == [
        ("comment", "", "hello"),
        ("event", "tick", '{"n": 1}'),
        ("event", "message", "plain\ntwo lines"),
    ]
    tick, plain = records[1], records[2]
    assert tick.id == "1" and tick.is_json and tick.json == {"n": 1}
    assert plain.retry == 3000 and plain.id == "1" and not plain.is_json
    # Each event is stamped with the send that completed it (its second and fourth chunk).
    bodies = [e for e in sse.events if e.type == "http.response.body"]
    assert tick.t == bodies[1].t and plain.t == bodies[3].t
    lines = stream_records(only(conns, "/ndjson"))
    assert [(r.json, r.error is None) for r in lines] == [
        ({"a": 1}, True),
        ({"a": 2}, True),
        (None, False),
        ({"a": 3}, True),
    ]


def test_a_websocket_conversation_is_timed_and_clean(served: tuple[Spy, Any], tmp_path: Path) -> None:
    spy, server = served
    with websockets.sync.client.connect(server.ws_url("/ws"), open_timeout=TIMEOUT) as ws:
        ws.send("hi")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"echo": "hi"}
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01\x02"
        time.sleep(HOLD)
        ws.send("bye")
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
    conn = only(loaded(spy, tmp_path), "/ws")
    assert conn.ttfb is not None  # the accept
    assert conn.max_gap is not None and conn.max_gap >= HOLD * 0.9  # the pause before "bye"
    assert conn.violations == []
    assert conn.close_code == 1000


def test_every_mistake_is_found_and_clean_traffic_is_left_alone(
    served: tuple[Spy, Any], tmp_path: Path
) -> None:
    spy, server = served
    with httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url("/"))
        client.get(server.url("/held"))
        with pytest.raises(httpx.HTTPError):
            client.get(server.url("/wrong-length"))  # the server cuts the connection short
    conns = loaded(spy, tmp_path)
    wrong = only(conns, "/wrong-length")
    assert [(v.rule, v.severity, v.event) for v in wrong.violations] == [("http.content-length", "error", 1)]
    assert "10" in wrong.violations[0].message and "5" in wrong.violations[0].message
    assert all(not c.violations for c in conns if c.path != "/wrong-length")
    assert parse("violation").select(conns) == [wrong]
    assert parse("rule:http.content-length").select(conns) == [wrong]
    assert parse("rule:websocket.*").select(conns) == []


def test_asgispy_check_fails_a_session_with_errors_and_passes_a_clean_one(
    served: tuple[Spy, Any], tmp_path: Path
) -> None:
    spy, server = served
    with httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url("/"))
        clean = spy.export(tmp_path / "clean.json")
        with pytest.raises(httpx.HTTPError):
            client.get(server.url("/wrong-length"))
    broken = spy.export(tmp_path / "broken.json")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asgispy", "check", *args], capture_output=True, text=True, timeout=60
        )

    bad = check(str(broken))
    assert bad.returncode == 1, bad.stderr
    assert "http.content-length at message 2 (send http.response.body)" in bad.stdout
    assert "GET /wrong-length" in bad.stdout and "1 error" in bad.stdout
    good = check(str(clean))
    assert good.returncode == 0 and "0 errors" in good.stdout
    filtered = check(str(broken), "--filter=-path:/wrong-length")
    assert filtered.returncode == 0 and "http.content-length" not in filtered.stdout
    missing = check(str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "nope.json" in missing.stderr


def test_waits_travel_live_and_a_send_in_progress_is_sent_once_timed(tmp_path: Path) -> None:
    """Through a real collector: the store gets each message's wait, and a send the server is
    still holding reaches the viewer only once it returns, with the time it was held."""
    sock = tmp_path / "c.sock"
    with CollectorThread([f"unix:{sock}"]) as collector:
        spy = Spy(app, address=collector.address, time_sends=True)
        with serve(spy, UVICORN_HTTPTOOLS) as server:
            assert read_slowly(server.port) == BIG * 1024 * 1024
            conn = collector.wait_for(
                lambda s: next((c for c in s if c.path == "/big" and c.outcome != "open"), None),
                timeout=TIMEOUT,
            )
            with httpx.Client(timeout=TIMEOUT) as client:
                client.get(server.url("/"))  # short: it reaches the viewer whole, in one frame
            short = collector.wait_for(
                lambda s: next((c for c in s if c.path == "/" and c.outcome != "open"), None)
            )
            events, blocked, violations = collector.call(
                lambda: (list(conn.events), conn.blocked, conn.violations)
            )
            short_violations = collector.call(lambda: list(short.violations))
            checked_live = collector.call(lambda: [(c.path, c.violations) for c in collector.store])
    assert all(e.wait is not None for e in events)
    assert blocked >= HOLD
    # The viewer checks what it receives, whole or followed, and finds nothing wrong in either.
    assert violations == [] and short_violations == []
    assert all(not v for _, v in checked_live), checked_live
    assert [e.type for e in events].count("http.response.body") == BIG
