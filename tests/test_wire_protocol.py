"""Wire protocol 2: addresses, frames, packing, and a real collector fed bad bytes on a real socket.

The unit tests pin the frame format and every check of :mod:`asgispy.wire.protocol`; the pack
tests show that :mod:`asgispy.codec.pack` gives back the very values the app saw; the fuzz
tests throw random and broken frames at a real :class:`~asgispy.wire.collector.Collector`
over a Unix socket and check that it drops only the offender, says why once, keeps memory
bounded, and goes on serving. The last tests meet the other version on either side.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from asgispy import __version__
from asgispy.capture.origin import Origin
from asgispy.codec import pack
from asgispy.spy import Spy
from asgispy.types import RECEIVE, SEND
from asgispy.wire import channel as channel_module
from asgispy.wire.address import (
    Address,
    AddressError,
    default_address,
    ensure_private_directory,
    is_private_directory,
    parse_address,
)
from asgispy.wire.handshake import (
    error_frame,
    hello_frame,
    is_v1,
    parse_hello,
    v1_error_line,
    v1_message,
    welcome_frame,
)
from asgispy.wire.protocol import (
    CLOSE,
    DROPPED,
    EVENTS,
    MAX_FRAME,
    OPEN,
    PROTOCOL_VERSION,
    FrameReader,
    ProtocolError,
    decode_payload,
    encode_frame,
)
from asgispy.wire.readers import parse_connection, parse_end, parse_events
from tests.test_wire_collector import CollectorThread

pytestmark = pytest.mark.timeout(60)

SAME_ASGISPY = "use the same asgispy on both sides"


# Addresses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "back"),
    [
        ("unix:/tmp/a.sock", Address("unix", path="/tmp/a.sock"), "unix:/tmp/a.sock"),
        ("unix:///run/x.sock", Address("unix", path="/run/x.sock"), "unix:/run/x.sock"),
        ("/tmp/b.sock", Address("unix", path="/tmp/b.sock"), "unix:/tmp/b.sock"),
        ("tcp://127.0.0.1:7890", Address("tcp", host="127.0.0.1", port=7890), "tcp://127.0.0.1:7890"),
        ("tcp://[::1]:80", Address("tcp", host="::1", port=80), "tcp://[::1]:80"),
        ("tcp://localhost:0", Address("tcp", host="localhost", port=0), "tcp://localhost:0"),
    ],
)
def test_addresses_parse_and_print_back(text: str, expected: Address, back: str) -> None:
    assert parse_address(text) == expected
    assert str(parse_address(text)) == back
    assert parse_address(back) == expected


def test_relative_unix_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_address("unix:here.sock").path == str(tmp_path / "here.sock")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("unix:", "needs a path"),
        ("tcp://127.0.0.1", "tcp://HOST:PORT"),
        ("tcp://127.0.0.1:http", "must be a number"),
        ("tcp://127.0.0.1:70000", "between 0 and 65535"),
        ("http://127.0.0.1:80", "an address is unix:"),
        ("asgispy.sock", "an address is unix:"),
    ],
)
def test_bad_addresses_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        parse_address(text)


def test_loopback() -> None:
    assert parse_address("tcp://127.0.0.1:1").is_loopback
    assert parse_address("tcp://127.8.9.10:1").is_loopback
    assert parse_address("tcp://[::1]:1").is_loopback
    assert parse_address("tcp://localhost:1").is_loopback
    assert parse_address("unix:/x").is_loopback
    assert not parse_address("tcp://0.0.0.0:1").is_loopback
    assert not parse_address("tcp://10.1.2.3:1").is_loopback
    assert not parse_address("tcp://example.com:1").is_loopback


def test_default_address_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_address().path == os.path.join(
        tempfile.gettempdir(), f"asgispy-{os.getuid()}", "asgispy.sock"
    )
    runtime = tempfile.mkdtemp()
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    assert default_address().path == os.path.join(runtime, "asgispy", "asgispy.sock")
    os.rmdir(runtime)


def test_private_directory_is_made_0700_and_tightened(tmp_path: Path) -> None:
    made = ensure_private_directory(tmp_path / "mine")
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    assert is_private_directory(made)
    os.chmod(made, 0o755)
    assert not is_private_directory(made)
    ensure_private_directory(made)
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(AddressError, match="not a directory"):
        ensure_private_directory(tmp_path / "file")


# Helpers ---------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal, and of exactly the same types all the way down (a tuple is not a list, True is
    not 1); floats by ``repr``, so that nan equals nan and -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return repr(a) == repr(b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return bool(a == b)


def wire(value: Any) -> bytes:
    """One frame of ``value`` packed as a producer packs it (tuples, big integers and odd text
    as extension types), its length first."""
    return encode_frame(msgspec.Raw(pack.dumps(value)))


def prefix(size: int) -> bytes:
    return size.to_bytes(4, "big")


SCOPE = {"type": "http", "method": "GET", "path": "/ok", "headers": [(b"host", b"test")]}
EVENT = [0, 0.0, {"type": "http.request", "body": b"", "more_body": False}, None, 0.001]
END = ["completed", 0.01, None, None, [], 0]


def connection_value(seq: int) -> list[Any]:
    """A packed connection: ``[seq, type, started, scope, events, end]``, ended already."""
    return [seq, "http", 1_700_000_000.5, SCOPE, [list(EVENT)], list(END)]


def open_frame(seq: int) -> bytes:
    """An OPEN frame as the producer sends it: the connection packed once, carried as it is."""
    packed = pack.encode(pack.pack_value(connection_value(seq)))
    return encode_frame([OPEN, msgspec.Raw(packed)])


def replaced(value: Any, path: tuple[int, ...], new: Any) -> Any:
    """A deep copy of ``value`` with the item at ``path`` replaced by ``new``."""
    out = copy.deepcopy(value)
    target = out
    for index in path[:-1]:
        target = target[index]
    target[path[-1]] = new
    return out


# Frames ----------------------------------------------------------------------------------------


#: Frames of every kind, as values the app would see (tuples, bytes): packed to be sent.
FRAME_VALUES: list[Any] = [
    hello_frame("t1", "host", 12, "main:app", 3.5, token="k"),
    welcome_frame(),
    error_frame("no\nway"),
    [OPEN, connection_value(1)],
    [EVENTS, 1, 3, [[1, 0.25, {"type": "http.response.body", "body": b"\x00" * 300}, None]]],
    [CLOSE, 1, ["exception", 1.5, {"type": "E", "message": "m", "traceback": "t"}, None, [], 2]],
    [DROPPED, 7],
    [],
    {"x": "é" * 70_000},  # a body past 64 KiB: the length needs its third byte
]


def test_frames_are_a_big_endian_length_then_msgpack() -> None:
    for value in FRAME_VALUES:
        packed = pack.pack_value(value)
        data = encode_frame(packed)
        assert int.from_bytes(data[:4], "big") == len(data) - 4
        assert data[4:] == msgspec.msgpack.encode(packed) == pack.dumps(value)
        assert same(decode_payload(data[4:]), value)
    assert encode_frame([DROPPED, 7]) == b"\x00\x00\x00\x03\x92\x04\x07"


def test_reader_splits_frames_at_every_byte_boundary() -> None:
    frames = [wire(v) for v in FRAME_VALUES[:-1]]  # the big one is fed on its own below
    stream = b"".join(frames)
    payloads = [f[4:] for f in frames]
    ends = list(itertools.accumulate(len(f) for f in frames))
    for cut in range(len(stream) + 1):
        reader = FrameReader()
        first = reader.feed(stream[:cut])
        done = sum(1 for e in ends if e <= cut)
        assert first == payloads[:done]
        assert reader.buffered == cut - (ends[done - 1] if done else 0)
        assert first + reader.feed(stream[cut:]) == payloads, cut
        assert reader.buffered == 0
    reader = FrameReader()
    one_by_one = [p for i in range(len(stream)) for p in reader.feed(stream[i : i + 1])]
    assert one_by_one == payloads
    assert all(same(decode_payload(p), v) for p, v in zip(one_by_one, FRAME_VALUES, strict=False))
    big = wire(FRAME_VALUES[-1])
    reader = FrameReader()
    assert reader.feed(big[:3]) == [] and reader.feed(big[3:100_000]) == []
    assert reader.buffered == 100_000
    assert [decode_payload(p) for p in reader.feed(big[100_000:])] == [FRAME_VALUES[-1]]


def test_an_empty_feed_and_an_empty_frame() -> None:
    reader = FrameReader()
    assert reader.feed(b"") == []
    assert reader.feed(prefix(0)) == [b""]
    with pytest.raises(ProtocolError, match="malformed frame"):
        decode_payload(b"")


def test_an_oversized_length_is_refused_before_its_body() -> None:
    reader = FrameReader(max_frame=100)
    assert reader.feed(prefix(100)) == []  # at the limit: accepted, waiting for its body
    assert reader.feed(b"x" * 99) == [] and reader.buffered == 103
    assert reader.feed(b"x") == [b"x" * 100] and reader.buffered == 0
    with pytest.raises(ProtocolError, match=r"oversized frame \(101 bytes; the limit is 100\)"):
        FrameReader(max_frame=100).feed(prefix(101))  # the four bytes alone: no body needed
    split = FrameReader(max_frame=100)
    assert split.feed(b"\xff\xff") == []
    with pytest.raises(ProtocolError, match="oversized frame"):
        split.feed(b"\xff\xff")
    after_a_good_one = FrameReader(max_frame=100)  # the good one is returned, the error kept for after
    good = encode_frame([DROPPED, 1])
    assert after_a_good_one.feed(good + prefix(2**32 - 1)) == [good[4:]]
    assert after_a_good_one.error is not None and "oversized frame" in str(after_a_good_one.error)
    default = FrameReader()
    assert default.max_frame == MAX_FRAME == 16 * 1024 * 1024
    assert default.feed(prefix(MAX_FRAME)) == []
    with pytest.raises(ProtocolError, match="oversized frame"):
        FrameReader().feed(prefix(MAX_FRAME + 1))


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # a byte MessagePack never uses
        b"\x92\x01",  # an array of two with one item
        b"\x01\x02",  # trailing bytes
        b"\xd4\x09\x00",  # an unknown extension type
        b"\xd4\x01\x01",  # a tuple whose items are not an array
        b"\xd5\x02\x91\x01",  # headers that are not pairs of bytes
        b"\xd5\x03\x91\x01",  # an opaque value that is not a pair
        b"\xd4\x04\xff",  # a big integer that is not digits
        b"\xd4\x05\xff",  # odd text that is not UTF-8 even with surrogates
        b"\x91" * 5000 + b"\xc0",  # nested past any sane depth
    ],
)
def test_malformed_payloads_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed frame"):
        decode_payload(payload)


def test_version_1_is_recognised_by_its_first_byte() -> None:
    assert is_v1(b'{"type":"hello","protocol":1}\n')
    assert is_v1(b"{")
    assert not is_v1(b"")
    assert not is_v1(encode_frame(hello_frame("t", "h", 1, "a", 0.0)))
    line = v1_error_line("why")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == {"type": "error", "message": "why"}
    assert v1_message(b'{"type":"error","message":"malformed frame (not JSON)"}\nrest') == (
        "malformed frame (not JSON)"
    )
    assert v1_message(b"garbage") == "garbage"


# Hello -----------------------------------------------------------------------------------------


HELLO = hello_frame("t1", "host", 12, "main:app", 3.5, token="k")


def test_hello_round_trip() -> None:
    frame = decode_payload(encode_frame(HELLO)[4:])
    assert frame["protocol"] == PROTOCOL_VERSION == 2 and frame["accepts"] == [2]
    hello = parse_hello(frame)
    assert (hello.protocol, hello.asgispy, hello.producer, hello.host, hello.pid) == (
        2,
        __version__,
        "t1",
        "host",
        12,
    )
    assert (hello.app, hello.started, hello.token) == ("main:app", 3.5, "k")
    assert "token" not in hello_frame("t1", "h", 1, "a", 0.0)
    assert parse_hello(hello_frame("t1", "h", 1, "a", 0.0)).token is None


@pytest.mark.parametrize(
    "changes",
    [
        {"accepts": [1, 2]},
        {"accepts": [2, 3]},
        {"protocol": 3, "accepts": [2, 3]},  # a newer producer that still speaks 2
        {"accepts": None},  # no accepts: the protocol it speaks
        {"token": None, "pid": None, "started": None},  # optional fields
        {"started": 7},  # an integer time
        {"producer": "x" * 64},
    ],
)
def test_hellos_that_speak_2_are_accepted(changes: dict[str, Any]) -> None:
    frame = {**HELLO, **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del frame[key]
    assert parse_hello(frame).protocol == 2


@pytest.mark.parametrize("other", [1, 3])
def test_a_hello_without_version_2_is_refused_naming_both(other: int) -> None:
    frame = {**HELLO, "protocol": other, "accepts": [other], "asgispy": "9.8.7"}
    with pytest.raises(ProtocolError) as raised:
        parse_hello(frame)
    message = str(raised.value)
    assert f"this collector (asgispy {__version__}) speaks protocol 2" in message
    assert f"the producer (asgispy 9.8.7) speaks [{other}]" in message
    assert message.endswith(SAME_ASGISPY)
    no_accepts = {k: v for k, v in frame.items() if k != "accepts"}
    with pytest.raises(ProtocolError, match=rf"speaks \[{other}\]: {SAME_ASGISPY}"):
        parse_hello(no_accepts)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "welcome"}, "expected a hello frame first, got 'welcome'"),
        ({"type": None}, "expected a hello frame first"),
        ({"type": b"hello"}, "expected a hello frame first"),
        ({"protocol": "2"}, "without a protocol version"),
        ({"protocol": 2.0}, "without a protocol version"),
        ({"protocol": True}, "without a protocol version"),
        ({"protocol": None}, "without a protocol version"),
        ({"accepts": (2,)}, "without a protocol version"),
        ({"accepts": 2}, "without a protocol version"),
        ({"accepts": {"2": 2}}, "without a protocol version"),
        ({"accepts": []}, SAME_ASGISPY),
        ({"accepts": ["2"]}, SAME_ASGISPY),
        ({"accepts": [2.5]}, SAME_ASGISPY),
        ({"producer": ""}, "invalid producer tag"),
        ({"producer": "x" * 65}, "invalid producer tag"),
        ({"producer": 5}, "invalid producer tag"),
        ({"producer": None}, "invalid producer tag"),
        ({"producer": b"t1"}, "invalid producer tag"),
        ({"pid": "12"}, "invalid pid or start time"),
        ({"pid": 1.5}, "invalid pid or start time"),
        ({"pid": True}, "invalid pid or start time"),
        ({"pid": None}, "invalid pid or start time"),
        ({"started": "now"}, "invalid pid or start time"),
        ({"started": None}, "invalid pid or start time"),
        ({"started": True}, "invalid pid or start time"),
        ({"started": [3.5]}, "invalid pid or start time"),
        ({"token": 5}, "token that is not a string"),
        ({"token": b"k"}, "token that is not a string"),
        ({"started": 10**400}, "start time out of range"),
    ],
    ids=lambda v: repr(v)[:50],
)
def test_a_hello_with_a_wrong_field_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_hello({**HELLO, **changes})


@pytest.mark.parametrize("frame", [[HELLO], "hello", None, 2, b"hello", {"protocol": 2}])
def test_a_first_frame_that_is_no_hello_is_refused(frame: Any) -> None:
    with pytest.raises(ProtocolError, match="expected a hello frame first"):
        parse_hello(frame)


# Connections, events, ends ---------------------------------------------------------------------


def test_valid_connections_events_and_ends_are_read() -> None:
    value = [
        7,
        "websocket",
        5,
        {"type": "websocket"},
        [[0, 0, {"type": "websocket.connect"}, None, 0.25], [1, 0.5, "anything", {"bytes": 10}]],
        ["cut off", None, {"type": "E"}, {"name": "ws"}, ["a note"], 3],
    ]
    seq, kind, started, scope, events, end = parse_connection(value)
    assert (seq, kind, scope) == (7, "websocket", {"type": "websocket"})
    assert same(started, 5.0)
    assert same(
        events,
        [
            (RECEIVE, 0.0, {"type": "websocket.connect"}, None, 0.25),
            # A producer that does not time the calls leaves the wait out.
            (SEND, 0.5, "anything", {"bytes": 10}, None),
        ],
    )
    assert end == {
        "outcome": "cut off",
        "duration": None,
        "error": {"type": "E"},
        "handler": {"name": "ws"},
        "notes": ["a note"],
        "events_dropped": 3,
    }
    assert parse_end(None) is None
    assert parse_events([]) == []
    for outcome in ("completed", "exception", "cancelled", "cut off"):
        assert parse_end([outcome, 1, None, None, [], 0])["outcome"] == outcome  # type: ignore[index]
    assert parse_connection(connection_value(0))[0] == 0
    assert parse_connection(replaced(connection_value(1), (0,), 2**70))[0] == 2**70


NOT_INT: list[Any] = [1.5, "1", None, True, [], {}, b"1", (1,)]
NOT_NUMBER: list[Any] = ["0", None, True, False, [], {}, b"0", (0,)]
NOT_STR: list[Any] = [1, None, True, b"http", [], {}, ("http",)]
NOT_MAP: list[Any] = [[], "x", 1, None, True, b"", ("type", "http")]
NOT_ARRAY: list[Any] = [{}, "x", 1, None, True, b"", (EVENT,)]
NOT_MAP_OR_NONE: list[Any] = [[], "x", 1, True, b"", ("k", "v")]
NOT_ARRAY_OR_NONE: list[Any] = [{}, "x", 1, True, b"", tuple(END)]

BIG = 10**400

#: ``(path into a packed connection, wrong values)``: every field, every wrong type.
CONNECTION_FIELDS: list[tuple[str, tuple[int, ...], list[Any]]] = [
    ("seq", (0,), [*NOT_INT, -1]),
    ("type", (1,), [*NOT_STR, "x" * 65]),
    ("started", (2,), NOT_NUMBER),
    ("scope", (3,), NOT_MAP),
    ("events", (4,), NOT_ARRAY),
    ("event", (4, 0), [*NOT_ARRAY, EVENT[:3], [*EVENT, None], tuple(EVENT)]),
    ("wait", (4, 0, 4), [v for v in NOT_NUMBER if v is not None]),
    ("direction", (4, 0, 0), [2, -1, 0.0, 1.0, True, False, "0", "send", None, [], b"\x00"]),
    ("t", (4, 0, 1), NOT_NUMBER),
    ("cut", (4, 0, 3), [[], "x", 1, True, b"", {"body": "1"}, {"body": True}, {"body": 1.5}, {"body": None}]),
    ("end", (5,), [*NOT_ARRAY_OR_NONE, END[:5], [*END, 0]]),
    ("outcome", (5, 0), ["open", "", "COMPLETED", "completed ", 1, None, True, b"completed"]),
    ("duration", (5, 1), ["1", True, [], {}, b"", (1,)]),
    ("error", (5, 2), [*NOT_MAP_OR_NONE, {"type": 1}, {"message": None}, {"traceback": b"x"}]),
    ("handler", (5, 3), NOT_MAP_OR_NONE),
    ("notes", (5, 4), ["x", None, {}, 1, [1], [None], [b"x"], ("x",)]),
    ("events_dropped", (5, 5), [-1, *NOT_INT]),
]
#: Values that once raised something other than ProtocolError.
EDGE_CONNECTION_FIELDS: list[tuple[str, tuple[int, ...], Any]] = [
    ("started", (2,), BIG),
    ("t", (4, 0, 1), BIG),
    ("outcome", (5, 0), ["completed"]),
    ("outcome", (5, 0), {"completed": 1}),
]


def wrong_connections() -> Iterator[Any]:
    for name, path, values in CONNECTION_FIELDS:
        for value in values:
            yield pytest.param(path, value, id=f"{name}={value!r}"[:60])
    for name, path, value in EDGE_CONNECTION_FIELDS:
        yield pytest.param(path, value, id=f"{name}={value!r}"[:60])


@pytest.mark.parametrize(("path", "value"), list(wrong_connections()))
def test_a_wrong_type_in_any_field_is_a_protocol_error(path: tuple[int, ...], value: Any) -> None:
    """Every field of a connection, its events and its end, by way of the function that reads
    that part: parse_connection for all, parse_events for an event's, parse_end for the end's."""
    bad = replaced(connection_value(1), path, value)
    with pytest.raises(ProtocolError, match="malformed frame: "):
        parse_connection(bad)
    if path[0] == 4:
        with pytest.raises(ProtocolError, match="malformed frame: "):
            parse_events(bad[4])
    if path[0] == 5:
        with pytest.raises(ProtocolError, match="malformed frame: "):
            parse_end(bad[5])


def test_an_end_whose_handler_has_a_key_that_is_not_text_is_refused() -> None:
    with pytest.raises(ProtocolError, match="malformed frame: "):
        parse_end(["completed", 0.1, None, {1: "x"}, [], 0])


@pytest.mark.parametrize(
    "value", [*NOT_ARRAY, connection_value(1)[:5], [*connection_value(1), None], tuple(connection_value(1))]
)
def test_a_connection_that_is_not_a_6_item_array_is_refused(value: Any) -> None:
    with pytest.raises(ProtocolError, match="a connection that is not a 6-item array"):
        parse_connection(value)


# Packing ---------------------------------------------------------------------------------------

LONE_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
ODD_TEXT = st.lists(st.one_of(st.characters(), LONE_SURROGATES), max_size=12).map("".join)
TEXT = st.one_of(st.text(max_size=12), ODD_TEXT)
KEYS = st.text(max_size=8)  # lone surrogates in keys: see test_a_key_that_needs_an_extension_type_packs
EDGE_INTS = [0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**100, -(10**100)]
INTS = st.one_of(st.integers(), st.integers(-(2**200), 2**200), st.sampled_from(EDGE_INTS))
FLOATS = st.one_of(st.floats(), st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324]))
HEADERS = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), min_size=1, max_size=4)
PLAIN = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT, st.binary(max_size=24))


def asgi_values(depth: int = 5) -> st.SearchStrategy[Any]:
    """ASGI-like values nested at most ``depth`` deep (well within pack's MAX_DEPTH)."""
    if depth == 0:
        return PLAIN
    child = asgi_values(depth - 1)
    return st.one_of(
        PLAIN,
        HEADERS,
        st.lists(child, max_size=4),
        st.lists(child, max_size=4).map(tuple),
        st.dictionaries(KEYS, child, max_size=4),
    )


SCOPES = st.fixed_dictionaries(
    {
        "type": st.just("http"),
        "asgi": st.just({"version": "3.0"}),
        "method": st.sampled_from(["GET", "POST"]),
        "path": TEXT,
        "raw_path": st.binary(max_size=20),
        "query_string": st.binary(max_size=20),
        "headers": st.one_of(HEADERS, HEADERS.map(tuple), st.just([])),
        "client": st.one_of(st.none(), st.tuples(st.text(max_size=15), st.integers(0, 65535))),
        "state": st.dictionaries(KEYS, asgi_values(3), max_size=3),
    }
)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(asgi_values(), SCOPES))
@example(value=[(b"a", b"b")])
@example(value=((b"a", b"b"),))
@example(value={"h": [(b"a", b"b"), (b"c", b"")], "t": ("\udc80", 2**64, [math.nan])})
@example(value=[1, True, 1.0, -0.0, 0])
@example(value=[[], (), {}, b"", ""])
def test_pack_gives_back_the_very_values(value: Any) -> None:
    assert same(pack.decode(pack.dumps(value)), value)
    careful = pack.encode(pack.pack_value(value, careful=True))
    assert same(pack.decode(careful), value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"\ud800": 1}, id="lone surrogate key"),
        pytest.param({"state": {"k\udcff": b""}}, id="nested lone surrogate key"),
        pytest.param({(1, 2): 3}, id="tuple key"),
        pytest.param({2**64: "x"}, id="big int key"),
    ],
)
def test_a_key_that_needs_an_extension_type_packs(value: Any) -> None:
    assert same(pack.decode(pack.dumps(value)), value)


