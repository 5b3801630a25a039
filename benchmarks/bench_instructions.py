"""Instructions per request under callgrind: a cost that a change of a few percent shows in.

    python benchmarks/bench_instructions.py                    # every variant and workload
    python benchmarks/bench_instructions.py --quick            # fewer requests, for a first look
    python benchmarks/bench_instructions.py --only bare,spy --workload json --requests 2000
    python benchmarks/bench_instructions.py --repeat 2 --json results.json   # and the counts' spread

On a shared machine, wall-clock time wanders by more than the few percent a change to the request
path makes; the number of instructions the CPU executes hardly moves. So every variant's app runs
in a fresh Python under ``valgrind --tool=callgrind`` twice, with the same imports and the same
warm-up, once followed by N requests and once by none: (count at N - count at 0) / N is what one
request costs, start-up and warm-up cancelled out. Callgrind counts every thread, so the work
Spy's sender thread does (packing, sending) is counted, and so is garbage collection.

The requests are made in-process: a plain asyncio loop awaits the app with a scope, a ``receive``
and a ``send``, so no server and no client library is counted. The app process uses only
asgispy's public API (``from asgispy import Spy``). For ``spy-live`` the recorder
(``python -m asgispy record --listen``) runs beside it, not under valgrind, and the benchmark
checks that it received every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench_overhead  # noqa: E402 - beside this file: the same app and scope as the wall-clock benchmark

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Requests measured, and made before them in both runs. The warm-up goes past Spy's default
#: history of 1,000, so that every measured request is the steady state: one kept, the oldest evicted.
REQUESTS, WARMUP = 1000, 1100
QUICK_REQUESTS = 200
WS_MESSAGES = 10
#: The longest one process under valgrind may take before it is killed (and the run fails).
RUN_TIMEOUT = 900.0
INSTALL_HINT = "valgrind is not installed: on Debian or Ubuntu, `apt-get install -y valgrind`"

# The app and its variants ---------------------------------------------------------------------------


def build_app() -> App:
    """bench_overhead's Starlette app (its JSON and stream endpoints), with a WebSocket echo
    that runs until the client leaves, so that one session is exactly what the driver sends."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    routes = [*bench_overhead.build_app().routes, WebSocketRoute("/ws-echo", echo)]
    app: App = Starlette(routes=routes)
    return app


def spy(**options: Any) -> Callable[[App], App]:
    def wrap(app: App) -> App:
        from asgispy import Spy

        wrapped: App = Spy(app, **options)
        return wrapped

    return wrap


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    wrap: Callable[[App], App]
    live: bool = False


#: A rule that never matches the workloads: what having rules costs a connection they leave alone.
_UNMATCHED_RULE = [{"name": "mock", "match": "path:/nowhere/*", "respond": {"status": 503}}]

VARIANTS = {
    v.name: v
    for v in (
        Variant("bare", "bare app", lambda app: app),
        Variant("floor", "pass-through", bench_overhead.PassThrough),
        Variant("spy-history0", "Spy(history=0)", spy(history=0)),
        Variant("spy", "Spy()", spy()),
        Variant("spy-compact", "Spy(compact=True)", spy(compact=True)),
        Variant("spy-layers", "Spy(layers=True)", spy(layers=True)),
        Variant("spy-live", "Spy(), live recorder", spy(), live=True),
        Variant("spy-intercept", "Spy(intercept=True), nothing set", spy(intercept=True)),
        Variant("spy-rule", "Spy(rules=...), one rule, no match", spy(rules=_UNMATCHED_RULE)),
        Variant("spy-inside", "Spy(inside=True), nothing done inside", spy(inside=True)),
    )
}

