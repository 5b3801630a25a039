"""Saved filters (``@name``), read from real files: a project's asgispy.toml or pyproject.toml,
the user's config under XDG_CONFIG_HOME; used by the CLI as a user runs it (subprocesses on a
session recorded from a real uvicorn) and picked or typed in the real dashboard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import asgispy as api
from asgispy.filter.grammar import FilterError, parse
from asgispy.filter.saved import load_saved, parse_with_saved, spell_out, user_file
from asgispy.model.session import Session
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from asgispy.tui.filterbar import FilterBar
from asgispy.tui.savedfilters import SavedFilterScreen
from tests.apps.replayable import build
from tests.test_replay import record
from tests.test_tui_sessions import fixture_session, utc_zone

ROOT = Path(__file__).resolve().parent.parent

PROJECT = """\
[project]
name = "shop"

[filters]
api = "path:/api/*"
errors = "status:>=500 or error"
posts = "method:POST"

[filters.api-posts]
expr = "@api @posts"
description = "what changes the catalogue"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user config directory, so the machine's own config never leaks into a test."""
    config = tmp_path / "xdg"
    config.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def session(tmp_path: Path) -> Session:
    (tmp_path / "recorded").mkdir()
    with utc_zone():
        return fixture_session(tmp_path / "recorded")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def paths(session: Session, text: str, cwd: Path) -> list[tuple[str | None, str]]:
    return [(c.method, c.path) for c in parse_with_saved(text, cwd).select(session.connections)]


def user_config(home: Path, text: str) -> Path:
    path = home / "asgispy" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# Expansion ------------------------------------------------------------------------------------


def test_a_saved_filter_is_one_term_anywhere_in_a_filter(
    tmp_path: Path, home: Path, session: Session
) -> None:
    (tmp_path / "asgispy.toml").write_text(PROJECT)
    assert paths(session, "@posts", tmp_path) == [("POST", "/api/items"), ("POST", "/form")]
    assert paths(session, "@api-posts", tmp_path) == [("POST", "/api/items")]
    assert paths(session, "@posts -@api", tmp_path) == [("POST", "/form")]
    assert paths(session, "@errors", tmp_path) == [("GET", "/boom")]
    # as a group: (status:>=500 or error) and path:/api/*, which spelt out would mean something else
    assert paths(session, "@errors path:/api/*", tmp_path) == []
    assert [c.path for c in parse("status:>=500 or error path:/api/*").select(session.connections)] == [
        "/boom"
    ]
    assert paths(session, "@errors | @api-posts", tmp_path) == [("POST", "/api/items"), ("GET", "/boom")]
    # quoted, or not at the start of a word, it is text as before
    assert paths(session, '"@posts"', tmp_path) == []
    assert paths(session, "ada@example", tmp_path) == []
    assert parse("ada@example").select(session.connections) == []


def test_files_are_read_only_when_a_filter_names_one(tmp_path: Path, home: Path, session: Session) -> None:
    (tmp_path / "asgispy.toml").write_text("[filters\nbroken")
    assert paths(session, "status:500", tmp_path) == [("GET", "/boom")]
    with pytest.raises(FilterError) as caught:
        parse_with_saved("status:500 @errors", tmp_path)
    assert str(tmp_path / "asgispy.toml") in caught.value.message and "not valid TOML" in caught.value.message
    assert (caught.value.start, caught.value.end) == (11, 18)


def test_an_unknown_name_lists_the_known_ones_and_where_they_were_read(tmp_path: Path, home: Path) -> None:
    (tmp_path / "asgispy.toml").write_text(PROJECT)
    config = user_config(home, '[filters]\nmine = "host:localhost"\n')
    with pytest.raises(FilterError) as caught:
        parse_with_saved("method:GET @slwo", tmp_path)
    error = caught.value
    assert error.message == (
        "no saved filter @slwo; saved filters: @api, @api-posts, @errors, @mine, @posts "
        f"(from {tmp_path / 'asgispy.toml'}, {config})"
    )
    assert (error.start, error.end) == (11, 16) and str(error).endswith("(column 12)")
    (tmp_path / "asgispy.toml").unlink()
    config.unlink()
    with pytest.raises(FilterError, match=r"there are no saved filters \(looked in no file\)"):
        parse_with_saved("@slow", tmp_path)
    with pytest.raises(FilterError, match="@ needs the name of a saved filter"):
        parse_with_saved("@", tmp_path)


