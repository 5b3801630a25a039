"""Real recorded sessions for the dashboard tests, made deterministic for snapshots.

A small Starlette app (JSON API, form, stream, redirect, binary, failure, WebSocket chat,
lifespan) runs under ``Spy`` and Starlette's TestClient; the export is then loaded back.
Only what varies from run to run is pinned afterwards (producer tag and pid, wall-clock
times, file paths in tracebacks), so the snapshots are stable and the data is real.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import asgispy
from asgispy.codec.sessionfile import read_session, write_session
from asgispy.model.session import Session
from asgispy.store.store import Store

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
TAG = "fixture0"
PID = 4242


async def list_items(request: Request) -> JSONResponse:
    return JSONResponse(
        {"items": [{"id": 1, "name": "kettle", "tags": ["kitchen"]}, {"id": 2, "name": "lamp"}]}
    )


async def get_item(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    if item_id != 1:
        return JSONResponse({"detail": f"no item {item_id}"}, status_code=404)
    return JSONResponse({"id": 1, "name": "kettle"})


async def create_item(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"id": 3, **data}, status_code=201)


async def form(request: Request) -> PlainTextResponse:
    fields = parse_qs((await request.body()).decode())
    return PlainTextResponse(f"thanks, {fields['name'][0]}\n")


async def stream(request: Request) -> StreamingResponse:
    async def lines() -> Any:
        for n in range(3):
            yield f"line {n}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


async def old(request: Request) -> RedirectResponse:
    return RedirectResponse("/api/items", status_code=307)


async def logo(request: Request) -> Response:
    return Response(bytes(range(0, 256, 3)), media_type="image/png")


async def boom(request: Request) -> Response:
    raise RuntimeError("the kettle is on fire")


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    for _ in range(2):
        text = await websocket.receive_text()
        await websocket.send_text(json.dumps({"echo": text}))
    await websocket.close(code=1000)


app = Starlette(
    routes=[
        Route("/api/items", list_items),
        Route("/api/items", create_item, methods=["POST"]),
        Route("/api/items/{item_id:int}", get_item),
        Route("/form", form, methods=["POST"]),
        Route("/stream", stream),
        Route("/old", old),
        Route("/logo.png", logo),
        Route("/boom", boom),
        WebSocketRoute("/ws/chat", chat),
    ]
)


def drive(client: TestClient) -> None:
    """The fixture traffic: one of everything, in a fixed order."""
    client.get("/api/items", headers={"authorization": "Bearer s3cret"})
    client.get("/api/items/1")
    client.post("/api/items", json={"name": "teapot", "tags": ["kitchen", "tea"]})
    client.post("/form", data={"name": "Ada", "email": "ada@example.com"})
    client.get("/stream")
    client.get("/old", follow_redirects=False)
    client.get("/api/items/7")
    client.get("/logo.png")
    client.get("/boom")
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_text("hello")
        ws.receive_text()
        ws.send_text("bye")
        ws.receive_text()


def record(path: Path) -> Path:
    """Record the fixture traffic through Spy and export it to ``path`` (real capture)."""
    spy = asgispy.Spy(app, address=False)
    with TestClient(spy, raise_server_exceptions=False) as client:
        drive(client)
    return spy.export(path)


def pin(path: Path) -> Path:
    """Pin what varies between runs: tag, pid, host, times, traceback paths."""
    doc = read_session(path)
    ((_tag, info),) = doc["producers"].items()
    doc["producers"] = {
        TAG: {**info, "host": "devbox", "pid": PID, "app": "tests.fixture:app", "started": T0}
    }
    doc["created"] = T0 + 60
    # Lifespan opens first and closes last; order by seq so times rise down the list.
    for n, conn in enumerate(sorted(doc["connections"], key=lambda c: c["seq"])):
        conn["id"] = f"{TAG}-{conn['seq']}"
        conn["producer"] = TAG
        conn["started"] = T0 + n * 0.25 + 0.125
        for k, event in enumerate(conn["events"]):
            event["t"] = 0.0002 * (k + 1) * (k + 1)
            event["wait"] = 0.00005 * (k + 1)
        conn["duration"] = 0.0003 * (len(conn["events"]) + 1) ** 2
        if conn["error"]:
            conn["error"]["traceback"] = _pinned_traceback(conn["error"]["traceback"])
    write_session(path, doc)
    return path


def _pinned_traceback(text: str) -> str:
    """The traceback with only this file's frames: the others change with asgispy and Starlette."""
    lines = text.splitlines()
    kept = [lines[0]]
    frame: list[str] = []
    for line in lines[1:]:
        if line.startswith("  File "):
            frame = [line]
            if "tests/test_tui_sessions.py" in line:
                kept.append(re.sub(r'File "[^"]*?(tests/)', r'File "\1', re.sub(r"line \d+", "line 1", line)))
        elif line.startswith(" ") and frame:
            if "tests/test_tui_sessions.py" in frame[0]:
                kept.append(line)
        else:
            kept.append(line)
    return "\n".join(kept) + "\n"


def fixture_session(tmp_path: Path) -> Session:
    return asgispy.load(pin(record(tmp_path / "fixture.json")))


def fixture_store(tmp_path: Path) -> Store:
    store = Store()
    store.add_session(fixture_session(tmp_path))
    return store


def test_fixture_session_has_every_kind_of_connection(tmp_path: Path) -> None:
    session = fixture_session(tmp_path)
    kinds = [(c.type, c.method, c.path, c.status, c.outcome) for c in session]
    assert kinds[0][0] == "lifespan"
    assert ("http", "GET", "/boom", 500, "exception") in kinds
    assert ("websocket", None, "/ws/chat", 101, "completed") in kinds
    assert ("http", "GET", "/old", 307, "completed") in kinds
    assert len(session) == 11
    auth = dict(session.connections[1].request_headers)[b"authorization"]
    assert auth == b"[redacted]"


@contextlib.contextmanager
def utc_zone() -> Iterator[None]:
    """Row times are local times: pin the zone so they read the same on every machine."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (the way a person reads the screen)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
