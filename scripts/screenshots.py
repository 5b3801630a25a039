"""Make the dashboard screenshots under screenshots/ from the built-in demo.

    python scripts/screenshots.py [--out screenshots] [--size 150x46] [--only stats]

Runs ``asgispy demo`` headless (a real uvicorn child, the real traffic, one round), then
drives the dashboard with Pilot and saves SVGs: the main screen, an event tree with a JSON
body, a WebSocket conversation, an error with its traceback, the filter in use, the export of
what it shows, the timeline of a stream held back, server-sent events, and a request held at a
breakpoint, edited before the app sees it, and the statistics screen. Then records a small
app that breaks the ASGI protocol under a real uvicorn and saves the violation as the dashboard
shows it, a FastAPI app in layers mode: a streamed response held back by one middleware and
compressed by GZip, and ``asgispy attach`` with the demo served by Granian, Hypercorn and
gunicorn at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asgispy.cli.demo import demo_dashboard
from asgispy.model.connection import Connection
from asgispy.tui.app import Dashboard


async def until(condition: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the demo did not produce the expected traffic in time")
        await asyncio.sleep(0.1)


def pick(app: Dashboard, test: Callable[[Connection], bool]) -> Connection:
    return next(c for c in reversed(list(app.store)) if test(c) and c.outcome != "open")


async def shoot(out: Path, size: tuple[int, int]) -> list[Path]:
    from asgispy.cli.demo import _free_port

    port = _free_port()
    app = demo_dashboard(port=port, rounds=2, delay=0.1, refresh_interval=0.05)
    written: list[Path] = []

    def save(name: str) -> None:
        written.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

    async with app.run_test(size=size) as pilot:
        await until(lambda: "demo traffic done" in "\n".join(line.text for line in app.log_panel.lines))
        await pilot.pause(0.3)
        app.log_panel.display = False

        # The main screen: the list, and the events of a JSON API call.
        listing = app.connections
        assert listing.select_id(
            pick(app, lambda c: c.method == "GET" and c.path == "/api/items" and c.status == 200).id
        )
        await pilot.pause(0.2)
        save("main")

        # An event tree with a JSON body: a POST that created an item.
        assert listing.select_id(pick(app, lambda c: c.method == "POST" and c.status == 201).id)
        await pilot.press("enter")
        await pilot.pause(0.2)
        save("json-body")

        # A WebSocket conversation, one frame opened.
        listing.focus()
        assert listing.select_id(pick(app, lambda c: c.type == "websocket" and len(c.events) > 6).id)
        await pilot.press("enter", "down", "down", "down", "down", "down", "enter")
        await pilot.pause(0.2)
        save("websocket")

        # An error with its traceback, the log panel showing the app's own output of it.
        app.log_panel.display = True
        listing.focus()
        assert listing.select_id(pick(app, lambda c: c.outcome == "exception").id)
        await pilot.press("enter")
        await pilot.pause(0.2)
        save("error")
        app.log_panel.display = False

        # The filter in use.
        listing.focus()
        await pilot.press("slash", *"status:>=400 or error")
        await pilot.pause(0.5)
        save("filter")
        await pilot.press("escape")

        # The export of what the filter shows, the format following the name typed.
        await pilot.press("e", "ctrl+u", *"errors.har")
        await pilot.pause(0.3)
        save("export")
        await pilot.press("escape")
        app.action_clear_filter()
        await pilot.pause(0.5)

        # A stream held back and released at once: the timeline and the JSON lines.
        listing.focus()
        assert listing.select_id(pick(app, lambda c: c.path == "/api/items/export").id)
        await pilot.pause(0.2)
        save("timeline")

        # Server-sent events, parsed as a browser would dispatch them.
        assert listing.select_id(pick(app, lambda c: c.path == "/events").id)
        await pilot.pause(0.2)
        save("sse")

        # A request held at a breakpoint, being edited before the app sees it.
        await shoot_held(app, pilot, port, save)
    written.append(await shoot_stats(out, size))
    written.append(await shoot_violation(out, size))
    written.append(await shoot_layers(out, size))
    written.append(await shoot_servers(out, size))
    return written


async def shoot_held(app: Dashboard, pilot: Any, port: int, save: Callable[[str], None]) -> None:
    import httpx
    from textual.widgets import TextArea

    from asgispy.tui.editor import EditScreen

    app.intercepting.desk.toggle("method:POST path:/api/items")
    await until(lambda: any((p.control or {}).get("breakpoints") for p in app.store.producers.values()))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30) as client:
        asking = asyncio.create_task(client.post("/api/items", json={"name": "kettle", "price": 25}))
        await until(lambda: bool(app.store.held))
        await pilot.pause(0.3)
        app.connections.focus()
        await pilot.press("h")
        await until(lambda: isinstance(app.screen, EditScreen))
        editor = app.screen.query_one(TextArea)
        editor.text = re.sub(r'"price": ?25', '"price": 19.5', editor.text)
        editor.move_cursor((editor.document.line_count - 1, 0))
        await pilot.pause(0.3)
        save("held")
        await pilot.press("ctrl+s")
        answer = await asking
        assert answer.json()["price"] == 19.5, answer.text
    app.intercepting.desk.toggle("method:POST path:/api/items")


async def shoot_stats(out: Path, size: tuple[int, int]) -> Path:
    """The statistics screen (S) over two rounds of the demo's traffic, the cursor on the route
    with the widest spread of latencies among those with a few requests."""
    from asgispy.cli.demo import _free_port
    from asgispy.tui.statsscreen import StatsScreen

    app = demo_dashboard(port=_free_port(), rounds=2, delay=0.1, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await until(lambda: "demo traffic done" in "\n".join(line.text for line in app.log_panel.lines))
        app.log_panel.display = False
        await pilot.pause(0.3)
        await pilot.press("S")
        await until(lambda: isinstance(app.screen, StatsScreen))
        screen = app.screen
        assert isinstance(screen, StatsScreen)
        await pilot.pause(0.3)
        wide = [g for g in screen.groups if len(g.durations) >= 4]
        pick_ = max(wide, key=lambda g: (g.duration.max or 0) - (g.duration.p50 or 0))
        await pilot.press(*["down"] * screen.groups.index(pick_))
        await pilot.pause(0.5)
        return Path(app.save_screenshot("stats.svg", str(out)))


#: The demo app wrapped in Spy, as a user's module would be, for servers other than uvicorn.
SPIED_DEMO = (
    "from asgispy import Spy\nfrom asgispy.demo.app import app as demo\n\napp = Spy(demo, name='shop:app')\n"
)
#: Servers the attach screenshot runs at once, each streaming to the same dashboard.
SERVERS = {
    "granian": "granian --interface asgi --host 127.0.0.1 --port {port} --workers 2 shop:app",
    "hypercorn": "hypercorn -b 127.0.0.1:{port} --log-level warning shop:app",
    "gunicorn": "gunicorn -k uvicorn.workers.UvicornWorker -w 2 -b 127.0.0.1:{port} shop:app",
}


async def shoot_servers(out: Path, size: tuple[int, int]) -> Path:
    """``asgispy attach`` with Granian, Hypercorn and gunicorn serving the demo under Spy, every
    worker of each streaming to the one dashboard."""
    import os
    import signal
    import socket
    import subprocess
    import tempfile

    import httpx

    from asgispy.cli import dashboard

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    workdir = Path(tempfile.mkdtemp(prefix="asgispy-shot-"))
    (workdir / "shop.py").write_text(SPIED_DEMO)
    address = f"unix:{workdir}/attach.sock"
    parser = argparse.ArgumentParser()
    dashboard.add_parser(parser.add_subparsers(dest="command"), "attach", "attach")
    app = dashboard.attached_dashboard(
        parser.parse_args(["attach", "--listen", address]), refresh_interval=0.05
    )
    env = dict(os.environ, ASGISPY_ADDRESS=address, PYTHONWARNINGS="ignore::DeprecationWarning")
    env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(Path(__file__).resolve().parent.parent)])
    children: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    async with app.run_test(size=size) as pilot:
        await until(lambda: app.status.flags.listening.startswith("unix:"))
        try:
            for name, command in SERVERS.items():
                port = free_port()
                argv = [sys.executable, "-m", *command.format(port=port).split()]
                child = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                children[name] = (child, port)
            await until(lambda: len(app.store.producers) == 5)
            async with httpx.AsyncClient(timeout=5) as client:
                for name, (_, port) in children.items():
                    base = f"http://127.0.0.1:{port}"
                    await client.get(f"{base}/api/items?via={name}")
                    await client.post(f"{base}/api/items", json={"name": f"from {name}", "price": 3})
                    await client.get(f"{base}/api/items/1?via={name}")
            await until(lambda: sum(c.type == "http" and c.outcome != "open" for c in app.store) == 9)
            granian = next(c for c in app.store if c.target == "/api/items?via=granian")
            assert app.connections.select_id(granian.id)
            await pilot.press("enter")
            await pilot.pause(0.5)
            return Path(app.save_screenshot("servers.svg", str(out)))
        finally:
            for child, _ in children.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGINT)
            for child, _ in children.values():
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


async def shoot_layers(out: Path, size: tuple[int, int]) -> Path:
    """A streamed response held back by one middleware and compressed by GZip, layer by layer."""
    import httpx

    import asgispy
    from asgispy.store.store import Store
    from tests.apps.layered import build
    from tests.servers import serve

    spy = asgispy.Spy(build(), address=False, layers=True, name="shop.api:app")
    with serve(spy) as server, httpx.Client(timeout=5) as client:
        client.get(server.url("/held"), headers={"accept-encoding": "gzip", "origin": "http://example.org"})
        await asyncio.sleep(0.3)
    store = Store()
    store.add_session(asgispy.load(spy.export(out / "layers.json")))
    (out / "layers.json").unlink()
    app = Dashboard(store, source="shop.api:app --layers", refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        held = next(c for c in store if c.path == "/held")
        assert app.connections.select_id(held.id)
        app.timeline.display = False
        await pilot.press("enter")
        await pilot.pause(0.2)
        tree = app.events_tree
        for node in tree.root.children:
            label = str(node.label)
            if label.startswith("messages") or "body" in label:
                node.collapse()
        await pilot.pause(0.2)
        return Path(app.save_screenshot("layers.svg", str(out)))


async def broken_app(scope: Any, receive: Any, send: Any) -> None:
    """An app with two classic mistakes: a Content-Length that lies, and a body after the end."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/report":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        await send({"type": "http.response.body", "body": b'{"rows": 3}'})
    else:
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"done"})
        await send({"type": "http.response.body", "body": b"and one more thing"})