def test_a_header_list_that_turns_odd_after_a_secret_is_masked_once_and_restored() -> None:
    # The quick walk masks as it checks; a pair that is no (bytes, bytes) tuple past a secret
    # sends the list the general way, which must note each secret once, not twice.
    from asgispy.codec.redact import REDACTED, Redactor

    headers = [(b"authorization", b"Bearer s3cret"), (b"x-odd", "text"), [b"cookie", b"id=1"]]
    scope = {"type": "http", "headers": list(headers)}
    packed, _, secrets = pack.pack_values(scope, [], Redactor())
    masked = pack.decode(pack.encode(packed))["headers"]
    assert masked[0] == (b"authorization", REDACTED) and masked[2] == [b"cookie", REDACTED]
    assert masked[1] == (b"x-odd", "text")
    assert sorted((where, i) for where, i, _ in secrets) == [(-1, 0), (-1, 2)]
    back = pack.decode(pack.encode(packed))
    pack.restore_secrets(back, [], secrets)
    assert back["headers"] == headers


# The collector at its socket -------------------------------------------------------------------

#: The fuzzed collector's frame limit: small, so that "just past it" is cheap to send.
LIMIT = 64 * 1024


class Peer:
    """A producer written by hand on a raw Unix socket: exactly the bytes a test wants."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.received = b""

    def hello(self, tag: str, **changes: Any) -> Any:
        frame = {**hello_frame(tag, "testhost", 4242, "tests:app", time.time()), **changes}
        self.send(encode_frame(frame))
        reader = FrameReader(LIMIT)
        while True:
            chunk = self.sock.recv(65536)
            assert chunk, "the collector hung up without answering the hello"
            frames = reader.feed(chunk)
            if frames:
                return decode_payload(frames[0])

    def send(self, data: bytes) -> bool:
        """Send all of ``data``; False if the collector hung up first."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def read_to_end(self, timeout: float = 5.0) -> bytes:
        """Everything the collector says until it hangs up; fails if it never does."""
        self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"the collector did not hang up; it said {self.received[:200]!r}") from None
        return self.received

    def frames(self) -> list[Any]:
        return [decode_payload(p) for p in FrameReader(LIMIT).feed(self.received)]

    def hang_up(self) -> bytes:
        """Say we are done (a truncated frame stays truncated) and read until the collector closes."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        return self.read_to_end()

    def close(self) -> None:
        self.sock.close()


class Bench:
    """A collector under test, with what it logged and a producer that behaves."""

    def __init__(self, collector: CollectorThread, caplog: pytest.LogCaptureFixture) -> None:
        self.collector = collector
        self.caplog = caplog
        self.path = collector.collector.addresses[0].path
        self.tags = (f"g{n:05d}" for n in itertools.count())
        self.serial = itertools.count()
        self.good: list[str] = []

    def warnings(self) -> list[str]:
        return [
            r.getMessage()
            for r in self.caplog.records
            if r.name == "asgispy.collector" and r.levelno >= logging.WARNING
        ]

    def get(self, id: str) -> Any:
        """Connection ``id`` in the store, or None."""
        return self.collector.call(lambda: self.collector.store.get(id))

    def links(self) -> int:
        return self.collector.call(lambda: len(self.collector.collector._links))

    def buffered(self) -> int:
        """The most any producer still connected has made the collector keep of a frame begun."""
        links = self.collector.collector._links
        return self.collector.call(
            lambda: max((lk.reader.buffered for lk in links if not lk.closed), default=0)
        )

    def well_behaved(self) -> None:
        """A producer that comes after: welcomed, and its connection reaches the store."""
        assert self.collector.thread.is_alive()
        tag = next(self.tags)
        peer = Peer(self.path)
        try:
            assert peer.hello(tag) == welcome_frame()
            assert peer.send(open_frame(1))
            conn = self.collector.wait_for(lambda s: s.get(f"{tag}-1"), timeout=5)
        finally:
            peer.close()
        assert (conn.outcome, conn.path, len(conn.events)) == ("completed", "/ok", 1)
        self.good.append(f"{tag}-1")

    def idle(self, timeout: float = 5.0) -> None:
        """Wait until the collector holds no link at all: every producer is gone, buffers too."""
        deadline = time.monotonic() + timeout
        while self.links():
            assert time.monotonic() < deadline, "a producer's link outlived its socket"
            time.sleep(0.005)


@pytest.fixture
def bench(sockdir: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Bench]:
    caplog.set_level(logging.INFO, logger="asgispy.collector")
    with CollectorThread([f"unix:{sockdir}/c.sock"], max_frame=LIMIT) as collector:
        yield Bench(collector, caplog)


def check_refused(bench: Bench, peer: Peer, said: Any, reason: str = "") -> None:
    """``peer`` was told why in one error frame, logged once with that reason, and dropped."""
    assert isinstance(said, dict) and said.get("type") == "error", said
    assert said["protocol"] == PROTOCOL_VERSION and reason in said["message"]
    warnings = bench.warnings()
    assert len(warnings) == 1, warnings
    assert said["message"] in warnings[0] and warnings[0].endswith("; disconnecting it")


def wrong_frames() -> list[tuple[str, bytes]]:
    """Frames whose payload is good MessagePack with a wrong type somewhere, every field of
    every kind of frame in turn: ``(what, bytes)``."""
    out: list[tuple[str, bytes]] = []
    fields = [(name, path, value) for name, path, values in CONNECTION_FIELDS for value in values]
    # The values parse_* fails on with the wrong exception: refused at the socket all the same.
    fields += [(name, path, value) for name, path, value in EDGE_CONNECTION_FIELDS]
    for name, path, value in fields:
        bad = replaced(connection_value(1), path, value)
        out.append((f"open {name}={value!r}", wire([OPEN, bad])))
        if path[0] == 4:  # an event's field: in an events frame too
            out.append((f"events {name}={value!r}", wire([EVENTS, 1, 0, bad[4]])))
        if path[0] == 5:  # the end's field: in a close frame too
            out.append((f"close {name}={value!r}", wire([CLOSE, 1, bad[5]])))
    whole: list[Any] = [
        [],
        {},
        "x",
        1,
        None,
        b"\x01",
        (OPEN, connection_value(1)),  # a tuple is not an array
        hello_frame("again", "h", 1, "a", 0.0),  # a second hello
        [0, 1],
        [5, 1],
        [-1],
        [1.0, connection_value(1)],
        [True, connection_value(1)],
        ["open", connection_value(1)],
        [2**70, 1],
        [OPEN],
        [OPEN, connection_value(1), None],
        [EVENTS, 1, 0],
        [EVENTS, 1, 0, [], None],
        [EVENTS, "1", 0, []],
        [EVENTS, 1.0, 0, []],
        [EVENTS, 1, -1, []],
        [EVENTS, 1, 0.5, []],
        [EVENTS, 1, True, []],
        [EVENTS, 1, None, []],
        [CLOSE, 1],
        [CLOSE, 1, None],  # a close without an end
        [CLOSE, "1", END],
        [CLOSE, None, END],
        [CLOSE, 1, END, None],
        [DROPPED],
        [DROPPED, "3"],
        [DROPPED, 1.5],
        [DROPPED, None],
        [DROPPED, True],
        [DROPPED, 3, 4],
    ]
    out += [(f"frame {value!r}"[:80], wire(value)) for value in whole]
    return out


WRONG_FRAMES = wrong_frames()


def test_frames_of_every_kind_are_applied(bench: Bench) -> None:
    """The frames the wrong ones are made from, unchanged: all taken, nothing said back."""
    peer = Peer(bench.path)
    assert peer.hello("fine01") == welcome_frame()
    value = connection_value(1)
    value[5] = None  # still open
    for frame in (
        [OPEN, value],
        [EVENTS, 1, 0, value[4]],  # known already: ignored
        [EVENTS, 1, 1, [[1, 0.5, {"type": "http.response.start", "status": 204, "headers": []}, None]]],
        [CLOSE, 1, END],
        [DROPPED, 3],
    ):
        assert peer.send(wire(frame))
    bench.collector.wait_for(lambda s: s.dropped == 3)
    conn = bench.get("fine01-1")
    assert (conn.outcome, [e.type for e in conn.events]) == (
        "completed",
        ["http.request", "http.response.start"],
    )
    peer.sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        peer.sock.recv(1)  # not a word: the collector only speaks to say why it drops a producer
    assert bench.warnings() == []
    peer.close()
    bench.idle()


def test_every_wrong_frame_drops_only_its_producer(bench: Bench) -> None:
    """After a good hello, each wrong frame from its own producer: told why, logged once, dropped;
    its earlier connection stays, nothing of the wrong frame gets in, the collector goes on."""
    for n, (what, data) in enumerate(WRONG_FRAMES):
        bench.caplog.clear()
        tag = f"b{n:05d}"
        peer = Peer(bench.path)
        assert peer.hello(tag) == welcome_frame()
        assert peer.send(open_frame(2))
        bench.collector.wait_for(lambda s: s.get(f"{tag}-2"))  # noqa: B023 (called at once)
        peer.send(data)
        peer.read_to_end()
        said = peer.frames()
        assert len(said) == 1, (what, said)
        check_refused(bench, peer, said[0])
        assert tag in bench.warnings()[0]
        peer.close()
        assert bench.get(f"{tag}-1") is None, what
        if n % 10 == 0:
            bench.well_behaved()
    bench.well_behaved()
    bench.idle()
    ids = bench.collector.call(lambda: {c.id for c in bench.collector.store})
    assert ids == {f"b{n:05d}-2" for n in range(len(WRONG_FRAMES))} | set(bench.good)
    assert bench.collector.call(lambda: bench.collector.store.dropped) == 0


# What a case expects of the collector: "refuse" (one error frame, one warning), "end" (a frame
# left unfinished at a hang-up: no word, no warning), "either" (random bytes: one or the other).
Case = tuple[str, bytes]


def verdict_of_first_bytes(data: bytes) -> str:
    """What the collector must do with ``data`` as a connection's first bytes."""
    if is_v1(data):
        return "v1"
    try:
        frames = FrameReader(LIMIT).feed(data)
    except ProtocolError:
        return "refuse"
    if not frames:
        return "end"
    with contextlib.suppress(ProtocolError):
        parse_hello(decode_payload(frames[0]))
        return "hello"
    return "refuse"


