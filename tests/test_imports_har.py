"""``asgispy import``: HAR files as Chrome, Firefox, mitmproxy and HTTP Toolkit write them become
sessions that load, validate against the session schema and pass the protocol checker; and a
real round trip (traffic recorded from a real uvicorn, exported as HAR by asgispy, imported)
keeps every request and response, replays against the app unchanged.

The files in tests/data/ are small hand-written HARs with each tool's quirks: Chrome's
pseudo-headers, ``_resourceType``, ``_fromCache``, ``data:`` URLs and ``_webSocketMessages`` on its
own monotonic clock; Firefox's local time zones, form ``params`` beside ``text`` and WebSockets
without frames; mitmproxy's ``null`` timings, raw sizes and ``https://`` WebSocket URLs; HTTP
Toolkit's lowercase headers, bodies left out past 40 KB and aborted requests.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import subprocess
import sys
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import asgispy
from asgispy.codec.redact import REDACTED
from asgispy.imports.har import HarError, har_session, read_har_session
from asgispy.model.connection import Connection

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
TOOLS = ("chrome", "firefox", "mitmproxy", "httptoolkit")

pytestmark = pytest.mark.timeout(120)


def asgispy_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "asgispy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def schema() -> dict[str, Any]:
    return json.loads(resources.files("asgispy.codec").joinpath("session.schema.json").read_text())


def imported(tmp_path: Path, tool: str, *extra: str) -> list[Connection]:
    out = tmp_path / f"{tool}.json"
    result = asgispy_cli("import", str(DATA / f"{tool}.har"), "-o", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return asgispy.load(out).connections


def by_path(conns: list[Connection], path: str) -> Connection:
    (conn,) = [c for c in conns if c.path == path]
    return conn


def epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tools_har_is_a_valid_session_the_checker_finds_clean(tool: str, tmp_path: Path) -> None:
    out = tmp_path / "session.json"
    result = asgispy_cli("import", str(DATA / f"{tool}.har"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    jsonschema.validate(document, schema(), cls=jsonschema.Draft202012Validator)
    har = json.loads((DATA / f"{tool}.har").read_text())
    conns = asgispy.load(out).connections
    assert f"imported {len(conns)} connections from" in result.stderr
    assert {c.type for c in conns} == {"http", "websocket"}
    ((tag, producer),) = document["producers"].items()
    assert producer["imported"] == {
        "format": "har",
        "file": f"{tool}.har",
        "creator": producer["imported"]["creator"],
    }
    assert har["log"]["creator"]["name"] in producer["app"]
    for conn in conns:
        assert conn.producer == tag and conn.id == f"{tag}-{conn.seq}"
        assert conn.notes[0].startswith(f"imported from a HAR written by {har['log']['creator']['name']}")
        assert "message boundaries" in conn.notes[0] and "the client's address" in conn.notes[0]
        assert conn.client is None  # not in a HAR: not made up
        assert conn.outcome == "completed"
    starts = [c.started for c in conns]
    assert starts == sorted(starts)
    check = asgispy_cli("check", str(out))
    assert check.returncode == 0, check.stdout
    assert f"{len(conns)} connections checked: 0 errors, 0 warnings, 0 notices" in check.stdout


def test_chrome_http2_headers_decoded_bodies_cache_and_data_urls(tmp_path: Path) -> None:
    result = asgispy_cli("import", str(DATA / "chrome.har"), "-o", str(tmp_path / "c.json"))
    assert (
        "skipped entry 5 (GET data:image/svg+xml;base64,PHN2Zy8+): request.url is a data: URL"
        in result.stderr
    )
    assert (
        "skipped entry 6 (GET https://shop.example/app.js): served from the browser's memory cache"
        in result.stderr
    )
    assert "imported 6 connections from" in result.stderr and "2 skipped" in result.stderr
    conns = asgispy.load(tmp_path / "c.json").connections

    page = by_path(conns, "/")
    assert page.scope["http_version"] == "2" and page.scope["scheme"] == "https"
    assert page.scope["server"] == ("2001:db8::10", 443)  # Chrome's "[2001:db8::10]"
    assert page.query_string == b"lang=fr" and page.scope["raw_path"] == b"/"
    names = [k for k, _ in page.request_headers]
    assert names[0] == b"host" and not any(n.startswith(b":") for n in names)
    assert dict(page.request_headers)[b"host"] == b"shop.example"  # from :authority
    assert dict(page.request_headers)[b"cookie"] == REDACTED
    assert page.response_body() == "<!doctype html><title>shop</title><h1>Café</h1>\n".encode()
    # Chrome joins repeated headers with a newline: one header per line, each masked.
    assert [v for k, v in page.response_headers if k == b"set-cookie"] == [REDACTED, REDACTED]
    assert b"content-encoding" not in dict(page.response_headers)
    assert any("decoded" in n and "content-encoding: br" in n for n in page.notes)
    # The server saw the request when it was sent: after blocked, DNS and connect (33.2 ms).
    assert page.started == pytest.approx(epoch("2026-12-07T09:00:00.012+00:00") + 0.0332, abs=1e-6)
    assert [round(e.t, 4) for e in page.events] == [0.0003, 0.0258, 0.0281]
    assert page.ttfb == pytest.approx(0.0258) and page.duration == pytest.approx(0.0281)

    cart = by_path(conns, "/api/cart")
    assert cart.method == "POST" and cart.status == 201
    assert cart.request_body() == b'{"sku":"kettle","quantity":1}'
    assert dict(cart.request_headers)[b"authorization"] == REDACTED
    assert json.loads(cart.response_body())["total"] == 35.0
    assert any("content-encoding: gzip, content-length: 61" in n for n in cart.notes)

    logo = by_path(conns, "/logo.png")
    assert logo.response_body().startswith(b"\x89PNG\r\n\x1a\n") and logo.scope["server"] == (
        "198.51.100.7",
        8080,
    )
    assert logo.scope["http_version"] == "1.1" and dict(logo.response_headers)[b"content-length"] == b"20"

    cached = by_path(conns, "/site.css")
    assert cached.status == 304 and cached.response_body() == b""
    assert any("17 body bytes" in n for n in cached.notes)

    failed = by_path(conns, "/api/health")
    assert failed.status is None and [e.type for e in failed.events] == ["http.request", "http.disconnect"]
    assert any("net::ERR_CONNECTION_REFUSED" in n for n in failed.notes)


def test_chrome_websocket_frames_on_its_own_clock(tmp_path: Path) -> None:
    live = by_path(imported(tmp_path, "chrome"), "/live")
    assert live.type == "websocket" and live.scope["scheme"] == "wss" and live.status == 101
    assert live.scope["subprotocols"] == ["chat", "superchat"] and live.query_string == b"room=7"
    accept = live.events[1].message
    assert accept == {
        "type": "websocket.accept",
        "subprotocol": "chat",
    }  # the handshake's own headers left out
    frames = [(e.direction, e.message.get("text", e.message.get("bytes"))) for e in live.events[2:]]
    assert frames == [
        ("receive", '{"join":7}'),
        ("send", '{"joined":7,"users":2}'),
        ("send", b"\x00\x01\xfe\xff"),
        ("receive", "bye"),
    ]
    # Monotonic seconds: the spacing kept, the first frame when the handshake was answered.
    times = [e.t for e in live.events[2:]]
    assert times[0] == pytest.approx(0.0041)
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [0.018, 0.471, 1.249]
    assert live.close_code is None and any("how the WebSocket closed" in n for n in live.notes)
    assert any("browser's own clock" in n for n in live.notes)


def test_firefox_time_zones_forms_latin1_head_and_a_websocket_without_frames(tmp_path: Path) -> None:
    conns = imported(tmp_path, "firefox")
    orders = by_path(conns, "/api/orders")
    assert orders.started == pytest.approx(epoch("2026-12-07T09:15:00.020+00:00"))  # +01:00 in the file
    assert orders.query_string == b"page=2&q=caf%C3%A9" and orders.scope["http_version"] == "2"
    assert dict(orders.request_headers)[b"x-api-key"] == REDACTED
    assert dict(orders.request_headers)[b"user-agent"].startswith(b"Mozilla/5.0")  # names lowercased
    assert json.loads(orders.response_body())["page"] == 2

    login = by_path(conns, "/login")
    assert login.request_body() == b"user=ada&password=hunter+2"
    assert login.status == 303 and dict(login.response_headers)[b"location"] == b"/orders"
    assert dict(login.response_headers)[b"set-cookie"] == REDACTED

    head = by_path(conns, "/export.csv")
    assert head.method == "HEAD" and head.response_body() == b""
    assert dict(head.response_headers)[b"content-length"] == b"5120" and head.violations == []

    menu = by_path(conns, "/menu.txt")
    assert menu.response_body() == "crème brûlée".encode("latin-1")  # its charset, so Content-Length holds
    assert menu.started == pytest.approx(epoch("2026-12-07T09:15:02.200+00:00") + 0.006)

    ws = by_path(conns, "/ws/updates")
    assert ws.type == "websocket" and ws.scope["scheme"] == "wss"  # an Upgrade request at https://
    assert [e.type for e in ws.events] == ["websocket.connect", "websocket.accept"]


def test_mitmproxy_null_timings_epoch_frames_and_its_compressed_zhar(tmp_path: Path) -> None:
    conns = imported(tmp_path, "mitmproxy")
    status = by_path(conns, "/status")
    assert status.response_body() == b'{"status":"ok","version":"2.4.1"}'
    assert dict(status.request_headers)[b"authorization"] == REDACTED
    assert status.started == pytest.approx(epoch("2026-12-07T11:30:00.123456+00:00") + 0.0012)
    jobs = by_path(conns, "/jobs")
    assert jobs.request_body() == b'{"job":"rebuild"}\n' and jobs.status == 202
    cancel = by_path(conns, "/jobs/j1/cancel")
    assert cancel.status == 204 and cancel.scope["server"] == ("api.internal", 8000)  # no serverIPAddress

    logs = by_path(conns, "/ws/logs")
    assert logs.type == "websocket" and logs.scope["scheme"] == "wss"  # mitmproxy writes https://
    frames = [(round(e.t, 4), e.type, e.message.get("text", e.message.get("bytes"))) for e in logs.events[2:]]
    assert frames == [
        (0.0105, "websocket.receive", "tail -n 2"),
        (0.0201, "websocket.send", "line one"),
        (0.0302, "websocket.send", b"\x1b[0mline two\n"),
    ]
    assert not any("own clock" in n for n in logs.notes)  # epoch seconds: placed exactly

    killed = by_path(conns, "/slow")
    assert killed.status is None and any("Connection killed." in n for n in killed.notes)

    zhar = tmp_path / "flows.zhar"
    zhar.write_bytes(zlib.compress((DATA / "mitmproxy.har").read_bytes(), 9))
    again = read_har_session(zhar).document["connections"]
    assert [c["scope"]["path"] for c in again] == [c.path for c in conns]


def test_http_toolkit_bodies_left_out_aborts_pings_and_bad_base64(tmp_path: Path) -> None:
    result = asgispy_cli("import", str(DATA / "httptoolkit.har"), "-o", str(tmp_path / "t.json"))
    assert result.returncode == 0
    assert (
        "skipped entry 6 (GET https://billing.example/v1/broken): response.content.text is not valid base64"
        in result.stderr
    )
    conns = asgispy.load(tmp_path / "t.json").connections
    assert len(conns) == 5  # the bad entry alone is lost

    invoice = by_path(conns, "/v1/invoices/77")
    assert invoice.method == "PATCH" and invoice.request_body() == b'{"status": "void"}\n'
    assert dict(invoice.request_headers)[b"x-billing-token"] == REDACTED
    assert invoice.started == pytest.approx(epoch("2026-12-07T12:00:00.250+00:00"))

    export = by_path(conns, "/v1/export")  # over 40 KB: HTTP Toolkit leaves the body out
    assert export.response_body() == b"" and export.body_cut and export.response_bytes == 50_000
    assert export.events[-1].cut == {"body": 50_000}

    gif = by_path(conns, "/v1/logo.gif")
    assert (
        gif.response_body().startswith(b"GIF89a") and dict(gif.request_headers)[b"host"] == b"billing.example"
    )

    aborted = by_path(conns, "/v1/invoices/78")
    assert aborted.status is None and aborted.duration == 0.0

    stream = by_path(conns, "/v1/stream")
    assert [e.type for e in stream.events] == [
        "websocket.connect", "websocket.accept", "websocket.receive", "websocket.send"
    ]  # fmt: skip
    assert "1 control frame (close, ping, pong) left out" in stream.notes


def test_secrets_are_kept_only_when_asked(tmp_path: Path) -> None:
    kept = imported(tmp_path, "chrome", "--keep-secrets")
    cart = by_path(kept, "/api/cart")
    assert dict(cart.request_headers)[b"authorization"] == b"Bearer chrome-token-123"
    assert dict(by_path(kept, "/").request_headers)[b"cookie"] == b"session=s3cr3t-session; theme=dark"
    masked = tmp_path / "masked.json"
    asgispy_cli("import", str(DATA / "chrome.har"), "-o", str(masked))
    text = masked.read_text()
    assert "chrome-token-123" not in text and "s3cr3t-session" not in text


def test_unusable_files_are_refused_and_bad_entries_skipped(tmp_path: Path) -> None:
    not_json = tmp_path / "a.har"
    not_json.write_text("<html>not a HAR</html>")
    result = asgispy_cli("import", str(not_json), "-o", str(tmp_path / "a.json"))
    assert result.returncode == 2 and "is not JSON" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a.json").exists()

    not_har = tmp_path / "b.har"
    not_har.write_text(json.dumps({"format": "asgispy-session", "connections": []}))
    result = asgispy_cli("import", str(not_har), "-o", str(tmp_path / "b.json"))
    assert result.returncode == 2 and 'is not a HAR file (no "log" object' in result.stderr

    missing = asgispy_cli("import", str(tmp_path / "nowhere.har"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr

    good = json.loads((DATA / "mitmproxy.har").read_text())["log"]["entries"][1]
    broken = [
        {
            "request": {"method": "GET"},
            "response": {"status": 200},
            "startedDateTime": "2026-12-07T00:00:00Z",
        },
        {"request": {"method": "GET", "url": "http://a.test/"}, "response": {"status": 200}},
        {**good, "startedDateTime": "yesterday"},
        "not an entry",
        good,
    ]
    mixed = tmp_path / "mixed.har"
    mixed.write_text(
        json.dumps({"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": broken}})
    )
    result = asgispy_cli("import", str(mixed))  # next to it, as mixed.json
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "skipped entry" in line]
    assert lines == [
        "asgispy import: skipped entry 1 (GET ?): request.url is missing",
        "asgispy import: skipped entry 2 (GET http://a.test/): entry.startedDateTime is missing",
        "asgispy import: skipped entry 3 (POST http://api.internal:8000/jobs): "
        "entry.startedDateTime 'yesterday' is not an ISO 8601 time",
        "asgispy import: skipped entry 4 (an entry without a request): the entry is not an object",
    ]  # fmt: skip
    assert "imported 1 connection from" in result.stderr and "4 skipped" in result.stderr
    assert [c.path for c in asgispy.load(tmp_path / "mixed.json").connections] == ["/jobs"]

    hopeless = tmp_path / "hopeless.har"
    hopeless.write_text(json.dumps({"log": {"entries": broken[:4]}}))
    result = asgispy_cli("import", str(hopeless), "-o", str(tmp_path / "h.json"))
    assert result.returncode == 2 and "none of the 4 entries" in result.stderr
    assert not (tmp_path / "h.json").exists()

    with pytest.raises(HarError):
        har_session({"entries": []})
    assert har_session({"log": {"entries": []}}).document["connections"] == []


def test_the_apps_own_outgoing_calls_in_asgispys_har_make_no_connection() -> None:
    # asgispy's HAR lists the calls the app made (inside=True) as entries of their own; imported
    # back, only the requests the app was sent become connections, and each call is said skipped.
    from asgispy.exports.har import to_har
    from tests.inside_sessions import inside_session

    session = inside_session()
    har = to_har(session.connections)
    calls = [e for e in har["log"]["entries"] if e.get("_asgispy", {}).get("kind") == "outgoing"]
    assert calls, "the session has outgoing calls: the test needs some"
    back = har_session(har)
    paths = [c["scope"]["path"] for c in back.document["connections"]]
    assert sorted(paths) == sorted(c.path for c in session.connections)
    assert len(back.skipped) == len(calls)
    assert all("outgoing call" in s.reason for s in back.skipped)


def test_import_har_from_python_writes_what_the_command_writes(tmp_path: Path) -> None:
    # docs/import.md's Python form: the same session as `asgispy import`, read back by load().
    from asgispy.imports.har import import_har

    imported = import_har(DATA / "firefox.har", tmp_path / "py.json")
    assert asgispy_cli("import", str(DATA / "firefox.har"), "-o", str(tmp_path / "cli.json")).returncode == 0
    python, command = (asgispy.load(tmp_path / n).connections for n in ("py.json", "cli.json"))
    assert imported.connections == len(python) == len(command) > 0
    assert [(c.method, c.path, c.status) for c in python] == [(c.method, c.path, c.status) for c in command]
