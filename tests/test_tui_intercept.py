"""The dashboard changes traffic, end to end: ``asgispy run APP --break EXPR --rules FILE`` under a
real uvicorn child, a real client; the held request shows as HELD, is edited in the editor and
resumed; a request is edited and sent again; what asgispy did is in the event tree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from textual.widgets import TextArea

from asgispy.cli import dashboard
from asgispy.tui.app import Dashboard
from asgispy.tui.editor import EditScreen
from asgispy.tui.rulesscreen import RulesScreen
from tests.test_tui_run import APP, free_port, on_screen, run_args, until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

RULES = """
[[rule]]
name = "teapot"
match = "path:/broken"
respond = { status = 418, body = "mocked" }
"""


async def on_screen_text(app: Dashboard, *texts: str) -> None:
    """Wait until the top screen (a modal one too) shows every one of ``texts``."""
    from textual.widgets import OptionList

    def shown() -> str:
        options = app.screen.query_one(OptionList)
        return " ".join(str(options.get_option_at_index(i).prompt) for i in range(options.option_count))

    await until(lambda: all(text in shown() for text in texts))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_hold_edit_resume_resend_and_see_the_changes(tmp_path: Path) -> None:
    (tmp_path / "fixture_app.py").write_text(APP)
    (tmp_path / "rules.toml").write_text(RULES)
    port = free_port()
    args = run_args(
        tmp_path,
        "fixture_app:app",
        "--port",
        str(port),
        "--break",
        "path:/hello/*",
        "--rules",
        str(tmp_path / "rules.toml"),
    )
    assert dashboard._check_breakpoints(args) is None
    args.intercept = True
    app: Dashboard = dashboard.served_dashboard(args, refresh_interval=0.05)
    async with (
        app.run_test(size=(150, 40)) as pilot,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30) as client,
    ):
        await until(lambda: "serving http://127.0.0.1" in app.status.flags.child)
        await until(
            lambda: any(p.control and p.control.get("breakpoints") for p in app.store.producers.values())
        )
        assert (await client.get("/broken")).text == "mocked"  # the rule, without the app

        asking = asyncio.create_task(client.get("/hello/ada"))
        await until(lambda: bool(app.store.held))
        await on_screen(app, "HELD", "1 HELD")
        assert not asking.done()
        await pilot.press("h")
        await until(lambda: isinstance(app.screen, EditScreen))
        editor = app.screen.query_one(TextArea)
        assert editor.text.startswith("GET /hello/ada")
        editor.text = editor.text.replace("/hello/ada", "/hello/bob", 1)
        await pilot.press("ctrl+s")
        answer = await asking
        assert answer.json() == {"hello": "bob"}  # the app saw the edit
        await until(lambda: not app.store.held)

        held = next(c for c in app.store if c.path == "/hello/ada")
        await until(lambda: held.outcome == "completed" and bool(held.interventions))
        app.connections.set_follow(False)
        assert app.connections.select_id(held.id)
        await until(lambda: app.events_tree.connection is held)

        def labels() -> list[str]:
            return [str(node.label) for node in app.events_tree.root.children]

        await until(lambda: any("changed by asgispy" in label for label in labels()))

        # b toggles a breakpoint on the filter (empty: everything); pressed twice, it is gone
        await pilot.press("b")
        assert {"expression": "", "phase": "request"} in app.intercepting.desk.points
        await pilot.press("b")
        assert app.intercepting.desk.points == [{"expression": "path:/hello/*", "phase": "request"}]

        # r: the selected request in the editor, edited, sent again; it arrives as a new connection
        app.intercepting.desk.toggle("path:/hello/*")  # stop holding, so the copy goes through
        await until(
            lambda: all(not (p.control or {}).get("breakpoints") for p in app.store.producers.values())
        )
        await pilot.press("r")
        await until(lambda: isinstance(app.screen, EditScreen))
        editor = app.screen.query_one(TextArea)
        editor.text = editor.text.replace("/hello/ada", "/hello/eve", 1)
        await pilot.press("ctrl+s")
        await until(lambda: any(c.resent_from == held.id and c.outcome == "completed" for c in app.store))
        copy = next(c for c in app.store if c.resent_from == held.id)
        assert copy.path == "/hello/eve" and copy.response_body() == b'{"hello":"eve"}'

        # i: the rules screen; Enter switches the teapot rule off, and /broken reaches the app again
        await pilot.press("i")
        await until(lambda: isinstance(app.screen, RulesScreen))
        await on_screen_text(app, "teapot", "respond 418")
        await pilot.press("enter")
        await until(lambda: any(not r.get("enabled") for _, r in app.intercepting.desk.rules()))
        assert (await client.get("/broken")).status_code == 500
        await pilot.press("escape")
        await pilot.press("q")
