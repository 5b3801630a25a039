"""``Spy(app, inside=True)`` at the real boundary: a real uvicorn serving a shop that calls a real
upstream on loopback (httpx sync and async, requests), logs, and runs SQL through SQLAlchemy
(sync and async engines, SQLite); overlapping requests, thread-pool endpoints, spawned tasks and
a background task prove that each thing is attached to the connection that caused it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import requests
from sqlalchemy import event
from sqlalchemy.engine import Engine

import asgispy
from asgispy import Spy
from asgispy.inside import sql
from asgispy.model.connection import Connection
from asgispy.model.inside import LogRecord, OutgoingCall, Query
from tests import inside_apps
from tests.inside_apps import UPSTREAM, dispose, shop
from tests.servers import serve

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def upstream() -> Iterator[str]:
    with serve(UPSTREAM) as server:
        yield server.url("").rstrip("/")


@pytest.fixture
def recorded(upstream: str, tmp_path: Path) -> Iterator[tuple[Spy, str]]:
    app = shop(upstream, tmp_path / "shop.db")
    spy = Spy(app, inside=True, address=False)
    try:
        with serve(spy) as server:
            yield spy, server.url("").rstrip("/")
    finally:
        spy.close()
        asyncio.run(dispose(app))


def saved(spy: Spy, tmp_path: Path) -> list[Connection]:
    """The session written, checked against the session file's schema, and loaded again."""
    import json
    import time

    import jsonschema

    from tests.test_codec import SCHEMA

    deadline = time.monotonic() + 10  # a client has its answer a moment before the app returns
    while any(r.ended is None for r in spy.records if r.type == "http") and time.monotonic() < deadline:
        time.sleep(0.01)
    path = spy.export(tmp_path / "inside.json")
    jsonschema.validate(json.loads(path.read_text()), SCHEMA)
    return asgispy.load(path).connections


def by_n(connections: list[Connection], path: str) -> dict[int, Connection]:
    return {int(c.query_string.decode().split("=")[1]): c for c in connections if c.path == path}


def test_overlapping_requests_each_get_their_own_calls_logs_and_queries(
    recorded: tuple[Spy, str], tmp_path: Path
) -> None:
    spy, base = recorded
    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(httpx.post, f"{base}/orders?n={n}", timeout=20) for n in range(1, 5)]
        jobs += [pool.submit(httpx.get, f"{base}/books?n={n}", timeout=20) for n in range(11, 15)]
        assert [j.result().status_code for j in jobs] == [502] * 4 + [200] * 4
    connections = saved(spy, tmp_path)

    for n, conn in by_n(connections, "/orders").items():
        calls = [i for i in conn.inside if isinstance(i, OutgoingCall)]
        logs = [i for i in conn.inside if isinstance(i, LogRecord)]
        queries = [i for i in conn.inside if isinstance(i, Query)]
        assert len(calls) == 1, conn.inside
        call = calls[0]
        assert (call.library, call.method, call.status) == ("httpx", "POST", 503)
        assert call.url.endswith(f"/charge?n={n}")
        assert call.duration is not None and call.duration >= 0.04
        assert call.response_body == b"busy" and ("retry-after", "1") in call.response_headers
        assert call.request_body == f'{{"order":{n}}}'.encode() or b'"order"' in call.request_body
        assert ("authorization", "[redacted]") in call.request_headers  # masked as everywhere
        assert [(r.level, r.message) for r in logs] == [
            ("WARNING", f"payment for order {n} answered 503"),
            ("INFO", f"spawned task of order {n}"),  # a task the request spawned
        ]
        where, _, line = logs[0].where.rpartition(":")
        assert logs[0].logger == "shop.orders" and where == inside_apps.__file__ and int(line) > 0
        # the async engine's statements, each naming its own request
        assert [q.statement for q in queries] == [f"SELECT {n} AS n, count(*) FROM book"] * 2
        assert all(q.database == "sqlite" and q.duration is not None for q in queries)
        late = [(i.kind, i.t) for i in conn.inside if not 0 <= i.t <= (conn.duration or 0)]
        assert not late, (late, conn.duration)
        assert not any(i.after_response for i in conn.inside)

    for n, conn in by_n(connections, "/books").items():  # a sync endpoint: the thread pool's work
        queries = [i for i in conn.inside if isinstance(i, Query)]
        calls = [i for i in conn.inside if isinstance(i, OutgoingCall)]
        logs = [i for i in conn.inside if isinstance(i, LogRecord)]
        assert len(queries) == 6 and all(f", {n} FROM book" in q.statement for q in queries)
        assert all(q.parameters is None for q in queries)  # user data: not recorded unless asked
        assert [(c.library, c.status) for c in calls] == [("requests", 200), ("httpx", 200)]
        assert all(c.url.split("?")[1].startswith(f"n={n}") for c in calls)
        assert [r.message for r in logs] == [f"listed 6 books for {n}"]  # DEBUG is below INFO


