"""The dashboard's timing, stream and protocol views, driven with Pilot over a session recorded
from a real uvicorn (the raw app of tests/test_model_timing.py: a held-back stream, server-sent events,
JSON lines, a slow upload, a WebSocket conversation, a Content-Length mistake)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.sync.client

import asgispy
from asgispy import Spy
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from asgispy.tui.connlist import ListHeader
from asgispy.tui.timeline import timeline_text
from tests.servers import UVICORN_H11, serve
from tests.test_model_timing import HOLD, TIMEOUT, app, loaded
from tests.test_tui import find, shows, tree_text

SIZE = (150, 50)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def session_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spy = Spy(app, address=False)
    tmp = tmp_path_factory.mktemp("timing")
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url("/held"))
        client.get(server.url("/sse"))
        client.get(server.url("/ndjson"))

        def chunks() -> Iterator[bytes]:
            for piece in (b"a" * 100, b"b" * 100, b"c" * 100):
                yield piece
                time.sleep(HOLD / 2)

        client.post(server.url("/upload"), content=chunks())
        with websockets.sync.client.connect(server.ws_url("/ws"), open_timeout=TIMEOUT) as ws:
            ws.send("hi")
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {"echo": "hi"}
            ws.recv(timeout=TIMEOUT)
            ws.send("bye")
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                ws.recv(timeout=TIMEOUT)
        with pytest.raises(httpx.HTTPError):
            client.get(server.url("/wrong-length"))
        loaded(spy, tmp)  # waits for every request to end
    return spy.export(tmp / "timing.json")


@pytest.fixture
def store(session_path: Path) -> Store:
    store = Store()
    store.add_session(asgispy.load(session_path))
    return store


def pick(app_: Dashboard, path: str) -> None:
    conn = next(c for c in app_.store if c.path == path)
    assert app_.connections.select_id(conn.id)


async def test_a_protocol_mistake_is_marked_in_the_list_the_tree_and_the_status_bar(store: Store) -> None:
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        await shows(app_, "breaking ASGI rules")
        status = str(app_.status.text())
        assert "✖ 1 breaking ASGI rules" in status
        pick(app_, "/wrong-length")
        await pilot.pause()
        index = app_.connections.cursor
        row = app_.connections.render_line(index - int(app_.connections.scroll_y)).text
        assert row.startswith("✖") and "/wrong-length" in row
        clean = next(c for c in store if c.path == "/held")
        assert app_.connections.select_id(clean.id)
        await pilot.pause()
        row = app_.connections.render_line(app_.connections.cursor - int(app_.connections.scroll_y)).text
        assert row.startswith(" ")  # no mark on a clean connection
        pick(app_, "/wrong-length")
        await pilot.pause()
        tree = app_.events_tree
        text = tree_text(tree)
        assert "problems  1 error" in text
        assert "✖ http.content-length  Content-Length says 10" in text
        message = find(tree, "http.response.body")
        assert "✖ http.content-length" in str(message.label)
        # Opening the message explains the rule there too.
        message.expand()
        await pilot.pause()
        assert any("Content-Length" in str(child.label) for child in message.children)


async def test_filters_find_violations_and_timings(store: Store) -> None:
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"violation")
        await pilot.pause(0.3)
        assert [store.get(i).path for i in app_.connections.ids] == ["/wrong-length"]  # type: ignore[union-attr]
        await pilot.press(*["backspace"] * len("violation"), *"gap:>300ms type:http")
        await pilot.pause(0.3)
        assert {store.get(i).path for i in app_.connections.ids} == {"/held"}  # type: ignore[union-attr]


async def test_the_timeline_shows_a_held_back_stream_and_hides_on_t(store: Store) -> None:
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        pick(app_, "/held")
        await pilot.pause()
        timeline = app_.timeline
        assert timeline.display
        text = str(timeline.render())
        assert "TTFB" in text and "largest gap" in text
        send_lane = next(line for line in text.splitlines() if line.startswith("← send"))
        lane = send_lane[8:]
        # The first chunk at the left, then nothing for the hold, then the burst at the right.
        assert lane[:3].strip() and not lane[len(lane) // 4 : len(lane) // 2].strip() and lane[-3:].strip()
        await pilot.press("t")
        assert not timeline.display
        await pilot.press("t")
        assert timeline.display


async def test_o_switches_the_list_to_timing_columns(store: Store) -> None:
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        header = app_.query_one(ListHeader)
        assert "TTFB" in str(header.render()) and "max gap" not in str(header.render())
        await pilot.press("o")
        assert "max gap" in str(header.render()) and "blocked" in str(header.render())
        held = next(c for c in store if c.path == "/held")
        assert app_.connections.select_id(held.id)
        await pilot.pause()
        row = app_.connections.render_line(app_.connections.cursor - int(app_.connections.scroll_y)).text
        assert "ms" in row.split("/held")[1]  # its timings are in the row
        await pilot.press("o")
        assert "max gap" not in str(header.render())


async def test_streams_read_as_events_lines_chunks_and_a_conversation(store: Store) -> None:
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        pick(app_, "/sse")
        await pilot.pause()
        text = tree_text(app_.events_tree)
        assert "server-sent events  3 events" in text
        assert ": hello" in text and 'tick       id=1  {"n":1}' in text and "plain⏎two lines" in text
        pick(app_, "/ndjson")
        await pilot.pause()
        text = tree_text(app_.events_tree)
        assert "JSON lines  4 lines" in text and "✖ not JSON" in text
        pick(app_, "/upload")
        await pilot.pause()
        text = tree_text(app_.events_tree)
        assert "request body chunks" in text and "the app waited" in text
        messages = find(app_.events_tree, "messages")
        waited = [
            str(n.label)
            for n in messages.children
            if "http.request" in str(n.label) and "waited" in str(n.label)
        ]
        assert waited  # a chunk the app had to wait for says so on its line
        pick(app_, "/ws")
        await pilot.pause()
        text = tree_text(app_.events_tree)
        assert "conversation" in text
        assert 'json  {"echo":"hi"}' in text and "hex   00 01 02" in text and "close 1000  'done'" in text


def test_the_timeline_of_an_open_connection_grows_to_now(session_path: Path) -> None:
    conn = next(c for c in asgispy.load(session_path).connections if c.path == "/held")
    drawn = timeline_text(conn, 80).plain
    assert drawn.splitlines()[-1].strip().startswith("0")  # the axis, from 0 ...
    assert drawn.splitlines()[-1].strip().endswith("ms")  # ... to the connection's end


async def test_server_sent_events_grow_live_as_their_chunks_arrive(session_path: Path) -> None:
    """The SSE connection replayed into a live store message by message: the events appear as
    the chunk that completes each arrives, not before, and the violations count stays at zero."""
    recorded = next(c for c in asgispy.load(session_path).connections if c.path == "/sse")
    doc = recorded.document()
    events = doc.pop("events")
    opening = {**doc, "id": "live-sse", "events": [], "outcome": "open", "duration": None}
    store = Store()
    app_ = Dashboard(store, refresh_interval=0.05)
    seen = []
    async with app_.run_test(size=SIZE) as pilot:
        store.open(opening)
        await pilot.pause(0.15)
        assert app_.connections.select_id("live-sse")
        for event in events:
            store.event("live-sse", event)
            await pilot.pause(0.1)
            text = tree_text(app_.events_tree)
            seen.append(next((line for line in text.splitlines() if "server-sent events" in line), ""))
        store.close("live-sse", {k: doc[k] for k in ("outcome", "duration", "error", "handler", "notes")})
        await pilot.pause(0.15)
        assert "server-sent events  3 events" in tree_text(app_.events_tree)
        assert store.violation_counts() == {"error": 0, "warning": 0, "notice": 0}
    counts = [line.split("events  ")[1].split(" ")[0] if "events  " in line else "" for line in seen]
    # After the response start: none yet; then body chunks 1 to 5 complete the comment, the tick,
    # nothing (an event still being built), the last event, and nothing (the end).
    assert counts == ["0", "1", "2", "2", "3", "3"]


def test_a_file_from_before_timing_loads_with_its_violations(session_path: Path, tmp_path: Path) -> None:
    """Sessions written before messages were timed have no waits: they load as before, and the
    protocol checker still judges them on load."""
    doc = json.loads(session_path.read_text())
    for conn in doc["connections"]:
        for event in conn["events"]:
            event.pop("wait", None)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    conns = asgispy.load(old).connections
    assert all(e.wait is None for c in conns for e in c.events)
    wrong = next(c for c in conns if c.path == "/wrong-length")
    assert [(v.rule, v.event) for v in wrong.violations] == [("http.content-length", 1)]
    held = next(c for c in conns if c.path == "/held")
    assert held.blocked is None and held.waited is None and held.ttfb is not None
