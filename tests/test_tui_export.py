"""The dashboard's export, driven with Pilot: the file name and the format chosen in the modal,
the file written and read back (asgispy.load for sessions, haralyzer for HAR)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from haralyzer import HarParser
from textual import events
from textual.widgets import Input, RadioSet

import asgispy
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from asgispy.tui.filterbar import FilterBar
from asgispy.tui.screens import ExportScreen
from tests.test_exports_har import validate
from tests.test_tui import SIZE, shows
from tests.test_tui_sessions import fixture_store, screen_text, utc_zone

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with utc_zone():
        yield fixture_store(tmp_path)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def modal(app: Dashboard) -> ExportScreen:
    screen = app.screen
    assert isinstance(screen, ExportScreen)
    return screen


def typed(app: Dashboard) -> str:
    return modal(app).query_one(Input).value


def pressed(app: Dashboard) -> str:
    button = modal(app).query_one(RadioSet).pressed_button
    assert button is not None and button.id is not None
    return button.id.removeprefix("format-")


async def test_the_extension_typed_picks_har_and_the_file_is_har_of_what_the_filter_shows(
    store: Store, out: Path
) -> None:
    app = Dashboard(store, export_dir=out, source="file fixture.json")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("slash", *"-path:/api/*", "enter")
        await pilot.pause(0.3)
        shown = app.connections.visible_connections()
        await pilot.press("e")
        await shows(app, f"Export the {len(shown)} connections the filter shows (-path:/api/*)")
        assert typed(app).endswith(".json") and pressed(app) == "json"
        assert Path(typed(app)).parent == out  # a fresh name in the dashboard's folder
        await pilot.press("ctrl+u", *"traffic.ha")
        assert pressed(app) == "json"  # not yet an extension it knows
        await pilot.press("r")
        await pilot.pause()
        assert pressed(app) == "har" and typed(app) == "traffic.har"
        await shows(app, "lifespan connections are left out")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await shows(app, "Exported as HAR 1.2")
        kept = [c for c in shown if c.type != "lifespan"]
        assert len(kept) == len(shown) - 1
        await shows(app, f"{len(kept)} connections (1 with no place in HAR 1.2 left out)")
    written = out / "traffic.har"
    validate(json.loads(written.read_text()))
    parser = HarParser.from_file(str(written))
    (page,) = parser.pages
    assert parser.creator["name"] == "asgispy"
    assert parser.har_data["comment"] == "exported from the asgispy dashboard (file fixture.json)"
    entries = {entry["_asgispy"]["id"]: entry for entry in page.entries}
    assert set(entries) == {c.id for c in kept}
    assert {c.type for c in kept} == {"http", "websocket"}
    for conn in kept:
        entry = entries[conn.id]
        assert entry.request.method == (conn.method or "GET")
        assert entry.url.endswith(conn.target)
        assert entry.status == conn.status
        if conn.type == "websocket":
            texts = [m["data"] for m in entry["_webSocketMessages"]]
            assert texts == [
                e.message["text"] for e in conn.events if e.type in ("websocket.receive", "websocket.send")
            ]


async def test_picking_a_format_rewrites_the_extension_and_the_session_loads_back(
    store: Store, out: Path
) -> None:
    app = Dashboard(store, export_dir=out)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("e")
        await shows(app, f"Export all {len(store)} connections")
        stem = typed(app).removesuffix(".json")
        for key, fmt, extension in (
            ("down", "har", ".har"),
            ("down", "jsonl", ".jsonl"),
            ("down", "curl", ".sh"),
            ("down", "json", ".json"),
            ("up", "curl", ".sh"),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert (pressed(app), typed(app)) == (fmt, stem + extension)
        await pilot.click("#format-jsonl")  # the mouse picks too
        await pilot.pause()
        assert (pressed(app), typed(app)) == ("jsonl", stem + ".jsonl")
        await pilot.press("ctrl+u", *"notes.txt", "down")  # a name typed on purpose keeps its own
        await pilot.pause()
        assert (pressed(app), typed(app)) == ("curl", "notes.txt.sh")
        await pilot.press("ctrl+u", *"all.jsonl", "enter")
        await app.workers.wait_for_complete()
        await shows(app, "Exported as JSON lines")
        await pilot.press("e")
        await pilot.pause()
        assert pressed(app) == "jsonl" and typed(app).endswith(".jsonl")  # the last format is the default
        await pilot.press("down", "down")  # on round to the JSON session
        assert pressed(app) == "json"
        modal(app).query_one(Input).value = "all.json"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
    documents = [c.document() for c in store]
    assert [c.document() for c in asgispy.load(out / "all.jsonl")] == documents
    assert [c.document() for c in asgispy.load(out / "all.json")] == documents
    assert not (out / "notes.txt.sh").exists()


async def test_curl_writes_the_http_requests_and_says_what_it_left_out(store: Store, out: Path) -> None:
    app = Dashboard(store, export_dir=out)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("e", "ctrl+u", *"requests.sh")
        await pilot.pause()
        assert pressed(app) == "curl"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        http = [c for c in store if c.type == "http"]
        await shows(app, f"{len(http)} connections ({len(store) - len(http)} with no place in curl")
    text = (out / "requests.sh").read_text()
    assert text.count("\ncurl ") + text.startswith("curl ") == len(http)
    assert "/api/items" in text and "/ws/chat" not in text


async def test_a_path_that_cannot_be_written_fails_in_a_notification_and_is_offered_again(
    store: Store, out: Path
) -> None:
    app = Dashboard(store, export_dir=out)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("e", "ctrl+u", *"missing/traffic.har")
        await shows(app, "there is no folder")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await shows(app, "Export failed")
        assert not isinstance(app.screen, ExportScreen)
        assert len(store) == 11  # the dashboard still holds everything
        await pilot.press("e")
        await pilot.pause()
        assert typed(app) == str(out / "missing" / "traffic.har") and pressed(app) == "har"  # nothing lost
        (out / "missing").mkdir()
        await pilot.press("end", "l")  # any edit re-checks the path: the folder is there now
        await pilot.press("backspace")
        await pilot.pause()
        assert "there is no folder" not in screen_text(app)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await shows(app, "Exported as HAR 1.2")
        assert (out / "missing" / "traffic.har").exists()
        # A folder is no file name: Enter refuses it and the modal stays.
        await pilot.press("e")
        await pilot.pause()
        modal(app).query_one(Input).value = str(out)  # pasted at once
        await shows(app, "that is a folder")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ExportScreen)
    assert sorted(p.name for p in out.rglob("*")) == ["missing", "traffic.har"]


async def test_a_name_typed_fast_and_enter_write_the_whole_name(store: Store, out: Path) -> None:
    """Keys that reach the dashboard in one read, as a terminal delivers fast typing or a pasted
    line: Enter writes the name with every key typed before it, and no key leaks past the modal."""
    app = Dashboard(store, export_dir=out)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("e")
        await shows(app, f"Export all {len(store)} connections")
        burst = [("ctrl+u", "\x15"), *[(c, c) for c in "fast-typed.har"], ("enter", "\r")]
        for key, character in burst:  # posted as the driver posts them, with no wait between
            app.post_message(events.Key(key, character))
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await shows(app, "Exported as HAR 1.2")
        assert not isinstance(app.screen, ExportScreen)
        assert app.query_one(FilterBar).text == ""
        # An arrow in the burst picks the format after the one the name typed before it says.
        await pilot.press("e")
        await shows(app, f"Export all {len(store)} connections")
        burst = [("ctrl+u", "\x15"), *[(c, c) for c in "then-down.har"], ("down", ""), ("enter", "\r")]
        for key, character in burst:
            app.post_message(events.Key(key, character))
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await shows(app, "Exported as JSON lines")
    assert sorted(p.name for p in out.iterdir()) == ["fast-typed.har", "then-down.jsonl"]
    assert [c.document() for c in asgispy.load(out / "then-down.jsonl")] == [c.document() for c in store]
