"""What the app did inside a request, through the exports: the JSON session keeps it as it was;
HAR shows each outgoing call as an entry of its own (read back with haralyzer, which knows nothing
of asgispy) and the logs and SQL in the parent's ``_asgispy.inside``."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
from haralyzer import HarParser

import asgispy
from asgispy.codec.sessionfile import write_session
from asgispy.exports.formats import export_bytes
from asgispy.exports.har import to_har
from asgispy.model.connection import Connection
from asgispy.model.inside import OutgoingCall
from asgispy.model.session import Session
from tests.inside_session import PNG, TRACEBACK, recorded_document, recorded_session
from tests.test_exports_har import validate

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def session() -> Session:
    return recorded_session()


def checkout(session: Session) -> Connection:
    return next(c for c in session.connections if c.path == "/checkout")


def body(part: dict[str, Any]) -> bytes:
    text = part.get("text", "")
    return base64.b64decode(text, validate=True) if part.get("encoding") == "base64" else text.encode()


def test_the_json_session_keeps_inside_entries_as_they_were(tmp_path: Path) -> None:
    doc = recorded_document()
    first = tmp_path / "first.json"
    second = tmp_path / "second.json"
    write_session(first, doc)
    loaded = asgispy.load(first)
    second.write_bytes(export_bytes(loaded, "json").data)
    again = asgispy.load(second)
    (before,) = [c for c in doc["connections"] if c.get("inside")]
    (after,) = [c.document() for c in again.connections if c.document().get("inside")]
    assert after["inside"] == before["inside"]  # bytes bodies, the future "cache" kind, all as written
    calls = [i for i in checkout(again).inside if isinstance(i, OutgoingCall)]
    assert calls[1].request_body == PNG and calls[1].response_body == PNG[:4]
    assert [i.kind for i in checkout(again).inside] == ["http", "sql", "http", "log", "http", "log", "sql"]


def test_outgoing_calls_are_entries_after_their_request(session: Session) -> None:
    har = to_har(session.connections)
    validate(har)
    entries = har["log"]["entries"]
    conn = checkout(session)
    (at,) = [n for n, e in enumerate(entries) if e["_asgispy"]["id"] == conn.id]
    parent = entries[at]
    calls = entries[at + 1 : at + 4]
    assert parent["_asgispy"]["calls"] == [c["_asgispy"]["id"] for c in calls]
    assert all(c["_asgispy"]["kind"] == "outgoing" and c["_asgispy"]["parent"] == conn.id for c in calls)
    assert "kind" not in parent["_asgispy"] and "calls" not in entries[at + 4]["_asgispy"]  # /plain
    cards, upload, pay = calls
    assert cards["request"]["url"] == "https://api.example.com:8443/v1/cards?id=7"
    assert cards["request"]["queryString"] == [{"name": "id", "value": "7"}]
    assert {"name": "authorization", "value": "[redacted]"} in cards["request"]["headers"]
    assert cards["response"]["status"] == 200 and body(cards["response"]["content"]) == b'{"card": 7}'
    assert cards["time"] == 4.0 and cards["timings"]["wait"] == 4.0
    start = datetime.datetime.fromisoformat(cards["startedDateTime"].replace("Z", "+00:00")).timestamp()
    assert start == pytest.approx(conn.started + 0.001, abs=0.001)
    assert upload["request"]["postData"]["encoding"] == "base64"
    assert body(upload["request"]["postData"]) == PNG
    assert body(upload["response"]["content"]) == PNG[:4]
    assert upload["response"]["content"]["size"] == 100
    assert "4 of 100 bytes" in upload["response"]["content"]["comment"]
    assert pay["response"]["status"] == 0 and pay["response"]["bodySize"] == -1
    assert pay["_asgispy"]["error"].startswith("ConnectError")
    assert "ConnectError" in pay["comment"]


def test_logs_and_sql_go_in_the_parents_asgispy_inside(session: Session) -> None:
    har = to_har(session.connections)
    (parent,) = [e for e in har["log"]["entries"] if e["_asgispy"]["id"] == checkout(session).id]
    inside = parent["_asgispy"]["inside"]
    assert [(i["kind"], i["t"]) for i in inside] == [
        ("sql", 0.006),
        ("log", 0.008),
        ("log", 0.0125),
        ("sql", 0.02),
    ]
    select, warning, error, audit = inside
    assert select["statement"].startswith("SELECT") and select["rows"] == 1 and select["database"] == "sqlite"
    assert warning == {
        "kind": "log",
        "t": 0.008,
        "level": "WARNING",
        "logger": "shop",
        "message": "slow card service",
        "where": "/srv/app.py:40",
    }
    assert error["exception"] == TRACEBACK
    assert audit["after_response"] is True


def test_haralyzer_reads_the_outgoing_entries(session: Session) -> None:
    har = to_har(session.connections)
    (page,) = HarParser(har).pages
    found = list(page.entries)
    assert len(found) == len(har["log"]["entries"]) == 5  # two requests, three calls
    assert export_bytes(session, "har").count == 2  # connections, not entries
    outgoing = [e for e in found if e["_asgispy"].get("kind") == "outgoing"]
    assert [(e.request.method, e.url, e.status) for e in outgoing] == [
        ("GET", "https://api.example.com:8443/v1/cards?id=7", 200),
        ("POST", "http://images.local/upload", 201),
        ("POST", "http://payments.local/pay", 0),
    ]
    assert outgoing[0].response.mimeType == "application/json"
    assert outgoing[0].request.get_header_value("accept") == "application/json"
    assert [e.time for e in outgoing] == [4.0, 2.0, 3.0]
    assert all(e.startTime.tzinfo is not None for e in outgoing)
