"""``to_curl``: the produced command, run by bash and the real curl, reproduces the request.

An echo app served by a real uvicorn keeps every request it receives. Requests are first
made with httpx through ``Spy(echo)``, recorded, exported and loaded back; each recorded
request's curl command is then run against the same server, and the two requests the app
received (from httpx, then from curl) must match: method, path, query, headers and body.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import asgispy
from asgispy.demo.headless import run_headless
from asgispy.exports.curl import BODY_FILE, to_curl
from asgispy.model.connection import Connection
from tests.apps.raw import read_body
from tests.servers import RunningServer, serve

CURL = shutil.which("curl")
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(CURL is None or BASH is None, reason="needs the curl binary and bash")

# Headers that describe the hop, not the request: curl and httpx may differ there.
HOP = {b"connection", b"transfer-encoding"}


@dataclass
class Received:
    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Echo:
    """A raw ASGI app that keeps what it received and answers 200 with a short text."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        self.received.append(
            Received(scope["method"], scope["raw_path"], scope["query_string"], list(scope["headers"]), body)
        )
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[Echo, RunningServer]]:
    app = Echo()
    with serve(app) as server:
        yield app, server


@pytest.fixture(scope="module")
def demo_session(tmp_path_factory: pytest.TempPathFactory) -> list[Connection]:
    """A real demo session: the demo app under uvicorn, driven by its traffic, exported, loaded."""
    path = tmp_path_factory.mktemp("demo") / "demo.json"
    assert run_headless(rounds=1, output=str(path), delay=0, out=io.StringIO()) == 0
    return asgispy.load(path).connections


