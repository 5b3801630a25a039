"""What the app did inside a request, as an agent reads it over MCP (``python -m asgispy mcp``
over stdio, against a saved session): counts in the listing, compact entries in the connection,
and what was done more than once."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgispy.codec.sessionfile import write_session
from asgispy.model.inside import OutgoingCall, Query
from tests.inside_session import recorded_document
from tests.test_agents_mcp import agent, by_path, run

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The /checkout session with its entries, plus the same query twice more and a call whose
    URL carries a secret."""
    doc = recorded_document()
    (conn,) = [c for c in doc["connections"] if c.get("inside")]
    select = Query(t=0.0065, statement="SELECT id, total\n  FROM orders WHERE id = ?", duration=0.001, rows=1)
    conn["inside"] += [select.document(), {**select.document(), "t": 0.0068}]
    secret = OutgoingCall(t=0.03, method="GET", url="http://maps.local/geo?q=x&api_key=s3cr3t", status=200)
    conn["inside"].append(secret.document())
    return write_session(tmp_path_factory.mktemp("inside") / "session.json", doc)


def test_the_agent_sees_what_the_app_did_inside(saved: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with agent("--session", str(saved), stderr=tmp_path / "err") as a:
            listing = by_path(await a.call("list_connections"))
            assert listing["/checkout"]["inside"] == {"http": 4, "sql": 4, "log": 2}
            assert "inside" not in listing["/plain"]

            detail = await a.call("get_connection", id=listing["/checkout"]["id"])
            inside = detail["inside"]
            kinds = ["http", "sql", "sql", "sql", "http", "log", "http", "log", "sql", "http"]
            assert [i["kind"] for i in inside] == kinds
            cards = inside[0]
            assert cards == {
                "kind": "http",
                "t": 1.0,
                "what": "GET https://api.example.com:8443/v1/cards?id=7",
                "duration_ms": 4.0,
                "status": 200,
            }
            assert inside[1] == {
                "kind": "sql",
                "t": 6.0,
                "what": "SELECT id, total FROM orders WHERE id = ?",
                "duration_ms": 0.5,
                "rows": 1,
            }
            pay = inside[6]
            assert pay["what"] == "POST http://payments.local/pay" and "ConnectError" in pay["error"]
            failed = inside[7]
            assert failed["level"] == "ERROR" and failed["what"] == "payment failed"
            assert failed["exception"].endswith("ValueError: card declined")
            assert inside[8]["after_response"] is True
            assert inside[9]["what"] == "GET http://maps.local/geo?q=x&api_key=REDACTED"
            assert "s3cr3t" not in str(detail)
            assert detail["repeated"] == [
                {"kind": "sql", "what": "SELECT id, total FROM orders WHERE id = ?", "times": 3}
            ]

            plain = await a.call("get_connection", id=listing["/plain"]["id"])
            assert "inside" not in plain and "repeated" not in plain

    run(body)