FIRST_BYTES = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.binary(max_size=200).map(lambda body: prefix(len(body)) + body),  # a whole frame of junk
    st.binary(max_size=60).map(lambda rest: b"{" + rest),  # looks like version 1
    st.builds(lambda n, body: prefix(n) + body, st.integers(0, 2**32 - 1), st.binary(max_size=40)),
    st.sampled_from(WRONG_FRAMES).map(lambda case: case[1]),  # a frame, but not a hello
)


@pytest.mark.timeout(40)
def test_fuzz_first_bytes(bench: Bench) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=FIRST_BYTES)
    @example(data=b"\x00")
    @example(data=prefix(LIMIT + 1))
    @example(data=prefix(LIMIT) + b"x" * 100)
    @example(data=prefix(0))
    @example(data=b"{not json at all")
    @example(data=encode_frame(hello_frame("t", "h", 1, "a", 0.0))[:-1])
    def case(data: bytes) -> None:
        verdict = verdict_of_first_bytes(data)
        assume(verdict != "hello")
        bench.caplog.clear()
        peer = Peer(bench.path)
        sent = peer.send(data)
        assert bench.buffered() <= LIMIT + 4
        peer.hang_up()
        peer.close()
        warnings = bench.warnings()
        if verdict == "v1":
            assert peer.received.count(b"\n") == 1 and peer.received.endswith(b"\n")
            said = orjson.loads(peer.received)
            assert said["type"] == "error" and SAME_ASGISPY in said["message"]
            assert len(warnings) == 1 and said["message"] in warnings[0]
        elif verdict == "refuse":
            said = peer.frames()
            assert len(said) == 1 and said[0]["type"] == "error", said
            check_refused(bench, peer, said[0])
            assert "from unix socket" in warnings[0]
        else:
            assert sent and peer.received == b"" and warnings == []
        bench.well_behaved()
        bench.idle()
        assert bench.collector.call(lambda: dict(bench.collector.store.producers)).keys() == {
            g.rsplit("-", 1)[0] for g in bench.good
        }

    case()