def test_saved_filters_may_name_each_other_but_not_in_a_circle(tmp_path: Path, home: Path) -> None:
    (tmp_path / "asgispy.toml").write_text(
        '[filters]\na = "method:GET @b"\nb = "type:http @c"\nc = "-@a"\n'
        'self = "error or @self"\nok = "@ok2"\nok2 = "open"\n'
    )
    with pytest.raises(FilterError) as caught:
        parse_with_saved("path:/x @a", tmp_path)
    assert caught.value.message == "saved filters name each other in a circle: @a -> @b -> @c -> @a"
    assert (caught.value.start, caught.value.end) == (8, 10)
    with pytest.raises(FilterError, match="circle: @self -> @self"):
        parse_with_saved("@self", tmp_path)
    assert parse_with_saved("@ok", tmp_path).text == "@ok"


def test_a_bad_saved_filter_names_its_file_and_name_and_spares_the_others(tmp_path: Path, home: Path) -> None:
    file = tmp_path / "asgispy.toml"
    file.write_text(
        '[filters]\nbad = "status:abc"\nnumber = 3\nempty = { description = "nothing" }\n'
        'typo = { expr = "open", descripton = "x" }\n"two words" = "open"\nfine = "open"\n'
    )
    saved = load_saved(tmp_path)
    expected = {
        "bad": "status:abc: expected a status like 404, 4xx, >=400 or 200-299 (column 1 of 'status:abc')",
        "number": "must be a filter in quotes or a table with expr, not 3",
        "empty": 'needs expr = "a filter"',
        "typo": "unknown key 'descripton' (a saved filter has expr and description)",
        "two words": "a name is letters, digits, '_', '-' and '.' (it follows @ in a filter)",
    }
    for name, problem in expected.items():
        with pytest.raises(FilterError) as caught:
            saved.resolve(name)
        assert caught.value.message == f"saved filter @{name} (in {file}): {problem}"
    assert saved.parse("@fine").text == "@fine"
    with pytest.raises(FilterError, match=r"^saved filter @bad \(in .*asgispy.toml\): status:abc"):
        parse_with_saved("@fine @bad", tmp_path)
    file.write_text('filters = "open"\n')
    with pytest.raises(FilterError, match="'filters' must be a table"):
        parse_with_saved("@x", tmp_path)


# Where they are read --------------------------------------------------------------------------


def test_the_project_file_is_found_walking_up(tmp_path: Path, home: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.asgispy.filters]\nposts = "method:POST"\n')
    inner = tmp_path / "src" / "shop"
    inner.mkdir(parents=True)
    (tmp_path / "src" / "pyproject.toml").write_text('[project]\nname = "no asgispy table here"\n')
    saved = load_saved(inner)
    assert saved.sources == [f"{tmp_path / 'pyproject.toml'} [tool.asgispy]"]
    assert saved.filters["posts"].source == f"{tmp_path / 'pyproject.toml'} [tool.asgispy]"
    # an asgispy.toml on the way up is nearer, and ends the walk
    (tmp_path / "src" / "asgispy.toml").write_text('[filters]\nerrors = "error"\n')
    assert list(load_saved(inner).filters) == ["errors"]


def test_asgispy_toml_wins_over_the_pyproject_beside_it(tmp_path: Path, home: Path) -> None:
    (tmp_path / "asgispy.toml").write_text('[filters]\nerrors = "error"\n')
    (tmp_path / "pyproject.toml").write_text('[tool.asgispy.filters]\nposts = "method:POST"\n')
    saved = load_saved(tmp_path)
    assert list(saved.filters) == ["errors"]
    assert saved.hidden == [
        (f"{tmp_path / 'pyproject.toml'} [tool.asgispy]", "not read: asgispy.toml beside it comes first")
    ]


def test_the_project_comes_before_the_user(tmp_path: Path, home: Path, session: Session) -> None:
    (tmp_path / "asgispy.toml").write_text('[filters]\nmine = "method:POST"\nboth = "@mine @theirs"\n')
    config = user_config(home, '[filters]\nmine = "method:GET"\ntheirs = "path:/form"\n')
    saved = load_saved(tmp_path)
    assert saved.sources == [str(tmp_path / "asgispy.toml"), str(config)]
    assert saved.filters["mine"].expr == "method:POST" and saved.filters["theirs"].source == str(config)
    assert saved.hidden == [(f"@mine in {config}", f"{tmp_path / 'asgispy.toml'} has it")]
    assert paths(session, "@both", tmp_path) == [("POST", "/form")]
    # without a project, the user's own
    (tmp_path / "asgispy.toml").unlink()
    assert paths(session, "@mine path:/api/items/*", tmp_path) == [
        ("GET", "/api/items/1"),
        ("GET", "/api/items/7"),
    ]


