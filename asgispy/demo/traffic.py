"""Traffic for the demo app: real HTTP and WebSocket clients hitting every demo route.

Each round visits every route once (the failing one and an impatient client that leaves a
stream early included), in a shuffled order with a few visits overlapping, as a browser and
a couple of scripts would. It talks to loopback only, bounds every visit in time, and when
the server goes away it stops quietly and says why instead of spilling tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, WebSocketException

from asgispy.demo.app import DEMO_TOKEN, png_bytes
from asgispy.version import __version__

__all__ = ["ServerGone", "TrafficStats", "drive"]

#: Longest a single visit may take before it is abandoned.
VISIT_TIMEOUT = 10.0
#: Visits in a row that may fail before the traffic gives up on the server.
MAX_FAILURES = 3

Log = Callable[[str], None]


@dataclass
class TrafficStats:
    """What a :func:`drive` run did, for the runner to report."""

    rounds: int = 0
    requests: int = 0
    websockets: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    close_codes: list[int] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0
    #: Why the traffic stopped before its rounds were done, in words; None when it finished.
    stopped: str | None = None

    def summary(self) -> str:
        codes = " ".join(f"{status} x{n}" for status, n in sorted(self.statuses.items()))
        text = (
            f"{self.rounds} round(s): {self.requests} HTTP requests ({codes or 'none'}), "
            f"{self.websockets} WebSocket sessions in {self.elapsed:.1f} s"
        )
        if self.failures:
            text += f", {self.failures} failed visit(s)"
        return text


class ServerGone(Exception):
    """The demo server refused or dropped the connection: nothing left to drive."""


@dataclass
class _Visitor:
    client: httpx.AsyncClient
    ws_base: str
    stats: TrafficStats
    rng: random.Random

    async def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        self._count(response)
        return response

    def _count(self, response: httpx.Response) -> None:
        for hop in [*response.history, response]:
            self.stats.requests += 1
            self.stats.statuses[hop.status_code] += 1

    # One coroutine per kind of visit ------------------------------------------------------

    async def browse(self) -> None:
        await self.request("GET", "/")
        await self.request("GET", "/api/items", params={"limit": self.rng.choice(["2", "10"])})
        await self.request("GET", "/api/items", params={"q": self.rng.choice(["tea", "mug", "zzz"])})
        await self.request("GET", f"/api/items/{self.rng.randint(1, 3)}")

    async def missing(self) -> None:
        await self.request("GET", "/api/items/999")
        await self.request("GET", "/no/such/page")

    async def create(self) -> None:
        name = self.rng.choice(["spoon", "saucer", "tray", "strainer"])
        created = await self.request("POST", "/api/items", json={"name": name, "price": 4.5})
        location = created.headers.get("location")
        if location:
            await self.request("GET", location)
            await self.request("DELETE", location)

    async def invalid(self) -> None:
        await self.request("POST", "/api/items", json={"price": "free"})
        await self.request("GET", "/api/items", params={"limit": "lots"})

    async def account(self) -> None:
        # Secrets in Authorization and Cookie: the app sees them, the recording masks them.
        await self.request(
            "GET",
            "/api/me",
            headers={
                "Authorization": f"Bearer {DEMO_TOKEN}",
                "Cookie": f"visits={self.rng.randint(1, 9)}; theme=dark",
            },
        )

    async def upload(self) -> None:
        files = {"file": ("logo.png", png_bytes(8), "image/png")}
        await self.request("POST", "/upload", data={"title": "a tiny logo"}, files=files)

    async def feedback(self) -> None:
        form = {"name": "Ada", "message": self.rng.choice(["Lovely teapot!", "Mug arrived chipped."])}
        await self.request("POST", "/feedback", data=form)

    async def stream(self) -> None:
        async with self.client.stream("GET", "/stream", params={"chunks": "6"}) as response:
            self._count(response)
            async for _ in response.aiter_raw():
                pass

    async def leave_stream_early(self) -> None:
        # Read the first chunk of a long stream, then hang up: the app sees http.disconnect.
        async with self.client.stream("GET", "/stream", params={"chunks": "100"}) as response:
            self._count(response)
            async for _ in response.aiter_raw():
                break

    async def server_sent_events(self) -> None:
        async with self.client.stream("GET", "/events") as response:
            self._count(response)
            async for line in response.aiter_lines():
                if line == "event: done":
                    break

    async def export(self) -> None:
        async with self.client.stream("GET", "/api/items/export") as response:
            self._count(response)
            async for _ in response.aiter_raw():
                pass

    async def slow_import(self) -> None:
        # A client that sends its body a line at a time, slowly: the app waits in receive().
        async def lines() -> Any:
            for n in range(3):
                yield f'{{"name": "import {n}", "price": {n + 1}.5}}\n'.encode()
                await asyncio.sleep(0.25)

        await self.request("POST", "/api/items/import", content=lines())

    async def fail(self) -> None:
        await self.request("GET", "/boom", params={"order": str(self.rng.randint(100, 999))})

    async def odds_and_ends(self) -> None:
        await self.request("GET", "/api/quote", params={"item": "2"})  # a slow outgoing call inside
        await self.request("GET", "/api/quote", params={"item": "3", "busy": "1"})
        await self.request("GET", "/old-items", follow_redirects=True)
        await self.request("GET", "/logo.png")
        await self.request("HEAD", "/api/items")
        await self.request("GET", "/health")

    async def chat(self) -> None:
        # Two people chat: text is broadcast, bytes echoed; "bye" makes the server close.
        url = f"{self.ws_base}/ws/chat"
        async with _ws(f"{url}?name=alice") as alice, _ws(f"{url}?name=bob", cookie=True) as bob:
            self.stats.websockets += 2
            await alice.recv()
            await bob.recv()
            await alice.send("hello bob")
            await bob.recv()
            await alice.recv()
            await bob.send(b"\x00\x01 binary \xff\xfe")
            await bob.recv()
            await alice.send("bye")
            await alice.recv()
            try:
                await alice.recv()
            except ConnectionClosed as closed:
                if closed.rcvd is not None:
                    self.stats.close_codes.append(closed.rcvd.code)


def _ws(url: str, cookie: bool = False) -> connect:
    headers = {"Cookie": "chat_session=s3cr3t"} if cookie else None
    return connect(
        url,
        proxy=None,
        additional_headers=headers,
        user_agent_header=f"asgispy-demo/{__version__}",
        open_timeout=5,
        close_timeout=2,
        ping_interval=None,
    )


def _check_loopback(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the demo traffic needs an http:// URL, not {base_url!r}")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the demo traffic only talks to loopback, not {host!r}")
    return base_url.rstrip("/")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


async def drive(
    base_url: str,
    *,
    rounds: int | None = 1,
    delay: float = 0.3,
    stop: asyncio.Event | None = None,
    seed: int | None = None,
    log: Log | None = None,
) -> TrafficStats:
    """Visit every demo route ``rounds`` times (None: until ``stop`` is set).

    ``delay`` is the mean pause between groups of visits. Returns what was done; when the
    server goes away the run ends early with the reason in ``stats.stopped``.
    """
    base = _check_loopback(base_url)
    rng = random.Random(seed)
    stats = TrafficStats()
    say = log or (lambda _text: None)
    started = time.monotonic()
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
    headers = {"User-Agent": f"asgispy-demo/{__version__}"}
    async with httpx.AsyncClient(
        base_url=base, trust_env=False, timeout=5.0, limits=limits, headers=headers
    ) as client:
        visitor = _Visitor(client, "ws" + base[len("http") :], stats, rng)
        try:
            while rounds is None or stats.rounds < rounds:
                if stop is not None and stop.is_set():
                    break
                await _round(visitor, delay, stop, say)
                stats.rounds += 1
        except ServerGone as gone:
            stats.stopped = f"the demo server at {base} went away ({gone}); traffic stopped"
            say(stats.stopped)
    stats.elapsed = time.monotonic() - started
    return stats


async def _round(visitor: _Visitor, delay: float, stop: asyncio.Event | None, say: Log) -> None:
    visits: list[Callable[[], Awaitable[None]]] = [
        visitor.browse,
        visitor.missing,
        visitor.create,
        visitor.invalid,
        visitor.account,
        visitor.upload,
        visitor.feedback,
        visitor.stream,
        visitor.leave_stream_early,
        visitor.server_sent_events,
        visitor.export,
        visitor.slow_import,
        visitor.fail,
        visitor.odds_and_ends,
        visitor.chat,
    ]
    rng = visitor.rng
    rng.shuffle(visits)
    failures = 0
    while visits:
        if stop is not None and stop.is_set():
            return
        group = visits[: rng.randint(1, 3)]
        visits = visits[len(group) :]
        # Every visit of the group ends (each is bounded in time) before the outcome is judged.
        results = await asyncio.gather(*(_visit(v) for v in group))
        gone = next((error for _, error, refused in results if refused), None)
        if gone is not None:
            raise ServerGone(gone)
        for name, error, _ in results:
            if error is None:
                failures = 0
                continue
            visitor.stats.failures += 1
            failures += 1
            say(f"{name} failed: {error}")
        if failures >= MAX_FAILURES:
            raise ServerGone(f"{failures} visits failed in a row")
        if visits and delay > 0:
            await _pause(delay * rng.uniform(0.5, 1.5), stop)


async def _visit(visit: Callable[[], Awaitable[None]]) -> tuple[str, str | None, bool]:
    """Run one visit: its name, why it failed (None if it did not), and whether it was refused."""
    name = getattr(visit, "__name__", "visit").replace("_", " ")
    try:
        await asyncio.wait_for(visit(), VISIT_TIMEOUT)
    except (httpx.ConnectError, ConnectionRefusedError) as exc:
        return name, _describe(exc), True
    except (TimeoutError, asyncio.TimeoutError):
        return name, f"no answer within {VISIT_TIMEOUT:.0f} s", False
    except (httpx.HTTPError, WebSocketException, InvalidHandshake, OSError) as exc:
        return name, _describe(exc), False
    return name, None, False


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
