"""Breakpoints on a real uvicorn: a matching connection waits while others go on, and is resumed
with edits, answered, dropped, resumed by the timeout or by the viewer going away; a response
breakpoint matches on the response's status. Decisions come from another thread, as a viewer's do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgispy import Spy
from asgispy.intercept.breakpoints import DROPPED_STATUS, Decision, Held
from tests.servers import RunningServer, serve

pytestmark = pytest.mark.timeout(60)


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    status = 404 if request.url.path == "/missing" else 200
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode(),
        },
        status_code=status,
    )


APP = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PUT"])])


class Viewer:
    """Stands where a dashboard would: told of each held connection, deciding from its thread."""

    def __init__(self, spy: Spy) -> None:
        assert spy.interception is not None
        self.points = spy.interception.breakpoints
        self.held: list[Held] = []
        self.released: list[str] = []
        self.changed = threading.Condition()
        self.points.watchers.append(self._told)

    def _told(self, what: str, held: Held) -> None:
        with self.changed:
            (self.held.append(held) if what == "held" else self.released.append(held.id))
            self.changed.notify_all()

    def wait_held(self, count: int = 1) -> Held:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.held) >= count, timeout=10), "nothing was held"
            return self.held[count - 1]


@pytest.fixture
def served() -> Iterator[tuple[Spy, RunningServer, Viewer, ThreadPoolExecutor]]:
    spy = Spy(APP, intercept=True, address=False)
    with serve(spy) as server, ThreadPoolExecutor(4) as pool:
        yield spy, server, Viewer(spy), pool


def call(
    pool: ThreadPoolExecutor, server: RunningServer, method: str, path: str, **kw: Any
) -> Future[httpx.Response]:
    return pool.submit(httpx.request, method, server.url(path), timeout=20, **kw)


def test_a_held_request_waits_alone_and_resumes_with_edits(served: Any) -> None:
    spy, server, viewer, pool = served
    viewer.points.add("path:/pay*")
    paying = call(pool, server, "POST", "/pay?amount=10", content=b'{"amount": 10}')
    held = viewer.wait_held()
    doc = held.document()
    assert doc["phase"] == "request"
    assert (doc["request"]["method"], doc["request"]["path"], doc["request"]["query"]) == (
        "POST",
        "/pay",
        "amount=10",
    )
    assert doc["request"]["body"] == '{"amount": 10}'
    # another connection goes on while this one waits
    assert httpx.get(server.url("/other"), timeout=10).json()["path"] == "/other"
    assert not paying.done()
    viewer.points.decide(
        held.id, Decision("resume", {"path": "/paid", "query": "amount=99", "body": '{"amount": 99}'})
    )
    answer = paying.result(10).json()
    assert answer == {"method": "POST", "path": "/paid", "query": "amount=99", "body": '{"amount": 99}'}
    record = next(r for r in spy.records if r.scope.get("path") == "/pay")
    hold, edit = [i for i in record.interventions if i["by"] == "breakpoint"]
    assert hold["what"].startswith("held ") and hold["what"].endswith("at a breakpoint; resumed with edits")
    assert hold["held"] > 0
    assert edit["what"] == "request: path /pay → /paid, query, body 14 → 14 bytes"


def test_a_held_request_is_answered_or_dropped_without_the_app(served: Any) -> None:
    _, server, viewer, pool = served
    viewer.points.add("method:PUT")
    answered = call(pool, server, "PUT", "/a")
    viewer.points.decide(
        viewer.wait_held(1).id, Decision("answer", {"status": 201, "json": {"mocked": True}})
    )
    assert (answered.result(10).status_code, answered.result(10).json()) == (201, {"mocked": True})
    dropped = call(pool, server, "PUT", "/b")
    viewer.points.decide(viewer.wait_held(2).id, Decision("drop"))
    assert dropped.result(10).status_code == DROPPED_STATUS


def test_a_held_request_resumes_unchanged_after_the_timeout_and_when_the_viewer_goes(served: Any) -> None:
    spy, server, viewer, pool = served
    viewer.points.timeout = 0.3
    viewer.points.add("path:/slow")
    assert httpx.get(server.url("/slow"), timeout=10).json()["path"] == "/slow"
    viewer.points.timeout = 30
    waiting = call(pool, server, "GET", "/slow")
    viewer.wait_held(2)
    assert viewer.points.release_all() == 1
    assert waiting.result(10).json()["path"] == "/slow"
    whats = [i["what"] for r in spy.records for i in r.interventions]
    assert any(w.endswith("resumed unchanged after the timeout") for w in whats)
    assert any(w.endswith("resumed unchanged: the viewer went away") for w in whats)
    assert viewer.points.held == {}


def test_a_response_breakpoint_matches_the_status_and_edits_the_response(served: Any) -> None:
    _, server, viewer, pool = served
    viewer.points.add("status:404", phase="response")
    assert httpx.get(server.url("/found"), timeout=10).status_code == 200  # not held: a 200
    missing = call(pool, server, "GET", "/missing")
    held = viewer.wait_held()
    doc = held.document()
    assert doc["phase"] == "response" and doc["response"]["status"] == 404
    viewer.points.decide(held.id, Decision("resume", {"status": 200, "body": "patched"}))
    answer = missing.result(10)
    assert (answer.status_code, answer.text, answer.headers["content-length"]) == (200, "patched", "7")


def test_without_intercept_nothing_can_hold_the_app() -> None:
    assert Spy(APP, address=False).interception is None


def test_a_viewer_controls_breakpoints_and_rules_through_control_messages() -> None:
    from asgispy.intercept.control import Control

    spy = Spy(APP, intercept=True, rules=[{"match": "path:/mock", "respond": {"status": 418}}], address=False)
    assert spy.interception is not None
    reports: list[dict[str, Any]] = []
    arrived = threading.Condition()

    def report(message: dict[str, Any]) -> None:
        with arrived:
            reports.append(message)
            arrived.notify_all()

    def first(kind: str) -> dict[str, Any]:
        with arrived:
            assert arrived.wait_for(lambda: any(r["kind"] == kind for r in reports), timeout=10)
            return next(r for r in reports if r["kind"] == kind)

    control = Control(spy.interception, report)
    with serve(spy) as server, ThreadPoolExecutor(2) as pool:
        control.handle({"kind": "breakpoints", "points": [{"expression": "path:/held", "phase": "request"}]})
        state = first("state")
        assert state["breakpoints"] == [{"id": 1, "expression": "path:/held", "phase": "request"}]
        assert state["rules"] == [{"index": 0, "label": "rule 1", "does": "respond 418", "enabled": True}]
        waiting = call(pool, server, "GET", "/held")
        held = first("held")["held"]
        assert held["request"]["path"] == "/held"
        control.handle({"kind": "decide", "id": held["id"], "action": "answer", "edits": {"status": 202}})
        assert waiting.result(10).status_code == 202
        assert first("released")["id"] == held["id"]
        control.handle({"kind": "rule", "index": 0, "enabled": False})
        assert httpx.get(server.url("/mock"), timeout=10).status_code == 200
        control.handle({"kind": "decide", "id": "nobody", "action": "resume"})
        control.handle({"kind": "breakpoints", "points": [{"expression": "status:"}]})
        errors = [r["error"] for r in reports if r["kind"] == "error"]
        assert errors[0] == "connection nobody is not held"
        assert "status" in errors[1]
        # the viewer goes: its breakpoints go with it, and what it held resumes
        control.handle({"kind": "breakpoints", "points": [{"expression": "path:/again"}]})
        again = call(pool, server, "GET", "/again")
        with arrived:
            assert arrived.wait_for(lambda: sum(r["kind"] == "held" for r in reports) == 2, timeout=10)
        control.handle({"kind": "gone"})
        assert again.result(10).json()["path"] == "/again"
        assert spy.interception.breakpoints.points == []


def test_removing_a_breakpoint_lets_what_it_held_go_on() -> None:
    from asgispy.intercept.control import Control

    spy = Spy(APP, intercept=True, address=False)
    assert spy.interception is not None
    control = Control(spy.interception)
    viewer = Viewer(spy)
    with serve(spy) as server, ThreadPoolExecutor(2) as pool:
        control.handle(
            {"kind": "breakpoints", "points": [{"expression": "path:/a"}, {"expression": "path:/b"}]}
        )
        first = call(pool, server, "GET", "/a")
        second = call(pool, server, "GET", "/b")
        viewer.wait_held(2)
        control.handle({"kind": "breakpoints", "points": [{"expression": "path:/b"}]})
        assert first.result(10).json()["path"] == "/a"
        assert not second.done()  # its breakpoint is still there
        control.handle({"kind": "breakpoints", "points": []})
        assert second.result(10).json()["path"] == "/b"
    whats = [i["what"] for r in spy.records for i in r.interventions]
    assert sum(w.endswith("resumed unchanged: its breakpoint was removed") for w in whats) == 2
