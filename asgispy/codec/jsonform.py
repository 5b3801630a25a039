"""Lossless, human-readable JSON form of ASGI values.

ASGI messages mix ``bytes`` and ``str`` and servers put arbitrary objects into the scope,
so plain JSON cannot hold them. This codec keeps JSON's own types as they are and tags the
rest with a one-key object whose key starts with ``$``:

==================  =========================================================
``{"$bytes": s}``   bytes that are clean UTF-8 text (no control characters)
``{"$latin1": s}``  bytes that are not UTF-8 but read as Latin-1 text
``{"$base64": s}``  any other bytes
``{"$headers": l}`` a list of ``(bytes, bytes)`` tuples; each item is a JSON string
                    when it is clean UTF-8, else one of the bytes tags above
``{"$tuple": l}``   a tuple
``{"$dict": l}``    a dict whose keys are not all plain strings, as ``[key, value]`` pairs
``{"$float": s}``   ``"nan"``, ``"inf"`` or ``"-inf"``
``{"$int": s}``     an integer too large for a JSON number
``{"$object": t}``  anything else, not restorable: its type name, with ``"repr"``
==================  =========================================================

``decode(encode(v)) == v`` for every value made of ASGI's types; opaque objects come back
as :class:`Opaque`. Subclasses of dict, list, tuple, str, int, float and bytes (an IntEnum
status, an OrderedDict, a bytearray body) are kept as their base type. Encoding never raises.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Opaque", "bytes_text", "decode", "encode", "opaque_parts", "text_prefix"]

MAX_DEPTH = 24
MAX_REPR = 300
INT_LIMIT = 2**63

# Bytes that would read badly as text even though they decode: C0 controls but tab/CR/LF, and DEL.
_CONTROLS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_LATIN1_TEXT = re.compile(rb"[\t\n\r\x20-\x7e\xa0-\xff]*")


@dataclass(frozen=True)
class Opaque:
    """A value asgispy could not serialise: its type name and a short ``repr``."""

    type: str
    repr: str

    def __str__(self) -> str:
        return self.repr


def bytes_text(data: bytes) -> str | None:
    """``data`` as text when it is clean UTF-8, else None."""
    # bytes.translate deletes in one C pass: five times faster than a regex search on a body.
    if len(data.translate(None, _CONTROLS)) != len(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_prefix(data: bytes) -> str | None:
    """``data`` as text when it is clean UTF-8 but for its end, which may stop inside a
    character (a body cut to a bound): up to three bytes less are tried; else None."""
    for end in range(len(data), max(len(data) - 4, -1), -1):
        text = bytes_text(data[:end])
        if text is not None:
            return text
    return None


def _encode_bytes(data: bytes) -> dict[str, str]:
    text = bytes_text(data)
    if text is not None:
        return {"$bytes": text}
    if _LATIN1_TEXT.fullmatch(data) is not None:
        return {"$latin1": data.decode("latin-1")}
    return {"$base64": base64.b64encode(data).decode("ascii")}


def _header_item(data: bytes) -> str | dict[str, str]:
    text = bytes_text(data)
    return text if text is not None else _encode_bytes(data)


def _is_header_list(value: list[Any]) -> bool:
    for item in value:
        if type(item) is not tuple or len(item) != 2:
            return False
        if type(item[0]) is not bytes or type(item[1]) is not bytes:
            return False
    return True


def _clean_str(text: str) -> bool:
    """Whether JSON can carry ``text`` as it is (no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encode_str(text: str) -> str | dict[str, str]:
    if _clean_str(text):
        return text
    return {"$str": base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")}


def _plain_key(key: Any) -> bool:
    return type(key) is str and not key.startswith("$") and _clean_str(key)


def opaque_parts(value: Any) -> tuple[str, str]:
    """How an object that is not data is named: its type's full name and a short ``repr``."""
    kind = type(value)
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break recording
        text = f"<{kind.__name__} whose repr raised {type(exc).__name__}>"
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 1] + "…"
    return f"{kind.__module__}.{kind.__qualname__}", text


def _opaque(value: Any) -> dict[str, str]:
    name, text = opaque_parts(value)
    return {"$object": name, "repr": text}


def encode(value: Any, _depth: int = 0) -> Any:
    """Return a JSON-serialisable form of ``value`` (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        return value if -INT_LIMIT < value < INT_LIMIT else {"$int": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind is bytes:
        return _encode_bytes(value)
    if _depth >= MAX_DEPTH:
        return _opaque(value)
    depth = _depth + 1
    if kind is dict:
        return _encode_dict(value, depth)
    if kind is list:
        return _encode_list(value, depth)
    if kind is tuple:
        return {"$tuple": [encode(v, depth) for v in value]}
    return _encode_other(value, _depth)


def _encode_dict(value: dict[Any, Any], depth: int) -> Any:
    if all(_plain_key(k) for k in value):
        return {k: encode(v, depth) for k, v in value.items()}
    return {"$dict": [[encode(k, depth), encode(v, depth)] for k, v in value.items()]}


def _encode_list(value: list[Any], depth: int) -> Any:
    if value and _is_header_list(value):
        return {"$headers": [[_header_item(k), _header_item(v)] for k, v in value]}
    return [encode(v, depth) for v in value]


def _encode_other(value: Any, _depth: int) -> Any:
    # Subclasses of the plain types (IntEnum statuses, str enums, bytearray bodies, an
    # OrderedDict in the state, a namedtuple) keep their value as the base type.
    if type(value) is Opaque:  # decoded from the packed form: encoded as it was
        return {"$object": value.type, "repr": value.repr}
    try:
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return encode(int(value), _depth)
        if isinstance(value, float):
            return encode(float(value), _depth)
        if isinstance(value, str):
            return _encode_str(str(value))
        if isinstance(value, (bytes, bytearray, memoryview)):
            return _encode_bytes(bytes(value))
        if isinstance(value, dict):
            return _encode_dict(dict(value), _depth + 1)
        if isinstance(value, list):
            return _encode_list(list(value), _depth + 1)
        if isinstance(value, tuple):
            return {"$tuple": [encode(v, _depth + 1) for v in tuple(value)]}
    except Exception:  # a subclass whose __int__, __iter__ or __str__ raises
        pass
    return _opaque(value)


def _decode_bytes(tag: str, text: str) -> bytes:
    if tag == "$bytes":
        return text.encode("utf-8")
    if tag == "$latin1":
        return text.encode("latin-1")
    return base64.b64decode(text, validate=True)


_BYTES_TAGS = frozenset({"$bytes", "$latin1", "$base64"})


def _decode_header_item(item: Any) -> bytes:
    if type(item) is str:
        return item.encode("utf-8")
    ((tag, text),) = item.items()
    return _decode_bytes(tag, text)


def decode(doc: Any) -> Any:
    """Restore a value produced by :func:`encode`. Raises ValueError on a malformed tag."""
    try:
        return _decode(doc)
    except RecursionError:
        # encode nests no deeper than MAX_DEPTH; this did not come from it.
        raise ValueError("value nested too deeply to be an encoded ASGI value") from None


def _decode(doc: Any) -> Any:
    kind = type(doc)
    if kind is list:
        return [_decode(v) for v in doc]
    if kind is not dict:
        return doc
    if len(doc) == 1:
        ((key, inner),) = doc.items()
        if key.startswith("$"):
            return _decode_tag(key, inner)
    elif len(doc) == 2 and "$object" in doc:
        return Opaque(str(doc["$object"]), str(doc.get("repr", "")))
    return {k: _decode(v) for k, v in doc.items()}


def _decode_tag(tag: str, inner: Any) -> Any:
    try:
        if tag in _BYTES_TAGS:
            return _decode_bytes(tag, inner)
        if tag == "$headers":
            return [(_decode_header_item(k), _decode_header_item(v)) for k, v in inner]
        if tag == "$str":
            return base64.b64decode(inner, validate=True).decode("utf-8", "surrogatepass")
        if tag == "$tuple":
            return tuple(_decode(v) for v in inner)
        if tag == "$dict":
            return {_decode(k): _decode(v) for k, v in inner}
        if tag == "$float":
            return float(inner)
        if tag == "$int":
            return int(inner)
        if tag == "$object":
            return Opaque(str(inner), "")
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed {tag} value: {inner!r:.80}") from exc
    raise ValueError(f"unknown tag {tag!r}")
