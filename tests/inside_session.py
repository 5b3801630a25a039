"""A session recorded from a real app under uvicorn, with what the app did inside each request
written into its document by hand: the capture (``Spy(app, inside=True)``) is built elsewhere,
and the exports only read the model, so a document is the boundary they are tested at."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from asgispy import Spy
from asgispy.codec.redact import REDACTED_TEXT
from asgispy.model.inside import Inside, LogRecord, OutgoingCall, Query
from asgispy.model.session import Session
from asgispy.store.load import session_from_document
from tests.servers import serve

PNG = b"\x89PNG\r\n\x1a\n\x00\xff\xfe"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app.py", line 12, in checkout\n'
    "    pay()\n"
    "ValueError: card declined"
)


async def _checkout(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain")


APP = Starlette(routes=[Route("/checkout", _checkout, methods=["POST"]), Route("/plain", _plain)])


def checkout_inside() -> list[Inside]:
    """What /checkout did: two calls (one binary, one failed), a query, logs with an exception."""
    return [
        OutgoingCall(
            t=0.001,
            library="httpx",
            method="GET",
            url="https://api.example.com:8443/v1/cards?id=7",
            status=200,
            duration=0.004,
            request_headers=[("authorization", REDACTED_TEXT), ("accept", "application/json")],
            response_headers=[("content-type", "application/json")],
            response_body=b'{"card": 7}',
        ),
        Query(
            t=0.006,
            statement="SELECT id, total FROM orders WHERE id = ?",
            duration=0.0005,
            rows=1,
            database="sqlite",
        ),
        OutgoingCall(
            t=0.007,
            library="httpx",
            method="POST",
            url="http://images.local/upload",
            status=201,
            duration=0.002,
            request_headers=[("content-type", "image/png")],
            response_headers=[("content-type", "image/png")],
            request_body=PNG,
            response_body=PNG[:4],
            request_size=len(PNG),
            response_size=100,
        ),
        LogRecord(
            t=0.008,
            level="WARNING",
            levelno=30,
            logger="shop",
            message="slow card service",
            where="/srv/app.py:40",
        ),
        OutgoingCall(
            t=0.009,
            library="httpx",
            method="POST",
            url="http://payments.local/pay",
            duration=0.003,
            error="ConnectError: [Errno 111] Connection refused",
        ),
        LogRecord(
            t=0.0125,
            level="ERROR",
            levelno=40,
            logger="shop",
            message="payment failed",
            where="/srv/app.py:12",
            exception=TRACEBACK,
        ),
        Query(
            t=0.02,
            statement="INSERT INTO audit (what) VALUES (?)",
            duration=0.0002,
            rows=1,
            database="sqlite",
            after_response=True,
        ),
    ]


def recorded_document() -> dict[str, Any]:
    """The session document of POST /checkout and GET /plain on a real uvicorn, with
    /checkout's inside entries (and one of a kind from a future version) added."""
    spy = Spy(APP, address=False)
    with serve(spy) as server:
        assert httpx.post(server.url("/checkout"), content=b"{}", timeout=10).status_code == 200
        assert httpx.get(server.url("/plain"), timeout=10).status_code == 200
    doc = spy.document()
    for conn in doc["connections"]:
        if conn["type"] == "http" and conn["scope"].get("path") == "/checkout":
            conn["inside"] = [i.document() for i in checkout_inside()]
            conn["inside"].append({"kind": "cache", "t": 0.011, "key": "card:7", "hit": True})
            # The made-up entries run to 20 ms: the app's time must cover them, as it would.
            conn["duration"] = max(conn["duration"], 0.05)
    return doc


def recorded_session() -> Session:
    return session_from_document(recorded_document())
