"""Make the dashboard screenshots under screenshots/ from the built-in demo.

    python scripts/screenshots.py [--out screenshots] [--size 150x46]

Runs ``asgispy demo`` headless (a real uvicorn child, the real traffic, one round), then
drives the dashboard with Pilot and saves SVGs: the main screen, an event tree with a JSON
body, a WebSocket conversation, an error with its traceback, and the filter in use.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asgispy.cli.demo import demo_dashboard
from asgispy.store.model import Connection
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
    app = demo_dashboard(rounds=2, delay=0.1, refresh_interval=0.05)
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
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="screenshots", help="folder for the SVGs (default: screenshots)")
    parser.add_argument("--size", default="150x46", help="terminal size, COLSxROWS (default: 150x46)")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(out, (cols, rows))):
        print(path)


if __name__ == "__main__":
    main()
