"""Write recorded traffic as a pytest module: one readable test per connection.

The module drives the app through Starlette's ``TestClient`` (an httpx client over the app's
ASGI interface, which also runs the app's lifespan and speaks WebSocket) and asserts what was
recorded: status, the response headers that do not change between runs, and the body (JSON
compared as JSON, with the ignored fields left out; text and binary exactly). It imports only
what it uses openly (pytest, Starlette, the app); bodies over a bound live in a folder beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from asgispy.codec.redact import REDACTED
from asgispy.model.connection import Connection
from asgispy.replay.compare import DEFAULT_IGNORED_HEADERS

__all__ = ["INLINE_LIMIT", "write_tests"]

#: Bodies longer than this (bytes) go to a data file beside the module.
INLINE_LIMIT = 2048
#: Request headers a client sets for itself.
_CLIENT_HEADERS = {
    "host",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "connection",
    "user-agent",
    "accept-encoding",
}
_COMPARED_RESPONSE_HEADERS = ("content-type", "location", "cache-control", "content-encoding", "allow")

_HEADER = '''# ruff: noqa: E501 (recorded values are kept whole, one per line)
"""Tests written by `asgispy test` from recorded traffic ({source}).

Each test sends a recorded request to the app and checks the answer it recorded. Volatile
headers are not compared; ignored body fields: {ignored}. Headers that were redacted when
recorded are read from the environment (ASGISPY_SECRET_<NAME>); a test that needs one that is
not set is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

{import_line}

DATA = Path(__file__).with_suffix("").with_name(Path(__file__).stem + "_data")
IGNORED = {ignored_list}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient({app_expr}, base_url="http://testserver") as test_client:
        yield test_client


def secret(name: str) -> str:
    """A header value redacted when recorded, from $ASGISPY_SECRET_<NAME>."""
    value = os.environ.get("ASGISPY_SECRET_" + name.upper().replace("-", "_"))
    if value is None:
        variable = "ASGISPY_SECRET_" + name.upper().replace("-", "_")
        pytest.skip(f"needs the {{name}} header (redacted when recorded): set {{variable}}")
    return value


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def without(value: Any, path: str = "body") -> Any:
    """``value`` with the ignored fields left out (paths like body.items[*].created_at)."""
    if any(_matches(rule, path) for rule in IGNORED):
        return "<ignored>"
    if isinstance(value, dict):
        return {{k: without(v, f"{{path}}.{{k}}") for k, v in value.items()}}
    if isinstance(value, list):
        return [without(v, f"{{path}}[{{i}}]") for i, v in enumerate(value)]
    return value


def _matches(rule: str, path: str) -> bool:
    import re

    pattern = re.escape(rule).replace(r"\\[\\*\\]", r"\\[\\d+\\]").replace(r"\\*", r"[^.\\[\\]]+")
    return re.fullmatch(pattern + r"(?:[.\\[].*)?", path) is not None


def assert_json(actual: bytes, expected: Any) -> None:
    assert without(json.loads(actual)) == without(expected)
