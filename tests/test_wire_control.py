"""The control line over real sockets: a viewer's collector sets a breakpoint in an app served by
uvicorn, sees the held connection in its store, resumes it edited, turns a rule off; an app that
did not opt in is never sent a request; a viewer that goes away leaves nothing held."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgispy import Spy
from tests.servers import serve
from tests.test_wire_collector import CollectorThread

pytestmark = pytest.mark.timeout(60)


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()})


def app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])


def test_a_viewer_holds_edits_and_resumes_a_request_over_the_wire(sockdir: Path) -> None:
    sock = f"unix:{sockdir}/c.sock"
    with CollectorThread([sock]) as viewer:
        spy = Spy(
            app(), intercept=True, rules=[{"match": "path:/mock", "respond": {"status": 418}}], address=sock
        )
        with serve(spy) as server, ThreadPoolExecutor(2) as pool:
            tag = viewer.wait_for(
                lambda store: next((t for t, p in store.producers.items() if p.control), None)
            )
            state = viewer.call(lambda: viewer.store.producers[tag].control)
            assert state["rules"][0]["does"] == "respond 418" and state["breakpoints"] == []
            request = {"kind": "breakpoints", "points": [{"expression": "path:/pay", "phase": "request"}]}
            assert viewer.call(lambda: viewer.collector.control(tag, request))
            viewer.wait_for(lambda store: store.producers[tag].control["breakpoints"])
            paying = pool.submit(httpx.post, server.url("/pay"), content=b"10", timeout=20)
            held = viewer.wait_for(lambda store: next(iter(store.held.values()), None))
            assert held["request"]["path"] == "/pay" and held["request"]["body"] == "10"
            assert held["producer"] == tag
            decide = {"kind": "decide", "id": held["id"], "action": "resume", "edits": {"body": "99"}}
            assert viewer.call(lambda: viewer.collector.control(tag, decide))
            assert paying.result(10).json() == {"path": "/pay", "body": "99"}
            viewer.wait_for(lambda store: not store.held)
            assert viewer.call(
                lambda: viewer.collector.control(tag, {"kind": "rule", "index": 0, "enabled": False})
            )
            viewer.wait_for(lambda store: store.producers[tag].control["rules"][0]["enabled"] is False)
            assert httpx.get(server.url("/mock"), timeout=10).status_code == 200
            # the held connection's own record says it was held, and by whom it was resumed
            conn = viewer.wait_for(
                lambda store: next((c for c in store if c.path == "/pay" and c.outcome == "completed"), None)
            )
            assert any(i["by"] == "breakpoint" for i in conn.interventions)


def test_an_app_that_did_not_opt_in_takes_no_request(sockdir: Path) -> None:
    sock = f"unix:{sockdir}/c.sock"
    with CollectorThread([sock]) as viewer:
        spy = Spy(app(), rules=[{"respond": {"status": 418}}], address=sock)
        with serve(spy) as server:
            httpx.get(server.url("/x"), timeout=10)
            tag = viewer.wait_for(lambda store: next(iter(store.producers), None))
            assert viewer.call(lambda: viewer.collector.controllable()) == []
            stop_all = {"kind": "breakpoints", "points": [{"expression": ""}]}
            assert viewer.call(lambda: viewer.collector.control(tag, stop_all)) is False
            assert httpx.get(server.url("/x"), timeout=10).status_code == 418


def test_a_viewer_that_goes_away_leaves_nothing_held(sockdir: Path) -> None:
    sock = f"unix:{sockdir}/c.sock"
    spy = Spy(app(), intercept=True, address=sock)
    viewer = CollectorThread([sock])
    with viewer, serve(spy) as server, ThreadPoolExecutor(1) as pool:
        tag = viewer.wait_for(lambda store: next((t for t, p in store.producers.items() if p.control), None))
        request = {"kind": "breakpoints", "points": [{"expression": "", "phase": "request"}], "timeout": 60}
        viewer.call(lambda: viewer.collector.control(tag, request))
        viewer.wait_for(lambda store: store.producers[tag].control["breakpoints"])
        waiting = pool.submit(httpx.get, server.url("/anything"), timeout=20)
        viewer.wait_for(lambda store: store.held)
        released = threading.Event()
        assert spy.interception is not None
        spy.interception.breakpoints.watchers.append(lambda what, held: released.set())
        viewer.stop()  # the dashboard quits
        assert waiting.result(10).json()["path"] == "/anything"  # long before the 60 s timeout
        assert released.wait(5)
        assert spy.interception.breakpoints.points == []


def test_a_held_request_leaves_the_app_masked_and_keeps_its_secret_when_edited(sockdir: Path) -> None:
    async def auth(request: Request) -> JSONResponse:
        return JSONResponse(
            {"auth": request.headers.get("authorization"), "tag": request.headers.get("x-tag")}
        )

    sock = f"unix:{sockdir}/c.sock"
    secret_app = Starlette(routes=[Route("/{path:path}", auth)])
    with CollectorThread([sock]) as viewer:
        spy = Spy(secret_app, intercept=True, address=sock)
        with serve(spy) as server, ThreadPoolExecutor(1) as pool:
            tag = viewer.wait_for(
                lambda store: next((t for t, p in store.producers.items() if p.control), None)
            )
            request = {"kind": "breakpoints", "points": [{"expression": "", "phase": "request"}]}
            viewer.call(lambda: viewer.collector.control(tag, request))
            viewer.wait_for(lambda store: store.producers[tag].control["breakpoints"])
            waiting = pool.submit(
                httpx.get, server.url("/me"), headers={"authorization": "Bearer t0ken"}, timeout=20
            )
            held = viewer.wait_for(lambda store: next(iter(store.held.values()), None))
            headers = held["request"]["headers"]
            assert ["authorization", "[redacted]"] in headers and "t0ken" not in str(held)
            edits = {"headers": [*headers, ["x-tag", "edited"]]}
            viewer.call(
                lambda: viewer.collector.control(
                    tag, {"kind": "decide", "id": held["id"], "action": "resume", "edits": edits}
                )
            )
            assert waiting.result(10).json() == {"auth": "Bearer t0ken", "tag": "edited"}
