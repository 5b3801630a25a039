"""Bodies and values as a person wants to read them: pretty JSON, text, form fields or hex.

Pure functions returning Rich ``Text`` lines, so the event tree and the tests share them and
nothing here needs a running app.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import parse_qsl

from rich.text import Text

from asgispy.codec.jsonform import Opaque
from asgispy.codec.redact import REDACTED
from asgispy.exports.line import format_size

__all__ = ["body_lines", "body_title", "hex_dump", "value_text"]

#: At most this many preview lines per body: the tree stays light, the export has the rest.
MAX_LINES = 200
MAX_PREVIEW_BYTES = 64 * 1024
_HEX_WIDTH = 16


def value_text(value: object, limit: int = 200) -> Text:
    """One field value on one line: bytes shown as b'…' text, redacted values marked."""
    if isinstance(value, bytes):
        if value == REDACTED:
            return Text("[redacted]", style="italic magenta")
        shown = value[:limit]
        text = Text(repr(shown), style="green")
        if len(value) > limit:
            text.append(f" … {format_size(len(value))}", style="dim")
        return text
    if isinstance(value, Opaque):
        return Text(f"<{value.type}> {value.repr}", style="dim italic")
    if isinstance(value, str):
        shown_str = value if len(value) <= limit else value[:limit] + "…"
        return Text(repr(shown_str), style="green")
    if isinstance(value, bool) or value is None:
        return Text(repr(value), style="italic cyan")
    if isinstance(value, (int, float)):
        return Text(repr(value), style="cyan")
    shown_repr = repr(value)
    if len(shown_repr) > limit:
        shown_repr = shown_repr[:limit] + "…"
    return Text(shown_repr)


def body_title(name: str, kind: str, size: int, cut_from: int | None) -> Text:
    """``body · JSON · 1.2 KiB`` plus ``(cut: …)`` when the recording kept less than was sent."""
    text = Text.assemble((name, "bold"), " · ", (kind, "cyan"), " · ", format_size(cut_from or size))
    if cut_from is not None:
        text.append(f"  (cut: {format_size(size)} kept of {format_size(cut_from)})", style="bold yellow")
    return text


def body_kind(body: bytes | str, content_type: str = "") -> str:
    """How a body reads best: ``JSON``, ``form``, ``multipart``, ``text`` or ``binary``."""
    ctype = content_type.lower()
    if isinstance(body, str):
        return "JSON" if _json_or_none(body) is not None else "text"
    if not body:
        return "empty"
    if "json" in ctype and _json_or_none(body) is not None:
        return "JSON"
    if "application/x-www-form-urlencoded" in ctype and _text_or_none(body) is not None:
        return "form"
    if "multipart/form-data" in ctype:
        return "multipart"
    text = _text_or_none(body)
    if text is None:
        return "binary"
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") and _json_or_none(body) is not None:
        return "JSON"
    return "text"


def body_lines(body: bytes | str, content_type: str = "", kind: str | None = None) -> list[Text]:
    """The preview of a body, line by line, at most :data:`MAX_LINES` lines."""
    kind = kind or body_kind(body, content_type)
    data = body[:MAX_PREVIEW_BYTES]
    if kind == "empty":
        return []
    if kind == "JSON":
        parsed = _json_or_none(body)
        lines = [
            Text(line, style="") for line in json.dumps(parsed, indent=2, ensure_ascii=False).splitlines()
        ]
        for line in lines:
            line.highlight_regex(r'"[^"]*"(?=:)', "bold blue")
        return _bounded(lines)
    if kind == "form" and isinstance(data, bytes):
        pairs = parse_qsl(data.decode("latin-1"), keep_blank_values=True)
        return _bounded(Text.assemble((k, "bold blue"), " = ", (repr(v), "green")) for k, v in pairs)
    if kind == "multipart" and isinstance(data, bytes):
        return _bounded(_multipart_lines(data, content_type))
    if kind == "binary" and isinstance(data, bytes):
        return hex_dump(data)
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return _bounded(Text(line) for line in text.splitlines() or [""])


def hex_dump(data: bytes, max_lines: int = MAX_LINES) -> list[Text]:
    """``00000000  de ad be ef …  |....|`` rows of 16 bytes."""
    lines: list[Text] = []
    for offset in range(0, len(data), _HEX_WIDTH):
        if len(lines) >= max_lines:
            lines.append(Text(f"… {format_size(len(data) - offset)} more", style="dim"))
            break
        chunk = data[offset : offset + _HEX_WIDTH]
        hexes = " ".join(f"{b:02x}" for b in chunk).ljust(_HEX_WIDTH * 3 - 1)
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(
            Text.assemble((f"{offset:08x}", "dim"), "  ", hexes, "  ", ("|" + ascii_ + "|", "yellow"))
        )
    return lines


def _multipart_lines(data: bytes, content_type: str) -> Iterable[Text]:
    # Only a summary of each part (its headers and size): enough to see which fields and files went up.
    boundary = ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        yield from hex_dump(data)
        return
    for part in data.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = ""
        ptype = ""
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-disposition":
                disposition = value.strip()
            elif name.lower() == "content-type":
                ptype = value.strip()
        fields = dict(_param(p) for p in disposition.split(";")[1:])
        label = Text.assemble(("part ", "dim"), (fields.get("name", "?"), "bold blue"))
        if "filename" in fields:
            label.append(f"  file {fields['filename']!r}", style="green")
        if ptype:
            label.append(f"  {ptype}", style="cyan")
        label.append(f"  {format_size(len(content))}", style="dim")
        text = _text_or_none(content)
        if "filename" not in fields and text is not None and len(text) <= 200:
            label.append(" = ")
            label.append(repr(text), style="green")
        yield label


def _param(text: str) -> tuple[str, str]:
    key, _, value = text.strip().partition("=")
    return key.lower(), value.strip('"')


def _bounded(lines: Iterable[Text]) -> list[Text]:
    out: list[Text] = []
    for line in lines:
        if len(out) >= MAX_LINES:
            out.append(Text("… more lines (export the session for the whole body)", style="dim"))
            break
        out.append(line)
    return out


def _text_or_none(data: bytes) -> str | None:
    data = data[:MAX_PREVIEW_BYTES]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut may split a multi-byte character at the very end; anything else is binary.
        if exc.start < len(data) - 3:
            return None
        text = data[: exc.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text[:4096]):
        return None
    return text


def _json_or_none(data: bytes | str) -> object | None:
    if len(data) > MAX_PREVIEW_BYTES:
        return None
    try:
        return json.loads(data)  # type: ignore[no-any-return]
    except (ValueError, UnicodeDecodeError):
        return None
