"""The dashboard's exports: what is shown, written as a session, HAR, JSON lines or curl, and one
request copied as curl.

A collaborator of the app: it asks where and how (the export screen), writes in a thread (50,000
connections take a second or two to serialise), and says how it went in a notification; a
failed path is offered again, so nothing typed is lost.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgispy.exports.formats import EXTENSIONS, TITLES, Format
from asgispy.model.connection import Connection
from asgispy.tui.filterbar import FilterBar
from asgispy.tui.screens import ExportChoice, ExportScreen

if TYPE_CHECKING:
    from asgispy.tui.app import Dashboard

__all__ = ["Exporter"]


class Exporter:
    """Exports for one dashboard, into ``directory`` unless the user picks another place."""

    def __init__(self, app: Dashboard, directory: Path) -> None:
        self.app = app
        self.directory = directory
        self.format: Format = "json"
        #: the path of a failed write, offered again
        self.retry: Path | None = None

    def copy_curl(self, conn: Connection | None) -> None:
        from asgispy.exports.curl import to_curl

        app = self.app
        if conn is None:
            app.notify("Select a connection first", severity="warning")
            return
        if conn.type != "http":
            app.notify(f"curl replays HTTP requests; this is a {conn.type} connection", severity="warning")
            return
        command = to_curl(conn)
        app.copy_to_clipboard(command)
        app.notify(command, title="Copied as curl", timeout=8)

    def ask(self) -> None:
        """Ask where and how to write what the list shows, then write it."""
        app = self.app
        conns = app.connections.visible_connections()
        if not conns:
            app.notify("Nothing to export", severity="warning")
            return
        fmt = self.format
        default = self.retry or self.directory / (time.strftime("asgispy-%Y%m%d-%H%M%S") + EXTENSIONS[fmt])

        def chosen(choice: ExportChoice | None) -> None:
            if choice is not None:
                self.format = choice.format
                app.export(conns, choice.path, choice.format)

        screen = ExportScreen(
            default,
            len(conns),
            total=len(app.store),
            filter_text=app.query_one(FilterBar).text,
            format=fmt,
            base=self.directory,
        )
        app.push_screen(screen, chosen)

    async def write(self, conns: list[Any], path: Path, fmt: Format = "json") -> Path | None:
        """Write ``conns`` to ``path`` in ``fmt``; success and failure are both told."""
        from asgispy.codec.sessionfile import write_bytes_atomically
        from asgispy.exports.formats import export_bytes

        app = self.app
        session = app.store.session(conns)
        comment = f"exported from the asgispy dashboard ({app.source})" if app.source else None

        def write() -> tuple[Path, int]:
            made = export_bytes(session, fmt, comment=comment)
            return write_bytes_atomically(path, made.data), made.count

        try:
            written, count = await asyncio.to_thread(write)
        except Exception as exc:  # a failed export must never take the dashboard and its data down
            self.retry = path
            os_error = isinstance(exc, OSError) and exc.strerror
            reason = os_error or f"{type(exc).__name__}: {exc}"
            app.notify(
                f"{path}: {reason}\nNothing was written; e offers the same name again.",
                title="Export failed",
                severity="error",
                timeout=15,
            )
            return None
        self.retry = None
        what = f"{count:,} connection{'s' if count != 1 else ''}"
        left_out = len(conns) - count
        if left_out:
            what += f" ({left_out:,} with no place in {TITLES[fmt]} left out)"
        app.notify(f"{what} → {written}", title=f"Exported as {TITLES[fmt]}")
        return written