def truncated(data: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(1, len(data) - 1).map(lambda cut: data[:cut])


AFTER_HELLO: st.SearchStrategy[Case] = st.one_of(
    st.binary(min_size=1, max_size=300).map(lambda junk: ("either", junk)),
    st.sampled_from(WRONG_FRAMES).map(lambda case: ("refuse", case[1])),
    st.builds(
        lambda n, body: ("refuse", prefix(n) + body),
        st.integers(LIMIT + 1, 2**32 - 1),
        st.binary(max_size=100),
    ),
    st.binary(max_size=100)
    .filter(lambda body: not _decodes(body))
    .map(lambda body: ("refuse", prefix(len(body)) + body)),  # not MessagePack (or not ours)
    asgi_values(3)
    .filter(lambda v: not (type(v) is list and v and type(v[0]) is int and v[0] in (1, 2, 3, 4)))
    .map(lambda v: ("refuse", wire(v))),  # MessagePack, but no frame
    truncated(open_frame(1)).map(lambda part: ("end", part)),
    truncated(wire([EVENTS, 2, 0, [EVENT] * 3])).map(lambda part: ("end", part)),
    st.builds(
        lambda n, body: ("end", prefix(n) + body), st.integers(1, LIMIT), st.binary(max_size=100)
    ).filter(lambda case: len(case[1]) - 4 < int.from_bytes(case[1][:4], "big")),
)


def _decodes(body: bytes) -> bool:
    try:
        pack.decode(body)
    except ValueError:
        return False
    return True


@pytest.mark.timeout(40)
def test_fuzz_after_hello(bench: Bench) -> None:
    """A producer says a good hello, has a connection in the store, then sends junk: random bytes,
    wrong frames, huge lengths, frames cut short. Whatever it is, only that producer is affected."""

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=AFTER_HELLO)
    @example(case=("refuse", prefix(LIMIT + 1)))
    @example(case=("refuse", prefix(2**32 - 1) + b"x" * 100))
    @example(case=("refuse", prefix(0)))
    @example(case=("end", open_frame(1)[:4]))
    @example(case=("end", open_frame(1)[:-1]))
    def run(case: Case) -> None:
        verdict, data = case
        bench.caplog.clear()
        tag = f"b{next(bench.serial):05d}"
        peer = Peer(bench.path)
        assert peer.hello(tag) == welcome_frame()
        assert peer.send(open_frame(2))
        bench.collector.wait_for(lambda s: s.get(f"{tag}-2"))
        peer.send(data)
        assert bench.buffered() <= LIMIT + 4
        peer.hang_up()
        peer.close()
        said = peer.frames()
        warnings = bench.warnings()
        assert len(said) <= 1 and len(warnings) == len(said), (said, warnings)
        if said:
            check_refused(bench, peer, said[0])
            assert tag in warnings[0]
        if verdict == "refuse":
            assert said
        elif verdict == "end":
            assert not said
            assert bench.get(f"{tag}-1") is None
        kept = bench.get(f"{tag}-2")  # what it sent before the junk stays, as it was
        assert kept.outcome == "completed"
        if verdict != "either":
            assert len(kept.events) == 1
        bench.well_behaved()
        bench.idle()

    run()


