"""Layers mode at the real boundary: a FastAPI app with the usual middleware under a real
uvicorn, real clients; each change is attributed to the layer that made it, and nothing to
the layers that passed messages through."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from starlette.testclient import TestClient

import asgispy
from asgispy import Spy
from asgispy.filter.grammar import parse
from asgispy.model.connection import Connection
from asgispy.model.layers import Layer
from tests.apps.layered import Teapot, build
from tests.servers import UVICORN_H11, serve
from tests.test_model_timing import TIMEOUT, loaded

STACK = [
    "FastAPI",
    "ServerErrorMiddleware",
    "CORSMiddleware",
    "GZipMiddleware",
    "TrustedHostMiddleware",
    "Timing",
    "ServerHeader",
    "HoldStream",
    "ExceptionMiddleware",
]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> list[Connection]:
    spy = Spy(build(), address=False, layers=True)
    tmp = tmp_path_factory.mktemp("layers")
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
        headers = {"origin": "http://example.org", "accept-encoding": "gzip"}
        item = client.get(server.url("/items/7"), headers=headers)
        assert item.headers["content-encoding"] == "gzip" and item.json()["id"] == 7
        plain = client.get(server.url("/plain"), headers={"accept-encoding": "identity"})
        assert "layered/1" in plain.headers["server"] and "x-powered-by" not in plain.headers
        held = client.get(server.url("/held"), headers={"accept-encoding": "identity"})
        assert held.text.count("chunk") == 8
        teapot = client.get(server.url("/teapot"))
        assert teapot.status_code == 418
        assert client.get(server.url("/crash")).status_code == 500
        refused = client.get(server.url("/plain"), headers={"host": "evil.example"})
        assert refused.status_code == 400
        with websockets.sync.client.connect(server.ws_url("/ws"), open_timeout=TIMEOUT) as ws:
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "echo hi"
        conns = loaded(spy, tmp)
    assert conns
    return asgispy.load(spy.export(tmp / "layers.json")).connections


def conn_for(conns: list[Connection], path: str, host: str | None = None) -> Connection:
    found = [c for c in conns if c.path == path and c.type != "lifespan"]
    if host is not None:
        found = [c for c in found if dict(c.request_headers).get(b"host") == host.encode()]
    return found[0]


def by_name(conn: Connection) -> dict[str, Layer]:
    return {layer.name: layer for layer in conn.layers}


def changed(conn: Connection) -> set[str]:
    return {layer.name for layer in conn.layers if layer.changes is not None and layer.changes.changed}


def test_the_stack_is_named_outermost_first_with_its_options(session: list[Connection]) -> None:
    conn = conn_for(session, "/items/7")
    names = [layer.name for layer in conn.layers]
    assert [n for n in names if n in STACK] == STACK
    layers = by_name(conn)
    assert layers["GZipMiddleware"].options == {"minimum_size": "100"}
    assert layers["CORSMiddleware"].options == {"allow_origins": "['http://example.org']"}
    assert layers["ServerHeader"].options == {"name": "'layered/1'"}
    # Every layer of a request that went all the way down was reached.
    assert all(layer.reached for layer in conn.layers)


def test_gzip_cors_and_header_rewrites_are_attributed_to_their_layers(session: list[Connection]) -> None:
    item = conn_for(session, "/items/7")
    assert {"GZipMiddleware", "CORSMiddleware", "Timing", "ServerHeader"} <= changed(item)
    layers = by_name(item)
    gzip_words = " ".join(layers["GZipMiddleware"].changes.words())  # type: ignore[union-attr]
    assert "content-encoding: gzip" in gzip_words and "gzip" in gzip_words
    # The body the layer below sent is the JSON; what GZip sent outward is its compression.
    inner = b"".join(
        e.message.get("body", b"")
        for e in layers["TrustedHostMiddleware"].events
        if e.type == "http.response.body"
    )
    outer = b"".join(
        e.message.get("body", b"") for e in layers["GZipMiddleware"].events if e.type == "http.response.body"
    )
    assert json.loads(inner)["id"] == 7 and gzip.decompress(outer) == inner
    assert "access-control-allow-origin" in " ".join(layers["CORSMiddleware"].changes.words())  # type: ignore[union-attr]
    assert "x-timing" in " ".join(layers["Timing"].changes.words())  # type: ignore[union-attr]
    assert "server" in " ".join(layers["ServerHeader"].changes.words())  # type: ignore[union-attr]
    # Layers that passed the messages through are not blamed for anything.
    assert not {"TrustedHostMiddleware", "HoldStream", "ServerErrorMiddleware", "APIRouter"} & changed(item)
    # The app itself puts itself in the scope before its stack runs.
    assert by_name(item)["FastAPI"].changes.words() == ["scope + app: <FastAPI>"]  # type: ignore[union-attr]


def test_removed_headers_and_a_held_back_stream(session: list[Connection]) -> None:
    plain = conn_for(session, "/plain")
    words = " ".join(by_name(plain)["ServerHeader"].changes.words())  # type: ignore[union-attr]
    assert "x-powered-by" in words and "x-internal" in words
    held = conn_for(session, "/held")
    hold = by_name(held)["HoldStream"].changes
    assert hold is not None and hold.changed
    assert any("held" in w for w in hold.words()), hold.words()
    assert [w for w in hold.words() if "merged" in w] == ["merged 8 messages into 1"]
    # GZip did not compress what HoldStream released (asked for identity), only said it might.
    assert by_name(held)["GZipMiddleware"].changes.words() == ["+ vary: Accept-Encoding"]  # type: ignore[union-attr]


def test_an_exception_turned_into_a_response_and_a_refusal(session: list[Connection]) -> None:
    crash = conn_for(session, "/crash")
    assert (crash.status, crash.outcome) == (500, "exception")
    words = by_name(crash)["ServerErrorMiddleware"].changes.words()  # type: ignore[union-attr]
    assert words == ["RuntimeError: the kettle is on fire → 500, propagated"]
    # Starlette runs an app's exception handlers inside the route: the exception never crosses
    # a layer, so no layer above the router is said to have turned it into the 418.
    teapot = conn_for(session, "/teapot")
    assert teapot.status == 418
    assert not any("Teapot" in w for layer in teapot.layers if layer.changes for w in layer.changes.words())
    refused = conn_for(session, "/plain", host="evil.example")
    layers = by_name(refused)
    assert refused.status == 400
    # TrustedHost answered itself: nothing below it was reached.
    assert layers["TrustedHostMiddleware"].reached and not layers["Timing"].reached


def test_scope_keys_added_inside_the_stack_are_shown(session: list[Connection]) -> None:
    item = conn_for(session, "/items/7")
    words = [w for layer in item.layers if layer.changes is not None for w in layer.changes.words()]
    assert any("app" in w and "scope" in w for w in words), words


def test_a_websocket_crosses_the_stack_untouched(session: list[Connection]) -> None:
    ws = conn_for(session, "/ws")
    assert ws.type == "websocket" and ws.layers
    assert not {"GZipMiddleware", "CORSMiddleware", "Timing", "ServerHeader", "HoldStream"} & changed(ws)


def test_the_layer_filter(session: list[Connection]) -> None:
    compressed = {c.path for c in parse("layer:GZipMiddleware").select(session)}
    assert "/items/7" in compressed and "/ws" not in compressed
    assert {c.path for c in parse("layer:holdstream").select(session)} == {"/held"}
    assert parse("layer:TrustedHostMiddleware").select(session) == [
        conn_for(session, "/plain", host="evil.example")
    ]


def test_a_file_without_layers_loads_as_before(tmp_path: Path) -> None:
    spy = Spy(build(), address=False)
    with TestClient(spy) as client:
        client.get("/items/1", headers={"host": "localhost"})
    conn = next(c for c in asgispy.load(spy.export(tmp_path / "s.json")).connections if c.type == "http")
    assert conn.layers == [] and conn.status == 200


def test_test_clients_behave_the_same_and_exceptions_propagate_unchanged() -> None:
    plain, layered = Spy(build(), address=False), Spy(build(), address=False, layers=True)
    for spy in (plain, layered):
        with TestClient(spy, raise_server_exceptions=True, base_url="http://localhost") as client:
            assert client.get("/items/2").json()["id"] == 2
            assert client.get("/teapot").status_code == 418

    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise Teapot("straight through")

    for layers in (False, True):
        with (
            pytest.raises(Teapot, match="straight through"),
            TestClient(Spy(boom, address=False, layers=layers)) as client,
        ):
            client.get("/")


def test_the_wire_carries_layers_to_a_live_viewer(tmp_path: Path) -> None:
    from tests.test_wire_collector import CollectorThread

    with CollectorThread([f"unix:{tmp_path}/c.sock"]) as collector:
        spy = Spy(build(), address=collector.address, layers=True)
        with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
            client.get(server.url("/items/3"), headers={"accept-encoding": "gzip"})
            conn = collector.wait_for(
                lambda s: next((c for c in s if c.path == "/items/3" and c.outcome != "open"), None)
            )
            names = collector.call(lambda: sorted(changed(conn)))
    assert "GZipMiddleware" in names


@pytest.mark.anyio
async def test_the_dashboard_shows_the_stack_and_each_layers_messages(
    session: list[Connection], tmp_path: Path
) -> None:
    from asgispy.store.store import Store
    from asgispy.tui.app import Dashboard
    from tests.test_tui import find, tree_text

    store = Store()
    store.add_session(asgispy.Session(session))
    app = Dashboard(store, refresh_interval=0.05)
    async with app.run_test(size=(160, 50)) as pilot:
        item = next(c for c in store if c.path == "/items/7")
        assert app.connections.select_id(item.id)
        await pilot.pause()
        tree = app.events_tree
        text = tree_text(tree)
        assert "layers  " in text and "changed something" in text
        gzip_line = next(line for line in text.splitlines() if line.startswith("GZipMiddleware"))
        assert "+ content-encoding: gzip" in gzip_line and "inside" in gzip_line
        assert "TrustedHostMiddleware  passed through" in text
        layer = find(tree, "GZipMiddleware")
        layer.expand()
        await pilot.pause()
        seen = next(
            child for child in layer.children if "messages as GZipMiddleware saw them" in str(child.label)
        )
        assert any("http.response.body" in str(child.label) for child in seen.children)
        await pilot.press("slash", *"layer:HoldStream")
        await pilot.pause(0.3)
        assert [store.get(i).path for i in app.connections.ids] == ["/held"]  # type: ignore[union-attr]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_chain_of_raw_middleware_is_followed_through_its_app_attributes(tmp_path: Path) -> None:
    """Not Starlette: the layers are the objects linked by their ``app`` attribute."""
    from tests.apps.layered import HoldStream, ServerHeader

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"x-powered-by", b"raw"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"raw"})

    spy = Spy(ServerHeader(HoldStream(endpoint), name="chain"), address=False, layers=True)
    client = TestClient(spy)  # no lifespan: the endpoint answers HTTP only
    assert client.get("/x").headers["server"] == "chain"
    (conn,) = [c for c in asgispy.load(spy.export(tmp_path / "s.json")).connections if c.type == "http"]
    assert [layer.name for layer in conn.layers] == ["ServerHeader", "HoldStream", "endpoint"]
    words = conn.layers[0].changes.words()  # type: ignore[union-attr]
    assert "- x-powered-by: raw" in words and "+ server: chain" in words
    assert not conn.layers[1].changes.changed  # type: ignore[union-attr]
