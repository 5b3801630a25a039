"""A Starlette app that calls an upstream with httpx, to replay with ``--stub-calls``: /price
(AsyncClient, with a query), /stock (a sync Client, in Starlette's threadpool), /pay (to an
address that refuses, so the call fails) and /other (a URL the recording never saw). The
upstream's address comes from ``$CALLING_UPSTREAM`` and the refusing one from
``$CALLING_DOWN``, read at each request."""

from __future__ import annotations

import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TIMEOUT = 5


def _upstream() -> str:
    return os.environ["CALLING_UPSTREAM"]


async def price(request: Request) -> JSONResponse:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        answer = await client.get(f"{_upstream()}/price", params={"item": "kettle"})
    return JSONResponse(
        {"upstream": answer.status_code, "said": answer.json(), "via": answer.headers.get("x-via")}
    )


def stock(request: Request) -> JSONResponse:
    with httpx.Client(timeout=TIMEOUT) as client:
        answer = client.post(f"{_upstream()}/stock", content=b"kettle")
    return JSONResponse({"upstream": answer.status_code, "said": answer.text})


async def pay(request: Request) -> JSONResponse:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            await client.post(f"{os.environ['CALLING_DOWN']}/pay")
    except httpx.ConnectError as exc:
        return JSONResponse({"failed": type(exc).__name__}, status_code=502)
    return JSONResponse({"failed": None})


async def other(request: Request) -> JSONResponse:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            answer = await client.get(f"{_upstream()}/never-recorded")
    except httpx.ConnectError:
        return JSONResponse({"reached": False}, status_code=502)
    return JSONResponse({"reached": answer.status_code})


app = Starlette(
    routes=[
        Route("/price", price),
        Route("/stock", stock, methods=["POST"]),
        Route("/pay", pay, methods=["POST"]),
        Route("/other", other),
    ]
)