def test_errors_background_work_and_sql_parameters(upstream: str, tmp_path: Path) -> None:
    app = shop(upstream, tmp_path / "shop.db")
    spy = Spy(app, inside=("logging", "sql", "http"), inside_sql_params=True, address=False)
    try:
        with serve(spy) as server:
            assert httpx.get(server.url("/failing"), timeout=20).status_code == 200
            assert httpx.get(server.url("/background?n=7"), timeout=20).text == "accepted"
            assert httpx.get(server.url("/books?n=3"), timeout=20).status_code == 200
            assert httpx.get(server.url("/quiet"), timeout=20).status_code == 200
    finally:
        spy.close()
        asyncio.run(dispose(app))
    connections = {c.path: c for c in saved(spy, tmp_path)}

    failing = connections["/failing"].inside
    logged = next(i for i in failing if isinstance(i, LogRecord))
    assert logged.level == "ERROR" and logged.exception and "KeyError: 'missing'" in logged.exception
    refused = next(i for i in failing if isinstance(i, OutgoingCall))
    assert refused.status is None and refused.error and refused.error.startswith("ConnectError")

    later = connections["/background"].inside
    assert {type(i) for i in later} == {LogRecord, Query}
    assert all(i.after_response for i in later)  # after the response was complete
    assert connections["/background"].inside[0].t > 0

    queries = [i for i in connections["/books"].inside if isinstance(i, Query)]
    assert [q.parameters for q in queries] == [(i,) for i in range(1, 7)]  # as the driver got them
    assert all(q.rows is None or q.rows >= -1 for q in queries)
    assert connections["/quiet"].inside == []


def test_off_by_default_and_close_removes_every_hook(upstream: str, tmp_path: Path) -> None:
    originals = (httpx.Client.send, httpx.AsyncClient.send, requests.Session.send)
    plain = Spy(shop(upstream, tmp_path / "a.db"), address=False)
    assert (httpx.Client.send, httpx.AsyncClient.send, requests.Session.send) == originals
    assert plain._inside is None

    first = Spy(shop(upstream, tmp_path / "b.db"), inside=True, address=False)
    second = Spy(shop(upstream, tmp_path / "c.db"), inside="http,sql", address=False)
    assert httpx.Client.send is not originals[0] and requests.Session.send is not originals[2]
    listeners = dict(sql.listening)
    assert set(listeners) == {"before_cursor_execute", "after_cursor_execute", "handle_error"}
    assert all(event.contains(Engine, name, fn) for name, fn in listeners.items())  # once, for both
    patched = httpx.Client.send
    first.close()
    assert httpx.Client.send is patched  # the second still records calls
    assert not any(type(h).__name__ == "_InsideHandler" for h in __import__("logging").getLogger().handlers)
    second.close()
    second.close()  # twice is harmless
    assert (httpx.Client.send, httpx.AsyncClient.send, requests.Session.send) == originals
    assert not any(event.contains(Engine, name, fn) for name, fn in listeners.items())


