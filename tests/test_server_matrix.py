"""Spy under every common ASGI server, each a real child process with real clients.

Granian (``--interface asgi --workers 2``), gunicorn with uvicorn's worker (``-w 2``, with and
without ``--preload``), Daphne and Hypercorn (``-w 2``) serve ``tests/apps/matrix.py``:
``Spy(SeenLog(edge_app))``. Spy streams to a collector in this process (what ``asgispy attach``
runs); ``SeenLog``, inside Spy, logs what the app itself received and sent. Each server is
started once per module and driven by httpx, the websockets client and a raw socket; once it
has stopped, every check compares the recording with the app's own log, message by message,
and with what the server is documented to do (docs/servers.md, which these checks keep
honest). The real ``asgispy attach`` dashboard and a real ``asgispy record --listen`` are
driven at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

import asgispy
from asgispy.codec.redact import Redactor
from asgispy.model.connection import Connection
from asgispy.model.session import ProducerInfo
from tests.apps.matrix import ID_HEADER, SEEN_DIR, SLOW_SHUTDOWN, SeenConnection, read_seen
from tests.apps.raw import BINARY
from tests.apps.recording import Seen, assert_connection_matches
from tests.servers import CLEAN_LIFESPAN
from tests.test_wire_collector import CollectorThread

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
APP = "tests.apps.matrix:app"
#: 300 KB holding every byte value, sent in 16 KiB pieces (chunked), so it arrives in parts.
UPLOAD = BINARY * 1200
PIECE = 16 * 1024
QUERY = "q=%C3%A9t%C3%A9&tag=a%2Bb"
#: The connections each run makes after ``/whoami`` (their ``x-matrix-id``), and the raw
#: client's upload it abandons, which reaches the app only where the server does not wait for
#: the whole body.
HTTP_KEYS = ("query", "upload", "exact", "stream", "raise", "forever", "late")
WS_KEYS = ("ws-echo", "ws-bye", "ws-deny")
#: How long a server may take to start, or to stop on its own.
START_TIMEOUT, STOP_TIMEOUT = 30.0, 20.0


# The servers, and what each is documented to do (docs/servers.md) ---------------------------


@dataclass(frozen=True)
class ServerKind:
    """How to run one server with the matrix app, and what it puts in front of the app."""

    id: str
    #: the command line (after ``python -m``), ``{port}`` standing for the port
    argv: str
    workers: int
    lifespan: bool
    #: the master kills the workers still shutting down once the first has exited, so only
    #: that first worker's lifespan shutdown runs to the end (Hypercorn with ``-w``)
    shutdown_race: bool
    #: ``scope["asgi"]`` of an HTTP, a WebSocket and a lifespan scope
    asgi: dict[str, dict[str, str] | None]
    #: ``scope["extensions"]`` of HTTP and WebSocket scopes (None: no such key)
    extensions: dict[str, dict[str, Any] | None]
    #: the type of ``client``/``server`` and of the port in them
    address_types: tuple[type, type]
    #: the ``websocket.disconnect`` the app gets when the client closes with 4321 "client leaves"
    client_close: dict[str, Any]
    #: what the app gets when the client goes away halfway through a request body (None: the
    #: app is never called, the server waits for the whole body first)
    abandoned_upload: str | None
    #: whether a request body always ends with an empty ``http.request`` (more_body False),
    #: whatever came before it (None: not always, not never)
    ends_body_empty: bool | None
    #: the server buffers the whole body, then hands it over in pieces of this size, the last
    #: one shorter (so empty when the size divides the body); None: pieces as they are read
    fixed_chunk: int | None

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", *self.argv.format(port=port).split()]


GRANIAN = ServerKind(
    id="granian",
    argv=f"granian --interface asgi --host {HOST} --port {{port}} --workers 2 --log-level warning {APP}",
    workers=2,
    lifespan=True,
    shutdown_race=False,
    asgi={
        "http": {"version": "3.0", "spec_version": "2.3"},
        "websocket": {"version": "3.0", "spec_version": "2.3"},
        "lifespan": {"version": "3.0", "spec_version": "2.3"},
    },
    extensions={
        "http": {"http.response.pathsend": {}, "websocket.http.response": {}},
        "websocket": {"http.response.pathsend": {}, "websocket.http.response": {}},
    },
    address_types=(tuple, str),
    client_close={"type": "websocket.disconnect", "code": 4321},
    abandoned_upload="http.disconnect",
    ends_body_empty=True,
    fixed_chunk=None,
)
GUNICORN = ServerKind(
    id="gunicorn-uvicorn",
    argv=(
        f"gunicorn -k uvicorn.workers.UvicornWorker -w 2 -b {HOST}:{{port}} --graceful-timeout 5"
        f" --log-level warning {APP}"
    ),
    workers=2,
    lifespan=True,
    shutdown_race=False,
    asgi={
        "http": {"version": "3.0", "spec_version": "2.3"},
        "websocket": {"version": "3.0", "spec_version": "2.4"},
        "lifespan": {"version": "3.0", "spec_version": "2.0"},
    },
    extensions={"http": None, "websocket": {"websocket.http.response": {}}},
    address_types=(tuple, int),
    client_close={"type": "websocket.disconnect", "code": 4321, "reason": "client leaves"},
    abandoned_upload="http.disconnect",
    ends_body_empty=None,  # what has arrived when the app asks: the end alone, at times
    fixed_chunk=None,
)
#: ``--preload``: the app (and its Spy) is built in the master, and the workers are forked from it.
GUNICORN_PRELOAD = replace(GUNICORN, id="gunicorn-uvicorn-preload", argv=f"{GUNICORN.argv} --preload")
DAPHNE = ServerKind(
    id="daphne",
    argv=f"daphne -b {HOST} -p {{port}} -v 0 {APP}",
    workers=1,
    lifespan=False,
    shutdown_race=False,
    asgi={"http": {"version": "3.0"}, "websocket": {"version": "3.0"}, "lifespan": None},
    extensions={"http": None, "websocket": None},
    address_types=(list, int),
    client_close={"type": "websocket.disconnect", "code": 4321},
    abandoned_upload=None,
    ends_body_empty=None,  # empty when 8 KiB divides the body
    fixed_chunk=8192,
)
HYPERCORN = ServerKind(
    id="hypercorn",
    argv=f"hypercorn -b {HOST}:{{port}} -w 2 --graceful-timeout 5 --log-level warning {APP}",
    workers=2,
    lifespan=True,
    shutdown_race=True,
    asgi={
        "http": {"version": "3.0", "spec_version": "2.1"},
        "websocket": {"version": "3.0", "spec_version": "2.3"},
        "lifespan": {"version": "3.0", "spec_version": "2.0"},
    },
    extensions={"http": {}, "websocket": {"websocket.http.response": {}}},
    address_types=(tuple, int),
    # Hypercorn 0.18 does not pass the client's close code on: every disconnect is 1006.
    client_close={"type": "websocket.disconnect", "code": 1006},
    abandoned_upload="http.disconnect",
    ends_body_empty=True,
    fixed_chunk=None,
)
SERVERS = (GRANIAN, GUNICORN, GUNICORN_PRELOAD, DAPHNE, HYPERCORN)


# Running a server --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def environment(address: str, seen_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ASGISPY_ADDRESS"] = address
    env[SEEN_DIR] = str(seen_dir)
    env[SLOW_SHUTDOWN] = "1"  # every worker but the first to stop takes a second to shut down
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # uvicorn.workers says it moved
    return env


class ServerProcess:
    """A server started as a child in a session of its own, so that its workers go with it."""

    def __init__(self, kind: ServerKind, address: str, workdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.seen_dir = workdir / f"seen-{kind.id}"
        self.seen_dir.mkdir()
        self.log_path = workdir / f"{kind.id}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                kind.command(self.port),
                cwd=ROOT,
                env=environment(address, self.seen_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the port accepts connections (the server's own socket, whichever worker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.kind.id} exited ({self.process.returncode}):\n{self.output()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.kind.id} did not listen within {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM to the server's own process (as an operator would), then wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"{self.kind.id} did not stop within {timeout} s:\n{self.output()}"
                ) from None
        return self.process.returncode

    def kill(self) -> None:
        """Whatever is left of the process group (a worker its master left behind)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


