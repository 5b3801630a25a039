"""``asgispy record`` end to end: a real recorder process serving a real app under uvicorn."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.sync.client import connect as ws_connect

import asgispy
from asgispy.cli.main import build_parser
from asgispy.cli.serving import server_command, server_environment
from asgispy.codec.sessionfile import SessionFileError
from asgispy.exports.eventlog import EventLog
from asgispy.store.store import Store
from asgispy.wire.address import runtime_directory
from tests.servers import CLEAN_LIFESPAN
from tests.test_wire_collector import connection_doc, event_doc

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent

APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            await send({"type": "websocket.send", "text": message["text"].upper()})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/hold":
        import asyncio
        await asyncio.sleep(30)
    await send({"type": "http.response.start", "status": 201 if body else 200, "headers": []})
    await send({"type": "http.response.body", "body": b"got " + body})
"""


class Recorder:
    """``python -m asgispy record ...`` as a user runs it, with its output gathered."""

    def __init__(self, args: list[str], cwd: Path, **env_extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        env.pop("ASGISPY_ADDRESS", None)
        env.update(env_extra)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asgispy", "record", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.code: int | None = None
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def wait_for(self, lines: list[str], pattern: str, timeout: float = 20) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if match := regex.search(line):
                    return match
            if self.process.poll() is not None:
                time.sleep(0.1)
                for line in list(lines):
                    if match := regex.search(line):
                        return match
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no {pattern!r}; stdout:\n" + "\n".join(self.out) + "\nstderr:\n" + "\n".join(self.err)
        )

    @property
    def port(self) -> int:
        return int(self.wait_for(self.err, r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))

    def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 20) -> int:
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        for reader in self.readers:
            reader.join(5)
        return code


@pytest.fixture
def workdir(sockdir: Path) -> Path:
    """The app module's folder, short enough for the sockets made in it."""
    (sockdir / "recapp.py").write_text(APP)
    return sockdir


def hold(port: int) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server goes away before answering
        httpx.get(f"http://127.0.0.1:{port}/hold", timeout=30)