def test_a_bad_kind_or_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown smtp"):
        Spy(UPSTREAM, inside="http,smtp", address=False)
    with pytest.raises(ValueError, match="not a logging level"):
        Spy(UPSTREAM, inside=True, inside_level="loud", address=False)


def test_a_live_viewer_gets_what_happened_inside(upstream: str, tmp_path: Path) -> None:
    import time

    from tests.test_wire_collector import CollectorThread

    (tmp_path / "s").mkdir(mode=0o700)
    address = f"unix:{tmp_path / 's' / 'inside.sock'}"
    app = shop(upstream, tmp_path / "shop.db")
    with CollectorThread([address]) as viewer:
        spy = Spy(app, inside=True, address=address)
        try:
            with serve(spy) as server:
                assert httpx.post(server.url("/orders?n=5"), timeout=20).status_code == 502
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    got = viewer.call(
                        lambda: [c for c in viewer.store if c.path == "/orders" and c.outcome != "open"]
                    )
                    if got:
                        break
                    time.sleep(0.05)
        finally:
            spy.close()
            asyncio.run(dispose(app))
        conn = got[0]
        kinds = [i.kind for i in conn.inside]
        assert sorted(kinds) == ["http", "log", "log", "sql", "sql"]
        call = next(i for i in conn.inside if isinstance(i, OutgoingCall))
        assert call.status == 503 and ("authorization", "[redacted]") in call.request_headers


def test_what_was_recorded_inside_replays_without_the_upstream_and_exports(tmp_path: Path) -> None:
    """The real capture's entries feed the other views: a replay with ``stub_calls`` answers the
    app's call from the recording while the upstream is gone; HAR lists the call as an entry."""
    from asgispy.exports.har import to_har
    from asgispy.replay.runner import replay

    with serve(UPSTREAM) as up:
        app = shop(up.url("").rstrip("/"), tmp_path / "shop.db")
        spy = Spy(app, inside="http", address=False)
        try:
            with serve(spy) as server:
                assert httpx.post(server.url("/orders?n=8"), timeout=20).json()["upstream"] == 503
        finally:
            spy.close()
    session = asgispy.load(spy.export(tmp_path / "recorded.json"))
    orders = [c for c in session.connections if c.path == "/orders"]

    entries = to_har(orders)["log"]["entries"]
    assert [e["_asgispy"].get("kind") for e in entries][1:] == ["outgoing"]
    assert entries[1]["response"]["status"] == 503 and entries[1]["request"]["method"] == "POST"

    results = asyncio.run(replay(app, orders, stub_calls=True))  # the upstream has stopped
    asyncio.run(dispose(app))
    assert len(results) == 1 and results[0].now is not None
    assert results[0].now.response_body() == b'{"n":8,"upstream":503}'


def test_aiohttp_calls_are_recorded_too(upstream: str, tmp_path: Path) -> None:
    import aiohttp
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def fetch(request: Request) -> JSONResponse:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{upstream}/ok?via=aiohttp", headers={"x-api-key": "k"}) as answer,
        ):
            return JSONResponse({"upstream": answer.status, "said": await answer.json()})

    spy = Spy(Starlette(routes=[Route("/fetch", fetch)]), inside="http", address=False)
    try:
        with serve(spy) as server:
            assert httpx.get(server.url("/fetch"), timeout=20).json()["upstream"] == 200
    finally:
        spy.close()
    assert aiohttp.ClientSession._request.__name__ == "_request"  # given back
    (conn,) = [c for c in saved(spy, tmp_path) if c.path == "/fetch"]
    (call,) = conn.inside
    assert isinstance(call, OutgoingCall)
    assert (call.library, call.method, call.status) == ("aiohttp", "GET", 200)
    assert call.url.endswith("/ok?via=aiohttp") and ("x-api-key", "[redacted]") in call.request_headers
