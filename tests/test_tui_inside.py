"""The dashboard shows what the app did inside a request: a real recording (uvicorn, a real
upstream, SQLAlchemy, logging) opened in the real Textual app; the event tree places each call,
log record and query among the messages and flags the N+1, the timeline draws the waterfall."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import asgispy
from asgispy import Spy
from asgispy.analysis.repeats import TIMES
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from tests.inside_apps import UPSTREAM, dispose, shop
from tests.servers import serve
from tests.test_tui_run import until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def recorded(tmp_path: Path) -> Store:
    with serve(UPSTREAM) as up:
        app = shop(up.url("").rstrip("/"), tmp_path / "shop.db")
        spy = Spy(app, inside=True, address=False)
        try:
            with serve(spy) as server:
                assert httpx.get(server.url("/books?n=2"), timeout=20).status_code == 200
                assert httpx.post(server.url("/orders?n=3"), timeout=20).status_code == 502
        finally:
            spy.close()
            asyncio.run(dispose(app))
    store = Store()
    store.add_session(asgispy.load(spy.export(tmp_path / "inside.json")))
    return store


async def test_the_tree_and_the_timeline_show_what_happened_inside(tmp_path: Path) -> None:
    store = await asyncio.to_thread(recorded, tmp_path)
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=(150, 50)) as pilot:
        books = next(c for c in store if c.path == "/books")
        app.connections.set_follow(False)
        assert app.connections.select_id(books.id)
        await until(lambda: app.events_tree.connection is books)
        tree = app.events_tree
        top = [str(n.label) for n in tree.root.children]
        repeated = next(n for n in tree.root.children if str(n.label).startswith("repeated work"))
        assert top.index(str(repeated.label)) < next(i for i, t in enumerate(top) if t.startswith("messages"))
        assert f"{TIMES}6" in str(repeated.children[0].label) and "N+1" in str(repeated.children[0].label)

        messages = next(n for n in tree.root.children if str(n.label).startswith("messages"))
        labels = [str(n.label) for n in messages.children]
        assert "· 9 inside" in str(messages.label)  # 6 queries, 2 calls, 1 log record
        assert sum(label.startswith("⛁ sql") for label in labels) == 6
        calls = [label for label in labels if label.startswith("→ call")]
        assert len(calls) == 2 and "(requests)" in calls[0] and "(httpx)" in calls[1]
        assert any(label.startswith("✎ log") and "listed 6 books for 2" in label for label in labels)
        # among the messages, in time order: the response comes after everything done inside
        assert labels[-1].startswith("← send") or labels[-2].startswith("← send")
        assert (
            max(i for i, label in enumerate(labels) if not label.startswith(("→ recv", "← send")))
            < len(labels) - 1
        )

        call = next(n for n in messages.children if str(n.label).startswith("→ call"))
        parts = [str(n.label) for n in call.children]
        assert parts[0].startswith("request GET http://127.0.0.1:") and parts[1].startswith("response 200")

        app.timeline.display = True
        await pilot.pause(0.2)
        drawn = str(app.timeline.render())
        assert f"sql {TIMES}6" in drawn and "→ local" in drawn and "▬" in drawn

        orders = next(c for c in store if c.path == "/orders")
        assert app.connections.select_id(orders.id)
        await until(lambda: app.events_tree.connection is orders)
        messages = next(n for n in tree.root.children if str(n.label).startswith("messages"))
        failing = next(str(n.label) for n in messages.children if str(n.label).startswith("→ call"))
        assert "POST" in failing and " 503 " in failing
        await pilot.pause(0.2)
        assert "log" in str(app.timeline.render())  # the WARNING's mark
