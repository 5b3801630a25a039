"""Session files: written atomically, loaded back losslessly, and bad ones refused with a reason."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

import asgispy
from asgispy import SessionFileError, Spy
from asgispy.codec.jsonform import decode
from tests.apps.raw import edge_app
from tests.apps.recording import session_schema_validator


async def _call(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> None:
    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        pass

    await app(scope, receive, send)


def recorded_spy() -> Spy:
    spy = Spy(edge_app)
    for path, body in (("/echo", b"\xff\x00 binary"), ("/stream", b""), ("/latin1", b"")):
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"n=3",
            "headers": [(b"cookie", b"sid=1"), (b"x-latin", b"\xe9")],
        }
        asyncio.run(_call(spy, scope, [{"type": "http.request", "body": body, "more_body": False}]))
    return spy


def test_export_load_and_export_again_is_lossless(tmp_path: Path) -> None:
    spy = recorded_spy()
    first = spy.export(tmp_path / "first.json")
    session = asgispy.load(first)
    again = tmp_path / "again.json"
    again.write_bytes(orjson.dumps(session.document()))
    a, b = orjson.loads(first.read_bytes()), orjson.loads(again.read_bytes())
    assert a["connections"] == b["connections"] and a["producers"] == b["producers"]
    assert [c.id for c in asgispy.load(again)] == [c.id for c in session]


def test_export_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "session.json"
    target.write_text("previous")
    before = os.stat(target).st_ino
    spy = recorded_spy()
    spy.export(target)
    assert os.stat(target).st_ino != before  # replaced by a rename, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]
    session_schema_validator().validate(orjson.loads(target.read_bytes()))
    with pytest.raises(OSError):
        spy.export(tmp_path / "no-such-dir" / "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]


def test_the_file_is_indented_readable_json(tmp_path: Path) -> None:
    path = recorded_spy().export(tmp_path / "s.json")
    text = path.read_text("utf-8")
    assert text.startswith('{\n  "format": "asgispy-session",\n  "version": 1,')
    assert '"body": {\n' in text and '"$bytes": "chunk 000\\n"' in text
    assert '"$latin1": "é"' in text  # a Latin-1 header value reads as text
    assert '"[redacted]"' in text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        (b"{not json", "is not JSON"),
        (b'{"format": "something-else"}', "is not an asgispy session"),
        (b'["format"]', "is not an asgispy session"),
        (b'{"format": "asgispy-session", "version": 99, "connections": []}', "version 99"),
        (b'{"format": "asgispy-session", "version": 1}', "no list of connections"),
        (b'{"format": "asgispy-session", "version": 1, "connections": [{"type": "http"}]}', "without 'id'"),
        (b'{"format": "asgispy-session", "version": 1, "connections": [5]}', "malformed session"),
        (
            b'{"format": "asgispy-session", "version": 1, "connections": [{"id": "a", "type": "http",'
            b' "events": [{"direction": "sideways", "t": 0, "message": {}}]}]}',
            "direction",
        ),
        (
            b'{"format": "asgispy-session", "version": 1, "connections": [{"id": "a", "type": "http",'
            b' "handler": {"path_params": {"$int": "x"}}}]}',
            "malformed $int",
        ),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SessionFileError, match=None) as info:
        asgispy.load(path)
    assert reason in str(info.value) and str(path) in str(info.value)


def test_messages_with_keys_json_cannot_hold_keep_their_summary(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": [], 7: "extra", "$x": 1})
        await send({"type": "http.response.body", "body": b"abc", None: None})

    spy = Spy(app)
    asyncio.run(_call(spy, {"type": "http", "path": "/"}, [{"type": "http.request", "body": b"zz"}]))
    (conn,) = asgispy.load(spy.export(tmp_path / "s.json"))
    assert [e.type for e in conn.events] == ["http.request", "http.response.start", "http.response.body"]
    assert conn.status == 201 and conn.response_bytes == 3 and conn.response_body() == b"abc"
    assert conn.events[1].message == {
        "type": "http.response.start",
        "status": 201,
        "headers": [],
        7: "extra",
        "$x": 1,
    }


def test_decoding_absurd_nesting_is_a_value_error() -> None:
    doc: Any = []
    for _ in range(5000):
        doc = [doc]
    with pytest.raises(ValueError, match="nested too deeply"):
        decode(doc)


def test_the_documented_example_is_a_valid_loadable_session(tmp_path: Path) -> None:
    import re

    text = (Path(__file__).parent.parent / "docs" / "format.md").read_text("utf-8")
    example = re.search(r"```json\n(.*?)\n```", text, re.S)
    assert example is not None
    doc = orjson.loads(example.group(1))
    session_schema_validator().validate(doc)
    path = tmp_path / "example.json"
    path.write_bytes(example.group(1).encode())
    (conn,) = asgispy.load(path)
    assert conn.method == "POST" and conn.target == "/echo?q=caf%C3%A9" and conn.status == 200
    assert (b"x-name", "José".encode("latin-1")) in conn.request_headers
    assert (b"authorization", b"[redacted]") in conn.request_headers
    assert conn.events[0].message["body"] == b"\x89PNG\r\n\x1a\n" + bytes(8)
    assert conn.events[0].payload_size == 28 and conn.body_cut


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.update(format="other"),
        lambda d: d.update(version=2),
        lambda d: d["connections"][0].pop("id"),
        lambda d: d["connections"][0].update(outcome="exploded"),
        lambda d: d["connections"][0]["events"][0].update(direction="sideways"),
        lambda d: d["connections"][0]["events"][0].update(t=-1),
        lambda d: d["connections"][0]["events"][0]["message"].update(body={"$latin1": "€"}),
        lambda d: d["connections"][0]["events"][0]["message"].update(body={"$base64": "***"}),
        lambda d: d["connections"][0]["events"][0]["message"].update(body={"$bytes": "a", "x": 1}),
        lambda d: d["connections"][0]["events"][0]["message"].update(extra={"$unknown": 1}),
        lambda d: d["connections"][0]["scope"].update(headers={"$headers": [["a", "b", "c"]]}),
        lambda d: d["connections"][0]["scope"].update(big={"$int": "12x"}),
        lambda d: d["connections"][0].update(error={"type": "X"}),
    ],
)
def test_the_schema_rejects_what_the_format_does_not_allow(tmp_path: Path, spoil: Any) -> None:
    doc = orjson.loads(recorded_spy().export(tmp_path / "s.json").read_bytes())
    validator = session_schema_validator()
    validator.validate(doc)
    spoil(doc)
    assert not validator.is_valid(doc)