def traffic(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        assert http.get("/items?id=3").text == "got "
        assert http.post("/upload", content=b"hello").status_code == 201
    with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
        ws.send("hi")
        assert ws.recv() == "HI"


def test_record_prints_lines_and_writes_the_session_on_sigterm(workdir: Path) -> None:
    recorder = Recorder(["recapp:app", "--app-dir", str(workdir), "--port", "0", "-o", "out.json"], workdir)
    try:
        port = recorder.port
        traffic(port)
        recorder.wait_for(recorder.out, r"WS /ws 101")
        held = threading.Thread(target=hold, args=(port,), daemon=True)
        held.start()
        time.sleep(0.3)
    finally:
        code = recorder.finish(signal.SIGTERM)
    assert code == 0, recorder.err
    assert re.search(r"GET /items\?id=3 200 .* ↑0 B ↓4 B", "\n".join(recorder.out)), recorder.out
    assert any(re.search(r"POST /upload 201 .* ↑5 B ↓9 B", line) for line in recorder.out)
    assert any("wrote 5 connections to out.json" in line for line in recorder.err), recorder.err

    session = asgispy.load(workdir / "out.json")
    by_path = {c.path: c for c in session if c.type != "lifespan"}
    assert set(by_path) == {"/items", "/upload", "/ws", "/hold"}
    assert by_path["/upload"].request_body() == b"hello"
    assert by_path["/upload"].response_body() == b"got hello"
    assert by_path["/ws"].close_code == 1000 or by_path["/ws"].outcome == "completed"
    # Still running when the recorder stopped: uvicorn cancelled it after its grace period.
    assert by_path["/hold"].outcome == "cancelled"
    assert any(re.search(r"GET /hold --- .*\[cancelled\]", line) for line in recorder.out)
    lifespan = next(c for c in session if c.type == "lifespan")
    assert lifespan.outcome == "completed"
    assert [e.type for e in lifespan.events] == CLEAN_LIFESPAN
    assert len(session.producers) == 1
    assert next(iter(session.producers.values())).app == "recapp:app"


def test_record_jsonl_streams_while_running_and_loads(workdir: Path) -> None:
    recorder = Recorder(
        ["recapp:app", "--app-dir", str(workdir), "--port", "0", "-o", "live.jsonl", "--jsonl", "-q"], workdir
    )
    try:
        port = recorder.port
        traffic(port)
        # Streamed as it happens: the file has the connections before the recorder stops.
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline and text.count('"type":"open"') < 4:
            text = (workdir / "live.jsonl").read_text()
            time.sleep(0.05)
        assert text.count('"type":"open"') >= 4
    finally:
        code = recorder.finish(signal.SIGINT)
    assert code == 0, recorder.err
    assert recorder.out == []  # --quiet
    session = asgispy.load(workdir / "live.jsonl")
    assert sorted(c.path for c in session if c.type != "lifespan") == ["/items", "/upload", "/ws"]
    assert all(c.outcome == "completed" for c in session)
    ws = next(c for c in session if c.type == "websocket")
    assert [e.type for e in ws.events] == [
        "websocket.connect",
        "websocket.accept",
        "websocket.receive",
        "websocket.send",
        "websocket.disconnect",
    ]
    lines = (workdir / "live.jsonl").read_bytes().splitlines()
    assert orjson.loads(lines[0])["format"] == "asgispy-events"
    assert orjson.loads(lines[-1])["type"] == "end"


def test_an_app_that_cannot_be_imported_fails_like_uvicorn(workdir: Path) -> None:
    recorder = Recorder(["nosuchmodule:app", "--port", "0", "-o", "never.json"], workdir)
    code = recorder.finish(None)
    assert code == 3
    assert any(
        'Error loading ASGI app. Could not import module "nosuchmodule".' in line for line in recorder.err
    )
    assert not (workdir / "never.json").exists()

    recorder = Recorder(
        ["recapp:nothing", "--app-dir", str(workdir), "--port", "0", "-o", "never.json"], workdir
    )
    assert recorder.finish(None) == 3
    assert any('Attribute "nothing" not found in module "recapp".' in line for line in recorder.err)


def test_bad_arguments_are_refused_before_anything_starts(workdir: Path) -> None:
    recorder = Recorder(["recapp", "-o", "x.json"], workdir)
    assert recorder.finish(None) == 3
    assert recorder.err == [
        "asgispy record: Error loading ASGI app. "
        'Import string "recapp" must be in format "<module>:<attribute>".'
    ]
    recorder = Recorder(["recapp:app", "--port", "eighty"], workdir)
    assert recorder.finish(None) == 2
    assert any("invalid int value: 'eighty'" in line for line in recorder.err)
    recorder = Recorder(["recapp:app", "-o", str(workdir / "missing" / "x.json")], workdir)
    assert recorder.finish(None) == 2
    assert any("no such directory" in line for line in recorder.err)


def test_the_server_stops_when_the_recorder_is_killed(workdir: Path) -> None:
    recorder = Recorder(["recapp:app", "--app-dir", str(workdir), "--port", "0", "-o", "k.json"], workdir)
    port = recorder.port
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    recorder.finish(signal.SIGKILL)  # no chance to clean up
    # Its socket stays behind (a later collector replaces a dead one's); not in the user's directory.
    (runtime_directory() / f"record-{recorder.process.pid}.sock").unlink(missing_ok=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the app kept serving after its recorder died")


# The pieces ------------------------------------------------------------------------------------


def test_uvicorn_options_pass_through_and_the_app_is_resolved_in_the_worker() -> None:
    args = build_parser().parse_args(
        ["record", "main:make", "--factory", "--app-dir", "src", "--workers", "3", "--reload-dir", "a",
         "--reload-dir", "b", "--no-proxy-headers", "--log-level", "debug", "--root-path", "/api",
         "--lifespan", "off", "--http", "h11", "--ws", "wsproto", "--loop", "asyncio", "--env-file", ".env"]
    )  # fmt: skip
    command = server_command(args)
    assert command[:5] == [
        sys.executable,
        "-m",
        "asgispy.cli.serving",
        "asgispy.cli.serving:spied_app",
        "--factory",
    ]
    rest = " ".join(command[5:])
    for part in (
        "--app-dir src", "--workers 3", "--reload-dir a --reload-dir b", "--no-proxy-headers",
        "--log-level debug", "--root-path /api", "--lifespan off", "--http h11", "--ws wsproto",
        "--loop asyncio", "--env-file .env", "--no-access-log",
    ):  # fmt: skip
        assert part in rest
    env = server_environment(args, "unix:/tmp/x.sock", base={})
    assert env["ASGISPY_TARGET"] == "main:make"
    assert env["ASGISPY_TARGET_FACTORY"] == "1"
    assert env["ASGISPY_ADDRESS"] == "unix:/tmp/x.sock"
    plain = build_parser().parse_args(["record", "main:app", "--access-log"])
    assert "--access-log" in server_command(plain) and "--reload" not in server_command(plain)
    assert "ASGISPY_TARGET_FACTORY" not in server_environment(
        plain, "unix:/x", base={"ASGISPY_TARGET_FACTORY": "1"}
    )


def test_an_event_log_cut_short_still_loads(tmp_path: Path) -> None:
    from asgispy.model.session import ProducerInfo

    store = Store()
    path = tmp_path / "cut.jsonl"
    log = EventLog(store, path)
    store.attach(ProducerInfo("abc123", "h", 1, "a:b", 0.0))
    store.open(connection_doc("abc123", 1, events=1))
    store.event("abc123-1", event_doc(1), 1)
    store.open(connection_doc("abc123", 2, events=2, outcome="completed"))
    log.file.flush()
    data = path.read_bytes()
    path.write_bytes(data + b'{"type": "event", "id": "abc123-1", "ind')  # the recorder died mid-line
    session = asgispy.load(path)
    assert [(c.id, c.outcome, len(c.events)) for c in session] == [
        ("abc123-1", "cut off", 2),
        ("abc123-2", "completed", 2),
    ]
    assert session.producers["abc123"].app == "a:b"
    path.write_bytes(data + b"garbage\n" + data.splitlines(keepends=True)[-1])
    with pytest.raises(SessionFileError, match=r"cut\.jsonl:\d+: not JSON"):
        asgispy.load(path)
    log.close()


def test_an_event_log_keeps_every_event_of_a_batch(tmp_path: Path) -> None:
    """The collector adds a frame's events to the store at once, with one change: the log
    writes each of them, at its own index, not only the last."""
    from asgispy.model.event import Event

    store = Store()
    path = tmp_path / "batch.jsonl"
    log = EventLog(store, path)
    store.open(connection_doc("abc123", 1, events=1))
    store.events("abc123-1", [Event.from_document(event_doc(i)) for i in range(1, 4)], 1)
    store.events("abc123-1", [Event.from_document(event_doc(4))], 4)
    store.close("abc123-1", {"outcome": "completed", "duration": 0.01})
    log.close()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["index"] for line in lines if line.get("type") == "event"] == [1, 2, 3, 4]
    (conn,) = asgispy.load(path)
    assert [e.document() for e in conn.events] == [e.document() for e in store.get("abc123-1").events]
    assert len(conn.events) == 5 and conn.outcome == "completed"


def test_record_with_layers_keeps_what_each_middleware_did(workdir: Path) -> None:
    """``asgispy record APP --layers`` as a user runs it, on the FastAPI app with the usual stack."""
    recorder = Recorder(
        [
            "tests.apps.layered:build",
            "--factory",
            "--app-dir",
            str(ROOT),
            "--port",
            "0",
            "--layers",
            "-o",
            "out.json",
        ],
        workdir,
    )
    try:
        port = recorder.port
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            response = http.get("/items/5", headers={"accept-encoding": "gzip"})
            assert response.headers["content-encoding"] == "gzip"
        recorder.wait_for(recorder.out, r"GET /items/5 200")
    finally:
        code = recorder.finish(signal.SIGTERM)
    assert code == 0, recorder.err
    (conn,) = [c for c in asgispy.load(workdir / "out.json") if c.path == "/items/5"]
    layers = {layer.name: layer for layer in conn.layers}
    assert "+ content-encoding: gzip" in layers["GZipMiddleware"].changes.words()  # type: ignore[union-attr]
    assert layers["TrustedHostMiddleware"].changes is not None
    assert not layers["TrustedHostMiddleware"].changes.changed


# record --listen: the collector alone, for apps that already use Spy(app) ------------------------

SPIED = '\nfrom asgispy import Spy\nspied = Spy(app, name="recapp-spied")\n'


class SpiedServer:
    """``uvicorn recapp:spied`` in a process of its own: an app that uses Spy itself."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.log: list[str] = []
        command = [sys.executable, "-m", "uvicorn", "recapp:spied", "--port", "0", "--app-dir", str(workdir)]
        command += ["--timeout-graceful-shutdown", "1"]  # a request held open does not hold the test
        self.process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.reader = threading.Thread(
            target=Recorder._read, args=(self.process.stderr, self.log), daemon=True
        )
        self.reader.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in list(self.log):
                if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
                    self.port = int(match.group(1))
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError("the spied app did not start:\n" + "\n".join(self.log))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
        self.reader.join(5)


def spied_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("ASGISPY_ADDRESS", None)
    env.update(extra)
    return env


def test_record_listen_collects_every_process_that_uses_spy(workdir: Path) -> None:
    (workdir / "recapp.py").write_text(APP + SPIED)
    address = f"unix:{workdir / 'rec.sock'}"
    recorder = Recorder(["--listen", address, "-o", "out.json"], workdir)
    servers: list[SpiedServer] = []
    try:
        recorder.wait_for(
            recorder.err, r"recording apps that use Spy\(app\) at unix:.*rec\.sock to out\.json"
        )
        servers = [SpiedServer(workdir, spied_env(ASGISPY_ADDRESS=address)) for _ in range(2)]
        for server in servers:
            recorder.wait_for(recorder.err, rf"recapp-spied \(pid {server.process.pid} on .*\): streaming")
        traffic(servers[0].port)
        assert httpx.get(f"http://127.0.0.1:{servers[1].port}/second").text == "got "
        recorder.wait_for(recorder.out, r"WS /ws 101")
        recorder.wait_for(recorder.out, r"GET /second 200")
        threading.Thread(target=hold, args=(servers[1].port,), daemon=True).start()
        time.sleep(0.5)  # the held request reaches the app (and the recorder), and stays open
    finally:
        code = recorder.finish(signal.SIGTERM)
        for server in servers:
            server.stop()
    assert code == 0, recorder.err
    assert any(re.search(r"POST /upload 201 .* ↑5 B ↓9 B", line) for line in recorder.out), recorder.out
    session = asgispy.load(workdir / "out.json")
    pids = {info.pid for info in session.producers.values()}
    assert pids == {server.process.pid for server in servers}
    by_path = {c.path: c for c in session if c.type != "lifespan"}
    assert set(by_path) == {"/items", "/upload", "/ws", "/second", "/hold"}
    assert by_path["/upload"].request_body() == b"hello"
    assert by_path["/upload"].response_body() == b"got hello"
    assert by_path["/ws"].outcome == "completed"
    # Still running when the recorder stopped: its recording ends there, marked so.
    assert by_path["/hold"].outcome == "cut off"
    lifespans = [c for c in session if c.type == "lifespan"]
    assert len(lifespans) == 2 and all(c.outcome == "cut off" for c in lifespans)
    assert any(f"wrote {len(session)} connections to out.json" in line for line in recorder.err)


def test_record_listen_without_an_address_uses_the_per_user_socket(workdir: Path) -> None:
    (workdir / "recapp.py").write_text(APP + SPIED)
    runtime = workdir / "run"
    runtime.mkdir(mode=0o700)
    env = spied_env(XDG_RUNTIME_DIR=str(runtime))
    recorder = Recorder(["--listen", "-o", "default.json", "-q"], workdir, XDG_RUNTIME_DIR=str(runtime))
    try:
        recorder.wait_for(recorder.err, r"recording apps")
        server = SpiedServer(workdir, env)  # Spy with no address: the per-user socket
        try:
            assert httpx.get(f"http://127.0.0.1:{server.port}/hello").status_code == 200
        finally:
            server.stop()  # lifespan shutdown completes and reaches the recorder
        recorder.wait_for(recorder.err, r"recapp-spied .*: gone")
    finally:
        code = recorder.finish(signal.SIGINT)
    assert code == 0, recorder.err
    assert recorder.out == []  # -q: no line per connection
    assert any(f"at unix:{runtime / 'asgispy'}" in line for line in recorder.err), recorder.err
    session = asgispy.load(workdir / "default.json")
    assert [c.path for c in session if c.type == "http"] == ["/hello"]
    lifespan = next(c for c in session if c.type == "lifespan")
    assert lifespan.outcome == "completed"


def test_record_listen_refuses_what_it_cannot_do(workdir: Path) -> None:
    recorder = Recorder(["recapp:app", "--listen", "-o", "x.json"], workdir)
    assert recorder.finish(None) == 2
    assert any("not both" in line for line in recorder.err), recorder.err
    recorder = Recorder(["-o", "x.json"], workdir)
    assert recorder.finish(None) == 2
    assert any("or --listen" in line for line in recorder.err), recorder.err
    recorder = Recorder(["--listen", "tcp://0.0.0.0:0", "-o", "x.json"], workdir)
    assert recorder.finish(None) == 1
    assert any("refusing to listen on tcp" in line for line in recorder.err), recorder.err
    assert not (workdir / "x.json").exists()


def test_record_listen_writes_an_empty_session_when_nothing_came(workdir: Path) -> None:
    recorder = Recorder(["--listen", f"unix:{workdir / 'e.sock'}", "-o", "empty.json"], workdir)
    try:
        recorder.wait_for(recorder.err, r"recording apps")
    finally:
        code = recorder.finish(signal.SIGINT)
    assert code == 0
    assert len(asgispy.load(workdir / "empty.json")) == 0
    assert any("wrote 0 connections to empty.json" in line for line in recorder.err)


@contextlib.contextmanager
def listening(workdir: Path, *args: str) -> Iterator[tuple[Recorder, SpiedServer]]:
    """``asgispy record --listen ADDRESS ARGS``, and an app process using Spy streaming to it.
    On the way out the app stops (its lifespan ends, and the recorder says it is gone), then
    the recorder gets Ctrl-C; its exit status is ``recorder.code``."""
    (workdir / "recapp.py").write_text(APP + SPIED)
    address = f"unix:{workdir / 'listen.sock'}"
    recorder = Recorder(["--listen", address, *args], workdir)
    try:
        recorder.wait_for(recorder.err, r"recording apps")
        server = SpiedServer(workdir, spied_env(ASGISPY_ADDRESS=address))
        try:
            yield recorder, server
        finally:
            server.stop()
        recorder.wait_for(recorder.err, r"recapp-spied .*: gone")
    finally:
        recorder.code = recorder.finish(signal.SIGINT)


def test_record_listen_forwards_each_connection_to_an_otlp_endpoint(workdir: Path) -> None:
    from tests.otlp_endpoint import OtlpEndpoint

    with OtlpEndpoint() as endpoint:
        otlp = ["--otlp", endpoint.base_url, "--otlp-service", "shop"]
        with listening(workdir, "-o", "traced.json", *otlp) as (recorder, server):
            traffic(server.port)
            # Live: the spans arrive while the recorder still runs, not only at its end.
            live = endpoint.wait_for_spans(3)
            assert {span.name for span in live} >= {"GET", "POST"}
        assert recorder.code == 0, recorder.err
        session = asgispy.load(workdir / "traced.json")
        spans = {span.id: span for span in endpoint.wait_for_spans(len(session))}
    assert set(spans) == {conn.id for conn in session}
    for conn in session:
        span = spans[conn.id]
        assert span.resource["service.name"] == "shop"
        assert abs(span.start - conn.started * 1e9) <= 1_000  # its own time, to the microsecond
        if conn.type == "http":
            assert span.attributes["url.path"] == conn.path
            assert span.attributes["http.response.status_code"] == conn.status
    sent = rf"otlp: sent {len(session)} spans to {re.escape(endpoint.base_url)}"
    assert any(re.search(sent, line) for line in recorder.err), recorder.err


def test_record_keeps_the_session_when_the_otlp_endpoint_is_down(workdir: Path) -> None:
    from tests.otlp_endpoint import OtlpEndpoint

    with OtlpEndpoint(listening=False) as endpoint:
        otlp = ["--otlp", endpoint.base_url, "--otlp-timeout", "1"]
        with listening(workdir, "-o", "kept.json", "-q", *otlp) as (recorder, server):
            traffic(server.port)
            recorder.wait_for(recorder.err, r"otlp: .*(refused|down|cannot)")
    assert recorder.code == 0, recorder.err
    session = asgispy.load(workdir / "kept.json")
    assert {c.path for c in session if c.type == "http"} == {"/items", "/upload"}
    assert any(re.search(r"otlp: sent 0 spans .*dropped", line) for line in recorder.err), recorder.err


def test_record_app_forwards_to_otlp_with_the_lifespan_last(workdir: Path) -> None:
    """``record APP --otlp URL``: the spans of a served app, its lifespan shutdown included
    (sent after the server stopped, before the recorder exits)."""
    from tests.otlp_endpoint import OtlpEndpoint

    with OtlpEndpoint() as endpoint:
        otlp = ["--otlp", endpoint.base_url, "--otlp-bodies"]
        recorder = Recorder(
            ["recapp:app", "--app-dir", str(workdir), "--port", "0", "-o", "o.json", "-q", *otlp], workdir
        )
        try:
            traffic(recorder.port)
        finally:
            code = recorder.finish(signal.SIGTERM)
        assert code == 0, recorder.err
        session = asgispy.load(workdir / "o.json")
        spans = {span.id: span for span in endpoint.wait_for_spans(len(session))}
    assert set(spans) == {c.id for c in session} and len(session) == 4
    lifespan = spans[next(c.id for c in session if c.type == "lifespan")]
    assert lifespan.kind == "internal"
    assert [e.name for e in lifespan.events] == CLEAN_LIFESPAN
    upload = spans[next(c.id for c in session if c.path == "/upload")]
    assert upload.attributes["http.request.method"] == "POST"
    assert upload.attributes["http.response.status_code"] == 201
    bodies = [e.attributes for e in upload.events if e.name == "http.response.body"]
    assert any("got hello" in str(attributes.values()) for attributes in bodies), bodies


def test_an_event_log_is_followed_as_it_grows(tmp_path: Path) -> None:
    """A reader following a log another process writes: each read takes only the whole lines
    written since; a line being written waits; the end cuts off; a replaced file says so."""
    from asgispy.agents.sources import FileSource
    from asgispy.agents.watch import Watch
    from asgispy.model.session import ProducerInfo
    from asgispy.store.load import EventLogReader, LogReplaced

    writer = Store()
    path = tmp_path / "live.jsonl"
    log = EventLog(writer, path)
    writer.attach(ProducerInfo("abc123", "h", 1, "a:b", 0.0))
    writer.open(connection_doc("abc123", 1, events=1))
    log.flush()
    following = Store()
    reader = EventLogReader(path, following)
    assert reader.read() == 2  # the producer and the open connection (after the header)
    writer.event("abc123-1", event_doc(1), 1)
    writer.open(connection_doc("abc123", 2, events=2, outcome="completed"))
    log.flush()
    assert reader.read() == 3  # an event, an open and a close
    assert [len(c.events) for c in following] == [2, 2]

    # Caught mid-line (a writer's buffer ends inside one): that line waits for the next read.
    half = tmp_path / "half.jsonl"
    line = b'{"type":"event","id":"abc123-1","index":2,"event":' + orjson.dumps(event_doc(2)) + b"}\n"
    half.write_bytes(path.read_bytes() + line[:30])
    partial = Store()
    halves = EventLogReader(half, partial)
    assert halves.read() == 5 and len(partial.get("abc123-1").events) == 2
    with open(half, "ab") as f:
        f.write(line[30:])
    assert halves.read() == 1 and len(partial.get("abc123-1").events) == 3

    # An agent's file source follows the same file, never reading it all again.
    source = FileSource(path, Watch())
    source.refresh()
    first = source.store
    assert len(first) == 2 and first.get("abc123-1").outcome == "open"
    log.close()  # the writer stops: its end line cuts off what is still open
    source.refresh()
    assert source.store is first and first.get("abc123-1").outcome == "cut off"
    assert reader.read() == 1 and reader.ended

    # Written again from scratch (a new recording at the same path): read from the start.
    replacement = tmp_path / "new.jsonl"
    EventLog(Store(), replacement).close()
    os.replace(replacement, path)
    with pytest.raises(LogReplaced):
        reader.read()
    source.refresh()
    assert source.store is not first and len(source.store) == 0 and source.problem is None
