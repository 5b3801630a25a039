"""Edit and resend: a recorded request as editable text and back, sent again over HTTP to the live
app (a real uvicorn) or in-process, arriving as a new connection marked as resent from the first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asgispy
from asgispy import Spy
from asgispy.replay.editing import EditError, parse_request, parse_response, request_text, response_text
from asgispy.replay.resend import base_url, request_doc, resend
from tests.servers import serve

pytestmark = pytest.mark.timeout(60)


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "auth": request.headers.get("authorization"),
            "body": (await request.body()).decode(),
        }
    )


APP = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PATCH"])])


def test_a_request_and_a_response_round_trip_through_their_text() -> None:
    doc = {
        "method": "POST",
        "path": "/orders",
        "query": "dry=1",
        "headers": [("content-type", "application/json"), ("x-tag", "a"), ("x-tag", "b")],
        "body": '{"item": 3}\n\nsecond paragraph',
    }
    text = request_text(doc)
    assert text.splitlines()[:4] == [
        "POST /orders?dry=1",
        "content-type: application/json",
        "x-tag: a",
        "x-tag: b",
    ]
    assert parse_request(text) == doc
    binary = {"status": 201, "headers": [("content-type", "image/png")], "body_base64": "iVBORw0KGgo="}
    assert parse_response(response_text(binary)) == binary


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "line 1: empty"),
        ("GET\n", "write the method and the path"),
        ("GET items\n", "must start with /"),
        ("GET /\nnot a header\n\n", "line 2: 'not a header' is not a header"),
    ],
)
def test_a_bad_request_text_says_which_line(text: str, problem: str) -> None:
    with pytest.raises(EditError, match=problem):
        parse_request(text)


def test_a_recorded_request_is_sent_again_edited_to_the_live_app(tmp_path: Path) -> None:
    spy = Spy(APP, address=False)
    with serve(spy) as server:
        httpx.post(
            server.url("/items?page=1"), content=b"original", headers={"authorization": "Bearer s3cret"}
        )
        first = next(
            c for c in asgispy.load(spy.export(tmp_path / "a.json")).connections if c.path == "/items"
        )
        url = base_url(first)
        assert url == server.base_url
        doc = request_doc(first)
        assert ("authorization", "[redacted]") in doc["headers"]  # masked in the export
        edited = parse_request(request_text(doc).replace("page=1", "page=2").replace("original", "edited"))
        without = asyncio.run(resend(edited, first.id, url=url, env={}))
        assert without.missing_secrets == ["authorization"] and without.status == 200
        sent = asyncio.run(
            resend(edited, first.id, url=url, env={"ASGISPY_SECRET_AUTHORIZATION": "Bearer s3cret"})
        )
        assert sent.status == 200 and sent.missing_secrets == []
    conns = [c for c in asgispy.load(spy.export(tmp_path / "b.json")).connections if c.path == "/items"]
    assert [c.resent_from for c in conns] == [None, first.id, first.id]
    assert conns[2].query_string == b"page=2" and conns[2].request_body() == b"edited"
    assert dict(conns[1].request_headers).get(b"authorization") is None


def test_a_request_is_sent_again_in_process_when_no_server_runs() -> None:
    spy = Spy(APP, address=False)
    doc = {"method": "PATCH", "path": "/x", "query": "", "headers": [], "body": "in-process"}
    answer = asyncio.run(resend(doc, "abc-1", app=spy))
    assert answer.status == 200 and b'"body":"in-process"' in answer.body
    (record,) = [r for r in spy.records if r.type == "http"]
    assert dict(record.scope["headers"])[b"x-asgispy-resent-from"] == b"abc-1"


def test_nowhere_to_send_is_a_clear_answer() -> None:
    result = asyncio.run(resend({"method": "GET", "path": "/"}, "x-1"))
    assert result.status is None and result.error is not None and "not known" in result.error
