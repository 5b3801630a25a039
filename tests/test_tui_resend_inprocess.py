"""``asgispy open FILE --app APP``: a saved session's request, edited in the dashboard, is sent to
the app imported in the dashboard's own process, inside its lifespan; the answer joins the
session as a new connection marked as resent; quitting runs the app's shutdown."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from textual.widgets import TextArea

from asgispy import Spy
from asgispy.cli import dashboard
from asgispy.tui.app import Dashboard
from asgispy.tui.editor import EditScreen
from tests.servers import serve
from tests.test_tui_run import parse, until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

APP = """
import contextlib
import pathlib

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

MARK = pathlib.Path(__file__).with_name("lifespan.log")


@contextlib.asynccontextmanager
async def lifespan(app):
    MARK.write_text("started\\n")
    yield {"greeting": "hello"}
    MARK.write_text(MARK.read_text() + "stopped\\n")


async def hello(request):
    return JSONResponse({request.state.greeting: request.path_params["name"]})


app = Starlette(routes=[Route("/hello/{name}", hello, methods=["GET", "POST"])], lifespan=lifespan)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def recorded_session(tmp_path: Path) -> Path:
    """A real recording of ``GET /hello/ada`` through uvicorn, saved as a session file."""
    import importlib.util

    (tmp_path / "resend_app.py").write_text(APP)
    spec = importlib.util.spec_from_file_location("resend_app_recorded", tmp_path / "resend_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    spy = Spy(module.app, address=False)
    with serve(spy) as server:
        assert httpx.get(server.url("/hello/ada"), trust_env=False).json() == {"hello": "ada"}
    (tmp_path / "lifespan.log").unlink()  # what the recording's server did; the dashboard's own follows
    return spy.export(tmp_path / "saved.json")


async def test_open_with_an_app_resends_in_process(tmp_path: Path) -> None:
    path = recorded_session(tmp_path)
    args = parse(tmp_path, "open", str(path), "--app", "resend_app:app", "--app-dir", str(tmp_path))
    app: Dashboard = dashboard.opened_dashboard(args, refresh_interval=0.05)
    assert not (tmp_path / "lifespan.log").exists()  # nothing starts until something is sent
    async with app.run_test(size=(150, 40)) as pilot:
        await until(lambda: any(c.path == "/hello/ada" for c in app.store))
        first = next(c for c in app.store if c.path == "/hello/ada")
        app.connections.set_follow(False)
        assert app.connections.select_id(first.id)
        await pilot.press("r")
        await until(lambda: isinstance(app.screen, EditScreen))
        assert "in-process" in app.screen.title_text
        editor = app.screen.query_one(TextArea)
        assert editor.text.startswith("GET /hello/ada")
        editor.text = editor.text.replace("/hello/ada", "/hello/eve", 1)
        await pilot.press("ctrl+s")
        await until(lambda: any(c.resent_from == first.id for c in app.store))
        copy = next(c for c in app.store if c.resent_from == first.id)
        assert copy.path == "/hello/eve" and copy.status == 200
        assert copy.response_body() == b'{"hello":"eve"}'  # the lifespan's state reached it
        assert (tmp_path / "lifespan.log").read_text() == "started\n"
        assert [c.type for c in app.store].count("lifespan") == 1  # the recording's, not a new one
        await pilot.press("q")
    assert (tmp_path / "lifespan.log").read_text() == "started\nstopped\n"


def test_open_with_an_app_that_does_not_import_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recorded_session(tmp_path)
    args = parse(tmp_path, "open", str(path), "--app", "no_such_module:app", "--app-dir", str(tmp_path))
    assert dashboard.run(args) == 1
    err = capsys.readouterr().err
    assert "--app no_such_module:app" in err and "no_such_module" in err
