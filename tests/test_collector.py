"""The collector: real sockets, real frames, many producers, bad input, and its security rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from asgispy.store.collector import Collector, CollectorError
from asgispy.store.store import Store
from asgispy.wire.address import Address, default_address, parse_address
from asgispy.wire.protocol import PROTOCOL_VERSION, hello_frame

T = TypeVar("T")


class CollectorThread:
    """A real Collector on its own event loop in a background thread, as a viewer process has.

    ``call`` runs a function on the collector's loop, so tests read the store safely while
    frames keep arriving.
    """

    def __init__(self, addresses: list[str], store: Store | None = None, **options: Any) -> None:
        self.store = store if store is not None else Store()
        self.collector = Collector(self.store, addresses, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.changes: list[tuple[str, str | None]] = []
        self.store.subscribe(
            lambda c: self.changes.append((c.kind, c.connection.id if c.connection else None))
        )

    def __enter__(self) -> CollectorThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.collector.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.collector.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def address(self) -> str:
        return str(self.collector.addresses[0])

    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def wait_for(self, predicate: Callable[[Store], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.call(lambda: predicate(self.store))
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; store has {self.call(lambda: len(self.store))}")
            time.sleep(0.01)


def connection_doc(tag: str, seq: int, events: int = 0, outcome: str = "open") -> dict[str, Any]:
    return {
        "id": f"{tag}-{seq}",
        "seq": seq,
        "producer": tag,
        "type": "http",
        "started": time.time(),
        "duration": None if outcome == "open" else 0.001,
        "outcome": outcome,
        "scope": {"type": "http", "method": "GET", "path": f"/{seq}", "headers": {"$headers": []}},
        "events": [event_doc(i) for i in range(events)],
        "events_dropped": 0,
        "error": None,
        "handler": None,
        "notes": [],
    }


def event_doc(i: int) -> dict[str, Any]:
    return {
        "direction": "send",
        "t": i / 1000,
        "message": {"type": "http.response.body", "body": {"$bytes": f"{i}"}},
    }


def line(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame) + b"\n"


class RawProducer:
    """A producer written by hand: exactly the bytes a test wants on the wire."""

    def __init__(self, address: str, tag: str, token: str | None = None, hello: bool = True) -> None:
        parsed = parse_address(address)
        if parsed.scheme == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(parsed.path)
        else:
            self.sock = socket.create_connection((parsed.host, parsed.port))
        self.sock.settimeout(5)
        self.tag = tag
        self.reply = b""
        if hello:
            self.send(hello_frame(tag, "testhost", 4242, "tests:app", time.time(), token))
            self.reply = self.read_line()

    def send(self, frame: dict[str, Any]) -> None:
        self.sock.sendall(line(frame))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def collector(sockdir: Path) -> Iterator[CollectorThread]:
    with CollectorThread([f"unix:{sockdir}/c.sock"]) as running:
        yield running


# Feeding the store -------------------------------------------------------------------------------


def test_frames_build_connections_in_order_and_repeats_are_ignored(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "aaa111")
    assert orjson.loads(producer.reply) == {
        "type": "welcome",
        "protocol": PROTOCOL_VERSION,
        "asgispy": orjson.loads(producer.reply)["asgispy"],
    }
    producer.send({"type": "open", "connection": connection_doc("aaa111", 1, events=2)})
    for i in range(2, 6):
        producer.send({"type": "event", "id": "aaa111-1", "index": i, "event": event_doc(i)})
    # Sent again after a reconnect: already known, so ignored.
    producer.send({"type": "event", "id": "aaa111-1", "index": 3, "event": event_doc(3)})
    producer.send(
        {"type": "close", "id": "aaa111-1", "outcome": "completed", "duration": 0.5, "error": None,
         "handler": None, "notes": [], "events_dropped": 0}
    )  # fmt: skip
    producer.send({"type": "dropped", "total": 7})
    conn = collector.wait_for(
        lambda s: (c := s.get("aaa111-1")) is not None and c.outcome == "completed" and c
    )
    assert [e.message["body"] for e in conn.events] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert conn.duration == 0.5
    collector.wait_for(lambda s: s.dropped == 7)
    info = collector.call(lambda: collector.store.producers["aaa111"].info)
    assert (info.host, info.pid, info.app) == ("testhost", 4242, "tests:app")
    producer.close()


def test_many_producers_at_once(collector: CollectorThread) -> None:
    producers = [RawProducer(collector.address, f"p{n:05d}") for n in range(20)]
    for seq in range(1, 26):
        for p in producers:
            p.send({"type": "open", "connection": connection_doc(p.tag, seq, events=3, outcome="completed")})
    collector.wait_for(lambda s: len(s) == 20 * 25)
    assert collector.call(lambda: collector.collector.producers_connected) == 20
    by_producer = collector.call(lambda: {t: p.connections for t, p in collector.store.producers.items()})
    assert by_producer == {p.tag: 25 for p in producers}
    for p in producers:
        p.close()
    collector.wait_for(lambda s: all(not p.connected for p in s.producers.values()))


def test_a_producer_that_vanishes_leaves_its_open_connections_cut_off(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "gone01")
    other = RawProducer(collector.address, "stays1")
    producer.send({"type": "open", "connection": connection_doc("gone01", 1, events=1)})
    producer.send({"type": "open", "connection": connection_doc("gone01", 2, events=1, outcome="completed")})
    other.send({"type": "open", "connection": connection_doc("stays1", 1, events=1)})
    collector.wait_for(lambda s: len(s) == 3)
    producer.sock.close()  # no goodbye: the process died
    collector.wait_for(lambda s: s.get("gone01-1").outcome == "cut off")
    assert collector.call(lambda: collector.store.get("gone01-2").outcome) == "completed"
    assert collector.call(lambda: collector.store.get("stays1-1").outcome) == "open"
    assert collector.call(lambda: collector.store.producers["gone01"].connected) is False
    # The survivor goes on.
    other.send({"type": "event", "id": "stays1-1", "index": 1, "event": event_doc(1)})
    collector.wait_for(lambda s: len(s.get("stays1-1").events) == 2)
    other.close()


# Bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"this is not json\n", "not JSON"),
        (b"[1, 2, 3]\n", "not a JSON object"),
        (b'{"no": "type"}\n', "unknown frame type"),
        (b'{"type": "event", "id": "other-1", "index": 0, "event": {}}\n', "not producer"),
        (b'{"type": "event"}\n', "malformed frame"),
        (b'{"type": "teleport"}\n', "unknown frame type"),
    ],
)
def test_garbage_drops_only_that_producer(
    collector: CollectorThread, caplog: pytest.LogCaptureFixture, garbage: bytes, reason: str
) -> None:
    caplog.set_level(logging.WARNING, logger="asgispy.collector")
    good = RawProducer(collector.address, "good01")
    bad = RawProducer(collector.address, "bad001")
    good.send({"type": "open", "connection": connection_doc("good01", 1)})
    bad.send({"type": "open", "connection": connection_doc("bad001", 1)})
    collector.wait_for(lambda s: len(s) == 2)
    bad.send_raw(garbage)
    error = orjson.loads(bad.read_line())
    assert error["type"] == "error" and reason in error["message"]
    assert bad.closed_by_peer()
    collector.wait_for(lambda s: s.get("bad001-1").outcome == "cut off")
    assert any("bad001" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    # The well-behaved producer is untouched, and new ones are welcome.
    good.send({"type": "event", "id": "good01-1", "index": 0, "event": event_doc(0)})
    collector.wait_for(lambda s: len(s.get("good01-1").events) == 1)
    assert collector.call(lambda: collector.store.producers["good01"].connected)
    late = RawProducer(collector.address, "late01")
    assert orjson.loads(late.reply)["type"] == "welcome"
    for p in (good, late, bad):
        p.close()


def test_an_oversized_frame_is_refused_without_buffering_it(sockdir: Path) -> None:
    with CollectorThread([f"unix:{sockdir}/c.sock"], max_frame=64 * 1024) as collector:
        bad = RawProducer(collector.address, "big001")
        good = RawProducer(collector.address, "good01")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may hang up mid-write
            bad.send_raw(b'{"type": "event", "id": "big001-1", "event": "' + b"x" * (200 * 1024))
        assert bad.closed_by_peer()
        good.send({"type": "open", "connection": connection_doc("good01", 1)})
        collector.wait_for(lambda s: s.get("good01-1") is not None)
        good.close()


def test_unknown_protocol_version_is_refused_clearly(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "new001", hello=False)
    hello = hello_frame("new001", "h", 1, "app", 0.0)
    hello["protocol"] = PROTOCOL_VERSION + 1
    producer.send(hello)
    error = orjson.loads(producer.read_line())
    assert error["type"] == "error"
    assert f"unknown protocol version {PROTOCOL_VERSION + 1}" in error["message"]
    assert producer.closed_by_peer()
    assert collector.call(lambda: collector.store.producers) == {}


def test_frames_before_hello_are_refused(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "x", hello=False)
    producer.send({"type": "open", "connection": connection_doc("x", 1)})
    assert "expected a hello frame first" in orjson.loads(producer.read_line())["message"]
    assert producer.closed_by_peer()


def test_frames_split_anywhere_are_reassembled(collector: CollectorThread) -> None:
    producer = RawProducer(collector.address, "split1")
    data = b"".join(
        line({"type": "open", "connection": connection_doc("split1", n, events=2)}) for n in (1, 2)
    )
    for i in range(0, len(data), 7):
        producer.send_raw(data[i : i + 7])
        time.sleep(0.0005)
    collector.wait_for(lambda s: len(s) == 2)
    assert collector.call(lambda: [len(c.events) for c in collector.store]) == [2, 2]
    producer.close()


# Security ----------------------------------------------------------------------------------------


def test_unix_socket_is_0600_in_a_0700_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="asgispy-xdg-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    address = default_address()
    assert address.path == str(runtime / "asgispy" / "asgispy.sock")
    with CollectorThread([str(address)]) as collector:
        assert collector.collector.addresses == [address]
        assert stat.S_IMODE(os.stat(runtime / "asgispy").st_mode) == 0o700
        st = os.stat(address.path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
    assert not os.path.exists(address.path)  # removed at stop
    os.rmdir(runtime / "asgispy")
    os.rmdir(runtime)


def test_a_directory_owned_by_someone_else_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    if os.getuid() != 0:
        pytest.skip("making a directory owned by another user needs root")
    runtime = Path(tempfile.mkdtemp(prefix="asgispy-xdg-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    squatted = runtime / "asgispy"
    squatted.mkdir(mode=0o777)
    os.chown(squatted, 12345, 12345)
    collector = Collector(Store(), [str(default_address())])
    with pytest.raises(CollectorError, match="belongs to another user"):
        asyncio.run(collector.start())
    squatted.rmdir()
    runtime.rmdir()


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a collector that died
    with CollectorThread([f"unix:{path}"]) as first:
        assert RawProducer(first.address, "one001").reply.startswith(b'{"type":"welcome"')
        second = Collector(Store(), [f"unix:{path}"])
        with pytest.raises(CollectorError, match="already listens"):
            asyncio.run(second.start())
        # The live collector still serves.
        assert RawProducer(first.address, "two002").reply.startswith(b'{"type":"welcome"')


def test_tcp_binds_loopback_and_reports_its_port() -> None:
    with CollectorThread(["tcp://127.0.0.1:0"]) as collector:
        bound = collector.collector.addresses[0]
        assert bound.scheme == "tcp" and bound.host == "127.0.0.1" and bound.port > 0
        assert RawProducer(str(bound), "tcp001").reply.startswith(b'{"type":"welcome"')


def test_tcp_beyond_loopback_needs_the_explicit_flag_and_a_token() -> None:
    with pytest.raises(CollectorError, match="not a loopback address"):
        Collector(Store(), ["tcp://0.0.0.0:0"])
    with pytest.raises(CollectorError, match="requires a token"):
        Collector(Store(), ["tcp://0.0.0.0:0"], allow_remote=True)
    collector = Collector(Store(), ["tcp://0.0.0.0:0"], allow_remote=True, token="s3cret")
    assert collector.requested == [Address("tcp", host="0.0.0.0", port=0)]


def test_token_is_checked() -> None:
    with CollectorThread(["tcp://127.0.0.1:0"], token="s3cret") as collector:
        for token in (None, "wrong"):
            refused = RawProducer(collector.address, "nope01", token=token)
            assert orjson.loads(refused.reply) == {"type": "error", "message": "wrong or missing token"}
            assert refused.closed_by_peer()
        accepted = RawProducer(collector.address, "yes001", token="s3cret")
        assert orjson.loads(accepted.reply)["type"] == "welcome"
        accepted.send({"type": "open", "connection": connection_doc("yes001", 1)})
        collector.wait_for(lambda s: s.get("yes001-1") is not None)
        assert set(collector.call(lambda: list(collector.store.producers))) == {"yes001"}