# The workloads and the in-process driver ------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One request: its scope, what ``receive`` returns (then ``last`` forever), and a check of
    what the app sent."""

    name: str
    title: str
    scope: Scope
    incoming: tuple[Message, ...]
    last: Message
    check: Callable[[list[Message]], str | None]


def _check_http(body: bytes) -> Callable[[list[Message]], str | None]:
    def check(sent: list[Message]) -> str | None:
        start, *rest = sent or [{}]
        if start.get("type") != "http.response.start" or start.get("status") != 200:
            return f"expected a 200 response, got {start!r}"
        got = b"".join(m.get("body", b"") for m in rest)
        if got != body or not rest or rest[-1].get("more_body", False):
            return f"expected a body of {len(body)} bytes, got {len(got)} in {len(rest)} messages"
        return None

    return check


def _check_echo(sent: list[Message]) -> str | None:
    got = [(m.get("type"), m.get("text")) for m in sent]
    expected = [("websocket.accept", None)] + [("websocket.send", f"message {i}") for i in range(WS_MESSAGES)]
    return None if got == expected else f"expected an accept and {WS_MESSAGES} messages echoed, got {got!r}"


def _ws_scope(path: str) -> Scope:
    scope = bench_overhead.http_scope("GET", path)
    del scope["method"]
    scope.update(type="websocket", scheme="ws", subprotocols=[])
    return scope


WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "json",
            "small JSON (GET, JSONResponse)",
            bench_overhead.http_scope("GET", "/json"),
            ({"type": "http.request", "body": b"", "more_body": False},),
            {"type": "http.disconnect"},
            _check_http(b'{"ok":true,"items":[1,2,3],"name":"asgispy"}'),
        ),
        Workload(
            "stream",
            "100-chunk StreamingResponse",
            bench_overhead.http_scope("GET", "/stream"),
            ({"type": "http.request", "body": b"", "more_body": False},),
            {"type": "http.disconnect"},
            _check_http(bench_overhead.CHUNK * 100),
        ),
        Workload(
            "ws",
            f"WebSocket echo, {WS_MESSAGES} messages",
            _ws_scope("/ws-echo"),
            (
                {"type": "websocket.connect"},
                *({"type": "websocket.receive", "text": f"message {i}"} for i in range(WS_MESSAGES)),
            ),
            {"type": "websocket.disconnect", "code": 1000},
            _check_echo,
        ),
    )
}


async def request(app: App, workload: Workload, check: bool) -> None:
    """One whole request (or WebSocket session), as a server would make it; with ``check``,
    what the app sent is checked (and AssertionError raised if it is wrong)."""
    incoming = iter(workload.incoming)
    last = workload.last
    sent: list[Message] = []

    async def receive() -> Message:
        return dict(next(incoming, last))

    async def send(message: Message) -> None:
        if check:
            sent.append(message)

    await app({**workload.scope, "state": {}}, receive, send)
    if check:
        problem = workload.check(sent)
        if problem is not None:
            raise AssertionError(f"{workload.name}: {problem}")


async def requests(app: App, workload: Workload, count: int, check: bool) -> None:
    for _ in range(count):
        await request(app, workload, check)


def phases(warmup: int, count: int) -> list[tuple[int, bool]]:
    """The child's requests in steps, and whether each step's answers are checked: one request
    first (it starts Spy's sender thread), the rest of the warm-up, then the requests measured."""
    return [(1, True), (warmup - 1, True), (count, False)]


def child(variant: str, workload: str, warmup: int, count: int) -> None:
    """The process measured (under valgrind). After each of its :func:`phases` it says ``ready``
    and waits for a line on stdin: so the sender has connected to the live recorder before the
    warm-up, and the recorder has everything before the requests measured, and before the end."""
    app = VARIANTS[variant].wrap(build_app())
    chosen = WORKLOADS[workload]

    async def main() -> None:
        for n, check in phases(warmup, count):
            await requests(app, chosen, n, check)
            print("ready", flush=True)
            sys.stdin.readline()

    asyncio.run(main())


# The live recorder ----------------------------------------------------------------------------------


class LiveRecorder:
    """``asgispy record --listen`` in a process of its own (not counted), as a user runs it. It
    prints a line per connection it has taken in: those are counted to know when it has all."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "recorder.sock"
        self.address = f"unix:{self.socket}"
        self.output = directory / "recorded.json"
        self.log = directory / "recorder.log"
        self.seen = 0
        self._changed = threading.Condition()
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "asgispy", "record", "--listen", self.address, "-o", str(self.output)],
                env=environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.process.stdout is not None
        threading.Thread(target=self._count, args=(self.process.stdout,), daemon=True).start()
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the recorder did not start:\n{self.log.read_text()}")
            time.sleep(0.01)

    def _count(self, lines: IO[str]) -> None:
        for _ in lines:
            with self._changed:
                self.seen += 1
                self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 600.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.seen >= count, timeout):
                raise RuntimeError(
                    f"the recorder took in {self.seen} connections of {count} in {timeout:g} s"
                )

    def stop(self) -> None:
        """Stop it as Ctrl-C does, so that it writes its session file."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the recorder did not stop on SIGINT") from None

    def check(self, workload: Workload, expected: int) -> None:
        """Fail loudly unless the session file holds ``expected`` whole connections of ``workload``."""
        from asgispy import load

        session = load(self.output)
        kinds = {"ws": "websocket"}
        wrong = [
            c.id
            for c in session.connections
            if c.type != kinds.get(workload.name, "http") or c.outcome != "completed" or c.events_dropped
        ]
        if len(session.connections) != expected or wrong or session.dropped:
            raise RuntimeError(
                f"the recorder's session holds {len(session.connections)} connections, expected "
                f"{expected}; {len(wrong)} not whole ({wrong[:3]}), {session.dropped} events dropped"
            )


