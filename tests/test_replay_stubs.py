"""``asgispy replay --stub-calls`` at the real boundary: a Starlette app (tests/apps/calling.py)
calls a real upstream on loopback with httpx; the session says what the upstream answered then,
the upstream answers something else now (or is gone), and the replay shows which the app got."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgispy import Spy
from asgispy.codec.sessionfile import write_session
from asgispy.model.inside import OutgoingCall
from asgispy.replay.runner import replay
from asgispy.replay.stubs import Stubs, answering, stubbing
from asgispy.store.load import session_from_document
from tests.apps import calling
from tests.otlp_endpoint import refused_port
from tests.servers import serve
from tests.test_replay import asgispy

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 10
APP = "tests.apps.calling:app"


class Upstream:
    """Answers with the word it says now, and counts what it was asked."""

    def __init__(self) -> None:
        self.word = "then"
        self.asked: list[str] = []

    def app(self) -> Starlette:
        async def price(request: Request) -> Response:
            self.asked.append(f"GET {request.url.path}")
            return JSONResponse({"price": self.word}, headers={"x-via": self.word})

        async def stock(request: Request) -> Response:
            self.asked.append(f"POST {request.url.path}")
            return PlainTextResponse(self.word)

        async def never(request: Request) -> Response:
            self.asked.append(f"GET {request.url.path}")
            return PlainTextResponse("live")

        return Starlette(
            routes=[
                Route("/price", price),
                Route("/stock", stock, methods=["POST"]),
                Route("/never-recorded", never),
            ]
        )


@dataclass
class Recorded:
    path: Path
    upstream: Upstream
    env: dict[str, str]
    down: str
    #: stops the upstream (for good: the last test's)
    stop: Callable[[], None]


def recorded_calls(up: str, down: str) -> dict[str, list[OutgoingCall]]:
    """What the upstream answered when recorded (written by hand: the capture is built elsewhere)."""
    return {
        "/price": [
            OutgoingCall(
                t=0.001,
                library="httpx",
                method="GET",
                url=f"{up}/price?item=kettle",
                status=200,
                duration=0.002,
                response_headers=[("content-type", "application/json"), ("x-via", "then")],
                response_body=b'{"price":"then"}',
            )
        ],
        "/stock": [
            OutgoingCall(
                t=0.001, library="httpx", method="POST", url=f"{up}/stock", status=200, response_body=b"then"
            )
        ],
        "/pay": [
            OutgoingCall(
                t=0.001,
                library="httpx",
                method="POST",
                url=f"{down}/pay",
                error="ConnectError: [Errno 111] refused",
            )
        ],
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    upstream = Upstream()
    sock, port = refused_port()
    down = f"http://127.0.0.1:{port}"
    with sock, contextlib.ExitStack() as running:
        up = running.enter_context(serve(upstream.app()))
        env = {"CALLING_UPSTREAM": up.url("").rstrip("/"), "CALLING_DOWN": down}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            spy = Spy(calling.app, address=False)
            with serve(spy) as server, httpx.Client(timeout=TIMEOUT) as client:
                assert client.get(server.url("/price")).json()["said"] == {"price": "then"}
                assert client.post(server.url("/stock")).json()["said"] == "then"
                assert client.post(server.url("/pay")).status_code == 502
                assert client.get(server.url("/other")).json() == {"reached": 200}
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        doc = spy.document()
        calls = recorded_calls(env["CALLING_UPSTREAM"], down)
        for conn in doc["connections"]:
            path = conn["scope"].get("path")
            if conn["type"] == "http" and path in calls:
                conn["inside"] = [c.document() for c in calls[path]]
        path = write_session(tmp_path_factory.mktemp("stubs") / "session.json", doc)
        upstream.word = "now"  # the upstream has changed its mind since
        upstream.asked.clear()
        yield Recorded(path, upstream, env, down, running.close)


def lines(out: str) -> dict[str, str]:
    """``{path: verdict}`` of a replay's report."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("same", "changed", "failed", "skipped"):
            found[words[2].split("?")[0]] = words[0]
    return found


def test_stubbed_calls_get_the_recorded_answers(recorded: Recorded) -> None:
    done = asgispy(
        "replay", str(recorded.path), APP, "--stub-calls", "--filter=-path:/other", env=recorded.env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done.stdout) == {"/price": "same", "/stock": "same", "/pay": "same"}
    assert recorded.upstream.asked == []  # not one call reached the network


def test_without_stubs_the_app_gets_the_live_answers(recorded: Recorded) -> None:
    done = asgispy("replay", str(recorded.path), APP, "--filter=-path:/other", env=recorded.env)
    assert done.returncode == 1
    assert lines(done.stdout) == {"/price": "changed", "/stock": "changed", "/pay": "same"}
    assert "now" in done.stdout and "then" in done.stdout
    assert sorted(recorded.upstream.asked) == ["GET /price", "POST /stock"]
    recorded.upstream.asked.clear()


def test_a_call_with_no_recording_fails_loudly_and_is_not_sent(recorded: Recorded) -> None:
    done = asgispy(
        "replay", str(recorded.path), APP, "--stub-calls", "--filter", "path:/other", env=recorded.env
    )
    assert done.returncode == 1
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("failed")]
    assert f"no recorded answer for GET {recorded.env['CALLING_UPSTREAM']}/never-recorded" in line
    assert recorded.upstream.asked == []


def test_the_patch_is_only_for_the_replay_and_only_for_its_connection(recorded: Recorded) -> None:
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send
    with pytest.raises(RuntimeError), stubbing():
        assert httpx.Client.send is not sync_send
        raise RuntimeError("the replay broke")
    assert httpx.Client.send is sync_send and httpx.AsyncClient.send is async_send

    session = session_from_document({"connections": []})
    assert asyncio.run(replay(calling.app, session.connections, stub_calls=True)) == []
    assert httpx.Client.send is sync_send and httpx.AsyncClient.send is async_send

    call = OutgoingCall(method="GET", url="http://127.0.0.1:9/x?a=1", status=201, response_body=b"stub")
    live = recorded.env["CALLING_UPSTREAM"]
    with stubbing():
        with answering(Stubs([call])) as stubs:
            got: Any = httpx.get("http://127.0.0.1:9/x?a=2", timeout=TIMEOUT)  # same path, other query
            assert (got.status_code, got.text) == (201, "stub")
        # Outside the replayed connection's context, the network as usual.
        assert httpx.get(f"{live}/never-recorded", timeout=TIMEOUT).text == "live"
    assert stubs.unrecorded == []
    recorded.upstream.asked.clear()


def test_with_the_upstream_gone_the_stubbed_replay_still_succeeds(recorded: Recorded) -> None:
    recorded.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{recorded.env['CALLING_UPSTREAM']}/price", timeout=TIMEOUT)
    done = asgispy(
        "replay", str(recorded.path), APP, "--stub-calls", "--filter=-path:/other", env=recorded.env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done.stdout) == {"/price": "same", "/stock": "same", "/pay": "same"}
