"""The dashboard's live sources: the collector that feeds its store, the app ``asgispy run``
serves as its child, and background tasks (the demo's traffic).

Apart from the app's layout so that starting and stopping them, and what uvicorn's lines mean to
the dashboard (it serves, it failed to load the app, it exited and why), is read in one place.
Each runs as one of the app's workers; a failure is told in a notification, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from asgispy.tui.child import ChildProcess

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

__all__ = [
    "Background",
    "ChildFactory",
    "LiveSource",
    "go_live",
    "last_error",
    "run_background",
    "stop_sources",
    "watch_child",
]


class LiveSource(Protocol):
    """What feeds the store live: the collector (``start``/``stop``, listening ``addresses``)."""

    @property
    def addresses(self) -> Sequence[object]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ChildFactory = Callable[[Sequence[str]], ChildProcess]
Background = Callable[["Dashboard"], Awaitable[None]]


#: uvicorn's "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
_RUNNING_ON = re.compile(r"running on (\S+)")


async def go_live(app: Dashboard) -> None:
    """Listen, then start the child (if any) and the background tasks."""
    live = app.live
    assert live is not None
    try:
        await live.start()
    except Exception as exc:
        app.live_error = f"cannot listen: {exc}"
        app.status.flags.listening = app.live_error
        app.notify(str(exc), title="Cannot listen", severity="error", timeout=30)
        return
    addresses = [str(a) for a in live.addresses]
    app.status.flags.listening = ", ".join(addresses)
    app.update_status()
    if app.child_factory is not None:
        app.child = app.child_factory(addresses)
        app.run_child(app.child)
    for task in app.background:
        app.start_background(task)


async def run_background(app: Dashboard, task: Callable[[Dashboard], Awaitable[None]]) -> None:
    try:
        await task(app)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        app.notify(f"{type(exc).__name__}: {exc}", title="Background task failed", severity="error")


async def stop_sources(app: Dashboard) -> None:
    """Stop the child, then the collector and an in-process app, then close the event log."""
    if app.child is not None:
        await app.child.stop()
    if app.live is not None and app.live_error is None:
        with contextlib.suppress(Exception):  # the screen is going away: nothing left to tell
            await app.live.stop()
    if app.in_process is not None:
        await app.in_process.close()  # the app's lifespan shutdown, if a resend started it
    if app.event_log is not None:
        # After the collector stopped: what it marked cut off is in the log too.
        with contextlib.suppress(OSError):
            app.event_log.close()


async def watch_child(app: Dashboard, child: ChildProcess) -> None:
    """Run ``child`` until it exits, telling ``app`` what it does."""
    flags = app.status.flags

    def line(text: str) -> None:
        serving = _RUNNING_ON.search(text)
        if serving is not None:
            flags.child = f"serving {serving.group(1)}"
        elif "Error loading ASGI app" in text:
            app.show_log_panel()
        app.child_line(text)

    flags.child = "app starting"
    try:
        code = await child.run(line)
    except OSError as exc:
        flags.child = "app did not start"
        app.show_log_panel()
        app.notify(f"{child.argv[0]}: {exc}", title="The app did not start", severity="error", timeout=30)
        return
    if child.stopping:
        return
    flags.child = f"app exited ({code})"
    app.show_log_panel()
    app.notify(
        last_error(child.last_lines) or "see the app output below",
        title=f"The app stopped (exit code {code})",
        severity="error",
        timeout=60,
    )


def last_error(lines: Sequence[str]) -> str:
    """The line of the app's last output that says what went wrong (else its last line)."""
    for text in reversed(lines):
        if "Error" in text or "error" in text or "Exception" in text:
            return text.strip()
    return lines[-1].strip() if lines else ""