def test_a_frame_at_the_limit_is_buffered_and_one_past_it_never(bench: Bench) -> None:
    at_limit = Peer(bench.path)
    assert at_limit.hello("atlim1") == welcome_frame()
    assert at_limit.send(prefix(LIMIT) + b"\x00" * (LIMIT - 1))  # one byte short of a whole frame
    deadline = time.monotonic() + 5
    while bench.buffered() < LIMIT + 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert bench.buffered() == LIMIT + 3 and bench.warnings() == []
    past = Peer(bench.path)
    assert past.hello("past01") == welcome_frame()
    sent = 0
    chunk = prefix(LIMIT + 1) + b"\x00" * (256 * 1024)
    while sent < 16 * LIMIT and past.send(chunk):  # keeps writing until the collector hangs up
        sent += len(chunk)
        chunk = b"\x00" * (256 * 1024)
        assert bench.buffered() <= LIMIT + 4
    past.read_to_end()
    [said] = past.frames()
    check_refused(bench, past, said, f"oversized frame ({LIMIT + 1} bytes; the limit is {LIMIT})")
    assert bench.buffered() == LIMIT + 3  # the other producer's frame, still waiting, untouched
    assert at_limit.send(b"\x00")  # its last byte: a whole frame of zeros, which is not MessagePack
    at_limit.read_to_end()
    assert "malformed frame" in at_limit.frames()[0]["message"]
    for peer in (at_limit, past):
        peer.close()
    bench.well_behaved()
    bench.idle()


