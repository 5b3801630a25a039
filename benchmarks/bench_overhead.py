"""What capture costs an app: Spy beside the bare app, uvicorn's trace logging and OpenTelemetry.

    python benchmarks/bench_overhead.py            # the full run: a few minutes
    python benchmarks/bench_overhead.py --quick    # under a minute, noisier
    python benchmarks/bench_overhead.py --only inprocess,collector --json results.json
    python benchmarks/bench_overhead.py --only uvicorn --no-pin   # let the scheduler place processes

Every comparison is made side by side in one run, interleaved (each round runs every variant
once, in a rotating order), and reported as the median over rounds, as a ratio to the bare app:

* variants: ``bare`` (the app alone), ``floor`` (a pure ASGI middleware that wraps ``receive``
  and ``send`` and passes everything through: what any middleware that sees the messages
  costs before it does anything with them), ``spy`` (Spy, no collector listening: the cost of
  recording), ``spy-live`` (Spy streaming every event to a collector in another process),
  ``trace`` (uvicorn's trace message logging, to /dev/null), ``otel`` (OpenTelemetry's ASGI
  middleware, with whatever tracer provider is installed);
* routes: a small JSON response, a 64 KiB echo, a 100-chunk stream, a 100-message WebSocket echo
  (all Starlette, as a typical app is);
* drivers: in-process (the ASGI callable awaited directly: no network, no server; the time of
  ``spy-live`` includes the CPU its sender thread spends sending the batch), and a real uvicorn (one worker,
  its defaults: httptools, uvloop) on loopback under a bounded load: a fixed number of
  keep-alive connections for a fixed time, from ``wrk`` when installed, else from a small
  asyncio client in its own process (WebSocket load always comes from the ``websockets`` client);
  its targets are stated against ``floor``, the least any such middleware costs. On two cores or
  more, with ``taskset``, it pins the servers to core 0 and the load generator to core 1 (the live
  collector shares core 1 with it), so the two never compete for one core (``--no-pin`` to not);
* memory: the app process's RSS over a long run of requests, with the collector absent,
  present, and stalled (accepting but never reading);
* collector: how many events per second one collector takes in from several producers.

The machine matters: say where numbers were taken (cores, load) when quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

VARIANTS = ("bare", "floor", "spy", "spy-live", "trace", "otel")
ROUTES = ("json", "echo", "stream", "ws")
ROUTE_NAMES = {
    "json": "small JSON",
    "echo": "64 KiB echo",
    "stream": "100-chunk stream",
    "ws": "100-msg WebSocket",
}
ECHO_BODY = b"e" * 65536
CHUNK = b"s" * 99 + b"\n"
WS_MESSAGES = 100
KiB = 1024
MiB = 1024 * 1024

# The app -----------------------------------------------------------------------------------------


def build_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    async def small_json(request: Request) -> Response:
        return JSONResponse({"ok": True, "items": [1, 2, 3], "name": "asgispy"})

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for _ in range(100):
                yield CHUNK

        return StreamingResponse(chunks(), media_type="text/plain")

    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        for _ in range(WS_MESSAGES):
            await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return Starlette(
        routes=[
            Route("/json", small_json),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            WebSocketRoute("/ws", ws_echo),
        ]
    )


def configure_trace_logging() -> None:
    """uvicorn's trace logging as ``--log-level trace`` sets it up, but written to /dev/null."""
    from uvicorn.logging import TRACE_LOG_LEVEL, DefaultFormatter

    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False))
    log = logging.getLogger("uvicorn.asgi")
    log.handlers[:] = [handler]
    log.setLevel(TRACE_LOG_LEVEL)
    log.propagate = False


