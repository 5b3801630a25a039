"""The dashboard, driven with Pilot over stores filled from real recorded sessions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

import asgispy
from asgispy.model.connection import Connection
from asgispy.store.store import Store
from asgispy.tui.app import Dashboard
from asgispy.tui.eventtree import EventTree
from asgispy.tui.filterbar import FilterBar
from asgispy.tui.screens import ExportScreen, HelpScreen
from tests.test_tui_sessions import fixture_store, screen_text, utc_zone

SIZE = (130, 40)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def by_path(store: Store, path: str, method: str = "GET") -> Connection:
    return next(c for c in store if c.path == path and (c.method == method or c.type != "http"))


def tree_text(tree: EventTree) -> str:
    """Every label of the tree's expanded nodes, one per line."""
    lines = []
    todo = [tree.root]
    while todo:
        node = todo.pop(0)
        lines.append(str(node.label))
        if node.is_expanded:
            todo[:0] = list(node.children)
    return "\n".join(lines)


def find(tree: EventTree, text: str) -> Any:
    todo = [tree.root]
    while todo:
        node = todo.pop(0)
        if text in str(node.label):
            return node
        todo.extend(node.children)
    raise AssertionError(f"no node labelled {text!r} in\n{tree_text(tree)}")


async def shows(app: Dashboard, text: str, timeout: float = 5.0) -> None:
    """Wait until ``text`` is on the screen (redraws are batched; a loaded machine is slower)."""
    deadline = time.monotonic() + timeout
    while text not in screen_text(app):
        assert time.monotonic() < deadline, f"{text!r} not on the screen:\n{screen_text(app)}"
        await asyncio.sleep(0.05)