# Counting -------------------------------------------------------------------------------------------


def environment(**extra: str) -> dict[str, str]:
    """What every process of the benchmark runs with: this checkout's asgispy, a fixed hash seed,
    and no bytecode written (a first run compiling what a second reads would count the difference)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", **extra)


def read_total(path: Path) -> int:
    """Callgrind's total over every thread: its ``totals:`` line (``summary:`` in older files)."""
    found: dict[str, int] = {}
    with path.open() as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("totals", "summary"):
                found[key] = int(value.split()[0])
    if not found:
        raise RuntimeError(f"{path}: no totals: or summary: line")
    return found.get("totals", found.get("summary", 0))


@contextmanager
def watchdog(process: subprocess.Popen[str], seconds: float) -> Iterator[None]:
    timer = threading.Timer(seconds, process.kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def run_once(
    variant: str, workload: str, warmup: int, count: int, workdir: Path, valgrind: str | None
) -> int | None:
    """One process of ``variant`` making ``warmup`` then ``count`` requests; with ``valgrind``
    (its path) under callgrind, returning the instructions counted. Without, only the protocol
    and the checks run (as the tests do)."""
    chosen = VARIANTS[variant]
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    recorder = LiveRecorder(run_dir) if chosen.live else None
    out = run_dir / "callgrind.out"
    # Streaming variants stream to the recorder; the others to a socket nobody listens on (never
    # to a dashboard the developer has open on the default one).
    address = recorder.address if recorder else f"unix:{run_dir / 'nobody.sock'}"
    command = [sys.executable, __file__, "--child", variant, workload, str(warmup), str(count)]
    if valgrind:
        command = [valgrind, "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}", *command]
    try:
        with (run_dir / "child.log").open("w") as log:
            process = subprocess.Popen(
                command,
                env=environment(ASGISPY_ADDRESS=address),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        with watchdog(process, RUN_TIMEOUT), process:
            assert process.stdin is not None and process.stdout is not None
            total = 0
            for n, _ in phases(warmup, count):
                total += n
                line = process.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError(
                        f"{variant}/{workload}: the app process said {line!r}:\n"
                        + (run_dir / "child.log").read_text()[-3000:]
                    )
                if recorder:
                    recorder.wait_for(total)
                process.stdin.write("go\n")
                process.stdin.flush()
            if process.wait() != 0:
                raise RuntimeError(f"{variant}/{workload}: the app process failed ({process.returncode})")
        if recorder:
            recorder.stop()
            recorder.check(WORKLOADS[workload], warmup + count)
        return read_total(out) if valgrind else None
    finally:
        if recorder and recorder.process.poll() is None:
            recorder.process.kill()
            recorder.process.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class Pair:
    """Instructions counted at ``count`` requests and at none, once per repeat."""

    count: int
    at_n: list[int]
    at_0: list[int]

    @property
    def per_request(self) -> list[float]:
        return [(n - z) / self.count for n, z in zip(self.at_n, self.at_0, strict=True)]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_request)

    @property
    def spread(self) -> float | None:
        """The repeats' range per request; None from one run, which shows no spread at all."""
        runs = self.per_request
        return max(runs) - min(runs) if len(runs) > 1 else None


def measure(
    variant: str, workload: str, warmup: int, count: int, repeat: int, workdir: Path, valgrind: str
) -> Pair:
    pair = Pair(count, [], [])
    for _ in range(repeat):
        for runs, n in ((pair.at_n, count), (pair.at_0, 0)):
            total = run_once(variant, workload, warmup, n, workdir, valgrind)
            assert total is not None
            runs.append(total)
    return pair


# Reporting ------------------------------------------------------------------------------------------

COLUMNS = f"{'variant':24}{'instr/request':>15}{'added':>12}{'x floor':>10}{'spread':>9}"


def figures(name: str, pair: Pair, rows: dict[str, Any]) -> dict[str, Any]:
    """One variant's figures, its cost added over bare, and that as a multiple of what the
    pass-through adds: what recording costs beyond merely seeing the messages (``rows`` holds
    the variants measured before it: bare and floor come first)."""
    bare = rows.get("bare", {}).get("per_request")
    added = pair.mean - bare if bare is not None and name != "bare" else None
    floor_added = rows.get("floor", {}).get("added_over_bare")
    multiple = added / floor_added if added is not None and floor_added else None
    row = {
        "title": VARIANTS[name].title,
        "requests": pair.count,
        "instructions_at_n": pair.at_n,
        "instructions_at_0": pair.at_0,
        "per_request": pair.mean,
        "spread": pair.spread,
        "added_over_bare": added,
        "multiple_of_floor": multiple,
    }
    print(
        f"{row['title']:24}{pair.mean:15,.0f}"
        + (f"{added:+12,.0f}" if added is not None else f"{'':12}")
        + (f"{multiple:9.1f}x" if multiple is not None else f"{'':10}")
        + (f"{pair.spread:9,.0f}" if pair.spread is not None else ""),
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, help=f"requests measured (default {REQUESTS:,})")
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"requests before (default {WARMUP:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REQUESTS} requests measured")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    parser.add_argument("--workload", default=",".join(WORKLOADS), help="comma-separated workloads")
    parser.add_argument("--repeat", type=int, default=1, help="run each pair this many times")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--child", nargs=4, metavar=("VARIANT", "WORKLOAD", "WARMUP", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))
        return

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit(INSTALL_HINT)
    variants = args.only.split(",")
    workloads = args.workload.split(",")
    unknown = [v for v in variants if v not in VARIANTS] + [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (variants: {', '.join(VARIANTS)}; "
                     f"workloads: {', '.join(WORKLOADS)})")  # fmt: skip
    count = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    if args.warmup < 1 or count < 1 or args.repeat < 1:
        parser.error("--warmup, --requests and --repeat must be at least 1")
    print(
        f"asgispy instructions per request, counted by callgrind ({valgrind}); {bench_overhead.machine()}",
        flush=True,
    )
    started = time.monotonic()
    results: dict[str, Any] = {"requests": count, "warmup": args.warmup, "repeat": args.repeat}
    workdir = Path(tempfile.mkdtemp(prefix="asgispy-bi-"))
    try:
        for workload in workloads:
            print(f"\n== {WORKLOADS[workload].title}: {count:,} requests after {args.warmup:,} ==\n{COLUMNS}")
            rows: dict[str, Any] = {}
            results[workload] = rows
            for variant in variants:
                pair = measure(variant, workload, args.warmup, count, args.repeat, workdir, valgrind)
                rows[variant] = figures(variant, pair, rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["seconds"] = time.monotonic() - started
    print(f"\n({results['seconds']:.0f} s in all)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
