"""Dashboard responsiveness under load: key-press latency while 1,000 requests/s stream in,
and with 50,000 connections held; plus memory.

    python benchmarks/bench_dashboard.py            # 60 s of traffic, as in the goal
    python benchmarks/bench_dashboard.py --quick    # 10 s, for a quick look
    python benchmarks/bench_dashboard.py --datatable  # also time Textual's DataTable on 50,000 rows

The dashboard runs headless (``App.run_test``) at 160x48. The traffic is real recorded
connections (a Starlette app under Spy, driven by TestClient) replayed with fresh ids: each
request is an open, three events and a close, each parsed from JSON as the collector does,
fed into the store from the dashboard's own event loop (where the collector runs). A key
press is timed from sending the key to the screen having processed it (Pilot's press),
which is an upper bound of what a person waits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asgispy.store.store import Store
from asgispy.tui.app import Dashboard

SIZE = (160, 48)


class GCPauses:
    """The longest pause of Python's cyclic garbage collector, per generation."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            generation = info["generation"]
            self.count[generation] += 1
            self.longest[generation] = max(self.longest[generation], time.perf_counter() - self._start)

    def report(self) -> str:
        return ", ".join(
            f"gen{g}: {n} runs, longest {t * 1000:.0f} ms"
            for g, (n, t) in enumerate(zip(self.count, self.longest, strict=True))
        )

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def recorded_requests() -> list[tuple[bytes, list[bytes], bytes]]:
    """Real recorded HTTP connections as wire-like JSON pieces: opening, events, ending."""
    from tests.test_tui_sessions import fixture_session

    with tempfile.TemporaryDirectory() as tmp:
        session = fixture_session(Path(tmp))
    pieces = []
    for conn in session:
        if conn.type != "http" or conn.outcome != "completed":
            continue
        doc = conn.document()
        events = doc.pop("events")
        end = {k: doc[k] for k in ("outcome", "duration", "error", "handler", "notes", "events_dropped")}
        opening = {**doc, "events": [], "outcome": "open", "duration": None, "handler": None}
        pieces.append((orjson.dumps(opening), [orjson.dumps(e) for e in events], orjson.dumps(end)))
    return pieces


class Feeder:
    """Feeds ``rate`` requests per second into the store, in 10 ms slices."""

    def __init__(self, store: Store, rate: int) -> None:
        self.store = store
        self.rate = rate
        self.pieces = recorded_requests()
        self.sent = 0
        self.behind = 0.0

    def one(self) -> None:
        opening, events, end = self.pieces[self.sent % len(self.pieces)]
        self.sent += 1
        doc = orjson.loads(opening)
        id = doc["id"] = f"bench-{self.sent}"
        doc["started"] = time.time()
        store = self.store
        store.open(doc)
        for event in events:
            store.event(id, orjson.loads(event))
        store.close(id, orjson.loads(end))

    async def run(self, seconds: float) -> None:
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * self.rate)
            while self.sent < due:
                self.one()
            await asyncio.sleep(0.01)
        self.behind = max(0.0, seconds * self.rate - self.sent)