def live_pieces(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A recorded connection as the collector would deliver it: opening, events, ending."""
    doc = conn.document()
    events = doc.pop("events")
    end = {k: doc[k] for k in ("outcome", "duration", "error", "handler", "notes", "events_dropped")}
    opening = {**doc, "events": [], "outcome": "open", "duration": None, "error": None, "handler": None}
    return opening, events, end


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with utc_zone():
        yield fixture_store(tmp_path)


async def test_list_shows_every_connection_newest_last_and_follows(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        listing = app.connections
        assert listing.ids == list(store.connections)
        assert listing.follow
        assert listing.selected is list(store)[-1]
        assert app.events_tree.connection is listing.selected
        text = screen_text(app)
        for needle in ("/api/items/{item", "RuntimeError", "LIFE", "WS", "307", "404", "4242"):
            assert needle in text
        assert text.index("/boom") < text.index("/ws/chat")


async def test_cursor_keys_and_follow(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        listing = app.connections
        last = len(listing.ids) - 1
        await pilot.press("up")
        assert listing.cursor == last - 1 and not listing.follow
        assert app.events_tree.connection is listing.selected
        await shows(app, "follow off")
        await pilot.press("home")
        assert listing.cursor == 0 and listing.selected is not None and listing.selected.type == "lifespan"
        await pilot.press("down", "j")
        assert listing.cursor == 2
        await pilot.press("k")
        assert listing.cursor == 1
        await pilot.press("pagedown")
        assert listing.cursor > 1
        await pilot.press("pageup")
        assert listing.cursor == 0
        await pilot.press("end")
        assert listing.cursor == last and listing.follow
        await pilot.press("f")
        assert not listing.follow
        await pilot.press("f")
        assert listing.follow and listing.cursor == last


async def test_new_connections_follow_or_stay(store: Store, tmp_path: Path) -> None:
    more = asgispy.load(tmp_path / "fixture.json")
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        listing = app.connections
        await pilot.press("home")
        picked = listing.selected
        assert picked is not None
        doc = more.connections[2].document()
        store.open({**doc, "id": "later-1"})
        await pilot.pause(0.15)
        assert listing.ids[-1] == "later-1"
        assert listing.selected is picked, "a user who moved away stays where they are"
        await pilot.press("end")
        store.open({**doc, "id": "later-2"})
        await pilot.pause(0.15)
        assert listing.selected is store.get("later-2"), "following moves to the newest"


async def test_mouse_click_selects_and_double_click_opens(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        listing = app.connections
        await pilot.click("#connections", offset=(5, 2))
        await pilot.pause()
        assert listing.cursor == 2 and not listing.follow
        assert app.events_tree.connection is listing.selected
        await pilot.click("#connections", offset=(5, 3), times=2)
        await pilot.pause()
        assert listing.cursor == 3
        assert app.focused is app.events_tree


async def test_enter_opens_the_event_tree_and_escape_returns(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        assert app.focused is app.events_tree
        await pilot.press("escape")
        assert app.focused is app.connections
        await pilot.press("tab")
        assert app.focused is app.events_tree


async def test_tree_shows_scope_messages_and_json_body(store: Store) -> None:
    conn = by_path(store, "/api/items", "POST")
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("home")
        while app.connections.selected is not conn:
            await pilot.press("down")
        tree = app.events_tree
        text = tree_text(tree)
        assert "POST /api/items 201" in text
        assert "→ recv http.request" in text and "body 42 B" in text
        assert "← send http.response.start" in text and "201" in text
        # The response body previews as pretty JSON, keys one per line.
        assert "response body · JSON · 49 B" in text
        assert '"name": "teapot",' in text
        # The scope opens to its headers, one per line, decoded.
        scope = find(tree, "scope")
        scope.expand()
        await pilot.pause()
        headers = find(tree, "headers  7")
        assert "content-type: application/json" in "\n".join(str(n.label) for n in headers.children)
        # An event expands to every field of the message, and its body.
        event = find(tree, "http.request")
        event.expand()
        await pilot.pause()
        fields = "\n".join(str(n.label) for n in event.children)
        assert "type = 'http.request'" in fields
        assert "body · JSON · 42 B" in fields


async def test_redacted_header_is_shown_as_redacted(store: Store) -> None:
    conn = next(c for c in store if dict(c.request_headers).get(b"authorization"))
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        app.connections.set_follow(False)
        app.connections.select_id(conn.id)
        await pilot.pause()
        find(app.events_tree, "scope").expand()
        await pilot.pause()
        assert "authorization: [redacted]" in tree_text(app.events_tree)
        assert "s3cret" not in tree_text(app.events_tree)


async def test_error_shows_traceback_and_websocket_its_frames(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("up")  # /boom, just above the WebSocket
        text = tree_text(app.events_tree)
        assert "✖ raised RuntimeError: the kettle is on fire" in text
        assert "Traceback (most recent call last):" in text
        assert 'raise RuntimeError("the kettle is on fire")' in text
        await pilot.press("down")
        text = tree_text(app.events_tree)
        assert "← send websocket.accept" in text
        assert "→ recv websocket.receive" in text and "'hello'" in text
        assert "← send websocket.close" in text and "code 1000" in text
        assert "messages  7" in text


async def test_expand_all(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        before = len(tree_text(app.events_tree).splitlines())
        await pilot.press("a")
        await pilot.pause()
        text = tree_text(app.events_tree)
        assert len(text.splitlines()) > before + 20
        assert "host: testserver" in text and "type = 'websocket.send'" in text


async def test_live_connection_grows_in_place(store: Store, tmp_path: Path) -> None:
    recorded = by_path(asgispy.load(tmp_path / "fixture.json"), "/api/items", "POST")
    opening, events, end = live_pieces(recorded)
    opening["id"] = "live-1"
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        store.open(opening)
        await pilot.pause(0.15)
        assert app.connections.selected is store.get("live-1")
        row = screen_text(app).splitlines()
        assert any("POST" in line and "…" in line for line in row), "in progress: status and duration pending"
        for event in events:
            store.event("live-1", event)
            await pilot.pause(0.12)
        assert f"messages  {len(events)}" in tree_text(app.events_tree)
        store.close("live-1", end)
        await pilot.pause(0.15)
        assert "response body · JSON" in tree_text(app.events_tree)
        line = next(line for line in screen_text(app).splitlines() if "POST" in line and "201" in line)
        assert "4.8 ms" in line or "ms" in line


async def test_pause_freezes_the_screen_but_keeps_collecting(store: Store, tmp_path: Path) -> None:
    more = asgispy.load(tmp_path / "fixture.json")
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert app.paused
        store.open({**more.connections[3].document(), "id": "while-paused"})
        await pilot.pause(0.2)
        assert "while-paused" in store.connections
        assert "while-paused" not in app.connections.ids
        await shows(app, "PAUSED")
        await pilot.press("p")
        assert not app.paused
        assert app.connections.ids[-1] == "while-paused"


async def test_clear_forgets_everything(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await pilot.pause()
        assert len(store) == 0 and app.connections.ids == []
        assert app.events_tree.connection is None
        await shows(app, "0 connections")


async def test_filter_as_you_type_and_errors_inline(store: Store) -> None:
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash")
        bar = app.query_one(FilterBar)
        assert bar.display and isinstance(app.focused, Input)
        await pilot.press(*"status:>=400")
        await pilot.pause(0.3)
        shown = app.connections.visible_connections()
        assert {c.status for c in shown} == {404, 500}
        await shows(app, "shown")
        await pilot.press("enter")
        assert app.focused is app.connections and bar.display
        await pilot.press("slash")
        bar.input.value = "method:"  # pasted at once: no valid prefix of it gets applied on the way
        await pilot.pause(0.3)
        assert bar.query_one("#filter-error").has_class("shown")
        shown = app.connections.visible_connections()
        assert {c.status for c in shown} == {404, 500}, "a bad filter keeps the last good one"
        await pilot.press("escape")
        assert app.focused is app.connections


async def test_export_writes_the_visible_connections(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    app = Dashboard(store, export_dir=out)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"type:websocket", "enter")
        await pilot.pause(0.3)
        await pilot.press("e")
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
    (written,) = out.glob("asgispy-*.json")
    session = asgispy.load(written)
    assert [c.type for c in session] == ["websocket"]
    assert session.connections[0].document() == store.get(session.connections[0].id).document()


async def test_copy_as_curl(store: Store) -> None:
    conn = by_path(store, "/api/items", "POST")
    app = Dashboard(store)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.connections.select_id(conn.id)
        await pilot.press("c")
        await pilot.pause(0.3)
        assert app.clipboard.startswith("curl")
        assert "/api/items" in app.clipboard and "teapot" in app.clipboard
        await shows(app, "Copied as curl")
        await pilot.press("end", "c")  # a WebSocket cannot be replayed by curl
        await pilot.pause(0.3)
        await shows(app, "curl replays HTTP requests")


async def test_log_panel_toggles(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        assert not app.log_panel.display
        await pilot.press("l")
        assert app.log_panel.display
        app.say("hello from the dashboard")
        await pilot.pause(0.2)
        await shows(app, "hello from the dashboard")
        await pilot.press("l")
        assert not app.log_panel.display


async def test_help_screen(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await shows(app, "filter the list")
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_every_action_is_in_the_command_palette(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Pause the screen")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.paused


async def test_quit(store: Store) -> None:
    app = Dashboard(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


def test_bindings_all_have_descriptions_and_palette_entries() -> None:
    from asgispy.tui.commands import ACTIONS

    palette = {action for _, action, _ in ACTIONS}
    for binding in Dashboard.BINDINGS:
        assert binding.description, binding  # type: ignore[union-attr]
        action = binding.action  # type: ignore[union-attr]
        if action not in ("quit", "focus_next"):
            assert action in palette, action


async def test_clear_filter_from_the_palette_actions(store: Store) -> None:
    from asgispy.tui.commands import ACTIONS

    app = Dashboard(store, refresh_interval=0.05)
    for _, action, _ in ACTIONS:
        assert callable(getattr(app, f"action_{action}", None)), action
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"type:websocket", "enter")
        await pilot.pause(0.3)
        assert len(app.connections.ids) == 1
        await app.run_action("clear_filter")
        await pilot.pause(0.3)
        assert len(app.connections.ids) == len(store)
        assert not app.query_one(FilterBar).display
        await app.run_action("focus_tree")
        await pilot.pause()
        assert app.focused is app.events_tree


def test_traceback_sets_the_apps_frames_apart() -> None:
    from asgispy.tui.labels import traceback_lines

    lines = traceback_lines(
        "Traceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 9, in app\n'
        "    await f(request)\n"
        '  File "/srv/shop/main.py", line 3, in boom\n'
        "    raise KeyError(order)\n"
        "KeyError: 7\n"
    )
    styles = [str(line.style) for line in lines]
    assert styles == ["bold red", "dim", "dim", "bold", "", "bold red"]