def test_the_user_config_follows_xdg_and_falls_back_to_home(tmp_path: Path) -> None:
    assert user_file({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "asgispy" / "config.toml"
    home = Path.home() / ".config" / "asgispy" / "config.toml"
    assert (
        user_file({}) == user_file({"XDG_CONFIG_HOME": ""}) == user_file({"XDG_CONFIG_HOME": "rel"}) == home
    )


# The command line -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(build(), tmp_path_factory.mktemp("saved") / "recorded.json")


def asgispy(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "asgispy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


CLI_PROJECT = """\
[tool.asgispy.filters]
items = "path:/items*"
chat = { expr = "type:websocket", description = "the WebSocket echo" }
"""


def test_check_and_export_take_a_saved_filter(recorded: Path, tmp_path: Path, home: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(CLI_PROJECT)
    user_config(home, '[filters]\nnot-items = "-@items -type:lifespan"\n')
    check = asgispy(tmp_path, home, "check", str(recorded), "--filter", "@items")
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[-1].startswith("2 connections checked")
    check = asgispy(tmp_path, home, "check", str(recorded), "--filter", "@chat")
    assert check.stdout.splitlines()[-1].startswith("1 connection checked"), check.stdout
    out = tmp_path / "out.json"
    export = asgispy(tmp_path, home, "export", str(recorded), "--filter", "@not-items", "-o", str(out))
    assert export.returncode == 0, export.stderr
    assert [c.path for c in api.load(out).connections] == ["/echo", "/hello", "/me", "/ws"]


def test_a_wrong_name_on_the_command_line_is_exit_2_with_the_names(
    recorded: Path, tmp_path: Path, home: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text(CLI_PROJECT)
    result = asgispy(tmp_path, home, "export", str(recorded), "--filter", "@item")
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.strip() == (
        f"asgispy export: --filter: no saved filter @item; saved filters: @chat, @items "
        f"(from {tmp_path / 'pyproject.toml'} [tool.asgispy]) (column 1)"
    )
    assert "Traceback" not in result.stderr


def test_the_filters_command_lists_each_with_its_file_and_verdict(tmp_path: Path, home: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(CLI_PROJECT)
    config = user_config(home, '[filters]\nitems = "open"\nbroken = "status:abc"\n')
    result = asgispy(tmp_path, home, "filters")
    assert result.returncode == 1 and "1 saved filter cannot be used" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"project: {tmp_path / 'pyproject.toml'}" and lines[1] == f"user:    {config}"
    assert "@items   path:/items*" in lines and "@chat    type:websocket  (the WebSocket echo)" in lines
    assert f"         from {tmp_path / 'pyproject.toml'} [tool.asgispy]" in lines
    assert "@broken  status:abc" in lines and f"         from {config}" in lines
    assert any(line.strip().startswith("✖ saved filter @broken") for line in lines)
    assert f"hidden: @items in {config}: {tmp_path / 'pyproject.toml'} [tool.asgispy] has it" in lines
    config.unlink()
    assert asgispy(tmp_path, home, "filters").returncode == 0
    (tmp_path / "pyproject.toml").write_text("[tool.asgispy\n")
    bad = asgispy(tmp_path, home, "filters")
    assert (
        bad.returncode == 2
        and "pyproject.toml: not valid TOML" in bad.stderr
        and "Traceback" not in bad.stderr
    )


# The dashboard --------------------------------------------------------------------------------


@pytest.fixture
def dashboard_store(
    session: Session, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    (tmp_path / "asgispy.toml").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    store = Store()
    store.add_session(session)
    with utc_zone():
        yield store


@pytest.mark.anyio
async def test_the_dashboard_picks_a_saved_filter_from_a_list(dashboard_store: Store) -> None:
    app = Dashboard(dashboard_store, refresh_interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause()
        assert len(app.connections.visible_connections()) == 11
        await pilot.press("at")
        screen = app.screen
        assert isinstance(screen, SavedFilterScreen)
        assert screen.names == ["api", "errors", "posts", "api-posts"]
        await pilot.press("down", "enter")  # the second: @errors
        await pilot.pause(0.2)
        assert not isinstance(app.screen, SavedFilterScreen)
        bar = app.query_one(FilterBar)
        assert bar.display and bar.text == "@errors" and bar.input.value == "@errors"
        assert [c.path for c in app.connections.visible_connections()] == ["/boom"]
        assert app.status.flags.filter == "@errors"


@pytest.mark.anyio
async def test_the_filter_bar_takes_a_saved_name_typed_in(dashboard_store: Store) -> None:
    app = Dashboard(dashboard_store, refresh_interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.press("slash", *"@posts -@api")
        await pilot.pause(0.3)
        assert [c.path for c in app.connections.visible_connections()] == ["/form"]
        await pilot.press(*" @nope")
        await pilot.pause(0.3)
        error = app.query_one("#filter-error")
        assert error.has_class("shown")
        assert "no saved filter @nope; saved filters: @api, @api-posts, @errors, @posts" in str(
            error.render()
        )
        assert [c.path for c in app.connections.visible_connections()] == ["/form"], (
            "the last good filter stays"
        )
        await pilot.press("ctrl+o")  # "@" types into the bar; this lists the saved filters
        assert isinstance(app.screen, SavedFilterScreen)
        await pilot.press("end", "enter")
        await pilot.pause(0.3)
        assert app.query_one(FilterBar).text == "@api-posts" and not error.has_class("shown")
        assert [c.path for c in app.connections.visible_connections()] == ["/api/items"]


# Written out, for the app's process (breakpoints) -----------------------------------------------

SPELT = [
    "@errors type:http",
    "@errors | @api-posts",
    "-@errors",
    "!@api-posts type:http",
    "-@api-posts or status:500",
    "@posts -@api",
    "type:http -@errors -@posts",
]


@pytest.mark.parametrize("text", SPELT)
def test_written_out_a_filter_shows_the_same_connections(
    text: str, tmp_path: Path, home: Path, session: Session
) -> None:
    (tmp_path / "asgispy.toml").write_text(PROJECT)
    saved = load_saved(tmp_path)
    plain = saved.spell_out(text)
    assert "@" not in plain
    with_names = parse_with_saved(text, tmp_path).select(session.connections)
    assert parse(plain).select(session.connections) == with_names
    assert with_names, "each example matches something, so the comparison says something"


def test_written_out_examples_read_as_a_person_would_write_them(tmp_path: Path, home: Path) -> None:
    (tmp_path / "asgispy.toml").write_text(PROJECT)
    assert spell_out("@errors path:/api/*", tmp_path) == "status:>=500 path:/api/* or error path:/api/*"
    assert spell_out("-@errors", tmp_path) == "-status:>=500 -error"
    assert spell_out("-@api-posts", tmp_path) == "-path:/api/* or -method:POST"
    assert spell_out("method:GET", tmp_path) == "method:GET"
    with pytest.raises(FilterError, match="no saved filter @nope"):
        spell_out("@nope", tmp_path)


@pytest.mark.anyio
@pytest.mark.timeout(90)
async def test_run_breaks_on_a_saved_filter(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from asgispy.cli import dashboard
    from tests.test_tui_run import APP, free_port, run_args, until

    (tmp_path / "fixture_app.py").write_text(APP)
    (tmp_path / "asgispy.toml").write_text('[filters]\nhello = "path:/hello/* -path:*/bob"\n')
    monkeypatch.chdir(tmp_path)
    port = free_port()
    args = run_args(tmp_path, "fixture_app:app", "--port", str(port), "--break", "@hello")
    assert dashboard._check_breakpoints(args) is None
    assert args.break_requests == ["path:/hello/* -path:*/bob"]  # what the app's process matches
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
        assert (await client.get("/hello/bob")).json() == {"hello": "bob"}  # not held
        asking = asyncio.create_task(client.get("/hello/ada"))
        await until(lambda: bool(app.store.held))
        assert not asking.done()
        # b on the filter @hello toggles the breakpoint written out: the one --break @hello set
        point = {"expression": "path:/hello/* -path:*/bob", "phase": "request"}
        assert app.intercepting.desk.points == [point]
        await pilot.press("slash", *"@hello", "enter")
        await pilot.pause(0.3)
        await pilot.press("b")
        assert app.intercepting.desk.points == []
        await pilot.press("b")
        assert app.intercepting.desk.points == [point]
        asking.cancel()
    (tmp_path / "again").mkdir()
    bad = run_args(tmp_path / "again", "fixture_app:app", "--break", "@nope")
    known = f"saved filters: @hello (from {tmp_path / 'asgispy.toml'})"
    assert dashboard._check_breakpoints(bad) == f"--break '@nope': no saved filter @nope; {known} (column 1)"


# Saving from the dashboard ----------------------------------------------------------------------

PYPROJECT = """\
# the shop
[project]
name = "shop"   # kept as written

[tool.asgispy]
listen = "unix:/tmp/x.sock"

[tool.ruff]
line-length = 100
"""


def test_saving_adds_one_line_and_keeps_the_rest_of_the_file(tmp_path: Path, home: Path) -> None:
    from asgispy.filter.saving import save_filter

    pyproject = tmp_path / "shop" / "pyproject.toml"
    inner = tmp_path / "shop" / "src"
    inner.mkdir(parents=True)
    pyproject.write_text(PYPROJECT)
    pyproject.chmod(0o640)
    assert save_filter("slow", "duration:>500ms", inner) == pyproject
    assert pyproject.read_text() == PYPROJECT + '\n[tool.asgispy.filters]\nslow = "duration:>500ms"\n'
    assert save_filter("odd.name", 'body:"say \\"hi\\"" @slow', inner) == pyproject
    added = '"odd.name" = "body:\\"say \\\\\\"hi\\\\\\"\\" @slow"\n'
    assert pyproject.read_text() == PYPROJECT + f'\n[tool.asgispy.filters]\n{added}slow = "duration:>500ms"\n'
    assert load_saved(inner).filters["odd.name"].expr == 'body:"say \\"hi\\"" @slow'
    assert pyproject.stat().st_mode & 0o777 == 0o640
    # without a project file, a new asgispy.toml where the dashboard runs
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "pyproject.toml").write_text('[project]\nname = "no table"\n')
    assert save_filter("posts", "method:POST", alone) == alone / "asgispy.toml"
    assert (alone / "asgispy.toml").read_text() == '[filters]\nposts = "method:POST"\n'


def test_saving_refuses_what_it_cannot_write_safely(tmp_path: Path, home: Path) -> None:
    from asgispy.filter.saving import save_filter

    file = tmp_path / "asgispy.toml"
    file.write_text('filters = { slow = "duration:>1s" }\n')
    for name, expr, problem in (
        ("slow", "open", "@slow is already in"),
        ("two words", "open", "a name is letters"),
        ("bad", "status:abc", "status:abc: expected a status"),
        ("none", "  ", "there is no filter to save"),
        ("posts", "method:POST", "cannot add @posts to"),
    ):
        with pytest.raises(FilterError, match=problem):
            save_filter(name, expr, tmp_path)
    assert file.read_text() == 'filters = { slow = "duration:>1s" }\n'


@pytest.mark.anyio
async def test_the_dashboard_saves_the_filter_in_use(dashboard_store: Store, tmp_path: Path) -> None:
    from asgispy.tui.savedfilters import FilterNameScreen

    app = Dashboard(dashboard_store, refresh_interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.press("slash", *"type:websocket", "enter")
        await pilot.pause(0.3)
        await pilot.press("at", "ctrl+s")
        assert isinstance(app.screen, FilterNameScreen)
        await pilot.press(*"chat", "enter")
        await pilot.pause(0.3)
        assert (tmp_path / "asgispy.toml").read_text() == PROJECT.replace(
            "[filters]\n", '[filters]\nchat = "type:websocket"\n'
        )
        assert app.query_one(FilterBar).text == "@chat"
        assert [c.path for c in app.connections.visible_connections()] == ["/ws/chat"]


def test_run_refuses_a_breakpoint_that_does_not_parse_with_or_without_names(tmp_path: Path) -> None:
    (tmp_path / "asgispy.toml").write_text('[filters]\nbad = "status:abc"\n')
    for expression in ("status:abc", "@bad"):
        result = asgispy(tmp_path, tmp_path / "home", "run", "nowhere:app", "--break", expression)
        assert result.returncode == 1, result.stderr  # as run says of any option it refuses
        assert "--break" in result.stderr and "expected a status" in result.stderr
        assert "Traceback" not in result.stderr