# Driving a server with real clients ---------------------------------------------------------


def key_headers(key: str) -> dict[str, str]:
    return {ID_HEADER.decode(): key}


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@dataclass
class Answers:
    """What the clients got back, keyed like the connections (``x-matrix-id``)."""

    pids: set[int] = field(default_factory=set)
    whoami: list[str] = field(default_factory=list)
    json: dict[str, Any] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    received: dict[str, list[Any]] = field(default_factory=dict)
    close_code: dict[str, int | None] = field(default_factory=dict)


def reach_every_worker(server: ServerProcess, answers: Answers, tries: int = 80) -> None:
    """``/whoami`` on fresh connections until every worker has answered (at most ``tries``)."""
    for i in range(tries):
        key = f"who-{i}"
        response = httpx.get(server.base_url + "/whoami", headers=key_headers(key), timeout=10)
        answers.whoami.append(key)
        answers.pids.add(response.json()["pid"])
        if len(answers.pids) == server.kind.workers:
            return
    raise AssertionError(f"only workers {answers.pids} answered {tries} requests")


def http_traffic(server: ServerProcess, answers: Answers) -> None:
    """A query, a streamed upload, a streamed response, an endpoint that raises, and a client
    that goes away in the middle of a streamed response."""
    url = server.base_url
    with httpx.Client(timeout=10) as http:
        answers.json["query"] = http.get(f"{url}/echo?{QUERY}", headers=key_headers("query")).json()
        response = http.post(f"{url}/echo", content=pieces(UPLOAD, PIECE), headers=key_headers("upload"))
        answers.json["upload"] = response.json()
        exact = http.post(f"{url}/echo", content=b"e" * 16384, headers=key_headers("exact"))
        answers.json["exact"] = exact.json()
        answers.text["stream"] = http.get(f"{url}/stream?n=40", headers=key_headers("stream")).text
        answers.status["raise"] = http.get(f"{url}/raise", headers=key_headers("raise")).status_code
        with http.stream("GET", f"{url}/forever", headers=key_headers("forever")) as streamed:
            got = b""
            for chunk in streamed.iter_raw():
                got += chunk
                if got.count(b"\n") >= 3:
                    break
        answers.text["forever"] = got.decode()
        with http.stream("GET", f"{url}/late", headers=key_headers("late")) as streamed:
            answers.text["late"] = next(streamed.iter_raw()).decode()


