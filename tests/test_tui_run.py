"""End to end: ``asgispy run`` serves a fixture app under a real uvicorn (a child process),
the dashboard's own collector takes what Spy streams, and real requests show on the screen."""

from __future__ import annotations

import argparse
import asyncio
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgispy.cli import dashboard
from asgispy.tui.app import Dashboard
from tests.test_tui_sessions import screen_text

pytestmark = pytest.mark.anyio

APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request):
        print("hello was called", flush=True)
        return JSONResponse({"hello": request.path_params["name"]})

    async def broken(request):
        raise ValueError("broken on purpose")

    app = Starlette(routes=[Route("/hello/{name}", hello), Route("/broken", broken)])
    """
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_args(tmp_path: Path, app: str, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    dashboard.add_parser(sub, "run", "run")
    sock = tmp_path / "sockets" / "dash.sock"
    sock.parent.mkdir(mode=0o700)
    return parser.parse_args(["run", app, "--app-dir", str(tmp_path), "--listen", f"unix:{sock}", *extra])


async def until(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def on_screen(app: Dashboard, *texts: str) -> None:
    """Wait until every one of ``texts`` is on the screen (redraws are batched)."""
    try:
        await until(lambda: all(text in screen_text(app) for text in texts), timeout=10)
    except AssertionError:
        raise AssertionError(f"not all of {texts} on the screen:\n{screen_text(app)}") from None


async def test_run_serves_the_app_and_shows_its_requests(tmp_path: Path) -> None:
    (tmp_path / "fixture_app.py").write_text(APP)
    port = free_port()
    args = run_args(tmp_path, "fixture_app:app", "--port", str(port), "--log-level", "info")
    app: Dashboard = dashboard.served_dashboard(args, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(lambda: "serving http://127.0.0.1" in app.status.flags.child)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            assert (await client.get("/hello/ada")).json() == {"hello": "ada"}
            assert (await client.get("/broken")).status_code == 500
        await until(lambda: len([c for c in app.store if c.type == "http" and c.outcome != "open"]) == 2)
        await on_screen(app, "/hello/ada", "/hello/{name}", "/broken", "ValueError", "1 producer attached")
        # The child's own output (prints, uvicorn's log and tracebacks) is in the app output panel.
        assert app.log_panel.display

        def logged() -> str:
            return "\n".join(line.text for line in app.log_panel.lines)

        await until(lambda: "hello was called" in logged() and "ValueError: broken on purpose" in logged())
        # And the error's traceback is in the tree of the failed request.
        assert app.connections.selected is not None and app.connections.selected.path == "/broken"

        def labels() -> list[str]:
            return [str(node.label) for node in app.events_tree.root.children]

        # The tree follows the selection by message, a moment after the list moves.
        try:
            await until(lambda: any("raised ValueError: broken on purpose" in label for label in labels()))
        except AssertionError:
            raise AssertionError(labels()) from None
        await pilot.press("q")
    assert app.child is not None and app.child.returncode is not None, "quitting stops the app"


async def test_run_shows_an_import_error_clearly(tmp_path: Path) -> None:
    args = run_args(tmp_path, "no_such_module:app", "--port", str(free_port()))
    app: Dashboard = dashboard.served_dashboard(args, refresh_interval=0.05)
    async with app.run_test(size=(140, 40), notifications=True):
        await until(lambda: "exited" in app.status.flags.child)
        await on_screen(app, "The app stopped (exit code", "no_such_module")
        assert app.log_panel.display


async def test_demo_shows_every_kind_of_connection(tmp_path: Path) -> None:
    from asgispy.cli.demo import demo_dashboard

    app = demo_dashboard(rounds=1, delay=0.05, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:

        def kinds() -> set[str]:
            return {c.type for c in app.store if c.outcome != "open"} | {
                "error" for c in app.store if c.outcome == "exception"
            }

        await until(lambda: {"http", "websocket", "error"} <= kinds(), timeout=30)
        await on_screen(app, "serving http://127.0.0.1", "1 producer attached")
        await pilot.press("q")
    assert app.child is not None and app.child.returncode is not None


def parse(tmp_path: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    for name in ("attach", "open"):
        dashboard.add_parser(sub, name, name)
    return parser.parse_args(list(argv))


async def test_attach_shows_apps_that_use_spy(tmp_path: Path) -> None:
    import threading

    import uvicorn

    from asgispy import Spy
    from tests.test_tui_sessions import app as fixture_app

    (tmp_path / "s").mkdir(mode=0o700)
    address = f"unix:{tmp_path / 's' / 'attach.sock'}"
    app: Dashboard = dashboard.attached_dashboard(parse(tmp_path, "attach", "--listen", address))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Spy(fixture_app, address=address), port=port, log_level="warning"))
    async with app.run_test(size=(140, 40)):
        await until(lambda: app.status.flags.listening.startswith("unix:"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            await until(lambda: server.started)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
                assert (await client.get("/api/items/1")).status_code == 200
            await until(lambda: any(c.path == "/api/items/1" and c.outcome != "open" for c in app.store))
            await on_screen(app, "/api/items/1", "1 producer attached")
        finally:
            server.should_exit = True
            await asyncio.to_thread(thread.join, 10)


async def test_open_shows_a_saved_session(tmp_path: Path) -> None:
    from tests.test_tui_sessions import pin, record

    path = pin(record(tmp_path / "saved.json"))
    app: Dashboard = dashboard.opened_dashboard(parse(tmp_path, "open", str(path)))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        assert len(app.connections.ids) == 11
        await on_screen(app, "file ", "1 producer recorded")


def test_open_refuses_a_file_that_is_not_a_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert dashboard.run(parse(tmp_path, "open", str(bad))) == 1
    assert "not an asgispy session" in capsys.readouterr().err


def test_attach_refuses_a_non_loopback_address_unless_allowed_with_a_token() -> None:
    import subprocess
    import sys

    def attach(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asgispy", "attach", "--listen", "tcp://0.0.0.0:0", *extra],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )

    refused = attach()
    assert refused.returncode != 0
    assert "--allow-remote --token" in refused.stderr
    no_token = attach("--allow-remote")
    assert no_token.returncode != 0
    assert "requires a token" in no_token.stderr


async def test_run_survives_a_reload_of_the_app(tmp_path: Path) -> None:
    """`asgispy run --reload`: editing the app restarts uvicorn's worker; the dashboard keeps the
    connections it had, and the new worker's connections arrive under a new producer."""
    (tmp_path / "fixture_app.py").write_text(APP)
    port = free_port()
    args = run_args(
        tmp_path, "fixture_app:app", "--port", str(port), "--reload", "--reload-dir", str(tmp_path)
    )
    app: Dashboard = dashboard.served_dashboard(args, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(lambda: "serving http://127.0.0.1" in app.status.flags.child)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:

            async def answer(path: str) -> Any:
                try:
                    return (await client.get(path)).json()
                except (httpx.HTTPError, ValueError):
                    return None

            async def until_answered(path: str, expected: Any) -> None:
                deadline = time.monotonic() + 20
                while await answer(path) != expected:
                    assert time.monotonic() < deadline, f"{path} never answered {expected}"
                    await asyncio.sleep(0.2)

            await until_answered("/hello/before", {"hello": "before"})
            await until(lambda: any(c.path == "/hello/before" and c.outcome != "open" for c in app.store))
            first = {c.producer for c in app.store if c.path == "/hello/before"}
            await asyncio.sleep(0.5)  # let the watcher take its first look before the change
            (tmp_path / "fixture_app.py").write_text(APP.replace('{"hello"', '{"hi"'))
            await until_answered("/hello/after", {"hi": "after"})

        def answered_after() -> list[Any]:
            return [
                c for c in app.store if c.path == "/hello/after" and c.response_body() == b'{"hi":"after"}'
            ]

        await until(answered_after)
        assert answered_after()[-1].producer not in first, "the new worker is a producer of its own"
        assert any(c.path == "/hello/before" for c in app.store), "what was seen before stays"
        await on_screen(app, "/hello/before", "/hello/after")
        assert "exited" not in app.status.flags.child
        await pilot.press("q")
    assert app.child is not None and app.child.returncode is not None
