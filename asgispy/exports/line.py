"""One compact line per connection, as ``asgispy record`` prints them and logs show them."""

from __future__ import annotations

import time

from asgispy.model.connection import Connection

__all__ = ["format_duration", "format_size", "summary_line"]


def format_size(n: int) -> str:
    """Bytes for people: 0 B, 812 B, 64.0 KiB, 3.2 MiB."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """Seconds for people: 850 µs, 12.3 ms, 1.52 s, 2m05s; '…' while still running."""
    if seconds is None:
        return "…"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def outcome_word(conn: Connection) -> str:
    """What ended the connection, when it was not a plain completion."""
    if conn.outcome == "exception" and conn.error is not None:
        return f"raised {conn.error.type}: {conn.error.message}"
    if conn.outcome in ("cancelled", "cut off", "open"):
        return conn.outcome
    return ""


def summary_line(conn: Connection, with_time: bool = True) -> str:
    """``12:00:01 GET /items?id=3 200 4.1 ms ↑0 B ↓812 B  /items [main.read_items]``-style line."""
    parts = [time.strftime("%H:%M:%S", time.localtime(conn.started))] if with_time else []
    if conn.type == "http":
        parts += [conn.method or "?", conn.target, str(conn.status or "---")]
    elif conn.type == "websocket":
        frames_in = sum(1 for e in conn.events if e.type == "websocket.receive")
        frames_out = sum(1 for e in conn.events if e.type == "websocket.send")
        code = f"close {conn.close_code}" if conn.close_code is not None else "no close"
        parts += ["WS", conn.target, str(conn.status or "---"), f"{frames_in}↑ {frames_out}↓ frames, {code}"]
    elif conn.type == "lifespan":
        steps = [e.type.removeprefix("lifespan.") for e in conn.events]
        parts += ["LIFESPAN", " ".join(steps) or "(no messages)"]
    else:
        parts += [conn.type.upper(), f"{len(conn.events)} messages"]
    parts.append(format_duration(conn.duration))
    if conn.type in ("http", "websocket"):
        parts.append(f"↑{format_size(conn.request_bytes)} ↓{format_size(conn.response_bytes)}")
    if conn.route:
        parts.append(f"route {conn.route}")
    extra = outcome_word(conn)
    if extra:
        parts.append(f"[{extra}]")
    return " ".join(parts)