'''


def write_tests(
    connections: Sequence[Connection],
    app: str,
    output: Path,
    *,
    factory: bool = False,
    ignore: Sequence[str] = (),
    source: str = "",
) -> Path:
    """Write the module for ``connections`` to ``output`` (and its data folder when needed)."""
    module, _, attribute = app.partition(":")
    if not module or not attribute:
        raise ValueError(f"APP must be module:attribute, not {app!r}")
    name = attribute.split(".")[0]
    import_line = f"from {module} import {name}"
    app_expr = f"{attribute}()" if factory else attribute
    paths = [rule for rule in ignore if rule.startswith("body")]
    data_dir = output.with_name(output.stem + "_data")
    text = _HEADER.format(
        source=source or "a session",
        ignored=", ".join(paths) or "none",
        import_line=import_line,
        ignored_list=repr(paths),
        app_expr=app_expr,
    )
    names: set[str] = set()
    tests = []
    for conn in connections:
        if conn.type == "http":
            tests.append(_http_test(conn, _name(conn, names), data_dir, bool(paths)))
        elif conn.type == "websocket":
            tests.append(_ws_test(conn, _name(conn, names)))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "".join(tests))
    return output


def _name(conn: Connection, taken: set[str]) -> str:
    """A test name from the method and path, unique among the names ``taken`` so far.

    A repeat gets the first free numeric suffix, checked against every name given, not only
    its own path's: ``/items/2`` and the second ``/items`` would both be ``test_get_items_2``
    otherwise, and Python keeps only the last function of a name, silently.
    """
    method = (conn.method or conn.type).lower()
    words = re.sub(r"[^0-9a-zA-Z]+", "_", conn.path).strip("_").lower() or "root"
    base = f"test_{method}_{words}"[:80]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _literal(value: bytes, data_dir: Path, name: str) -> str:
    if len(value) > INLINE_LIMIT:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / name).write_bytes(value)
        return f'data("{name}")'
    return repr(value)


def _headers(conn: Connection) -> tuple[list[str], list[str]]:
    """The request headers as Python source, and the redacted ones (read from the environment)."""
    items, secrets = [], []
    for name, value in conn.request_headers:
        key = name.decode("latin-1").lower()
        if key in _CLIENT_HEADERS:
            continue
        if value == REDACTED:
            secrets.append(key)
            items.append(f"({key!r}, secret({key!r}))")
        else:
            items.append(f"({key!r}, {value.decode('latin-1')!r})")
    return items, secrets


def _http_test(conn: Connection, name: str, data_dir: Path, ignoring: bool) -> str:
    headers, _ = _headers(conn)
    body = conn.request_body()
    lines = [f"\n\ndef {name}(client: TestClient) -> None:"]
    lines.append(f'    """{conn.method} {conn.target} answered {conn.status} when recorded."""')
    call = f"    response = client.request({conn.method or 'GET'!r}, {conn.target!r}"
    if headers:
        call += ", headers=[" + ", ".join(headers) + "]"
    if body:
        call += ", content=" + _literal(body, data_dir, f"{name}.request")
    lines.append(call + ")")
    lines.append(f"    assert response.status_code == {conn.status!r}")
    for key, value in conn.response_headers:
        header = key.decode("latin-1").lower()
        if header in _COMPARED_RESPONSE_HEADERS and header not in DEFAULT_IGNORED_HEADERS:
            lines.append(f"    assert response.headers[{header!r}] == {value.decode('latin-1')!r}")
    response = conn.response_body()
    if conn.method == "HEAD":
        pass
    elif _is_json(response):
        expected = orjson.loads(response)
        source = repr(expected) if len(response) <= INLINE_LIMIT else None
        if source is None:
            stored = _literal(response, data_dir, name + ".json")
            lines.append(f"    assert_json(response.content, json.loads({stored}))")
        else:
            lines.append(f"    assert_json(response.content, {source})")
    elif not ignoring or response:
        lines.append(f"    assert response.content == {_literal(response, data_dir, name + '.response')}")
    return "\n".join(lines) + "\n"


def _is_json(data: bytes) -> bool:
    if not data:
        return False
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _ws_test(conn: Connection, name: str) -> str:
    headers, _ = _headers(conn)
    lines = [f"\n\ndef {name}(client: TestClient) -> None:"]
    lines.append(f'    """The WebSocket conversation on {conn.target}, as recorded."""')
    call = f"    with client.websocket_connect({conn.target!r}"
    if headers:
        call += ", headers=dict([" + ", ".join(headers) + "])"
    lines.append(call + ") as ws:")
    body: list[str] = []
    for event in conn.events:
        message: Any = event.message if isinstance(event.message, dict) else {}
        if event.direction == "receive" and event.type == "websocket.receive":
            if message.get("text") is not None:
                body.append(f"        ws.send_text({message['text']!r})")
            elif message.get("bytes") is not None:
                body.append(f"        ws.send_bytes({message['bytes']!r})")
        elif event.direction == "send" and event.type == "websocket.send":
            if message.get("text") is not None:
                body.append(f"        assert ws.receive_text() == {message['text']!r}")
            elif message.get("bytes") is not None:
                body.append(f"        assert ws.receive_bytes() == {message['bytes']!r}")
        elif event.direction == "send" and event.type == "websocket.close":
            code = message.get("code", 1000)
            body.append("        closing = ws.receive()")
            body.append("        assert closing['type'] == 'websocket.close'")
            body.append(f"        assert closing.get('code', 1000) == {code!r}")
            break
    lines += body or ["        pass"]
    return "\n".join(lines) + "\n"