class PassThrough:
    """The ``floor`` variant: wraps ``receive`` and ``send`` as a recording middleware must,
    and does nothing else."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def wrapped_receive() -> Any:
            return await receive()

        async def wrapped_send(message: Any) -> None:
            await send(message)

        await self.app(scope, wrapped_receive, wrapped_send)


def wrap(app: Any, variant: str, address: str | None) -> Any:
    """The app as ``variant`` serves it."""
    if variant == "bare":
        return app
    if variant == "floor":
        return PassThrough(app)
    if variant in ("spy", "spy-live"):
        from asgispy import Spy

        return Spy(app, address=address)
    if variant == "trace":
        from uvicorn.middleware.message_logger import MessageLoggerMiddleware

        configure_trace_logging()
        return MessageLoggerMiddleware(app)
    if variant == "otel":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(app)
    raise ValueError(variant)


def build_fastapi_app() -> Any:
    """A FastAPI app with the usual middleware: CORS, GZip, TrustedHost, one BaseHTTPMiddleware."""
    from fastapi import FastAPI
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI()

    @app.get("/json")
    async def small_json() -> dict[str, Any]:
        return {"ok": True, "items": [1, 2, 3], "name": "asgispy"}

    async def stamp(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-stamp"] = "1"
        return response

    app.add_middleware(BaseHTTPMiddleware, dispatch=stamp)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(CORSMiddleware, allow_origins=["http://example.org"])
    return app


#: Layers mode's cost: the FastAPI app bare, under Spy, and under Spy(layers=True).
LAYER_VARIANTS = ("fastapi-bare", "fastapi-spy", "fastapi-layers")


def make_app() -> Any:
    """uvicorn factory for the uvicorn driver: the variant comes from the environment."""
    variant = os.environ["BENCH_VARIANT"]
    if variant.startswith("fastapi-"):
        app = build_fastapi_app()
        if variant == "fastapi-bare":
            return app
        from asgispy import Spy

        return Spy(app, address=os.environ.get("BENCH_ADDRESS"), layers=variant == "fastapi-layers")
    if variant == "trace":
        return build_app()  # uvicorn adds its own MessageLoggerMiddleware at --log-level trace
    return wrap(build_app(), variant, os.environ.get("BENCH_ADDRESS"))


# Helpers -----------------------------------------------------------------------------------------


def nowhere_address(directory: Path) -> str:
    return f"unix:{directory / 'nobody-listens.sock'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss() -> int:
    """This process's resident memory in bytes (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class CollectorProcess:
    """A collector (``asgispy``'s own) in its own process, as a viewer runs it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-collector", address],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the collector did not start: {line!r}")

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        return out.strip()


def serve_collector(address: str) -> None:
    from asgispy.store.store import Store
    from asgispy.wire.collector import Collector

    async def main() -> None:
        store = Store()
        collector = Collector(store, [address])
        await collector.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        kept = len(store)
        print(f"{store.events_total} events, {kept} connections kept, {store.dropped} dropped", flush=True)
        await collector.stop()

    asyncio.run(main())


class StalledViewer:
    """A viewer that says welcome, then never reads: the producer's writes back up."""

    def __init__(self, path: str) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            data = b""
            while not data.endswith(b"\n"):
                data += conn.recv(1)
            conn.sendall(b'{"type":"welcome","protocol":1,"asgispy":"bench"}\n')
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


# In-process driver -------------------------------------------------------------------------------


