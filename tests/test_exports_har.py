"""HAR 1.2 export of real recorded sessions, checked against HAR 1.2's structure and the recording.

The structure check is a JSON Schema of what HAR 1.2 requires (written from the spec, below),
run with jsonschema; it checks what a lenient reader would not. tests/test_har_readers.py reads
the same exports with an independent HAR library (haralyzer), as real consumers do.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jsonschema
import pytest
from starlette.middleware.gzip import GZipMiddleware

import asgispy
from asgispy.demo.app import DEMO_TOKEN, png_bytes
from asgispy.demo.app import app as demo_app
from asgispy.demo.headless import run_headless
from asgispy.exports.har import to_har, write_har
from asgispy.model.connection import Connection
from tests.servers import serve

_NAME_VALUE = {
    "type": "object",
    "required": ["name", "value"],
    "properties": {"name": {"type": "string"}, "value": {"type": "string"}, "comment": {"type": "string"}},
}
_COOKIE = {
    "type": "object",
    "required": ["name", "value"],
    "properties": {
        "name": {"type": "string"},
        "value": {"type": "string"},
        "path": {"type": "string"},
        "domain": {"type": "string"},
        "expires": {"type": "string"},
        "httpOnly": {"type": "boolean"},
        "secure": {"type": "boolean"},
    },
}
_ISO_8601 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
_TIMING = {"type": "number", "minimum": -1}

#: HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): required fields and their types.
HAR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["log"],
    "properties": {
        "log": {
            "type": "object",
            "required": ["version", "creator", "entries"],
            "properties": {
                "version": {"const": "1.2"},
                "creator": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "pages": {"type": "array"},
                "entries": {"type": "array", "items": {"$ref": "#/$defs/entry"}},
            },
        }
    },
    "$defs": {
        "entry": {
            "type": "object",
            "required": ["startedDateTime", "time", "request", "response", "cache", "timings"],
            "properties": {
                "startedDateTime": {"type": "string", "pattern": _ISO_8601},
                "time": {"type": "number", "minimum": 0},
                "request": {"$ref": "#/$defs/request"},
                "response": {"$ref": "#/$defs/response"},
                "cache": {"type": "object"},
                "timings": {
                    "type": "object",
                    "required": ["send", "wait", "receive"],
                    "properties": {
                        "blocked": _TIMING,
                        "dns": _TIMING,
                        "connect": _TIMING,
                        "ssl": _TIMING,
                        "send": {"type": "number", "minimum": 0},
                        "wait": {"type": "number", "minimum": 0},
                        "receive": {"type": "number", "minimum": 0},
                    },
                },
                "serverIPAddress": {"type": "string"},
                "connection": {"type": "string"},
                "comment": {"type": "string"},
                # Chrome's extension for WebSocket frames, as DevTools imports it.
                "_webSocketMessages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "time", "opcode", "data"],
                        "properties": {
                            "type": {"enum": ["send", "receive"]},
                            "time": {"type": "number", "minimum": 0},
                            "opcode": {"enum": [1, 2]},
                            "data": {"type": "string"},
                        },
                    },
                },
            },
            # Anything else must be a custom field, whose name starts with an underscore.
            "patternProperties": {"^_": {}},
            "additionalProperties": False,
        },
        "request": {
            "type": "object",
            "required": [
                "method",
                "url",
                "httpVersion",
                "cookies",
                "headers",
                "queryString",
                "headersSize",
                "bodySize",
            ],
            "properties": {
                "method": {"type": "string"},
                "url": {"type": "string", "pattern": "^(http|https|ws|wss)://[^/]+/"},
                "httpVersion": {"type": "string"},
                "cookies": {"type": "array", "items": _COOKIE},
                "headers": {"type": "array", "items": _NAME_VALUE},
                "queryString": {"type": "array", "items": _NAME_VALUE},
                "postData": {
                    "type": "object",
                    "required": ["mimeType"],
                    "properties": {
                        "mimeType": {"type": "string"},
                        "text": {"type": "string"},
                        "encoding": {"const": "base64"},
                        "params": {
                            "type": "array",
                            "items": {"type": "object", "required": ["name"]},
                        },
                    },
                },
                "headersSize": {"type": "integer"},
                "bodySize": {"type": "integer"},
            },
        },
        "response": {
            "type": "object",
            "required": [
                "status",
                "statusText",
                "httpVersion",
                "cookies",
                "headers",
                "content",
                "redirectURL",
                "headersSize",
                "bodySize",
            ],
            "properties": {
                "status": {"type": "integer"},
                "statusText": {"type": "string"},
                "httpVersion": {"type": "string"},
                "cookies": {"type": "array", "items": _COOKIE},
                "headers": {"type": "array", "items": _NAME_VALUE},
                "content": {
                    "type": "object",
                    "required": ["size", "mimeType"],
                    "properties": {
                        "size": {"type": "integer"},
                        "compression": {"type": "integer"},
                        "mimeType": {"type": "string"},
                        "text": {"type": "string"},
                        "encoding": {"const": "base64"},
                    },
                },
                "redirectURL": {"type": "string"},
                "headersSize": {"type": "integer"},
                "bodySize": {"type": "integer"},
            },
        },
    },
}


def validate(har: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(HAR_SCHEMA)
    jsonschema.validate(har, HAR_SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.fixture(scope="module")
def demo_session(tmp_path_factory: pytest.TempPathFactory) -> list[Connection]:
    """The demo app under a real uvicorn, driven by its traffic, exported and loaded back."""
    path = tmp_path_factory.mktemp("demo") / "demo.json"
    assert run_headless(rounds=1, output=str(path), delay=0, out=io.StringIO()) == 0
    return asgispy.load(path).connections


def by_id(har: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["_asgispy"]["id"]: entry for entry in har["log"]["entries"]}


def content_bytes(content: dict[str, Any]) -> bytes:
    text = content.get("text", "")
    return base64.b64decode(text) if content.get("encoding") == "base64" else text.encode()


def find(conns: list[Connection], path: str, method: str = "GET") -> Connection:
    return next(c for c in conns if c.path == path and c.method == method)


def test_demo_session_is_valid_har_and_matches_the_recording(
    demo_session: list[Connection], tmp_path: Path
) -> None:
    har = to_har(demo_session)
    validate(har)
    written = write_har(tmp_path / "demo.har", demo_session)
    assert json.loads(written.read_text()) == json.loads(json.dumps(har))

    entries = by_id(har)
    kept = [c for c in demo_session if c.type in ("http", "websocket")]
    outgoing = {
        f"{c.id}.call{n}" for c in kept for n in range(1, 1 + sum(i.kind == "http" for i in c.inside))
    }
    assert outgoing, "the demo's /api/quote calls its carrier: an entry of its own"
    assert set(entries) == {c.id for c in kept} | outgoing  # lifespan left out
    assert any(c.type == "lifespan" for c in demo_session)
    starts = [e["startedDateTime"] for e in har["log"]["entries"]]
    assert starts == sorted(starts)

    for conn in kept:
        entry = entries[conn.id]
        request, response = entry["request"], entry["response"]
        host = dict(conn.request_headers)[b"host"].decode()
        scheme = "ws" if conn.type == "websocket" else "http"
        assert request["url"] == f"{scheme}://{host}{conn.target}"
        assert request["httpVersion"] == "HTTP/1.1"
        assert request["queryString"] == [
            {"name": k, "value": v} for k, v in parse_qsl(conn.query_string.decode(), keep_blank_values=True)
        ]
        assert response["status"] == conn.status
        started = datetime.datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
        assert abs(started.timestamp() - conn.started) < 0.001
        timings = entry["timings"]
        assert entry["time"] == pytest.approx(
            timings["send"] + timings["wait"] + timings["receive"], abs=0.01
        )
        assert conn.duration is not None and entry["time"] <= conn.duration * 1000 + 0.01
        if conn.type == "http":
            assert request["bodySize"] == conn.request_bytes
            assert response["content"]["size"] == conn.response_bytes == response["bodySize"]
            assert content_bytes(response["content"]) == conn.response_body()
            if conn.request_body():
                assert content_bytes(request["postData"]) == conn.request_body()


def test_demo_entries_show_what_each_route_did(demo_session: list[Connection]) -> None:
    entries = by_id(to_har(demo_session))

    feedback = entries[find(demo_session, "/feedback", "POST").id]["request"]["postData"]
    assert feedback["mimeType"] == "application/x-www-form-urlencoded"
    assert [p["name"] for p in feedback["params"]] == ["name", "message"]
    assert feedback["params"][0]["value"] == "Ada"

    upload = entries[find(demo_session, "/upload", "POST").id]["request"]["postData"]
    assert upload["mimeType"].startswith("multipart/form-data; boundary=")
    assert upload["encoding"] == "base64"  # the PNG part is binary
    assert png_bytes(8) in base64.b64decode(upload["text"])

    logo = entries[find(demo_session, "/logo.png").id]["response"]["content"]
    assert logo["mimeType"] == "image/png" and logo["encoding"] == "base64"
    assert base64.b64decode(logo["text"]) == png_bytes()

    redirect = entries[find(demo_session, "/old-items").id]["response"]
    assert (redirect["status"], redirect["statusText"], redirect["redirectURL"]) == (
        307,
        "Temporary Redirect",
        "/api/items",
    )

    events = entries[find(demo_session, "/events").id]
    assert events["response"]["content"]["mimeType"].startswith("text/event-stream")
    assert events["response"]["content"]["text"].count("event: tick") == 5
    assert events["timings"]["receive"] > 100  # five ticks 30 ms apart

    boom = entries[find(demo_session, "/boom").id]
    assert boom["response"]["status"] == 500
    assert boom["_asgispy"]["outcome"] == "exception"
    assert "RuntimeError: payment service unreachable" in boom["_asgispy"]["error"]["traceback"]
    assert boom["comment"].startswith("the app raised RuntimeError")

    head = entries[find(demo_session, "/api/items", "HEAD").id]
    assert head["request"]["method"] == "HEAD"
    delete = next(e for e in entries.values() if e["request"]["method"] == "DELETE")
    assert (delete["response"]["status"], delete["response"]["content"]["size"]) == (204, 0)

    created = next(
        e for e in entries.values() if e["request"]["method"] == "POST" and e["response"]["status"] == 201
    )
    assert created["_asgispy"]["route"] in ("/api/items", "/upload")


def test_websocket_chat_is_an_entry_with_its_messages(demo_session: list[Connection]) -> None:
    entries = by_id(to_har(demo_session))
    chats = [c for c in demo_session if c.type == "websocket"]
    closed = {c.close_code: entries[c.id] for c in chats}
    assert set(closed) == {4000, 1000}
    alice, bob = closed[4000], closed[1000]
    for entry in (alice, bob):
        assert entry["_resourceType"] == "websocket"
        assert entry["response"]["status"] == 101
        assert entry["response"]["statusText"] == "Switching Protocols"
        assert entry["request"]["url"].startswith("ws://127.0.0.1:")
        times = [m["time"] for m in entry["_webSocketMessages"]]
        assert times == sorted(times)
    assert alice["comment"] == "closed with code 4000"
    frames = [(m["type"], m["opcode"], m["data"]) for m in alice["_webSocketMessages"]]
    assert ("send", 1, "hello bob") in frames
    assert ("send", 1, "bye") in frames
    assert frames[0][:2] == ("receive", 1) and "welcome, alice" in frames[0][2]
    binary = base64.b64encode(b"\x00\x01 binary \xff\xfe").decode()
    assert [(m["type"], m["opcode"]) for m in bob["_webSocketMessages"] if m["data"] == binary] == [
        ("send", 2),
        ("receive", 2),
    ]


def test_secrets_stay_redacted(demo_session: list[Connection]) -> None:
    har = to_har(demo_session)
    text = json.dumps(har)
    assert DEMO_TOKEN not in text
    me = by_id(har)[find(demo_session, "/api/me").id]
    headers = {h["name"]: h["value"] for h in me["request"]["headers"]}
    assert headers["authorization"] == "[redacted]" and headers["cookie"] == "[redacted]"
    assert me["request"]["cookies"] == []
    assert me["request"]["comment"] == "Cookie header redacted when recorded"
    assert me["response"]["comment"] == "Set-Cookie header redacted when recorded"


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Any]:
    """Record requests made with httpx against the demo app under ``Spy(wrapped, **options)``."""

    def record(
        wrap: Any, requests: list[tuple[str, str, dict[str, Any]]], **options: Any
    ) -> list[Connection]:
        spy = asgispy.Spy(wrap(demo_app), **options)
        with (
            serve(spy, lifespan="on") as server,
            httpx.Client(base_url=server.base_url, trust_env=False) as client,
        ):
            for method, url, kwargs in requests:
                client.request(method, url, **kwargs)
        return asgispy.load(spy.export(tmp_path / "session.json")).connections

    yield record


def test_gzip_bodies_are_shown_decompressed(recorded: Any) -> None:
    conns = recorded(
        lambda app: GZipMiddleware(app, minimum_size=20), [("GET", "/api/items", {}), ("GET", "/", {})]
    )
    har = to_har(conns)
    validate(har)
    for conn in (c for c in conns if c.type == "http"):
        content = by_id(har)[conn.id]["response"]["content"]
        assert dict(conn.response_headers)[b"content-encoding"] == b"gzip"
        plain = json.loads(content["text"])
        assert isinstance(plain, dict)
        assert content["size"] == len(content["text"].encode())
        assert content["compression"] == content["size"] - conn.response_bytes
        assert by_id(har)[conn.id]["response"]["bodySize"] == conn.response_bytes


def test_cut_bodies_say_so(recorded: Any) -> None:
    conns = recorded(
        lambda app: app,
        [
            ("GET", "/logo.png", {}),
            ("POST", "/upload", {"files": {"file": ("logo.png", png_bytes(8), "image/png")}}),
        ],
        max_body=64,
    )
    har = to_har(conns)
    validate(har)
    logo = by_id(har)[find(conns, "/logo.png").id]["response"]["content"]
    full = len(png_bytes())
    assert logo["comment"] == f"body cut when recorded: 64 of {full} bytes kept"
    assert logo["size"] == full
    assert base64.b64decode(logo["text"]) == png_bytes()[:64]
    upload = find(conns, "/upload", "POST")
    post = by_id(har)[upload.id]["request"]["postData"]
    kept = len(upload.request_body())  # each http.request message is cut on its own
    assert kept < upload.request_bytes
    assert post["comment"] == f"body cut when recorded: {kept} of {upload.request_bytes} bytes kept"
    assert by_id(har)[upload.id]["request"]["bodySize"] == upload.request_bytes > 64


def test_the_schema_rejects_what_har_does_not_allow(demo_session: list[Connection]) -> None:
    # The structure check above is only worth something if it can fail.
    for damage in (
        lambda entry: entry.pop("cache"),
        lambda entry: entry["response"].pop("redirectURL"),
        lambda entry: entry["request"].update(cookies=[{"name": "x"}]),
        lambda entry: entry.update(extra="not a custom field"),
        lambda entry: entry["timings"].update(wait=-1),
    ):
        har = to_har(demo_session)
        damage(har["log"]["entries"][0])
        with pytest.raises(jsonschema.ValidationError):
            validate(har)


def test_urls_keep_the_root_path_and_the_raw_path(tmp_path: Path) -> None:
    # Behind a proxy that strips /shop, uvicorn --root-path /shop: the public URL keeps /shop.
    spy = asgispy.Spy(demo_app)
    with serve(spy, lifespan="on", root_path="/shop") as server, httpx.Client(trust_env=False) as client:
        assert client.get(server.url("/api/items/2")).status_code == 200
        assert client.get(server.url("/api/items?q=caf%C3%A9&x=%2F")).status_code == 200
    conns = asgispy.load(spy.export(tmp_path / "root.json")).connections
    urls = [e["request"]["url"] for e in to_har(conns)["log"]["entries"]]
    assert urls == [server.url("/shop/api/items/2"), server.url("/shop/api/items?q=caf%C3%A9&x=%2F")]
    query = to_har(conns)["log"]["entries"][1]["request"]["queryString"]
    assert query == [{"name": "q", "value": "café"}, {"name": "x", "value": "/"}]
