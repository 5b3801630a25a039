"""Replay and diff at the real boundary: traffic recorded from a real uvicorn with real clients,
replayed in-process through the app's ASGI interface by the command a user runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets.sync.client

from asgispy import Spy
from tests.apps.replayable import TOKEN, build, build_changed
from tests.servers import UVICORN_H11, serve
from tests.test_model_timing import TIMEOUT, loaded

ROOT = Path(__file__).resolve().parent.parent


def record(app: object, path: Path) -> Path:
    spy = Spy(app, address=False)  # type: ignore[arg-type]
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url("/items"))
        client.get(server.url("/items/7"))
        client.post(server.url("/echo"), content=iter([b"\x00\x01" * 10, b"\xff" * 10]))
        client.get(server.url("/hello"))
        assert client.get(server.url("/me"), headers={"authorization": TOKEN}).json() == {"name": "ada"}
        with websockets.sync.client.connect(server.ws_url("/ws"), open_timeout=TIMEOUT) as ws:
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "echo hi"
            ws.send("bye")
        loaded(spy, path.parent)
    return spy.export(path)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(build(), tmp_path_factory.mktemp("replay") / "recorded.json")


def asgispy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "asgispy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=ROOT,
    )


def test_replaying_against_the_same_app_changes_nothing(session: Path) -> None:
    result = asgispy(
        "replay", str(session), "tests.apps.replayable:build", "--factory",
        "--ignore", "body.items[*].created_at", "--header", f"authorization={TOKEN}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("same ") for line in lines) == 6, result.stdout
    assert "6 replayed: 6 same, 0 changed, 0 skipped" in result.stdout
    assert "WS /ws" in result.stdout and "POST /echo" in result.stdout


def test_a_changed_endpoint_is_reported_with_the_field_that_changed(session: Path) -> None:
    result = asgispy(
        "replay", str(session), "tests.apps.replayable:build_changed", "--factory",
        "--ignore", "body.items[*].created_at", "--header", f"authorization={TOKEN}",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    changed = [line for line in result.stdout.splitlines() if line.startswith("changed")]
    assert changed == ["changed  GET /items"]
    assert "  body.items[0].price: 3.5 → 4.0" in result.stdout
    assert "created_at" not in result.stdout  # ignored as asked


def test_without_ignoring_the_timestamp_the_difference_names_it(session: Path) -> None:
    result = asgispy(
        "replay", str(session), "tests.apps.replayable:build", "--factory", "--filter", "path:/items"
    )
    assert result.returncode == 1
    assert "body.items[0].created_at:" in result.stdout and "GET /items/7" in result.stdout


def test_a_redacted_secret_is_asked_for_not_reported_as_a_difference(session: Path) -> None:
    result = asgispy(
        "replay", str(session), "tests.apps.replayable:build", "--factory", "--filter", "path:/me"
    )
    assert result.returncode == 0, result.stdout
    assert (
        "skipped  GET /me  (needs authorization, redacted when recorded: give --header authorization=VALUE)"
        in result.stdout
    )
    from_env = asgispy(
        "replay", str(session), "tests.apps.replayable:build", "--factory", "--filter", "path:/me",
        env={"ASGISPY_SECRET_AUTHORIZATION": TOKEN},
    )  # fmt: skip
    assert "same     GET /me" in from_env.stdout
    wrong = asgispy(
        "replay", str(session), "tests.apps.replayable:build", "--factory", "--filter", "path:/me",
        "--header", "authorization=Bearer nope",
    )  # fmt: skip
    assert wrong.returncode == 1 and "status: 200 → 401" in wrong.stdout


def test_diff_compares_two_sessions(session: Path, tmp_path: Path) -> None:
    changed = record(build_changed(), tmp_path / "changed.json")
    result = asgispy("diff", str(session), str(changed), "--ignore", "body.items[*].created_at")
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("changed")] == [
        "changed  GET /items"
    ]
    assert "body.items[0].price: 3.5 → 4.0" in result.stdout
    same = asgispy("diff", str(session), str(session))
    assert same.returncode == 0 and "0 differ" in same.stdout
    by_route = asgispy("diff", str(session), str(changed), "--key", "route", "--filter", "path:/items/")
    assert by_route.returncode == 0, by_route.stdout


def test_the_demo_replays_the_same_against_itself(tmp_path: Path) -> None:
    """The demo recorded under a real uvicorn by ``asgispy demo --headless``, replayed in-process:
    every request answers the same (the chat is a conversation between two clients at once, and
    the event stream carries the time: both are left out); the client that left a stream early
    leaves it early again. A request whose answer depended on a redacted cookie says so."""
    from asgispy.demo.app import DEMO_TOKEN

    demo = tmp_path / "demo.json"
    recorded = asgispy("demo", "--headless", "-o", str(demo))
    assert recorded.returncode == 0, recorded.stderr
    result = asgispy(
        "replay", str(demo), "asgispy.demo.app:app", "--filter", "-path:/ws/chat -path:/events",
        "--header", f"authorization=Bearer {DEMO_TOKEN}",
    )  # fmt: skip
    lines = result.stdout.splitlines()
    changed = [line for line in lines if line.startswith(("changed", "failed", "skipped"))]
    # The stream the client left early: left early again (a chunk more or less, sent while the
    # app was noticing, depends on timing).
    assert "chunk 100 of 100" not in result.stdout and any("GET /stream?chunks=100" in x for x in lines)
    changed = [line for line in changed if "GET /stream?chunks=100" not in line]
    assert changed == ["changed  GET /api/me  (sent without cookie, redacted when recorded)"], result.stdout
    assert any(line.startswith("same     POST /api/items/import") for line in lines)


@pytest.mark.anyio
async def test_marking_two_connections_in_the_dashboard_shows_their_diff(
    session: Path, tmp_path: Path
) -> None:
    import asgispy as api
    from asgispy.store.store import Store
    from asgispy.tui.app import Dashboard
    from asgispy.tui.screens import DiffScreen

    store = Store()
    store.add_session(api.load(session))
    store.add_session(api.load(record(build_changed(), tmp_path / "changed.json")))
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        first, second = [c for c in store if c.path == "/items"]
        assert app.connections.select_id(first.id)
        await pilot.press("m")
        assert app.connections.select_id(second.id)
        await pilot.press("d")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        text = "\n".join(screen.lines)
        assert "body.items[0].price: 3.5 → 4.0" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DiffScreen)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_pytest(module: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(module)],
        capture_output=True, text=True, timeout=120, env=environ, cwd=module.parent,
    )  # fmt: skip


def test_generated_tests_pass_against_the_app_and_fail_against_a_changed_one(
    session: Path, tmp_path: Path
) -> None:
    module = tmp_path / "test_recorded.py"
    written = asgispy(
        "test", str(session), "--app", "tests.apps.replayable:build", "--factory",
        "-o", str(module), "--ignore", "body.items[*].created_at",
    )  # fmt: skip
    assert written.returncode == 0 and "wrote 6 tests" in written.stdout, written.stderr
    source = module.read_text()
    for name in (
        "test_get_items",
        "test_get_items_7",
        "test_post_echo",
        "test_get_hello",
        "test_get_me",
        "test_websocket_ws",
    ):
        assert f"def {name}(client: TestClient)" in source
    assert "import asgispy" not in source and "from asgispy" not in source  # needs nothing of asgispy
    lint = subprocess.run(["ruff", "check", str(module)], capture_output=True, text=True, cwd=ROOT)
    assert lint.returncode == 0, lint.stdout
    green = run_pytest(module, {"ASGISPY_SECRET_AUTHORIZATION": TOKEN})
    assert green.returncode == 0 and "6 passed" in green.stdout, green.stdout
    # Without the secret, the test that needs it is skipped, not failed.
    assert "5 passed, 1 skipped" in run_pytest(module).stdout

    changed = tmp_path / "test_changed.py"
    asgispy(
        "test", str(session), "--app", "tests.apps.replayable:build_changed", "--factory",
        "-o", str(changed), "--ignore", "body.items[*].created_at",
    )  # fmt: skip
    red = run_pytest(changed, {"ASGISPY_SECRET_AUTHORIZATION": TOKEN})
    assert red.returncode == 1 and "1 failed, 5 passed" in red.stdout, red.stdout
    assert "test_get_items " in red.stdout or "test_get_items -" in red.stdout
    assert "'price': 3.5" in red.stdout and "'price': 4.0" in red.stdout  # the assertion shows the field


def test_every_recorded_connection_gets_a_test_of_its_own_when_suffixes_clash(tmp_path: Path) -> None:
    # A repeat of /items is numbered _2, and so is the name /items/2 makes: two functions of one
    # name, and Python keeps the last, so one recorded connection would silently go untested.
    spy = Spy(build(), address=False)
    targets = ["/items", "/items?limit=2", "/items/2", "/items/2", "/items/3"]
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
        for target in targets:
            assert client.get(server.url(target)).status_code == 200
        loaded(spy, tmp_path)
    session = spy.export(tmp_path / "clash.json")
    module = tmp_path / "test_clash.py"
    written = asgispy(
        "test", str(session), "--app", "tests.apps.replayable:build", "--factory",
        "-o", str(module), "--ignore", "body.items[*].created_at",
    )  # fmt: skip
    assert written.returncode == 0 and f"wrote {len(targets)} tests" in written.stdout, written.stderr
    tree = ast.parse(module.read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    names = [node.name for node in functions if node.name.startswith("test_")]
    assert len(names) == len(targets) == len(set(names)), names
    assert {"test_get_items", "test_get_items_2", "test_get_items_2_2"} <= set(names)
    lint = subprocess.run(["ruff", "check", str(module)], capture_output=True, text=True, cwd=ROOT)
    assert lint.returncode == 0, lint.stdout  # F811 (a redefined name) among the checks
    run = run_pytest(module)
    assert run.returncode == 0 and f"{len(targets)} passed" in run.stdout, run.stdout