def run_curl(command: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    assert BASH is not None
    result = subprocess.run(
        [BASH, "-c", command + " --silent --show-error --output /dev/null --max-time 10"],
        cwd=cwd,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, (command, result.stderr.decode())
    return result


def comparable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return sorted((k.lower(), v) for k, v in headers if k.lower() not in HOP)


def assert_same_request(first: Received, again: Received) -> None:
    assert again.method == first.method
    assert again.raw_path == first.raw_path
    assert again.query == first.query
    assert again.body == first.body
    assert comparable(again.headers) == comparable(first.headers)


def replay(conn: Connection, echo: tuple[Echo, RunningServer], cwd: Path) -> Received:
    app, server = echo
    before = len(app.received)
    run_curl(to_curl(conn, base_url=server.base_url), cwd)
    assert len(app.received) == before + 1
    return app.received[-1]


def record(
    requests: list[dict[str, Any]], tmp_path: Path, **spy_options: Any
) -> list[tuple[Received, Connection]]:
    """Make each request with httpx through Spy(echo) on uvicorn; returns (what echo saw, recording)."""
    app = Echo()
    spy = asgispy.Spy(app, **spy_options)
    with serve(spy) as server, httpx.Client(base_url=server.base_url, trust_env=False, timeout=10) as client:
        for request in requests:
            headers = request.pop("drop_headers", ())
            built = client.build_request(**request)
            for name in headers:
                built.headers.pop(name, None)
            client.send(built).raise_for_status()
    path = spy.export(tmp_path / "curl-session.json")
    conns = [c for c in asgispy.load(path) if c.type == "http"]
    assert len(conns) == len(app.received) == len(requests)
    return list(zip(app.received, conns, strict=True))


def test_every_demo_request_replays_identically(
    tmp_path: Path, echo: tuple[Echo, RunningServer], demo_session: list[Connection]
) -> None:
    # The demo's traffic: JSON, urlencoded and multipart (binary, with NUL bytes) bodies, HEAD,
    # DELETE, redirects, redacted Authorization and Cookie headers, gzip Accept-Encoding.
    conns = [c for c in demo_session if c.type == "http"]
    assert {c.method for c in conns} >= {"GET", "POST", "DELETE", "HEAD"}
    for conn in conns:
        again = replay(conn, echo, tmp_path)
        recorded = Received(
            conn.method or "",
            conn.scope["raw_path"],
            conn.query_string,
            conn.request_headers,
            conn.request_body(),
        )
        assert_same_request(recorded, again)
    upload = next(c for c in conns if c.path == "/upload")
    assert "--data-binary @-" in to_curl(upload)  # the PNG part has NUL bytes: fed through stdin
    me = next(c for c in conns if c.path == "/api/me")
    command = to_curl(me)
    assert "-H 'authorization: [redacted]'" in command
    assert command.startswith("# authorization was redacted when recorded")


def test_odd_requests_replay_identically(tmp_path: Path, echo: tuple[Echo, RunningServer]) -> None:
    requests: list[dict[str, Any]] = [
        # Binary without NUL: inlined with $'...' escapes; quotes and backslashes inside.
        {
            "method": "PUT",
            "url": "/blob/caf%C3%A9?x=%E2%9C%93&empty=",
            "content": b"\xff\xfe\x80 it's a \\ back'slash\t\r\n",
            "headers": {"Content-Type": "application/octet-stream"},
        },
        # Text with quotes, newlines and non-ASCII: one shell word in single quotes.
        {"method": "POST", "url": "/text", "content": 'l\'été\n"quoted" $HOME `cmd`\n'.encode()},
        # A body but no Content-Type: curl must not add its form content type.
        {"method": "PATCH", "url": "/nocontenttype", "content": b"raw"},
        # A GET with a body needs -X GET; an empty POST still sends Content-Length: 0.
        {"method": "GET", "url": "/get-with-body", "content": b"{}"},
        {"method": "POST", "url": "/empty", "content": b""},
        # No User-Agent and no Accept: curl's own must be switched off; latin-1 header value.
        {
            "method": "OPTIONS",
            "url": "/bare",
            "headers": {"X-Name": "Jos\xe9".encode("latin-1")},
            "drop_headers": ["user-agent", "accept", "accept-encoding"],
        },
    ]
    for first, conn in record(requests, tmp_path):
        command = to_curl(conn, base_url=echo[1].base_url)
        assert_same_request(first, replay(conn, echo, tmp_path))
        if conn.path == "/blob/café":
            assert "--data-binary $'\\xff\\xfe\\x80 it\\'s a \\\\ back\\'slash\\t\\r\\n'" in command
            assert command.startswith("curl -X PUT ")
        if conn.path == "/get-with-body":
            assert command.startswith("curl -X GET ")
        if conn.path == "/bare":
            assert "-H 'User-Agent:'" in command and "--compressed" not in command


def test_cut_and_large_bodies_are_read_from_a_file(tmp_path: Path, echo: tuple[Echo, RunningServer]) -> None:
    body = bytes(range(256)) * 4
    (first, conn), (first_text, conn_text) = record(
        [
            {"method": "POST", "url": "/cut", "content": body, "headers": {"Content-Type": "image/raw"}},
            {"method": "POST", "url": "/large", "content": b"x" * 300},
        ],
        tmp_path,
        max_body=512,
    )
    command = to_curl(conn)
    assert f"--data-binary @{BODY_FILE}" in command
    assert command.startswith(f"# the request body was cut when recorded (512 of {len(body)} bytes kept)")
    # With the whole body saved where the note says, the replay is exact.
    (tmp_path / BODY_FILE).write_bytes(body)
    assert_same_request(first, replay(conn, echo, tmp_path))

    large = to_curl(conn_text, max_inline=100)
    assert large.startswith(f"# the request body is 300 bytes: save it as {BODY_FILE}")
    (tmp_path / BODY_FILE).write_bytes(first_text.body)
    assert_same_request(first_text, replay(conn_text, echo, tmp_path))


def test_websocket_connections_have_no_curl_command(demo_session: list[Connection]) -> None:
    chat = next(c for c in demo_session if c.type == "websocket")
    with pytest.raises(ValueError, match="websocket connection"):
        to_curl(chat)
