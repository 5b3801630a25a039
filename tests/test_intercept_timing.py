"""A connection held at a breakpoint is not a slow app: on a real uvicorn, a request is held for a
known time, and every timing view (filter, rows, timeline, HAR) counts that time as asgispy's."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from asgispy import Spy
from asgispy.exports.har import har_entry
from asgispy.filter.grammar import parse
from asgispy.intercept.breakpoints import Decision
from asgispy.model.connection import Connection
from asgispy.store.load import session_from_document
from asgispy.tui.rows import HELD_MARK, row_text
from asgispy.tui.timeline import timeline_text
from tests.servers import serve
from tests.test_intercept_breakpoints import APP, Viewer

pytestmark = pytest.mark.timeout(60)

HOLD = 0.6


def held_connection() -> Connection:
    spy = Spy(APP, intercept=True, address=False)
    with serve(spy) as server, ThreadPoolExecutor(2) as pool:
        viewer = Viewer(spy)
        viewer.points.add("path:/slow-looking")
        asking = pool.submit(httpx.get, server.url("/slow-looking"), timeout=20)
        held = viewer.wait_held()
        time.sleep(HOLD)
        viewer.points.decide(held.id, Decision("resume"))
        assert asking.result(10).status_code == 200
        assert httpx.get(server.url("/fast"), timeout=10).status_code == 200
    session = session_from_document(spy.document())
    return next(c for c in session.connections if c.path == "/slow-looking")


def test_every_timing_view_leaves_the_hold_out_of_the_apps_time() -> None:
    conn = held_connection()
    assert conn.held >= HOLD
    assert conn.ttfb is not None and conn.duration is not None and conn.ttfb >= HOLD
    app_ttfb = conn.app_time(conn.ttfb)
    assert app_ttfb is not None and app_ttfb < conn.ttfb - HOLD + 0.05
    assert conn.app_time(conn.duration) == pytest.approx(conn.duration - conn.held)

    # the filter: not slow, but held
    assert not parse("duration:>300ms")(conn)
    assert not parse("ttfb:>300ms")(conn)
    assert parse("held:>300ms")(conn)
    assert not parse("held:>5s")(conn)

    # the list: the app's time, marked; the timeline: the hold as a lane of its own
    assert HELD_MARK in row_text(conn, 140)
    drawn = timeline_text(conn, 100).plain
    assert "held by asgispy" in drawn and "(app " in drawn
    assert any(line.startswith("held") and "‖" in line for line in drawn.splitlines())

    # HAR: the hold is "blocked", the server's "wait" is the app's alone; the total holds both
    entry = har_entry(conn)
    assert entry is not None
    timings = entry["timings"]
    assert timings["blocked"] == pytest.approx(conn.held * 1000, abs=1)
    assert timings["wait"] < 300
    assert timings["blocked"] + timings["wait"] <= entry["time"] <= conn.duration * 1000 + 0.01


def test_a_connection_never_held_reads_as_before() -> None:
    spy = Spy(APP, address=False)
    with serve(spy) as server:
        assert httpx.get(server.url("/plain"), timeout=10).status_code == 200
    conn = next(c for c in session_from_document(spy.document()).connections if c.path == "/plain")
    assert conn.held == 0.0 and conn.app_time(conn.ttfb) == conn.ttfb
    assert HELD_MARK not in row_text(conn, 140)
    assert "held" not in timeline_text(conn, 100).plain
    entry = har_entry(conn)
    assert entry is not None and entry["timings"]["blocked"] == -1
