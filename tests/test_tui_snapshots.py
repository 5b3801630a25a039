"""Snapshots of the dashboard's main screens over the pinned fixture session.

Update them after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from tests.test_tui_sessions import fixture_store, utc_zone

SIZE = (140, 44)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with utc_zone():
        yield fixture_store(tmp_path)


def dashboard(store: Store) -> Dashboard:
    return Dashboard(store, source="file fixture.json")


def select(path: str, method: str | None = "GET") -> Any:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        conn = next(c for c in app.store if c.path == path and (c.method == method))
        assert app.connections.select_id(conn.id)
        await pilot.pause()

    return run_before


def test_main_screen(snap_compare: Any, store: Store) -> None:
    assert snap_compare(dashboard(store), terminal_size=SIZE)


def test_json_body(snap_compare: Any, store: Store) -> None:
    assert snap_compare(dashboard(store), terminal_size=SIZE, run_before=select("/api/items", "POST"))


def test_error_traceback(snap_compare: Any, store: Store) -> None:
    assert snap_compare(dashboard(store), terminal_size=SIZE, run_before=select("/boom"))


def test_websocket_conversation(snap_compare: Any, store: Store) -> None:
    async def run_before(pilot: Any) -> None:
        await select("/ws/chat", None)(pilot)  # type: ignore[arg-type]
        await pilot.press("enter", "down", "down", "down", "down", "enter")

    assert snap_compare(dashboard(store), terminal_size=SIZE, run_before=run_before)


def test_filter_in_use(snap_compare: Any, store: Store) -> None:
    assert snap_compare(dashboard(store), terminal_size=SIZE, press=["slash", *"status:>=400", "wait:300"])


def test_help(snap_compare: Any, store: Store) -> None:
    assert snap_compare(dashboard(store), terminal_size=SIZE, press=["question_mark"])