def websocket_traffic(server: ServerProcess, answers: Answers) -> None:
    """An echo the client closes (4321), one the app closes (4001), and a denied handshake."""
    with ws_connect(server.ws_url("/ws?room=%C3%A9"), additional_headers=key_headers("ws-echo")) as ws:
        ws.send("héllo")
        ws.send(b"\x00\x01\xfe\xff")
        answers.received["ws-echo"] = [ws.recv(timeout=10), ws.recv(timeout=10)]
        ws.close(4321, "client leaves")
    with ws_connect(server.ws_url("/ws"), additional_headers=key_headers("ws-bye")) as ws:
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        answers.close_code["ws-bye"] = closed.value.rcvd.code if closed.value.rcvd else None
    with pytest.raises(InvalidStatus) as denied:
        ws_connect(server.ws_url("/ws-deny"), additional_headers=key_headers("ws-deny"), open_timeout=10)
    answers.status["ws-deny"] = denied.value.response.status_code


def abandon_upload(server: ServerProcess, collector: CollectorThread) -> None:
    """A raw client that announces 100,000 bytes, sends 1,000 and goes away once the app is
    waiting for more (or, where the server waits for the whole body first, at once)."""
    head = (
        f"POST /echo HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: 100000\r\n"
        f"{ID_HEADER.decode()}: abandoned\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(head + b"a" * 1000)
        if server.kind.abandoned_upload is not None:
            collector.wait_for(lambda store: any(key_of(c) == "abandoned" for c in store))


# The recording, matched with what the app saw ------------------------------------------------


def key_of(conn: Connection) -> str:
    if conn.type == "lifespan":
        return "lifespan"
    for name, value in conn.request_headers:
        if name.lower() == ID_HEADER:
            return value.decode("latin-1")
    return conn.path


@dataclass
class Recording:
    """One server's run: what was recorded, what the app saw, and what the clients got."""

    kind: ServerKind
    connections: list[Connection]
    producers: dict[str, ProducerInfo]
    seen: list[SeenConnection]
    answers: Answers
    returncode: int
    log: str

    def __repr__(self) -> str:
        return f"<Recording of {self.kind.id}: {len(self.connections)} connections>"

    def pid(self, conn: Connection) -> int:
        return self.producers[conn.producer].pid

    def killed(self, conn: Connection) -> bool:
        """A lifespan whose worker the master killed during its shutdown (where that happens)."""
        return self.kind.shutdown_race and conn.type == "lifespan" and conn.outcome == "cut off"

    def cut_short(self) -> list[Connection]:
        return [c for c in self.connections if self.killed(c)]

    def by_key(self, key: str) -> list[Connection]:
        return [c for c in self.connections if key_of(c) == key]

    def one(self, key: str) -> Connection:
        (conn,) = self.by_key(key)
        return conn

    def pairs(self) -> list[tuple[Connection, SeenConnection]]:
        """Every recorded connection with the app's own log of it, matched by worker and key."""
        seen = {(s.pid, s.key): s for s in self.seen}
        assert len(seen) == len(self.seen), "the test gave two connections one key"
        recorded = {(self.pid(c), key_of(c)): c for c in self.connections if not self.killed(c)}
        assert len(recorded) == len(self.connections) - len(self.cut_short()), "recorded twice"
        assert sorted(recorded) == sorted(seen), f"recorded {sorted(recorded)}\nseen {sorted(seen)}"
        return [(recorded[k], seen[k]) for k in sorted(seen)]


def drive(kind: ServerKind, workdir: Path) -> Recording:
    """Start ``kind`` streaming to a collector here, drive it, stop it, and gather everything."""
    with CollectorThread([f"unix:{workdir}/c.sock"]) as collector:
        server = ServerProcess(kind, collector.address, workdir)
        answers = Answers()
        try:
            server.wait_ready()
            if kind.lifespan:  # each worker's Spy connects when its lifespan starts
                collector.wait_for(lambda s: len(s.producers) == kind.workers, timeout=START_TIMEOUT)
            reach_every_worker(server, answers)
            http_traffic(server, answers)
            websocket_traffic(server, answers)
            abandon_upload(server, collector)
            expected = len(answers.whoami) + len(HTTP_KEYS + WS_KEYS) + (kind.abandoned_upload is not None)
            collector.wait_for(
                lambda s: sum(c.type != "lifespan" and c.outcome != "open" for c in s) >= expected,
            )
            returncode = server.stop()
        finally:
            server.kill()
        # The workers said goodbye: their lifespan shutdown (if any) is in.
        collector.wait_for(lambda s: not any(p.connected for p in s.producers.values()))
        connections = collector.call(lambda: list(collector.store))
        producers = collector.call(lambda: {t: p.info for t, p in collector.store.producers.items()})
    return Recording(
        kind, connections, producers, read_seen(server.seen_dir), answers, returncode, server.output()
    )


@pytest.fixture(scope="module", params=SERVERS, ids=lambda kind: kind.id)
def run(request: pytest.FixtureRequest) -> Iterator[Recording]:
    """Each server once per module: started, driven, stopped; the checks read the result."""
    workdir = Path(tempfile.mkdtemp(prefix="asgispy-m-"))  # short: a Unix socket lives there
    try:
        yield drive(request.param, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def assert_recorded_as_seen(pairs: list[tuple[Connection, SeenConnection]]) -> None:
    """Message by message, type by type: the recording holds what the app saw."""
    redactor = Redactor()
    for conn, seen in pairs:
        exception = RuntimeError(seen.error[1]) if seen.error else None
        yardstick = Seen(seen.scope, None, list(seen.events), exception)
        assert_connection_matches(conn, yardstick, redactor, 1024 * 1024)
        if seen.error is not None:
            assert conn.error is not None and (conn.error.type, conn.error.message) == seen.error


# The checks -----------------------------------------------------------------------------------


def test_every_connection_arrives_recorded_as_the_app_saw_it(run: Recording) -> None:
    assert run.returncode == 0, run.log
    keys = [*run.answers.whoami, *HTTP_KEYS, *WS_KEYS]
    keys += ["abandoned"] if run.kind.abandoned_upload else []
    keys += ["lifespan"] * run.kind.workers if run.kind.lifespan else []
    assert sorted(key_of(c) for c in run.connections) == sorted(keys)
    pairs = run.pairs()
    assert_recorded_as_seen(pairs)
    assert all(c.outcome in ("completed", "exception") or run.killed(c) for c in run.connections), [
        (c.id, c.path, c.outcome) for c in run.connections
    ]


def test_each_worker_is_a_producer_of_its_own(run: Recording) -> None:
    pids = {info.pid for info in run.producers.values()}
    assert len(run.producers) == len(pids) == run.kind.workers
    assert pids == run.answers.pids  # the very processes that answered, never their master
    for conn in run.connections:
        assert conn.id.startswith(f"{conn.producer}-")
        if key_of(conn).startswith("who-"):
            body = json.loads(conn.response_body())
            assert body["pid"] == run.pid(conn)
    assert {info.app for info in run.producers.values()} == {"tests.apps.matrix"}


def test_lifespan_where_the_server_runs_it(run: Recording) -> None:
    lifespans = run.by_key("lifespan")
    if not run.kind.lifespan:
        assert lifespans == [] and not [s for s in run.seen if s.key == "lifespan"]
        assert all("state" not in c.scope for c in run.connections)
        return
    assert sorted(run.pid(c) for c in lifespans) == sorted(run.answers.pids)
    for conn in lifespans:
        types = [e.type for e in conn.events]
        if run.killed(conn):  # killed while it took its time to shut down: recorded as cut off
            assert types == CLEAN_LIFESPAN[: len(types)] and 2 <= len(types) <= 3, types
        else:
            assert conn.outcome == "completed" and types == CLEAN_LIFESPAN, (conn.outcome, types)
        assert conn.scope["asgi"] == run.kind.asgi["lifespan"]
        # Spy copies the scope as the server passed it, before the app's startup filled the state.
        assert conn.scope["state"] == {}
    # The slower worker is killed where the master does not wait for each; else it completes.
    assert len(run.cut_short()) == (run.kind.workers - 1 if run.kind.shutdown_race else 0)
    http_scopes = [c.scope for c in run.connections if c.type == "http"]
    assert all(scope["state"] == {"started": True} for scope in http_scopes)


def test_scope_as_each_server_builds_it(run: Recording) -> None:
    kind = run.kind
    for kind_of_scope in ("http", "websocket"):
        conns = [c for c in run.connections if c.type == kind_of_scope]
        assert conns
        for conn in conns:
            scope = conn.scope
            assert scope["asgi"] == kind.asgi[kind_of_scope], conn.id
            assert scope.get("extensions") == kind.extensions[kind_of_scope], conn.id
            client, server = scope["client"], scope["server"]
            container, port_type = kind.address_types
            assert type(client) is container and type(server) is container
            assert client[0] == server[0] == HOST
            assert type(client[1]) is port_type and type(server[1]) is port_type
            assert scope["root_path"] == ""
            assert scope["path"] == scope["raw_path"].decode().split("?")[0]
    query = run.one("query")
    assert query.scope["http_version"] == "1.1" and query.scope["scheme"] == "http"
    assert query.scope["query_string"] == QUERY.encode()
    assert run.answers.json["query"]["query"] == {"q": ["été"], "tag": ["a+b"]}
    ws = run.one("ws-echo")
    assert ws.scope["query_string"] == b"room=%C3%A9" and ws.scope["subprotocols"] == []
    if kind.id == "daphne":
        assert "scheme" not in ws.scope and "http_version" not in ws.scope
    else:
        assert ws.scope["scheme"] == "ws" and ws.scope["http_version"] == "1.1"


def test_views_read_every_servers_addresses(run: Recording) -> None:
    """Whatever shape the server gave client and server (a list, a port as a string), the views
    read host and port: the HAR's connection (the client port) and the OTLP span."""
    from asgispy.exports.har import to_har
    from asgispy.exports.otlp_spans import span_plan

    query = run.one("query")
    client, server = query.client, query.server
    assert client is not None and server is not None
    assert client.host == server.host == HOST
    assert client.port == int(query.scope["client"][1]) and server.port == int(query.scope["server"][1])
    entry = next(e for e in to_har([query])["log"]["entries"])
    assert entry["connection"] == str(client.port)
    attributes = span_plan(query).attributes
    assert attributes["client.address"] == HOST and attributes["client.port"] == client.port


def test_streamed_upload_and_response(run: Recording) -> None:
    upload = run.one("upload")
    answer = run.answers.json["upload"]
    assert answer["length"] == len(UPLOAD)
    requests = [e for e in upload.events if e.type == "http.request"]
    assert upload.request_body() == UPLOAD and len(requests) == answer["messages"]
    assert [e.message["more_body"] for e in requests] == [True] * (len(requests) - 1) + [False]
    assert (b"transfer-encoding", b"chunked") in upload.request_headers

    for key, size in (("upload", len(UPLOAD)), ("exact", 16384)):  # chunked, then Content-Length
        sizes = [len(e.message["body"]) for e in run.one(key).events if e.type == "http.request"]
        assert sum(sizes) == size == run.answers.json[key]["length"]
        if run.kind.fixed_chunk is not None:
            chunk = run.kind.fixed_chunk
            assert sizes == [chunk] * (size // chunk) + [size % chunk]
        else:
            assert all(sizes[:-1])  # the only empty one, if any, is the last
            if run.kind.ends_body_empty is not None:
                assert (sizes[-1] == 0) is run.kind.ends_body_empty, sizes

    stream = run.one("stream")
    bodies = [e.message for e in stream.events if e.type == "http.response.body"]
    assert len(bodies) == 41 and stream.response_body().decode() == run.answers.text["stream"]


def test_the_checker_blames_the_app_alone(run: Recording) -> None:
    """No server's own messages break a rule; the app's two sends after a disconnect do."""
    faults = sorted((key_of(c), v.rule) for c in run.connections for v in c.violations)
    expected = [("late", "http.send-after-disconnect")]
    if run.kind.abandoned_upload is not None:
        expected.insert(0, ("abandoned", "http.send-after-disconnect"))
    assert faults == expected


def test_an_endpoint_that_raises(run: Recording) -> None:
    assert run.answers.status["raise"] == 500
    failed = run.one("raise")
    assert failed.outcome == "exception" and failed.status is None
    assert failed.error is not None and failed.error.type == "tests.apps.raw.AppError"
    assert "KeyError: 'missing'" in failed.error.traceback


def test_client_gone_mid_stream(run: Recording) -> None:
    conn = run.one("forever")
    assert conn.outcome == "completed"
    received = [e.message for e in conn.events if e.direction == "receive"]
    assert received[0] == {"type": "http.request", "body": b"", "more_body": False}
    assert received[-1] == {"type": "http.disconnect"}
    sent = [e.message for e in conn.events if e.type == "http.response.body"]
    assert len(sent) >= 3 and all(m["more_body"] for m in sent)
    assert run.answers.text["forever"].startswith("tick 0\ntick 1\ntick 2\n")


def test_a_send_after_the_client_has_gone(run: Recording) -> None:
    """Every server here takes it without a word: send() returns, and the app completes."""
    conn = run.one("late")
    assert run.answers.text["late"] == "first\n"
    assert [e.type for e in conn.events][-2:] == ["http.disconnect", "http.response.body"]
    last = conn.events[-1]
    assert last.message == {"type": "http.response.body", "body": b"too late\n"} and last.wait is not None
    assert conn.outcome == "completed"


def test_client_gone_mid_upload(run: Recording) -> None:
    conns = run.by_key("abandoned")
    if run.kind.abandoned_upload is None:
        assert conns == []  # the server waits for the whole body: the app is never called
        return
    (conn,) = conns
    received = [e.message for e in conn.events if e.direction == "receive"]
    assert received[-1]["type"] == run.kind.abandoned_upload
    assert conn.request_body() == b"a" * len(conn.request_body()) and conn.request_bytes <= 1000


def test_websockets(run: Recording) -> None:
    echo = run.one("ws-echo")
    assert run.answers.received["ws-echo"] == ["HÉLLO", b"\xff\xfe\x01\x00"]
    assert [(e.direction, e.type) for e in echo.events] == [
        ("receive", "websocket.connect"),
        ("send", "websocket.accept"),
        ("receive", "websocket.receive"),
        ("send", "websocket.send"),
        ("receive", "websocket.receive"),
        ("send", "websocket.send"),
        ("receive", "websocket.disconnect"),
    ]
    assert echo.events[-1].message == run.kind.client_close
    assert echo.close_code == run.kind.client_close["code"]

    bye = run.one("ws-bye")
    assert run.answers.close_code["ws-bye"] == 4001
    assert bye.events[-1].message == {"type": "websocket.close", "code": 4001, "reason": "done here"}

    deny = run.one("ws-deny")
    if "websocket.http.response" in (deny.scope.get("extensions") or {}):
        assert run.answers.status["ws-deny"] == deny.status == 401
        assert [e.type for e in deny.events][1:] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
    else:  # no denial response: the app closed before accepting, the server answered 403
        assert run.answers.status["ws-deny"] == deny.status == 403


# The real dashboard, and the real recorder --------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def ws_round_trip(url: str) -> Any:
    with ws_connect(url, additional_headers=key_headers("ws-echo")) as ws:
        ws.send("hi")
        return ws.recv(timeout=10)


RECORDED_SERVERS = (GRANIAN, GUNICORN, DAPHNE, HYPERCORN)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", RECORDED_SERVERS, ids=lambda kind: kind.id)
async def test_attach_dashboard_shows_every_worker(kind: ServerKind, sockdir: Path) -> None:
    """``asgispy attach``'s own dashboard and collector, each server's workers streaming to it."""
    from asgispy.cli import dashboard
    from tests.test_tui_sessions import screen_text

    parser = argparse.ArgumentParser()
    dashboard.add_parser(parser.add_subparsers(dest="command"), "attach", "attach")
    address = f"unix:{sockdir}/attach.sock"
    app = dashboard.attached_dashboard(
        parser.parse_args(["attach", "--listen", address]), refresh_interval=0.05
    )
    workers = f"{kind.workers} producer{'s' if kind.workers > 1 else ''} attached"
    async with app.run_test(size=(140, 40)):
        await until(lambda: app.status.flags.listening.startswith("unix:"), "the dashboard to listen")
        server = ServerProcess(kind, address, sockdir)
        try:
            await asyncio.to_thread(server.wait_ready)
            if kind.lifespan:  # each worker streams from its lifespan on; else from its first request
                await until(lambda: len(app.store.producers) == kind.workers, "every worker")
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
                assert (await client.get(f"/echo?{QUERY}", headers=key_headers("query"))).status_code == 200
                assert (await client.get("/raise", headers=key_headers("raise"))).status_code == 500
            assert await asyncio.to_thread(ws_round_trip, server.ws_url("/ws")) == "HI"
            await until(
                lambda: sum(c.type != "lifespan" and c.outcome != "open" for c in app.store) == 3,
                "three connections",
            )
            await until(lambda: len(app.store.producers) == kind.workers, "every worker")
            pids = [str(p.info.pid) for p in app.store.producers.values()]
            texts = ("/echo?q=%C3%A9t%C3%A9", "/raise", "ERR", "/ws", "101", workers, *pids)
            try:
                await until(lambda: all(t in screen_text(app) for t in texts), f"{texts} on the screen")
            except AssertionError as exc:
                raise AssertionError(f"{exc}:\n{screen_text(app)}") from None
        finally:
            await asyncio.to_thread(server.stop)
            server.kill()

        def shut_down() -> bool:
            gone = not any(state.connected for state in app.store.producers.values())
            return gone and not any(c.outcome == "open" for c in app.store)

        await until(shut_down, "every worker gone, its connections ended")
        lifespans = [c for c in app.store if c.type == "lifespan"]
        assert len(lifespans) == (kind.workers if kind.lifespan else 0)
        completed = sum(c.outcome == "completed" for c in lifespans)
        assert completed == (len(lifespans) - 1 if kind.shutdown_race else len(lifespans))


class Lines:
    """A child's output, line by line, gathered by a thread as it comes."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            assert time.monotonic() < deadline, f"{len(self.lines)} lines, not {count}:\n" + "\n".join(
                self.lines
            )
            time.sleep(0.02)


def test_record_listen_takes_every_server_at_once(sockdir: Path) -> None:
    """One ``asgispy record --listen`` on loopback TCP and four servers streaming to it at once;
    Ctrl-C writes the session, which holds every worker's connections as each app saw them."""
    address = f"tcp://{HOST}:{free_port()}"
    output = sockdir / "session.json"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "asgispy", "record", "--listen", address, "-o", str(output)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert recorder.stdout is not None and recorder.stderr is not None
    printed, said = Lines(recorder.stdout), Lines(recorder.stderr)
    servers: list[ServerProcess] = []
    answers: dict[str, Answers] = {}
    try:
        said.wait_for(1, timeout=START_TIMEOUT)
        assert said.lines[0].startswith(f"asgispy: recording apps that use Spy(app) at {address} "), (
            said.lines
        )
        servers = [ServerProcess(kind, address, sockdir) for kind in RECORDED_SERVERS]
        for server in servers:
            server.wait_ready()
        for server in servers:
            got = answers[server.kind.id] = Answers()
            reach_every_worker(server, got)
            http_traffic(server, got)
            with ws_connect(server.ws_url("/ws"), additional_headers=key_headers("ws-bye")) as ws:
                ws.send("bye")
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
        # One line per finished connection, as it finishes (the lifespans end at shutdown).
        printed.wait_for(sum(len(got.whoami) + len(HTTP_KEYS) + 1 for got in answers.values()))
        for server in servers:
            server.process.send_signal(signal.SIGTERM)  # all at once, as a machine shuts down
        for server in servers:
            assert server.stop() == 0, server.output()
        recorder.send_signal(signal.SIGINT)
        recorder.wait(STOP_TIMEOUT)
        printed.thread.join(5)
        said.thread.join(5)
    finally:
        for server in servers:
            server.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(recorder.pid, signal.SIGKILL)
        recorder.wait(5)
    assert recorder.returncode == 0, said.lines

    session = asgispy.load(output)
    assert f"asgispy: wrote {len(session.connections)} connections to {output}" in said.lines
    assert len(printed.lines) == len(session.connections)
    assert sum("/raise" in line for line in printed.lines) == len(servers)
    assert len(session.producers) == sum(k.workers for k in RECORDED_SERVERS)
    for info in session.producers.values():  # each worker came and went, and said so
        for what in ("streaming", "gone"):
            assert f"asgispy: tests.apps.matrix (pid {info.pid} on {info.host}): {what}" in said.lines
    by_pid = {info.pid: tag for tag, info in session.producers.items()}
    for server in servers:
        kind, got = server.kind, answers[server.kind.id]
        tags = {by_pid[pid] for pid in got.pids}
        assert len(tags) == kind.workers
        recording = Recording(
            kind,
            [c for c in session.connections if c.producer in tags],
            {t: session.producers[t] for t in tags},
            read_seen(server.seen_dir),
            got,
            0,
            server.output(),
        )
        assert_recorded_as_seen(recording.pairs())
        assert recording.one("upload").request_body() == UPLOAD
        assert recording.one("raise").outcome == "exception"
        assert len(recording.by_key("lifespan")) == (kind.workers if kind.lifespan else 0)
