"""The screenshot of a slow request explained by what it did inside (screenshots/inside.svg).

    python scripts/screenshot_inside.py [--out screenshots] [--size 150x46]

A checkout endpoint under ``Spy(app, inside=True)`` on a real uvicorn calls a payment service
that answers 503 after 800 ms (also served on loopback), logs a warning, and looks up each item
of the cart with a query of its own (an N+1, SQLAlchemy on SQLite); the dashboard opens the
recording on that request, its event tree and timeline showing why it took so long.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import asgispy
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from tests.servers import serve

log = logging.getLogger("shop.checkout")
log.setLevel(logging.INFO)


async def payments(request: Request) -> PlainTextResponse:
    await asyncio.sleep(0.8)
    return PlainTextResponse("upstream busy", status_code=503, headers={"retry-after": "2"})


def shop(upstream: str, database: Path) -> Starlette:
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL)"))
        for i in range(1, 13):
            conn.execute(
                text("INSERT INTO item VALUES (:i, :n, :p)"), {"i": i, "n": f"item {i}", "p": i * 1.5}
            )

    def checkout(request: Request) -> JSONResponse:
        with engine.connect() as conn:
            total = sum(
                conn.execute(text("SELECT price FROM item WHERE id = :id"), {"id": i}).scalar_one()
                for i in range(1, 13)
            )
        answer = httpx.post(f"{upstream}/charge", json={"amount": total}, timeout=5)
        if answer.status_code >= 500:
            log.warning("payment service answered %d; order not placed", answer.status_code)
            return JSONResponse({"error": "payment unavailable"}, status_code=502)
        return JSONResponse({"total": total})

    return Starlette(routes=[Route("/checkout", checkout, methods=["POST"])])


async def shoot(out: Path, size: tuple[int, int]) -> Path:
    with tempfile.TemporaryDirectory() as workdir:
        with serve(Starlette(routes=[Route("/charge", payments, methods=["POST"])])) as upstream:
            spy = asgispy.Spy(
                shop(upstream.url("").rstrip("/"), Path(workdir) / "shop.db"),
                inside=True,
                address=False,
                name="shop.checkout:app",
            )
            with serve(spy) as server:
                await asyncio.to_thread(httpx.post, server.url("/checkout"), json={"cart": 12}, timeout=10)
            spy.close()
        session = asgispy.load(spy.export(Path(workdir) / "inside.json"))
    store = Store()
    store.add_session(session)
    app = Dashboard(store, source="shop.checkout:app", refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        checkout = next(c for c in store if c.path == "/checkout")
        assert app.connections.select_id(checkout.id)
        app.timeline.display = True
        await pilot.press("enter")
        await pilot.pause(0.3)
        tree = app.events_tree
        messages = next(n for n in tree.root.children if str(n.label).startswith("messages"))
        call = next(n for n in messages.children if str(n.label).startswith("→ call"))
        call.expand()
        for child in call.children:
            child.expand()
        await pilot.pause(0.2)
        tree.move_cursor(call)
        tree.scroll_to_node(call, animate=False)
        await pilot.pause(0.3)
        return Path(app.save_screenshot("inside.svg", str(out)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="screenshots", help="folder for the SVG (default: screenshots)")
    parser.add_argument("--size", default="150x46", help="terminal size, COLSxROWS (default: 150x46)")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(asyncio.run(shoot(out, (cols, rows))))


if __name__ == "__main__":
    main()
