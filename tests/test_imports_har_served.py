"""``asgispy import`` over real traffic: a recording from a real uvicorn exported as HAR by
asgispy and imported again (then checked, replayed and written as tests that pass), and a HAR
a real Chromium wrote (driven by Playwright, where the machine has Debian's chromium) against a
real uvicorn, compared with what Spy saw on the server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import asgispy
from asgispy import Spy
from asgispy.model.connection import Connection
from tests.apps.replayable import TOKEN, build
from tests.servers import UVICORN_H11, serve
from tests.test_imports_har import ROOT, asgispy_cli
from tests.test_model_timing import loaded
from tests.test_replay import record

pytestmark = pytest.mark.timeout(120)


def frames(conn: Connection) -> list[tuple[str, object]]:
    return [
        (e.direction, e.message.get("text", e.message.get("bytes")))
        for e in conn.events
        if e.type in ("websocket.receive", "websocket.send")
    ]


def test_a_recording_exported_as_har_imports_back_and_replays_the_same(tmp_path: Path) -> None:
    recorded = record(build(), tmp_path / "recorded.json")
    har = tmp_path / "recorded.har"
    result = asgispy_cli("export", str(recorded), "--format", "har", "-o", str(har))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "imported.json"
    result = asgispy_cli("import", str(har), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr

    before = [c for c in asgispy.load(recorded).connections if c.type in ("http", "websocket")]
    after = asgispy.load(out).connections
    assert len(after) == len(before) == 6
    for old, new in zip(before, after, strict=True):
        assert (new.type, new.method, new.path, new.query_string) == (
            old.type,
            old.method,
            old.path,
            old.query_string,
        )
        assert new.scope["raw_path"] == old.scope["raw_path"] and new.scope["server"] == old.scope["server"]
        assert new.status == old.status and new.outcome == old.outcome
        assert new.request_headers == old.request_headers  # secrets stay masked as recorded
        assert new.response_headers == old.response_headers
        assert new.request_body() == old.request_body() and new.response_body() == old.response_body()
        assert new.route == old.route and new.route  # asgispy's own HAR keeps the route
        assert frames(new) == frames(old) and new.close_code == old.close_code
        assert new.started == pytest.approx(old.started, abs=0.002)
        assert old.duration is not None and new.duration is not None
        assert new.duration <= old.duration + 0.002
    echo = next(c for c in after if c.path == "/echo")
    assert echo.request_body() == b"\x00\x01" * 10 + b"\xff" * 10  # base64 in the HAR
    me = next(c for c in after if c.path == "/me")
    assert dict(me.request_headers)[b"authorization"] == b"[redacted]"

    check = asgispy_cli("check", str(out))
    assert check.returncode == 0 and "6 connections checked: 0 errors, 0 warnings, 0 notices" in check.stdout
    replay = asgispy_cli(
        "replay", str(out), "tests.apps.replayable:build", "--factory",
        "--ignore", "body.items[*].created_at", "--header", f"authorization={TOKEN}",
    )  # fmt: skip
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "6 replayed: 6 same, 0 changed, 0 skipped" in replay.stdout

    generated = tmp_path / "test_from_har.py"
    written = asgispy_cli(
        "test", str(out), "--app", "tests.apps.replayable:build", "--factory",
        "--ignore", "body.items[*].created_at", "-o", str(generated),
    )  # fmt: skip
    assert written.returncode == 0 and "wrote 6 tests" in written.stderr + written.stdout
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(generated)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout
    assert "5 passed, 1 skipped" in ran.stdout  # /me: its Authorization was masked


PAGE = """<!doctype html><title>loading</title><script>
(async () => {
  const echo = await fetch("/api/echo?n=1", {method: "POST", headers: {"content-type": "application/json"},
                                             body: JSON.stringify({hello: "browser"})});
  const echoed = await echo.text();
  const data = await (await fetch("/api/data")).json();
  const ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onopen = () => ws.send("hi");
  ws.onmessage = (event) => {
    ws.close(1000);
    document.title = `done ${echoed.length} ${data.count} ${event.data}`;
  };
})();
</script>"""


def browser_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    async def data(request: Request) -> Response:
        return JSONResponse({"count": 3, "items": ["a", "b", "c"]})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("echo " + await websocket.receive_text())
        except WebSocketDisconnect:
            return

    routes = [Route("/", page), Route("/api/echo", echo, methods=["POST"]), Route("/api/data", data)]
    return Starlette(routes=[*routes, WebSocketRoute("/ws", ws)])


def test_a_har_real_chromium_wrote_imports_as_what_the_server_saw(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    sync_api = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("no system chromium (Debian's chromium package) on this machine")
    har = tmp_path / "chromium.har"
    spy = Spy(browser_app(), address=False)  # type: ignore[arg-type]
    with serve(spy, UVICORN_H11) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(record_har_path=str(har), record_har_content="embed")
            page = context.new_page()
            page.goto(server.url("/"), timeout=20_000)
            page.wait_for_function("document.title.startsWith('done')", timeout=20_000)
            assert page.title() == "done 19 3 echo hi"
            context.close()  # writes the HAR
        finally:
            browser.close()
        seen = [c for c in loaded(spy, tmp_path) if c.type in ("http", "websocket")]

    out = tmp_path / "chromium.json"
    result = asgispy_cli("import", str(har), "-o", str(out))
    assert result.returncode == 0, result.stderr
    imported = asgispy.load(out).connections
    creator = json.loads(har.read_text())["log"]["creator"]["name"]
    assert all(c.notes[0].startswith(f"imported from a HAR written by {creator}") for c in imported)
    check = asgispy_cli("check", str(out))
    assert check.returncode == 0 and " 0 errors, 0 warnings" in check.stdout, check.stdout

    for path, method in (("/", "GET"), ("/api/echo", "POST"), ("/api/data", "GET")):
        (server_side,) = [c for c in seen if c.path == path and c.method == method]
        (browser_side,) = [c for c in imported if c.path == path and c.method == method]
        assert browser_side.status == server_side.status == 200
        assert browser_side.query_string == server_side.query_string
        assert browser_side.request_body() == server_side.request_body()
        assert browser_side.response_body() == server_side.response_body()
        assert browser_side.scope["server"] == server_side.scope["server"]
        sent = {k: v for k, v in server_side.request_headers}
        got = {k: v for k, v in browser_side.request_headers}
        assert got[b"user-agent"] == sent[b"user-agent"] and got[b"host"] == sent[b"host"]
        assert (
            dict(browser_side.response_headers)[b"content-type"]
            == dict(server_side.response_headers)[b"content-type"]
        )
    echo = next(c for c in imported if c.path == "/api/echo")
    assert json.loads(echo.request_body()) == {"hello": "browser"} and echo.query_string == b"n=1"
    (ws,) = [c for c in imported if c.type == "websocket"]
    (server_ws,) = [c for c in seen if c.type == "websocket"]
    assert ws.path == "/ws" and ws.status == 101 and ws.scope["scheme"] == "ws"
    assert frames(ws) == frames(server_ws)[: len(frames(ws))] == [("receive", "hi"), ("send", "echo hi")]
    # Playwright writes frame times in epoch milliseconds: placed on the connection's clock.
    assert not any("own clock" in n for n in ws.notes)
    assert ws.duration is not None and 0 <= ws.events[-1].t <= ws.duration < 5