def http_scope(method: str, path: str, body_length: int = 0) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
    ]
    if body_length:
        headers.append((b"content-length", str(body_length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


async def _never() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


def one_call(route: str) -> Callable[[Any], Awaitable[None]]:
    """An awaitable doing one whole request (or WebSocket session) of ``route`` against an app."""

    async def discard(message: Any) -> None:
        pass

    if route == "ws":
        scope_base = http_scope("GET", "/ws")
        scope_base.update(type="websocket", scheme="ws", subprotocols=[])
        scope_base.pop("method")

        async def ws_call(app: Any) -> None:
            incoming = [{"type": "websocket.connect"}] + [
                {"type": "websocket.receive", "text": f"message {i}"} for i in range(WS_MESSAGES)
            ]
            incoming.reverse()

            async def receive() -> dict[str, Any]:
                return incoming.pop() if incoming else {"type": "websocket.disconnect", "code": 1000}

            await app(dict(scope_base), receive, discard)

        return ws_call

    method, path, body = {
        "json": ("GET", "/json", b""),
        "echo": ("POST", "/echo", ECHO_BODY),
        "stream": ("GET", "/stream", b""),
    }[route]
    scope_base = http_scope(method, path, len(body))

    async def http_call(app: Any) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await _never()

        scope = dict(scope_base)
        scope["state"] = {}
        await app(scope, receive, discard)

    return http_call


def batch_size(route: str, quick: bool) -> int:
    # Small enough that a live producer's queue (8,192 items) takes a whole batch.
    size = {"json": 1000, "echo": 400, "stream": 40, "ws": 30}[route]
    return size // 2 if quick else size


def run_inprocess(rounds: int, quick: bool, collector_address: str, workdir: Path) -> dict[str, Any]:
    print("\n== In-process: the ASGI callable awaited directly (no server, no network) ==", flush=True)
    base = build_app()
    apps = {
        "bare": base,
        "floor": wrap(base, "floor", None),
        "spy": wrap(base, "spy", nowhere_address(workdir)),
        "spy-live": wrap(base, "spy-live", collector_address),
        "trace": wrap(base, "trace", None),
        "otel": wrap(base, "otel", None),
    }
    live_producer = apps["spy-live"]._producer
    results: dict[str, Any] = {}

    async def main() -> None:
        live_producer.start()
        deadline = time.monotonic() + 10
        while not live_producer.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if not live_producer.connected:
            raise RuntimeError("the live producer did not connect to the collector")
        sender_clock = time.pthread_getcpuclockid(live_producer._thread.ident)

        def sender_cpu() -> float:
            return time.clock_gettime(sender_clock)

        for route in ROUTES:
            call = one_call(route)
            n = batch_size(route, quick)
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for variant in VARIANTS:  # warm up every path (imports, caches, the history filling)
                for _ in range(n):
                    await call(apps[variant])
            live_producer.flush(10)
            dropped_before = live_producer.dropped
            order = list(VARIANTS)
            for _ in range(rounds):
                order = order[1:] + order[:1]
                for variant in order:
                    app = apps[variant]
                    gc.collect()
                    started = time.perf_counter()
                    started_cpu = time.thread_time()
                    for _ in range(n):
                        await call(app)
                    cpu[variant].append((time.thread_time() - started_cpu) / n)
                    elapsed = time.perf_counter() - started
                    if variant == "spy-live":
                        # The sender's work is part of the cost: wait for it to have sent the batch, and
                        # count the CPU it spent doing so (not the wall time: past its CPU share it rests).
                        before = sender_cpu()
                        live_producer.flush(60)
                        elapsed += sender_cpu() - before
                    times[variant].append(elapsed / n)
            median = {v: statistics.median(times[v]) for v in VARIANTS}
            median_cpu = {v: statistics.median(cpu[v]) for v in VARIANTS}
            results[route] = {
                "per_request_us": {v: median[v] * 1e6 for v in VARIANTS},
                "added_us": {v: (median[v] - median["bare"]) * 1e6 for v in VARIANTS},
                "ratio": {v: median["bare"] / median[v] for v in VARIANTS},
                # CPU of the thread serving requests only: the request path, without the sender.
                "request_path_added_us": {v: (median_cpu[v] - median_cpu["bare"]) * 1e6 for v in VARIANTS},
                "live_dropped": live_producer.dropped - dropped_before,
            }
            print_inprocess_row(route, results[route])

    asyncio.run(main())
    live_producer.close()
    return results


def print_inprocess_row(route: str, row: dict[str, Any]) -> None:
    if route == ROUTES[0]:
        print(f"{'':18}{'bare µs':>10}" + "".join(f"{v + ' +µs (ratio)':>22}" for v in VARIANTS[1:]))
    cells = [f"{row['per_request_us']['bare']:10.1f}"]
    for variant in VARIANTS[1:]:
        cells.append(f"{row['added_us'][variant]:+12.1f} ({row['ratio'][variant]:.2f})".rjust(22))
    path = row["request_path_added_us"]
    extra = f"   [request path: spy +{path['spy']:.1f}, spy-live +{path['spy-live']:.1f} µs CPU]"
    if row["live_dropped"]:
        extra += f" [spy-live dropped {row['live_dropped']}]"
    print(f"{ROUTE_NAMES[route]:18}" + "".join(cells) + extra, flush=True)


# uvicorn driver ------------------------------------------------------------------------------------

# The uvicorn targets, as shares of the pass-through floor's rate: what recording may cost on top of
# merely seeing the messages. The echo route is measured too, but carries no target.
UVICORN_TARGETS = {"spy": 0.95, "spy-live": 0.90}
TARGET_ROUTES = ("json", "stream", "ws")


class Pinning:
    """Which core the uvicorn driver's processes run on. Left to the scheduler, the server and the
    load generator now and then land on one core and fight over it, and move between cores: rates then
    wander from round to round by more than the few percent the targets are about. Pinned, the server
    has core 0 to itself and the load generator core 1; the live collector goes on core 1 too (a third
    core is not to be counted on), where it competes with the load, not with the app it measures."""

    server_core = 0
    load_core = 1

    def __init__(self, wanted: bool) -> None:
        self.off_because = self._off_because(wanted)
        self.on = self.off_because is None

    def _off_because(self, wanted: bool) -> str | None:
        if not wanted:
            return "--no-pin"
        if shutil.which("taskset") is None:
            return "no taskset"
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        if not {self.server_core, self.load_core} <= allowed:
            return f"needs cores {self.server_core} and {self.load_core}, has {sorted(allowed)}"
        return None

    def server(self, command: list[str]) -> list[str]:
        return self._on(self.server_core, command)

    def load(self, command: list[str]) -> list[str]:
        return self._on(self.load_core, command)

    def _on(self, core: int, command: list[str]) -> list[str]:
        return ["taskset", "-c", str(core), *command] if self.on else command

    @contextlib.contextmanager
    def collector_on_load_core(self, pid: int) -> Any:
        """Moves the running collector (every thread of it) to the load core for the uvicorn part
        only, and back after it: the other parts measure it where the scheduler puts it."""
        if not self.on:
            yield
            return
        before = ",".join(str(core) for core in sorted(os.sched_getaffinity(pid)))
        move_process(pid, str(self.load_core))
        try:
            yield
        finally:
            move_process(pid, before)

    def describe(self) -> str:
        if not self.on:
            return f"not pinned ({self.off_because})"
        return (
            f"pinned with taskset: servers on core {self.server_core}, load generator on core "
            f"{self.load_core}, the live collector (spy-live) on core {self.load_core} too, "
            "shared with the load"
        )


def move_process(pid: int, cores: str) -> None:
    """Sets the cores of every thread of a running process (``-a``: the threads it has started too)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cores, str(pid)], check=True, stdout=subprocess.DEVNULL)


class UvicornServer:
    def __init__(self, variant: str, collector_address: str, workdir: Path, pinning: Pinning) -> None:
        self.variant = variant
        self.port = free_port()
        env = dict(os.environ, BENCH_VARIANT=variant, PYTHONPATH=str(HERE.parent))
        if variant in ("spy", "fastapi-spy", "fastapi-layers"):
            env["BENCH_ADDRESS"] = nowhere_address(workdir)
        elif variant == "spy-live":
            env["BENCH_ADDRESS"] = collector_address
        log_level = "trace" if variant == "trace" else "warning"
        command = [
            sys.executable, "-m", "uvicorn", "bench_overhead:make_app", "--factory", "--app-dir", str(HERE),
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", log_level, "--no-access-log",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            pinning.server(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # trace logging writes here: formatted, then discarded
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wrk_rate(
    port: int, route: str, duration: float, connections: int, workdir: Path, pinning: Pinning
) -> float:
    url = f"http://127.0.0.1:{port}/{route}"
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(round(duration), 1)}s"]
    if route == "echo":
        script = workdir / "post.lua"
        if not script.exists():
            script.write_text('wrk.method = "POST"\nwrk.body = string.rep("e", 65536)\n')
        args += ["-s", str(script)]
    out = subprocess.run(
        pinning.load([*args, url]), capture_output=True, text=True, timeout=duration + 30
    ).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"wrk said:\n{out}")


def client_rate(port: int, route: str, duration: float, connections: int, pinning: Pinning) -> float:
    out = subprocess.run(
        pinning.load([sys.executable, __file__, "--load", str(port), route, str(duration), str(connections)]),
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return float(out.stdout.strip())


async def http_load(port: int, route: str, duration: float, connections: int) -> float:
    """Keep-alive HTTP/1.1 requests from ``connections`` clients for ``duration`` seconds."""
    method, path, body = {"json": ("GET", "/json", b""), "echo": ("POST", "/echo", ECHO_BODY)}.get(
        route, ("GET", f"/{route}", b"")
    )
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    done = 0
    deadline = time.monotonic() + duration

    async def client() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            if b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            done += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - started)


async def ws_load(port: int, duration: float, connections: int) -> float:
    """WebSocket sessions per second: each connects, echoes 100 messages one by one, closes."""
    from websockets.asyncio.client import connect

    done = 0
    deadline = time.monotonic() + duration

    async def client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
                for i in range(WS_MESSAGES):
                    await ws.send(f"message {i}")
                    await ws.recv()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - started)


def run_uvicorn(
    rounds: int, duration: float, warmup: bool, collector: CollectorProcess, workdir: Path, pinning: Pinning
) -> dict[str, Any]:
    use_wrk = shutil.which("wrk") is not None
    http_client = "wrk -t1 -c16" if use_wrk else "asyncio client, 16 connections"
    print(
        f"\n== uvicorn on loopback (1 worker, httptools, uvloop); HTTP load: {http_client}; "
        f"WebSocket load: websockets client, 4 connections; {duration:g} s per measurement; "
        f"{pinning.describe()} ==",
        flush=True,
    )
    with pinning.collector_on_load_core(collector.process.pid):
        return uvicorn_routes(rounds, duration, warmup, collector.address, workdir, pinning, use_wrk)


def uvicorn_routes(
    rounds: int,
    duration: float,
    warmup: bool,
    collector_address: str,
    workdir: Path,
    pinning: Pinning,
    use_wrk: bool,
) -> dict[str, Any]:
    """Every route against every variant's server, the servers started (and stopped) once for all."""
    servers = {v: UvicornServer(v, collector_address, workdir, pinning) for v in VARIANTS}
    results: dict[str, Any] = {}
    try:
        for server in servers.values():
            wait_port(server.port)
        for route in ROUTES:
            rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
            if warmup:
                for server in servers.values():
                    measure(server.port, route, 1.0, use_wrk, workdir, pinning)
            order = list(VARIANTS)
            for _ in range(rounds):
                order = order[1:] + order[:1]
                for variant in order:
                    port = servers[variant].port
                    rates[variant].append(measure(port, route, duration, use_wrk, workdir, pinning))
            median = {v: statistics.median(rates[v]) for v in VARIANTS}
            ratio = {v: median[v] / median["bare"] for v in VARIANTS}
            vs_floor = {v: median[v] / median["floor"] for v in VARIANTS}
            results[route] = {"per_second": median, "ratio": ratio, "vs_floor": vs_floor}
            print_uvicorn_row(route, results[route])
    finally:
        for server in servers.values():
            server.stop()
    return results


def run_layers(rounds: int, duration: float, workdir: Path, pinning: Pinning) -> dict[str, Any]:
    """Layers mode on a FastAPI app with the usual middleware, small JSON, under uvicorn."""
    use_wrk = shutil.which("wrk") is not None
    print(
        "\n== layers mode: a FastAPI app with CORS, GZip, TrustedHost and a BaseHTTPMiddleware, "
        f"small JSON under uvicorn, {duration:g} s per measurement, {pinning.describe()} ==",
        flush=True,
    )
    servers = {v: UvicornServer(v, "", workdir, pinning) for v in LAYER_VARIANTS}
    rates: dict[str, list[float]] = {v: [] for v in LAYER_VARIANTS}
    try:
        for server in servers.values():
            wait_port(server.port)
            measure(server.port, "json", 1.0, use_wrk, workdir, pinning)
        order = list(LAYER_VARIANTS)
        for _ in range(rounds):
            order = order[1:] + order[:1]
            for variant in order:
                port = servers[variant].port
                rates[variant].append(measure(port, "json", duration, use_wrk, workdir, pinning))
    finally:
        for server in servers.values():
            server.stop()
    median = {v: statistics.median(rates[v]) for v in LAYER_VARIANTS}
    ratio = {v: median[v] / median["fastapi-bare"] for v in LAYER_VARIANTS}
    for variant in LAYER_VARIANTS:
        print(f"{variant:16} {median[variant]:8.0f}/s  {ratio[variant]:.2f} of bare")
    print(f"layers mode keeps {median['fastapi-layers'] / median['fastapi-spy']:.2f} of Spy's requests/s")
    return {"per_second": median, "ratio": ratio}


def measure(port: int, route: str, duration: float, use_wrk: bool, workdir: Path, pinning: Pinning) -> float:
    if route == "ws":
        return client_rate(port, route, duration, 4, pinning)
    if use_wrk:
        return wrk_rate(port, route, duration, 16, workdir, pinning)
    return client_rate(port, route, duration, 16, pinning)


def print_uvicorn_row(route: str, row: dict[str, Any]) -> None:
    """Rates with their ratio to bare, then the ratio of each variant past floor to floor: the
    share of a pass-through middleware's rate that it keeps, which is what the targets are about."""
    past_floor = VARIANTS[VARIANTS.index("floor") + 1 :]
    if route == ROUTES[0]:
        print(
            f"{'':18}{'bare /s':>10}"
            + "".join(f"{v + ' /s (ratio)':>22}" for v in VARIANTS[1:])
            + "   vs floor:"
            + "".join(f"{v:>9}" for v in past_floor)
        )
    cells = [f"{row['per_second']['bare']:10.0f}"]
    for variant in VARIANTS[1:]:
        cells.append(f"{row['per_second'][variant]:10.0f} ({row['ratio'][variant]:.2f})".rjust(22))
    cells.append(" " * 12 + "".join(f"{row['vs_floor'][v]:9.2f}" for v in past_floor))
    print(f"{ROUTE_NAMES[route]:18}" + "".join(cells), flush=True)


# Memory ----------------------------------------------------------------------------------------------


def run_memory(requests: int, collector_address: str, workdir: Path) -> dict[str, Any]:
    print(
        f"\n== Memory: RSS of an app process over {requests:,} small-JSON requests, after a warm-up that "
        "fills Spy's history; each case in a fresh process ==",
        flush=True,
    )
    stalled_path = str(workdir / "stalled.sock")
    stalled = StalledViewer(stalled_path)
    cases = {
        "absent": nowhere_address(workdir),
        "present": collector_address,
        "stalled": f"unix:{stalled_path}",
    }
    results: dict[str, Any] = {}
    try:
        for name, address in cases.items():
            out = subprocess.run(
                [sys.executable, __file__, "--memory-case", name, address, str(requests)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            r = results[name] = json.loads(out.stdout)
            print(
                f"collector {name:8} RSS {r['rss_after_warmup_mib']:6.1f} MiB, then "
                f"{' '.join(f'{m:.1f}' for m in r['samples_mib'])} MiB "
                f"(growth {r['growth_mib']:+.1f} MiB); queue at the end {r['queued']}, "
                f"dropped {r['dropped']:,}, in history {r['history']}",
                flush=True,
            )
    finally:
        stalled.close()
    return results


def memory_case(name: str, address: str, requests: int) -> None:
    from asgispy import Spy

    spy = Spy(build_app(), address=address)
    producer = spy._producer
    assert producer is not None
    call = one_call("json")

    async def main() -> dict[str, Any]:
        producer.start()
        if name != "absent":
            deadline = time.monotonic() + 10
            while not producer.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        # Long enough for the history and, with a slow or stalled collector, the queue to fill.
        for i in range(max(20_000, requests // 5)):
            await call(spy)
            if i % 100 == 0:
                await asyncio.sleep(0)  # as a server would, now and then
        gc.collect()
        start = rss()
        samples = []
        step = max(requests // 8, 1)
        for i in range(requests):
            await call(spy)
            if i % 100 == 0:
                await asyncio.sleep(0)
            if (i + 1) % step == 0:
                gc.collect()
                samples.append(rss())
        return {
            "rss_after_warmup_mib": start / MiB,
            "samples_mib": [m / MiB for m in samples],
            "growth_mib": (samples[-1] - start) / MiB,
            "queued": producer.queued,
            "dropped": producer.dropped,
            "history": len(spy.history),
        }

    print(json.dumps(asyncio.run(main())))


# Collector ingest ------------------------------------------------------------------------------------


def blast(address: str, tag: str, events: int) -> None:
    """A producer that only sends: one connection, ``events`` small events in frames of 256 (as
    the real producer batches a followed connection's messages), then its close."""
    from asgispy.wire.address import parse_address
    from asgispy.wire.handshake import hello_frame
    from asgispy.wire.protocol import CLOSE, EVENTS, OPEN, FrameReader, encode_frame

    path = parse_address(address).path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(encode_frame(hello_frame(tag, "bench", os.getpid(), "bench:app", time.time())))
    reader = FrameReader()
    while not reader.feed(sock.recv(4096)):
        pass
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"host", b"bench")]}
    frames = [encode_frame([OPEN, [1, "websocket", time.time(), scope, [], None]])]
    for start in range(0, events, 256):
        batch = [
            [i % 2, i * 1e-5, {"type": "websocket.send", "text": f"message number {i}"}, None]
            for i in range(start, min(events, start + 256))
        ]
        frames.append(encode_frame([EVENTS, 1, start, batch]))
    frames.append(encode_frame([CLOSE, 1, ["completed", events * 1e-5, None, None, [], 0]]))
    data = b"".join(frames)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for i in range(0, len(data), 1 << 20):
        sock.sendall(data[i : i + (1 << 20)])
    sock.close()


def run_collector(events_per_producer: int, producers: int, workdir: Path) -> dict[str, Any]:
    print(
        f"\n== Collector: {producers} producers each sending {events_per_producer:,} events at once "
        "(frames prepared beforehand, so the producers are never the limit) ==",
        flush=True,
    )
    from asgispy.store.store import Store
    from asgispy.wire.collector import Collector

    address = f"unix:{workdir / 'ingest.sock'}"
    total = events_per_producer * producers
    result: dict[str, Any] = {}

    async def main() -> None:
        store = Store()
        collector = Collector(store, [address])
        await collector.start()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--blast", address, f"b{n:05d}", str(events_per_producer),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            for n in range(producers)
        ]  # fmt: skip
        for proc in procs:
            assert proc.stdout is not None
            await proc.stdout.readline()
        while collector.producers_connected < producers:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        while store.events_total < total:
            await asyncio.sleep(0.002)
            if time.perf_counter() - started > 120:
                break
        elapsed = time.perf_counter() - started
        for proc in procs:
            await proc.wait()
        await collector.stop()
        result.update(events=store.events_total, seconds=elapsed, per_second=store.events_total / elapsed)

    asyncio.run(main())
    events, seconds, rate = result["events"], result["seconds"], result["per_second"]
    print(f"{events:,} events in {seconds:.2f} s: {rate:,.0f} events/s", flush=True)
    return result


# Main ----------------------------------------------------------------------------------------------


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.2f} at start"
    )


def targets(results: dict[str, Any]) -> None:
    print("\n== Targets ==")
    uvicorn_targets(results.get("uvicorn", {}))
    ip = results.get("inprocess", {}).get("json")
    if ip:
        trace = ip["added_us"]["trace"]
        cases = [
            ("spy", ip["added_us"]["spy"]),
            ("spy-live, request path", ip["request_path_added_us"]["spy-live"]),
            ("spy-live, with its sender's work", ip["added_us"]["spy-live"]),
        ]
        for variant, added in cases:
            share = added / trace if trace > 0 else float("inf")
            print(f"in-process, small JSON, {variant} adds {added:.1f} µs = {share:.2f} of trace logging's "
                  f"{trace:.1f} µs (target <= 0.10): {'met' if share <= 0.10 else 'NOT met'}")  # fmt: skip
    col = results.get("collector")
    if col:
        rate = col["per_second"]
        verdict = "met" if rate >= 500_000 else "NOT met"
        print(f"collector ingests {rate:,.0f} events/s (target >= 500,000): {verdict}")
    mem = results.get("memory")
    if mem:
        worst = max(abs(m["growth_mib"]) for m in mem.values())
        print(f"memory after warm-up moves by at most {worst:.1f} MiB over a phase (flat: within 5 MiB): "
              f"{'met' if worst <= 5 else 'NOT met'}")  # fmt: skip


def uvicorn_targets(uv: dict[str, Any]) -> None:
    """spy and spy-live against the pass-through floor, route by route: the floor is what any
    middleware that sees the messages costs, so the share of it kept is what recording costs."""
    for route in ROUTES:
        row = uv.get(route)
        if not row:
            continue
        for variant, target in UVICORN_TARGETS.items():
            ratio = row["vs_floor"][variant]
            line = f"uvicorn, {ROUTE_NAMES[route]}, {variant} keeps {ratio:.2f} of floor's req/s"
            if route in TARGET_ROUTES:
                line += f" (target >= {target:.2f}): {'met' if ratio >= target else 'NOT met'}"
            else:
                line += " (no target)"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute), for a first look")
    parser.add_argument(
        "--only", default="inprocess,uvicorn,layers,memory,collector", help="comma-separated parts to run"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="uvicorn driver: do not pin the servers to core 0 and the load generator to core 1",
    )
    parser.add_argument("--serve-collector", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--blast", nargs=3, metavar=("ADDRESS", "TAG", "EVENTS"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-case", nargs=3, metavar=("NAME", "ADDRESS", "N"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--load", nargs=4, metavar=("PORT", "ROUTE", "SECONDS", "CONNS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.serve_collector:
        serve_collector(args.serve_collector)
        return
    if args.memory_case:
        memory_case(args.memory_case[0], args.memory_case[1], int(args.memory_case[2]))
        return
    if args.blast:
        blast(args.blast[0], args.blast[1], int(args.blast[2]))
        return
    if args.load:
        port, route, seconds, conns = int(args.load[0]), args.load[1], float(args.load[2]), int(args.load[3])
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        rate = asyncio.run(
            ws_load(port, seconds, conns) if route == "ws" else http_load(port, route, seconds, conns)
        )
        print(rate)
        return

    parts = set(args.only.split(","))
    quick = args.quick
    print(f"asgispy capture overhead ({'quick' if quick else 'full'} run); {machine()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="asgispy-bench-"))
    collector = CollectorProcess(f"unix:{workdir / 'collector.sock'}")
    results: dict[str, Any] = {"machine": machine(), "quick": quick}
    try:
        random.seed(1)
        if "inprocess" in parts:
            results["inprocess"] = run_inprocess(3 if quick else 15, quick, collector.address, workdir)
        if "uvicorn" in parts:
            pinning = Pinning(not args.no_pin)
            results["uvicorn_pinning"] = pinning.describe()
            results["uvicorn"] = run_uvicorn(
                2 if quick else 5, 1.0 if quick else 3.0, not quick, collector, workdir, pinning
            )
        if "layers" in parts:
            pinning = Pinning(not args.no_pin)
            results["layers"] = run_layers(2 if quick else 5, 1.0 if quick else 3.0, workdir, pinning)
        if "memory" in parts:
            results["memory"] = run_memory(10_000 if quick else 200_000, collector.address, workdir)
        if "collector" in parts:
            results["collector"] = run_collector(50_000 if quick else 250_000, 4, workdir)
    finally:
        summary = collector.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n(the live collector took in {summary})")
    targets(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