async def shoot_violation(out: Path, size: tuple[int, int]) -> Path:
    import httpx

    import asgispy
    from asgispy.store.store import Store
    from tests.servers import serve

    spy = asgispy.Spy(broken_app, address=False, name="shop.reports:app")
    with serve(spy) as server, httpx.Client(timeout=5) as client:
        for path in ("/report", "/summary"):
            with contextlib.suppress(httpx.HTTPError):
                client.get(server.url(path))
        await asyncio.sleep(0.2)
    store = Store()
    store.add_session(asgispy.load(spy.export(out / "violation.json")))
    (out / "violation.json").unlink()
    app = Dashboard(store, source="shop.reports:app", refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        report = next(c for c in store if c.path == "/report")
        assert app.connections.select_id(report.id)
        await pilot.press("enter")
        await pilot.pause(0.2)
        tree = app.events_tree
        problem = next(n for n in tree.root.children if "problems" in str(n.label))
        for child in problem.children:
            child.expand()
        await pilot.pause(0.2)
        return Path(app.save_screenshot("violation.svg", str(out)))


async def _one(shot: Any) -> list[Path]:
    return [await shot]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="screenshots", help="folder for the SVGs (default: screenshots)")
    parser.add_argument("--size", default="150x46", help="terminal size, COLSxROWS (default: 150x46)")
    parser.add_argument("--only", choices=("stats",), help="make only this screenshot")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shots = shoot(out, (cols, rows)) if args.only is None else _one(shoot_stats(out, (cols, rows)))
    for path in asyncio.run(shots):
        print(path)


if __name__ == "__main__":
    main()
