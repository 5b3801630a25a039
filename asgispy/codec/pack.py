"""The compact binary form of recorded connections: MessagePack, made by a C encoder.

This is what Spy keeps of a finished connection in memory and what the wire carries. It is
lossless for everything the JSON codec (:mod:`asgispy.codec.jsonform`) keeps, but does none of
the codec's work of making values readable: bytes stay bytes, text stays text. Making them
readable happens where records are read (the store, :func:`asgispy.load`, the exports).

MessagePack has no tuple, so the few values it cannot carry as they are travel as extension
types, which the decoder turns back into the very values the app saw:

=====  =================  ================================================================
code   name               data (itself MessagePack, or text)
=====  =================  ================================================================
1      TUPLE              the items, an array
2      HEADERS            a list of ``(bytes, bytes)`` tuples, as an array of pairs
3      OPAQUE             ``[type name, repr]`` of an object that is not data
4      BIGINT             an integer beyond 64 bits, in decimal
5      ODDSTR             text with lone surrogates, UTF-8 with ``surrogatepass``
6      DICT               a dict with keys MessagePack cannot hold, as ``[key, value]`` pairs
=====  =================  ================================================================

Packing walks only the containers (a scope has a handful; most messages none besides their
headers) and leaves every plain value to the encoder. Integers beyond 64 bits and text with
lone surrogates make the encoder fail; only then does a careful walk look at every value.

A packed connection is the array ``[seq, type, started, scope, events, end]``: ``events`` a
list of ``[direction, t, message, cut]`` (direction 0 for receive, 1 for send; ``cut`` None
or ``{field: original size}``), ``end`` None while the connection is open, else
``[outcome, duration, error, handler, notes, events_dropped]``. docs/protocol.md has it all.

Secret header values are masked as they are packed; :func:`pack_values` also returns where
they were and what they held, so that the app's own process can put them back in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from asgispy.codec.jsonform import MAX_DEPTH, Opaque, opaque_parts
from asgispy.codec.redact import REDACTED, Redactor

__all__ = [
    "EXT_BIGINT",
    "EXT_DICT",
    "EXT_HEADERS",
    "EXT_ODDSTR",
    "EXT_OPAQUE",
    "EXT_TUPLE",
    "Secret",
    "decode",
    "dumps",
    "encode",
    "pack_value",
    "pack_values",
    "restore_secrets",
]

EXT_TUPLE, EXT_HEADERS, EXT_OPAQUE, EXT_BIGINT, EXT_ODDSTR, EXT_DICT = 1, 2, 3, 4, 5, 6
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_PLAIN = frozenset({str, bytes, int, float, bool, type(None)})
_Ext = msgspec.msgpack.Ext

#: ``(where, position, original item)``: where is -1 for the scope, else the event's index.
Secret = tuple[int, int, Any]


def _opaque_ext(value: Any) -> msgspec.msgpack.Ext:
    return _Ext(EXT_OPAQUE, _encoder.encode(opaque_parts(value)))


def _enc_hook(value: Any) -> Any:
    # Called by the encoder for what it cannot carry and the walk left alone (dict keys).
    return _opaque_ext(value)


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


def encode(value: Any) -> bytes:
    """``value`` (already packed with :func:`pack_value`, or plain) as MessagePack bytes."""
    return _encoder.encode(value)


def dumps(value: Any) -> bytes:
    """Pack and encode any ASGI value in one step (careful where the quick way fails)."""
    try:
        return _encoder.encode(pack_value(value))
    except (OverflowError, UnicodeEncodeError):
        return _encoder.encode(pack_value(value, careful=True))


def _is_header_list(value: list[Any]) -> bool:
    # A plain loop: for the handful of headers a message has, faster than any set-of-types trick.
    for item in value:
        if (
            type(item) is not tuple
            or len(item) != 2
            or type(item[0]) is not bytes
            or type(item[1]) is not bytes
        ):
            return False
    return True


def pack_value(value: Any, careful: bool = False, _depth: int = 0) -> Any:
    """``value`` in a form the encoder carries losslessly (the same object when it already is).

    ``careful`` also checks every text and integer (after the encoder refused one).
    """
    kind = type(value)
    if kind is _Ext:  # packed already (a header list, by _masked)
        return value
    if kind in _PLAIN:
        if careful:
            if kind is str:
                if not value.isascii():
                    try:
                        value.encode("utf-8")
                    except UnicodeEncodeError:
                        return _Ext(EXT_ODDSTR, value.encode("utf-8", "surrogatepass"))
            elif kind is int and not _INT_MIN <= value <= _INT_MAX:
                return _Ext(EXT_BIGINT, str(value).encode("ascii"))
        return value
    if _depth >= MAX_DEPTH:
        return _opaque_ext(value)
    depth = _depth + 1
    if kind is dict:
        return _pack_dict(value, careful, depth)
    if kind is list:
        if value and _is_header_list(value):
            return _Ext(EXT_HEADERS, _encoder.encode(value))
        return [pack_value(v, careful, depth) for v in value]
    if kind is tuple:
        if not careful:
            for item in value:
                if type(item) not in _PLAIN:
                    break
            else:  # (host, port) and the like: nothing inside to look at
                return _Ext(EXT_TUPLE, _encoder.encode(value))
        return _Ext(EXT_TUPLE, _encoder.encode([pack_value(v, careful, depth) for v in value]))
    return _pack_other(value, careful, _depth)


def _pack_dict(value: dict[Any, Any], careful: bool, depth: int) -> Any:
    out: dict[Any, Any] | None = None
    odd_keys = careful
    for key, item in value.items():
        if type(key) is not str:
            odd_keys = True
        if type(item) in _PLAIN and not careful:
            continue
        packed = pack_value(item, careful, depth)
        if packed is not item:
            if out is None:
                out = dict(value)
            out[key] = packed
    if odd_keys:
        keys = [pack_value(k, careful, depth) for k in value]
        if any(type(k) is _Ext or type(k) is list or type(k) is dict for k in keys):
            # Keys MessagePack cannot hold as they are (a tuple, text with lone surrogates, a
            # large integer): the map travels as its [key, value] pairs.
            source = out if out is not None else value
            pairs = [[k, v] for k, v in zip(keys, source.values(), strict=True)]
            return _Ext(EXT_DICT, _encoder.encode(pairs))
    return out if out is not None else value


def _pack_other(value: Any, careful: bool, depth: int) -> Any:
    # Subclasses of the plain types (IntEnum statuses, str enums, bytearray bodies, an
    # OrderedDict in the state, a namedtuple) keep their value as the base type, as in the codec.
    if type(value) is Opaque:  # decoded from a packed form: packed as it was
        return _Ext(EXT_OPAQUE, _encoder.encode((value.type, value.repr)))
    try:
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return pack_value(int(value), careful, depth)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            return pack_value(str(value), careful, depth)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, dict):
            return _pack_dict(dict(value), careful, depth + 1)
        if isinstance(value, list):
            return pack_value(list(value), careful, depth)
        if isinstance(value, tuple):
            return pack_value(tuple(value), careful, depth)
    except Exception:  # a subclass whose __int__, __iter__ or __str__ raises
        pass
    return _opaque_ext(value)


def _masked(headers: Any, redactor: Redactor, where: int, secrets: list[Secret]) -> Any:
    """``headers`` with secret values masked, noting what was masked in ``secrets``. A list of
    ``(bytes, bytes)`` pairs comes back packed already (checked here, it need not be again)."""
    if type(headers) is list:
        # One walk both checks the pairs and masks: a request's headers are looked at once.
        is_secret = redactor.is_secret
        known = redactor.known  # the verdicts so far, read first: a call only for a new name
        out, noted = None, len(secrets)
        for i, item in enumerate(headers):
            if type(item) is not tuple or len(item) != 2:
                break
            name, value = item
            if type(name) is not bytes or type(value) is not bytes:
                break
            secret = known.get(name)
            if secret is None:
                secret = is_secret(name)
            if secret and value != REDACTED:
                if out is None:
                    out = list(headers)
                out[i] = (name, REDACTED)
                secrets.append((where, i, item))
        else:
            return _Ext(EXT_HEADERS, _encoder.encode(headers if out is None else out))
        del secrets[noted:]  # not a list of pairs after all: the general way below notes them
    masked = redactor.headers(headers)
    if masked is not headers:
        for i, (before, after) in enumerate(zip(headers, masked, strict=False)):
            if before is not after:
                secrets.append((where, i, before))
    return masked


def pack_values(
    scope: dict[str, Any] | None,
    events: list[list[Any]],
    redactor: Redactor | None,
    careful: bool = False,
) -> tuple[Any, list[list[Any]], list[Secret]]:
    """The scope and events (``[direction, t, message, cut, wait]`` lists) packed, secrets masked.

    Returns the packed scope, the packed events and the secrets masked (see :data:`Secret`).
    ``events`` is changed in place.
    """
    secrets: list[Secret] = []
    if scope is not None:
        if redactor and "headers" in scope:
            scope = {**scope, "headers": _masked(scope["headers"], redactor, -1, secrets)}
        scope = pack_value(scope, careful)
    for index, event in enumerate(events):
        message = event[2]
        if type(message) is dict:
            if redactor and "headers" in message:
                message = {**message, "headers": _masked(message["headers"], redactor, index, secrets)}
            for value in message.values():
                if type(value) not in _PLAIN or careful:
                    message = pack_value(message, careful)
                    break
        else:
            message = pack_value(message, careful)
        event[2] = message
    return scope, events, secrets


def restore_secrets(scope: Any, events: list[Any], secrets: list[Secret] | tuple[Secret, ...]) -> None:
    """Put the masked header values back (in decoded values, in place), for the app's own process."""
    for where, position, item in secrets:
        target = scope if where < 0 else events[where][2]
        headers = target.get("headers") if isinstance(target, dict) else None
        if headers is None:
            continue
        if type(headers) is tuple:
            target["headers"] = (*headers[:position], item, *headers[position + 1 :])
        else:
            headers[position] = item


