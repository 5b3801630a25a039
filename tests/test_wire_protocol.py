"""Addresses and frames: parsing, bounds, and the errors a user or a collector log would show."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import orjson
import pytest

from asgispy.wire.address import (
    Address,
    AddressError,
    default_address,
    ensure_private_directory,
    is_private_directory,
    parse_address,
)
from asgispy.wire.protocol import (
    PROTOCOL_VERSION,
    FrameReader,
    ProtocolError,
    close_frame,
    decode_frame,
    encode_frame,
    hello_frame,
    parse_hello,
)


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


# Frames ----------------------------------------------------------------------------------------


def test_frames_are_one_json_line_each_even_with_newlines_inside() -> None:
    frame = close_frame(
        "abc-1", {"outcome": "exception", "notes": ["a\nb"], "error": {"traceback": "x\ny\n"}}
    )
    data = encode_frame(frame)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    decoded = decode_frame(data[:-1])
    assert decoded["notes"] == ["a\nb"]
    assert decoded["error"] == {"traceback": "x\ny\n"}
    assert decoded["duration"] is None  # every end field is present


def test_reader_splits_frames_across_chunks_anywhere() -> None:
    frames = [encode_frame({"type": "event", "n": n, "text": "é" * n}) for n in range(50)]
    stream = b"".join(frames)
    for step in (1, 3, 17, 4096):
        reader = FrameReader()
        got = []
        for i in range(0, len(stream), step):
            got += reader.feed(stream[i : i + step])
        assert [orjson.loads(g)["n"] for g in got] == list(range(50))
        assert reader.buffered == 0


def test_reader_refuses_oversized_frames_early() -> None:
    reader = FrameReader(max_frame=100)
    reader.feed(b"x" * 60)
    with pytest.raises(ProtocolError, match="oversized frame"):
        reader.feed(b"y" * 60)  # refused before any newline: nothing unbounded is kept
    with pytest.raises(ProtocolError, match="oversized frame"):
        FrameReader(max_frame=10).feed(b"z" * 11 + b"\n")
    assert FrameReader(max_frame=10).feed(b"z" * 10 + b"\n") == [b"z" * 10]


@pytest.mark.parametrize(
    ("line", "message"),
    [(b"{nope", "not JSON"), (b"42", "not a JSON object"), (b'{"a": 1}', 'no "type"')],
)
def test_malformed_frames_are_named(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_frame(line)


def test_hello_round_trip_and_checks() -> None:
    frame = decode_frame(encode_frame(hello_frame("t1", "host", 12, "main:app", 3.5, token="k")))
    hello = parse_hello(frame)
    assert (hello.protocol, hello.producer, hello.pid, hello.app, hello.token) == (
        PROTOCOL_VERSION,
        "t1",
        12,
        "main:app",
        "k",
    )
    assert "token" not in hello_frame("t1", "h", 1, "a", 0.0)
    with pytest.raises(ProtocolError, match="unknown protocol version 99"):
        parse_hello({**frame, "protocol": 99})
    with pytest.raises(ProtocolError, match="without a protocol version"):
        parse_hello({k: v for k, v in frame.items() if k != "protocol"})
    with pytest.raises(ProtocolError, match="invalid producer tag"):
        parse_hello({**frame, "producer": ""})
    with pytest.raises(ProtocolError, match="expected a hello"):
        parse_hello({"type": "event"})
