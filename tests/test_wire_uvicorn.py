"""A real uvicorn in a child process, with ``--workers 2`` and with ``--reload``, streaming to a real
collector in the test: every connection from every worker arrives, in order, under its worker's name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from asgispy.model.connection import Connection
from tests.test_wire_collector import CollectorThread

pytestmark = pytest.mark.timeout(60)

APP = """
import os
from asgispy import Spy

VERSION = {version!r}

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({{"type": f"lifespan.{{kind}}.complete"}})
            if kind == "shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({{"type": "websocket.accept"}})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({{"type": "websocket.send", "text": message.get("text")}})
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = f"{{os.getpid()}} {{VERSION}} {{len(body)}}".encode()
    headers = [(b"content-type", b"text/plain")]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": answer}})

spied = Spy(app, name="tests:spied")
"""


class Server:
    """``python -m uvicorn ...`` with its output gathered; the port it bound read from its log."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_for_line(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                match = regex.search(line)
                if match:
                    return match
            seen = max(seen, len(self.lines) - 1) if self.lines else 0
            if self.process.poll() is not None and not regex.search("\n".join(self.lines)):
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    @property
    def port(self) -> int:
        return int(self.wait_for_line(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.reader.join(5)
        return self.process.returncode


@pytest.fixture
def workdir(sockdir: Path) -> Path:
    """Where the app module and the collector's socket live (a short path, for the socket)."""
    return sockdir


def write_app(directory: Path, version: int) -> None:
    (directory / "liveapp.py").write_text(APP.format(version=version))


def environment(collector: CollectorThread) -> dict[str, str]:
    env = dict(os.environ)
    env["ASGISPY_ADDRESS"] = collector.address
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")]
    )
    return env


def check_in_order(conn: Connection) -> None:
    """A connection's events as the app saw them: in order, and each kind where it belongs."""
    times = [e.t for e in conn.events]
    assert times == sorted(times), conn
    types = [e.type for e in conn.events]
    if conn.type == "http":
        assert types == ["http.request", "http.response.start", "http.response.body"], conn
    elif conn.type == "websocket":
        assert types[:2] == ["websocket.connect", "websocket.accept"] and types[-1] == "websocket.disconnect"
        sent = [e.message["text"] for e in conn.events if e.type == "websocket.send"]
        received = [e.message["text"] for e in conn.events if e.type == "websocket.receive"]
        assert sent == received == [f"m{i}" for i in range(10)]
    elif conn.type == "lifespan":
        assert types[:2] == ["lifespan.startup", "lifespan.startup.complete"], conn


def test_two_workers_every_connection_arrives_under_its_worker(workdir: Path) -> None:
    write_app(workdir, 1)
    with CollectorThread([f"unix:{workdir}/c.sock"]) as collector:
        server = Server(
            ["liveapp:spied", "--port", "0", "--workers", "2", "--log-level", "info", "--no-access-log"],
            environment(collector),
            workdir,
        )
        try:
            port = server.port
            collector.wait_for(lambda s: len(s.producers) == 2, timeout=20)  # each worker's lifespan
            answers: list[str] = []

            def client(n: int) -> None:
                # A fresh connection per request, so that both workers take some.
                for i in range(n):
                    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
                        answers.append(http.post("/echo", content=b"x" * i).text)

            threads = [threading.Thread(target=client, args=(10,)) for _ in range(4)]
            for t in threads:
                t.start()
            for _ in range(2):
                with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                    for i in range(10):
                        ws.send(f"m{i}")
                        assert ws.recv() == f"m{i}"
            for t in threads:
                t.join(30)
            assert len(answers) == 40
            collector.wait_for(
                lambda s: sum(c.type != "lifespan" and c.outcome == "completed" for c in s) == 42
            )
        finally:
            assert server.stop() in (0, -signal.SIGTERM)

        conns = collector.call(lambda: list(collector.store))
        producers = collector.call(lambda: {t: p.info.pid for t, p in collector.store.producers.items()})
        assert len(producers) == 2 and len(set(producers.values())) == 2
        for conn in conns:
            check_in_order(conn)
            if conn.type == "http":
                pid = int(conn.response_body().split()[0])
                assert producers[conn.producer] == pid  # named after the worker that served it
        http_conns = [c for c in conns if c.type == "http"]
        assert sorted(c.request_bytes for c in http_conns) == sorted(list(range(10)) * 4)
        # Both workers shut down cleanly: their lifespans end completed, not cut off.
        collector.wait_for(lambda s: all(not p.connected for p in s.producers.values()))
        lifespans = collector.call(lambda: [c for c in collector.store if c.type == "lifespan"])
        assert len(lifespans) == 2
        assert all(
            c.outcome == "completed" and c.events[-1].type == "lifespan.shutdown.complete" for c in lifespans
        )


def test_reload_the_new_worker_streams_too(workdir: Path) -> None:
    write_app(workdir, 1)
    with CollectorThread([f"unix:{workdir}/c.sock"]) as collector:
        server = Server(
            ["liveapp:spied", "--port", "0", "--reload", "--reload-dir", str(workdir), "--log-level", "info"],
            environment(collector),
            workdir,
        )
        try:
            port = server.port
            collector.wait_for(lambda s: len(s.producers) == 1, timeout=20)
            first_pid, first_version = httpx.get(f"http://127.0.0.1:{port}/before").text.split()[:2]
            assert first_version == "1"
            time.sleep(0.3)  # let the watcher take its first look before the change
            write_app(workdir, 2)
            deadline = time.monotonic() + 20
            answer: list[str] = []
            while time.monotonic() < deadline:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/after", timeout=2).text.split()
                except httpx.HTTPError:
                    answer = []
                if answer[1:2] == ["2"]:
                    break
                time.sleep(0.1)
            assert answer[1:2] == ["2"], server.lines
            second_pid = answer[0]
            assert second_pid != first_pid
            collector.wait_for(lambda s: len(s.producers) == 2)
            collector.wait_for(lambda s: any(c.path == "/after" and c.outcome == "completed" for c in s))
        finally:
            server.stop()

        by_pid = collector.call(lambda: {str(p.info.pid): t for t, p in collector.store.producers.items()})
        assert set(by_pid) == {first_pid, second_pid}
        conns: list[Any] = collector.call(lambda: list(collector.store))
        for conn in conns:
            check_in_order(conn)
        before = [c for c in conns if c.path == "/before"]
        after = [c for c in conns if c.path == "/after" and c.status == 200]
        assert [c.producer for c in before] == [by_pid[first_pid]]
        assert after and after[-1].producer == by_pid[second_pid]
        old_lifespan = next(c for c in conns if c.type == "lifespan" and c.producer == by_pid[first_pid])
        assert old_lifespan.outcome == "completed"  # the old worker shut down cleanly and said so