def test_frames_before_an_oversized_length_in_the_same_read_are_kept(bench: Bench) -> None:
    # The same frames before a malformed one are kept (see test_fuzz_after_hello): whether a
    # connection survives must not depend on how the kernel cut the stream into reads.
    peer = Peer(bench.path)
    assert peer.hello("early1") == welcome_frame()
    peer.send(open_frame(1) + prefix(LIMIT + 1))
    peer.read_to_end()
    assert "oversized frame" in peer.frames()[0]["message"]
    peer.close()
    bench.idle()
    assert bench.get("early1-1") is not None


# Versions --------------------------------------------------------------------------------------


def test_a_v2_producer_that_speaks_only_another_version_is_refused(bench: Bench) -> None:
    for other in (1, 3):
        bench.caplog.clear()
        peer = Peer(bench.path)
        said = peer.hello(f"v{other}only", protocol=other, accepts=[other], asgispy="9.8.7")
        peer.read_to_end()
        peer.close()
        check_refused(bench, peer, said, f"speaks protocol 2, the producer (asgispy 9.8.7) speaks [{other}]")
        assert said["message"].endswith(SAME_ASGISPY)
    bench.idle()
    assert bench.collector.call(lambda: dict(bench.collector.store.producers)) == {}
    bench.well_behaved()


