"""The dashboard's statistics screen, driven with Pilot over a session from a real uvicorn, and fed
new connections the way the collector feeds them while it is open."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asgispy
from asgispy.model.connection import Connection
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from asgispy.tui.statsplots import LatencyPlot, TrafficPlot, count_ticks
from asgispy.tui.statsscreen import StatsScreen
from tests.stats_sessions import ORDER_IDS, rank, record, route_key
from tests.test_tui import live_pieces
from tests.test_tui_sessions import screen_text

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

SIZE = (130, 44)
ORDERS = "GET /orders/{order_id:int}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("tui-stats") / "s.json")


@pytest.fixture
def store(session: Path) -> Store:
    store = Store()
    store.add_session(asgispy.load(session))
    return store


def rows(screen: StatsScreen) -> list[list[str]]:
    grid = screen.table
    return [[str(cell) for cell in grid.get_row_at(i)] for i in range(grid.row_count)]


async def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def open_stats(app: Dashboard, pilot: Any) -> StatsScreen:
    await pilot.press("S")
    await until(lambda: isinstance(app.screen, StatsScreen), "S did not open the statistics screen")
    await pilot.pause(0.1)
    screen = app.screen
    assert isinstance(screen, StatsScreen)
    return screen


async def test_a_row_per_route_and_the_plots_of_the_one_selected(store: Store) -> None:
    conns = [c for c in store if c.type != "lifespan"]
    keys = {route_key(c) for c in conns}
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: "S Stats" in screen_text(app), "the footer does not show the key")
        screen = await open_stats(app, pilot)
        table = rows(screen)
        assert {row[0] for row in table} == keys
        for row in table:
            members = [c for c in conns if route_key(c) == row[0]]
            assert int(row[1]) == len(members)
            assert int(row[2]) == sum(c.outcome == "exception" or (c.status or 0) >= 500 for c in members)
            assert int(row[3]) == sum(400 <= (c.status or 0) < 500 for c in members)
        orders = next(row for row in table if row[0] == ORDERS)
        durations = [c.duration for c in conns if route_key(c) == ORDERS and c.duration is not None]
        assert float(orders[4]) == pytest.approx(rank(durations, 50) * 1000, rel=0.01)  # type: ignore[operator]
        # Every figure the command's table has, drawn on screen (the last column included).
        headings = [str(c.label) for c in screen.table.ordered_columns]
        assert headings[-3:] == ["ttfb p99", "req avg", "resp avg"]
        text = screen_text(app)
        assert all(heading in text for heading in headings)

        # The busiest route is selected first: its histogram, and the traffic over time.
        latency, traffic = screen.query_one(LatencyPlot), screen.query_one(TrafficPlot)
        assert table[0][0] == ORDERS and screen.selected == ORDERS
        assert latency.title == f"{ORDERS}: {len(durations)} durations, ms"
        assert traffic.title.startswith(f"{len(conns)} requests, 2 errors, per ")
        text = screen_text(app)
        assert latency.title in text and traffic.title in text and "statistics" in text
        assert not re.search(r"\d\.\d+┤", text), "a count axis with a fractional tick"
        assert re.search(r"(?<![\d.])1┤", text), "the count axes have no whole-number ticks"

        # The cursor picks another route for the histogram.
        await pilot.press("down")
        await until(lambda: screen.selected == table[1][0], "the cursor did not select the next route")
        assert latency.title.startswith(f"{table[1][0]}: ")
        screen.recompute()  # as new traffic would: the cursor stays on the route picked
        await pilot.pause(0.2)
        assert screen.selected == table[1][0] and latency.title.startswith(f"{table[1][0]}: ")
        assert screen.table.cursor_row == 1
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, StatsScreen), "Esc did not close the screen")


async def test_only_what_the_filter_shows_is_counted(store: Store) -> None:
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"status:>=400", "escape")
        await until(lambda: len(app.connections.ids) == 4, "the filter did not apply")
        screen = await open_stats(app, pilot)
        assert {row[0]: int(row[1]) for row in rows(screen)} == {ORDERS: 2, "GET /boom": 2}
        assert "filter: status:>=400" in screen_text(app)
        # S again keeps the one screen; / goes back to the filter, and S shows what it shows now
        depth = len(app.screen_stack)
        await pilot.press("S")
        await pilot.pause(0.1)
        assert len(app.screen_stack) == depth
        await pilot.press("slash")
        await until(lambda: not isinstance(app.screen, StatsScreen), "/ did not go back to the filter")
        await pilot.press(*" path:/boom", "escape")
        await until(lambda: len(app.connections.ids) == 2, "the narrower filter did not apply")
        screen = await open_stats(app, pilot)
        assert {row[0]: int(row[1]) for row in rows(screen)} == {"GET /boom": 2}


async def test_grouping_switches_with_g(store: Store) -> None:
    paths = {f"{c.method or 'WS'} {c.path}" for c in store if c.type != "lifespan"}
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_stats(app, pilot)
        await pilot.press("g")
        await pilot.pause(0.1)
        assert screen.by == "path" and str(screen.table.ordered_columns[0].label) == "path"
        assert {row[0] for row in rows(screen)} == paths
        await pilot.press("g")
        await pilot.pause(0.1)
        assert screen.by == "endpoint" and all(row[0].startswith("tests.") for row in rows(screen))


def copy_of(conn: Connection, id: str, started: float) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    opening, events, end = live_pieces(conn)
    opening["id"], opening["started"] = id, started
    return opening, events, end


async def test_the_table_and_the_plots_follow_new_traffic(store: Store) -> None:
    conns = [c for c in store if c.type != "lifespan"]
    order = next(c for c in conns if route_key(c) == ORDERS and c.status == 200)
    boom = next(c for c in conns if c.path == "/boom")
    later = max(c.started for c in conns) + 30  # half a minute on: the series grows
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_stats(app, pilot)
        latency, traffic = screen.query_one(LatencyPlot), screen.query_one(TrafficPlot)
        drawn = screen_text(app)
        before_traffic = traffic.title
        for n, source in enumerate([order, order, order, boom]):
            opening, events, end = copy_of(source, f"live-{n}", later + n)
            store.open(opening)
            for event in events:
                store.event(opening["id"], event)
            store.close(opening["id"], end)

        def count(key: str) -> int:
            return next((int(row[1]) for row in rows(screen) if row[0] == key), 0)

        await until(lambda: count(ORDERS) == len(ORDER_IDS) + 3, "the table did not follow the traffic")
        assert count("GET /boom") == 3
        assert latency.title == f"{ORDERS}: {len(ORDER_IDS) + 3} durations, ms"
        assert traffic.title != before_traffic
        assert traffic.title.startswith(f"{len(conns) + 4} requests, 3 errors, per ")
        await pilot.pause(0.1)
        assert screen_text(app) != drawn and traffic.title in screen_text(app)


@pytest.mark.parametrize(
    ("top", "ticks"),
    [(0, [0]), (1, [0, 1]), (6, [0, 1, 2, 3, 4, 5, 6]), (7, [0, 2, 4, 6, 8]), (15, [0, 5, 10, 15])],
)
def test_count_axes_tick_whole_numbers(top: int, ticks: list[int]) -> None:
    assert count_ticks(top) == ticks
    for big in (99, 140, 1000, 12345):
        steps = {b - a for a, b in itertools.pairwise(count_ticks(big))}
        assert len(steps) == 1 and count_ticks(big)[-1] >= big and len(count_ticks(big)) <= 8
