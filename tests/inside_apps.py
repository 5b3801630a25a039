"""Apps for the tests of ``Spy(app, inside=True)``: an upstream service, and a shop that calls it
(httpx sync and async, requests), logs, and runs SQL (SQLAlchemy sync and async, on SQLite
files) from async endpoints, sync endpoints (Starlette's thread pool), spawned tasks and a
background task. Each request's work names its ``n``, so a test can tell whose work is whose."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

log = logging.getLogger("shop.orders")
log.setLevel(logging.DEBUG)


async def charge(request: Request) -> PlainTextResponse:
    await asyncio.sleep(0.05)
    return PlainTextResponse("busy", status_code=503, headers={"retry-after": "1"})


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "q": request.url.query})


UPSTREAM = Starlette(routes=[Route("/charge", charge, methods=["POST"]), Route("/ok", ok)])


def shop(upstream: str, database: Path) -> Starlette:
    """The app under inspection; ``upstream`` is the base URL of :data:`UPSTREAM`."""
    sync_engine = create_engine(f"sqlite:///{database}")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    with sync_engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS book (id INTEGER PRIMARY KEY, title TEXT)"))
        conn.execute(text("DELETE FROM book"))
        for i in range(1, 9):
            conn.execute(
                text("INSERT INTO book (id, title) VALUES (:id, :title)"), {"id": i, "title": f"b{i}"}
            )

    async def orders(request: Request) -> JSONResponse:
        n = int(request.query_params["n"])
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(
                f"{upstream}/charge?n={n}",
                json={"order": n},
                headers={"authorization": "Bearer s3cret"},
            )
        log.warning("payment for order %d answered %d", n, answer.status_code)
        async with async_engine.connect() as conn:
            for _ in range(2):
                await conn.execute(text(f"SELECT {n} AS n, count(*) FROM book"))

        async def spawned() -> None:
            log.info("spawned task of order %d", n)

        await asyncio.create_task(spawned())
        return JSONResponse({"n": n, "upstream": answer.status_code}, status_code=502)

    def books(request: Request) -> JSONResponse:  # sync: Starlette runs it in its thread pool
        n = int(request.query_params["n"])
        titles = []
        with sync_engine.connect() as conn:
            for i in range(1, 7):  # one query per book: the N+1 shape
                row = conn.execute(text(f"SELECT title, {n} FROM book WHERE id = :id"), {"id": i}).first()
                titles.append(row[0] if row else None)
        requests.get(f"{upstream}/ok?n={n}", timeout=10)
        httpx.get(f"{upstream}/ok?n={n}&via=httpx", timeout=10)
        log.info("listed %d books for %d", len(titles), n)
        log.debug("debug for %d is below the default level", n)
        return JSONResponse({"n": n, "titles": titles})

    async def failing(request: Request) -> JSONResponse:
        try:
            raise KeyError("missing")
        except KeyError:
            log.exception("lookup failed")
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                await client.get("http://127.0.0.1:9/nothing-listens-here")
        except httpx.HTTPError:
            pass
        return JSONResponse({"failed": True})

    def later(n: int) -> None:
        log.warning("background work of %d", n)
        with sync_engine.connect() as conn:
            conn.execute(text(f"SELECT {n} AS later"))

    async def background(request: Request) -> PlainTextResponse:
        n = int(request.query_params["n"])
        return PlainTextResponse("accepted", background=BackgroundTask(later, n))

    async def quiet(request: Request) -> PlainTextResponse:
        return PlainTextResponse("nothing inside")

    app = Starlette(
        routes=[
            Route("/orders", orders, methods=["POST"]),
            Route("/books", books),
            Route("/failing", failing),
            Route("/background", background),
            Route("/quiet", quiet),
        ]
    )
    app.state.engines = (sync_engine, async_engine)
    return app


async def dispose(app: Any) -> None:
    sync_engine, async_engine = app.state.engines
    sync_engine.dispose()
    await async_engine.dispose()