def test_a_v1_producer_is_told_in_its_own_words(bench: Bench) -> None:
    peer = Peer(bench.path)
    v1_hello = {"type": "hello", "protocol": 1, "producer": "old001", "host": "h", "pid": 1, "app": "a"}
    peer.send(orjson.dumps(v1_hello) + b"\n")
    reply = peer.read_to_end()
    peer.close()
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1  # one JSON line, as version 1 reads
    said = orjson.loads(reply)
    assert said["type"] == "error"
    message = said["message"]
    assert f"this collector (asgispy {__version__}) speaks wire protocol 2" in message
    assert "the app's asgispy speaks protocol 1" in message and message.endswith(SAME_ASGISPY)
    warnings = bench.warnings()
    assert len(warnings) == 1 and message in warnings[0]
    bench.idle()
    assert bench.collector.call(lambda: dict(bench.collector.store.producers)) == {}
    bench.well_behaved()


class V1Collector:
    """A collector as asgispy's wire protocol 1 had it, as far as a first connection goes: it
    reads newline-delimited JSON, so it waits for a newline (up to its hello timeout, 10 s then,
    ``patience`` here), answers one JSON error line, and hangs up."""

    def __init__(self, path: str, patience: float) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.server.settimeout(0.05)
        self.patience = patience
        self.received: list[bytes] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        deadline = time.monotonic() + self.patience
        conn.settimeout(0.05)
        while b"\n" not in data and time.monotonic() < deadline and not self.stopped.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            data += chunk
        self.received.append(data)
        if b"\n" in data:
            line = data.split(b"\n", 1)[0]
            try:
                orjson.loads(line)
                message = "hello without a protocol version"
            except orjson.JSONDecodeError as exc:
                message = f"malformed frame (not JSON: {exc}): {line[:80].decode('utf-8', 'replace')!r}"
        else:
            message = "no hello within 10 s"
        with contextlib.suppress(OSError):
            conn.sendall(orjson.dumps({"type": "error", "message": message}) + b"\n")

    def close(self) -> None:
        self.stopped.set()
        self.server.close()
        self.thread.join(5)


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called: no traffic needed
    raise AssertionError("not called")