# Decoding ------------------------------------------------------------------------------------------


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == EXT_TUPLE:
        items = _decoder.decode(data)
        if type(items) is not list:
            raise ValueError("a packed tuple that is not an array")
        return tuple(items)
    if code == EXT_HEADERS:
        pairs = _decoder.decode(data)
        if type(pairs) is not list:
            raise ValueError("packed headers that are not an array")
        out = []
        for pair in pairs:
            if (
                type(pair) is not list
                or len(pair) != 2
                or type(pair[0]) is not bytes
                or type(pair[1]) is not bytes
            ):
                raise ValueError("a packed header that is not a pair of bytes")
            out.append((pair[0], pair[1]))
        return out
    if code == EXT_OPAQUE:
        item = _decoder.decode(data)
        if type(item) is not list or len(item) != 2:
            raise ValueError("a packed opaque value that is not a pair")
        return Opaque(str(item[0]), str(item[1]))
    if code == EXT_DICT:
        pairs = _decoder.decode(data)
        if type(pairs) is not list or not all(type(p) is list and len(p) == 2 for p in pairs):
            raise ValueError("a packed map that is not [key, value] pairs")
        return {key: value for key, value in pairs}
    if code == EXT_BIGINT:
        text = bytes(data).decode("ascii")
        if not text.lstrip("-").isdigit():
            raise ValueError("a packed integer that is not decimal digits")
        return int(text)
    if code == EXT_ODDSTR:
        return bytes(data).decode("utf-8", "surrogatepass")
    raise ValueError(f"unknown extension type {code}")


_decoder = msgspec.msgpack.Decoder(ext_hook=_ext_hook)
_decode: Callable[[Any], Any] = _decoder.decode


def decode(data: bytes | memoryview) -> Any:
    """Restore values packed by this module. ValueError when ``data`` is not such a value."""
    try:
        return _decode(data)
    except (msgspec.DecodeError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not a packed value: {exc}") from None