class KeyTimer:
    """Times a key from being sent to its effect being drawn.

    Pilot's ``press`` also waits for animations and idle frames, which adds ~100 ms of its
    own whatever the app does; here the key goes to the driver as a terminal's would, the
    moment the app's state changes is caught, and then the first screen update after it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.draws: list[float] = []
        screen = app.screen
        original = screen._compositor_refresh

        def timed() -> None:
            original()
            self.draws.append(time.perf_counter())

        screen._compositor_refresh = timed

    async def press(self, key: str, state: Any) -> float:
        from textual import events

        before = state()
        t0 = time.perf_counter()
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(self.app)
        self.app._driver.send_message(event)
        deadline = t0 + 5
        while state() == before and time.perf_counter() < deadline:
            await asyncio.sleep(0)
        handled = time.perf_counter()
        if state() == before:
            print(f"  (key {key!r} changed nothing within 5 s)")
        while time.perf_counter() < deadline:
            if self.draws and self.draws[-1] >= handled:
                break
            await asyncio.sleep(0.001)
        return time.perf_counter() - t0


async def press_latencies(pilot: Any, keys: list[str], spacing: float, state: Any = None) -> list[float]:
    app = pilot.app
    timer = getattr(app, "_bench_timer", None)
    if timer is None or timer.app.screen is not app.screen:
        timer = app._bench_timer = KeyTimer(app)
    if state is None:

        def state() -> Any:
            return (app.connections.cursor, app.focused, app.events_tree.cursor_line)

    times = []
    for key in keys:
        times.append(await timer.press(key, state))
        await asyncio.sleep(spacing)
    return times


def summary(label: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"{label:<44} n={len(ms):<4} median {statistics.median(ms):6.1f} ms   p95 {p95:6.1f} ms   "
        f"max {ms[-1]:6.1f} ms"
    )


async def streaming(seconds: float, rate: int) -> None:
    store = Store()
    app = Dashboard(store)
    feeder = Feeder(store, rate)
    pauses = GCPauses()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        feeding = asyncio.create_task(feeder.run(seconds))
        listing = app.connections

        def state() -> Any:
            # While following, the cursor moves by itself: only what a key changes counts.
            return (listing.follow, -1 if listing.follow else listing.cursor)

        await asyncio.sleep(0.5)  # keys move the cursor once there are rows
        keys = []
        while not feeding.done():
            keys.append(await press_latencies(pilot, ["f", "up", "up", "down", "f"], 0.2, state))
        await feeding
        await pilot.pause(0.3)
        flat = [t for batch in keys for t in batch]
        shown = len(app.connections.ids)
    got = feeder.sent / seconds
    print(
        f"streaming {rate}/s for {seconds:.0f} s: {feeder.sent:,} requests fed ({got:,.0f}/s achieved), "
        f"{store.events_total:,} events, {shown:,} rows shown"
    )
    print(summary("key press while streaming", flat))
    print(f"  garbage collector: {pauses.report()}")
    print(
        f"  peak RSS {peak_rss_mib():,.0f} MiB (Python, Textual, the store at its 50,000 bound, the screen)"
    )
    pauses.close()


async def holding(count: int) -> None:
    gc.collect()
    before = rss_mib()
    store = Store(max_connections=count)
    feeder = Feeder(store, 0)
    t0 = time.perf_counter()
    for _ in range(count):
        feeder.one()
    fill = time.perf_counter() - t0
    gc.collect()
    filled = rss_mib()
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        t0 = time.perf_counter()
        await pilot.pause()
        start = time.perf_counter() - t0
        moves = await press_latencies(pilot, ["up", "pageup", "home", "pagedown", "down", "end"] * 5, 0.02)
        t0 = time.perf_counter()
        app.connections.set_filter(None)
        rebuild = time.perf_counter() - t0
        from asgispy.filter.grammar import parse

        t0 = time.perf_counter()
        app.connections.set_filter(parse("status:>=400"))
        filtered = time.perf_counter() - t0
        shown = len(app.connections.ids)
        t0 = time.perf_counter()
        app.connections.set_filter(parse("kettle"))
        filtered_text = time.perf_counter() - t0
        app.connections.set_filter(None)
        await pilot.press("slash")
        field = app.query_one("#filter-input")
        typing = await press_latencies(pilot, list("method:POST"), 0.0, state=lambda: field.value)
        t0 = time.perf_counter()
        while len(app.connections.ids) == count and time.perf_counter() - t0 < 5:
            await asyncio.sleep(0.001)
        applied = time.perf_counter() - t0
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press("enter")
        tree_moves = await press_latencies(pilot, ["down", "down", "up", "down"] * 3, 0.02)
        with_app = rss_mib()
    print(
        f"holding {count:,} connections ({store.events_total:,} events): store filled in {fill:.1f} s, "
        f"memory {filled - before:,.0f} MiB for the store, {with_app - before:,.0f} MiB with the dashboard"
    )
    print(
        f"  first screen {start * 1000:.0f} ms; full list rebuild {rebuild * 1000:.0f} ms; "
        f"filter status:>=400 {filtered * 1000:.0f} ms ({shown:,} shown); "
        f"free text {filtered_text * 1000:.0f} ms"
    )
    print(summary("key press in the list", moves))
    print(summary("typing a filter (key echoed)", typing))
    print(f"  filter applied {applied * 1000:.0f} ms after the last key (includes a 120 ms typing debounce)")
    print(summary("key press in the event tree", tree_moves))
    print(f"  peak RSS {peak_rss_mib():,.0f} MiB")


async def datatable(count: int) -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    store = Store(max_connections=count)
    feeder = Feeder(store, 0)
    for _ in range(count):
        feeder.one()
    from asgispy.tui.rows import row_text

    class TableApp(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DataTable)
        table.add_columns("row")
        t0 = time.perf_counter()
        table.add_rows([row_text(c, 150)] for c in store)
        await pilot.pause()
        fill = time.perf_counter() - t0
        table.focus()
        keys = ["down", "pagedown", "up", "pageup"] * 8  # its home/end scroll rather than move
        moves = await press_latencies(pilot, keys, 0.02, state=lambda: table.cursor_row)
        t0 = time.perf_counter()
        for conn in list(store)[-100:]:
            table.update_cell_at((count - 1, 0), row_text(conn, 150))
        await pilot.pause()
        update = time.perf_counter() - t0
    print(
        f"DataTable with {count:,} rows: filled and drawn in {fill * 1000:.0f} ms, 100 cell updates "
        f"{update * 1000:.0f} ms"
    )
    print(summary("DataTable key press", moves))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 s of traffic instead of 60 s")
    parser.add_argument("--rate", type=int, default=1000, help="requests per second (default 1000)")
    parser.add_argument("--hold", type=int, default=50_000, help="connections held (default 50000)")
    parser.add_argument("--datatable", action="store_true", help="also measure DataTable on the same rows")
    parser.add_argument("--phase", choices=("holding", "streaming", "datatable"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "holding":
        asyncio.run(holding(args.hold))
    elif args.phase == "streaming":
        asyncio.run(streaming(10.0 if args.quick else 60.0, args.rate))
    elif args.phase == "datatable":
        asyncio.run(datatable(args.hold))
    else:
        # Each phase in a process of its own, so that memory figures are its own.
        import subprocess

        print(
            f"asgispy dashboard benchmark · Python {sys.version.split()[0]} · {os.cpu_count()} CPUs · {SIZE}"
        )
        phases = ["holding", "streaming"] + (["datatable"] if args.datatable else [])
        for phase in phases:
            argv = [
                sys.executable,
                __file__,
                "--phase",
                phase,
                "--hold",
                str(args.hold),
                "--rate",
                str(args.rate),
            ]
            subprocess.run(argv + (["--quick"] if args.quick else []), check=True)


if __name__ == "__main__":
    main()
