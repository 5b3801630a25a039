"""Server-sent event blocks that dispatch nothing but set the reconnection time or the last event
id, at the real boundary: a Starlette app streaming them under Spy on a real uvicorn, read back
with ``asgispy.analysis.streams.records`` and in the dashboard's SSE view, recorded and live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import asgispy
from asgispy import Spy
from asgispy.analysis.streams import records
from asgispy.model.connection import Connection
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from tests.servers import UVICORN_H11, serve
from tests.test_model_timing import TIMEOUT, loaded, only
from tests.test_tui import live_pieces, tree_text

SIZE = (150, 50)

# One chunk per send; the first block's blank line comes a chunk after its retry line.
CHUNKS = [
    b"retry: 2500\n",
    b"\n",
    b"id: 7\n\n",
    b'data: {"n": 1}\n\n',
    b"id\nretry: 100\n\n",  # clears the id and sets a retry: one block, one record
    b"event: ping\n\n",  # changes nothing: no record
    b"data: after\n\n",
]


async def reconnect(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in CHUNKS:
            yield chunk
            await asyncio.sleep(0.01)

    return StreamingResponse(body(), media_type="text/event-stream")


app = Starlette(routes=[Route("/reconnect", reconnect)])


@pytest.fixture(scope="module")
def session_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spy = Spy(app, address=False)
    tmp = tmp_path_factory.mktemp("sse")
    with serve(spy, UVICORN_H11) as server:
        text = httpx.get(server.url("/reconnect"), timeout=TIMEOUT).text
        assert text == b"".join(CHUNKS).decode()
        loaded(spy, tmp)  # waits for the request to end
    return spy.export(tmp / "sse.json")


def recorded(session_path: Path) -> Connection:
    return only(asgispy.load(session_path).connections, "/reconnect")


def body_times(conn: Connection) -> list[float]:
    return [e.t for e in conn.events if e.type == "http.response.body" and e.message.get("body")]


def test_stream_shows_the_blocks_that_set_retry_or_id_at_their_last_byte(session_path: Path) -> None:
    conn = recorded(session_path)
    times = body_times(conn)
    assert len(times) == len(CHUNKS)
    got = [(r.kind, r.id, r.retry, r.data, r.t) for r in records(conn)]
    assert got == [
        ("control", None, 2500, "", times[1]),  # the chunk with its blank line, not its retry line
        ("control", "7", None, "", times[2]),
        ("event", "7", None, '{"n": 1}', times[3]),
        ("control", "", 100, "", times[4]),
        ("event", "", None, "after", times[6]),
    ]
    assert [r.index for r in records(conn)] == list(range(5))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_sse_view_shows_them(session_path: Path) -> None:
    store = Store()
    store.add_session(asgispy.load(session_path))
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        assert app_.connections.select_id(recorded(session_path).id)
        await pilot.pause()
        lines = [line.strip() for line in tree_text(app_.events_tree).splitlines()]
        assert "server-sent events  5 events" in lines
        shown = [line.split("  ", 1)[1] for line in lines if line.startswith("+") and "(no event)" in line]
        assert shown == [
            "(no event) retry=2500ms  kept for the next reconnect",
            "(no event) id=7  kept for the next reconnect",
            "(no event) id cleared retry=100ms  kept for the next reconnect",
        ]
        assert any('message    id=7  {"n":1}' in line for line in lines)


@pytest.mark.anyio
async def test_a_live_stream_shows_a_control_block_once_its_blank_line_arrives(session_path: Path) -> None:
    opening, events, end = live_pieces(recorded(session_path))
    store = Store()
    app_ = Dashboard(store, refresh_interval=0.05)
    async with app_.run_test(size=SIZE) as pilot:
        conn = store.open({**opening, "id": "live"})
        await pilot.pause(0.15)
        assert app_.connections.select_id("live")
        seen = []
        for event in events:
            store.event("live", event)
            await pilot.pause(0.1)
            text = tree_text(app_.events_tree)
            title = next((line for line in text.splitlines() if "server-sent events  " in line), "")
            seen.append((len(records(conn)), title.partition("events  ")[2].partition(" ")[0]))
        store.close("live", end)
    # The request, the response start, then a chunk per block: the retry line alone is no record
    # yet, neither in stream() nor in the view; its blank line makes it one.
    starts = [e["message"]["type"] for e in events].index("http.response.body")
    assert [n for n, _ in seen[starts : starts + len(CHUNKS)]] == [0, 1, 2, 3, 4, 4, 5]
    assert [shown for _, shown in seen[starts : starts + len(CHUNKS)]] == ["0", "1", "2", "3", "4", "4", "5"]