def _producer_says(caplog: pytest.LogCaptureFixture, words: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in list(caplog.records):
            if record.name == "asgispy" and words in record.getMessage():
                return record.getMessage()
        time.sleep(0.01)
    raise AssertionError(f"the producer never said {words!r}: {[r.getMessage() for r in caplog.records]}")


def run_spy_against_v1(
    sockdir: Path, caplog: pytest.LogCaptureFixture, origin: Origin, patience: float
) -> tuple[str, V1Collector]:
    caplog.set_level(logging.INFO, logger="asgispy")
    path = str(sockdir / "v1.sock")
    old = V1Collector(path, patience)
    spy = Spy(_app, address=f"unix:{path}")
    spy._origin = origin  # who the hello says we are: fixed, so that its bytes are too
    producer = spy._producer
    assert producer is not None
    try:
        producer.start()
        said = _producer_says(caplog, "no usable collector")
    finally:
        producer.close()
        old.close()
    return said, old


def test_a_v2_producer_meeting_a_v1_collector_says_so(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A newline in the hello (here in the app's name): a version-1 collector reads a line at once.
    origin = Origin(tag="abc123", host="testhost", pid=4242, app="tests:app\nv2", started=1.5)
    said, old = run_spy_against_v1(sockdir, caplog, origin, patience=5.0)
    assert old.received and not is_v1(old.received[0])  # it got our binary hello
    assert "the collector speaks wire protocol 1 (an older asgispy)" in said
    assert f"this app's asgispy {__version__} speaks 2: {SAME_ASGISPY}" in said
    assert "(it said: malformed frame (not JSON" in said


def test_a_v2_producer_meeting_a_v1_collector_says_so_whatever_its_hello(
    sockdir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing in this hello but its "eol" field holds a byte 0x0a, as for about 96% of real
    # hellos: without that field a version-1 collector would keep waiting for the end of the line.
    monkeypatch.setattr(channel_module, "HANDSHAKE_TIMEOUT", 0.3)
    origin = Origin(tag="abc123", host="testhost", pid=4242, app="tests:app", started=1.5)
    hello = hello_frame(*[getattr(origin, f) for f in ("tag", "host", "pid", "app", "started")])
    assert b"\n" not in encode_frame({k: v for k, v in hello.items() if k != "eol"})
    said, _ = run_spy_against_v1(sockdir, caplog, origin, patience=3.0)
    assert "the collector speaks wire protocol 1" in said, said
