"""Connections with what the app did inside them (outgoing calls, log records, SQL statements),
built from session documents as ``Spy(app, inside=True)`` writes them, for the views' tests.

The messages are those of a plain GET answered 200; the ``inside`` entries are made with the
model's own classes and their ``document()``, so the tests read them back the way a loaded
session is read.
"""

from __future__ import annotations

from typing import Any

from asgispy.model.connection import Connection
from asgispy.model.inside import Inside, LogRecord, OutgoingCall, Query
from asgispy.model.session import Session
from asgispy.store.load import session_from_document
from asgispy.store.store import Store

BOOK = "SELECT book.id, book.title FROM book WHERE book.id = {}"


def connection_doc(
    id: str, path: str, inside: list[Inside], *, duration: float = 1.0, response_at: float = 0.9
) -> dict[str, Any]:
    """A finished GET ``path`` answered 200 at ``response_at``, with ``inside`` recorded in it."""
    return {
        "id": id,
        "seq": int(id.rsplit("-", 1)[-1]),
        "producer": "inside0",
        "type": "http",
        "started": 1_700_000_000.0,
        "duration": duration,
        "outcome": "completed",
        "scope": {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": path,
            "raw_path": {"$bytes": path},
            "root_path": "",
            "scheme": "http",
            "query_string": {"$bytes": ""},
            "headers": {"$headers": [["host", "testserver"], ["accept", "*/*"]]},
            "client": {"$tuple": ["testclient", 50000]},
            "server": ["testserver", 80],
        },
        "events": [
            {"direction": "receive", "t": 0.001, "message": {"type": "http.request", "body": {"$bytes": ""}}},
            {
                "direction": "send",
                "t": response_at,
                "message": {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": {"$headers": [["content-type", "application/json"]]},
                },
            },
            {
                "direction": "send",
                "t": response_at + 0.01,
                "message": {"type": "http.response.body", "body": {"$bytes": '{"ok":1}'}},
            },
        ],
        "events_dropped": 0,
        "error": None,
        "handler": None,
        "notes": [],
        "inside": [item.document() for item in inside],
    }


def checkout_inside() -> list[Inside]:
    """An order page: a charge that failed then worked, a warning, forty queries one per book
    (an N+1), and an e-mail sent after the response."""
    items: list[Inside] = [
        OutgoingCall(
            t=0.05,
            library="httpx",
            method="POST",
            url="https://pay.example/charge?attempt=1",
            status=503,
            duration=0.2,
            request_headers=[("content-type", "application/json"), ("x-key", "k1")],
            response_headers=[("content-type", "text/plain")],
            request_body=b'{"amount": 12}',
            response_body=b"try later",
        ),
        LogRecord(
            t=0.26,
            level="WARNING",
            levelno=30,
            logger="app.orders",
            message="payment retry 2",
            where="app/orders.py:41",
        ),
        OutgoingCall(
            t=0.27,
            library="httpx",
            method="POST",
            url="https://pay.example/charge?attempt=2",
            status=200,
            duration=0.1,
            response_headers=[("content-type", "application/json")],
            response_body=b'{"charged": true}',
        ),
        Query(t=0.4, statement="SELECT * FROM orders WHERE id = 9", duration=0.004, rows=1),
    ]
    items += [
        Query(t=0.41 + n * 0.01, statement=BOOK.format(n), duration=0.003, rows=1, parameters=None)
        for n in range(40)
    ]
    items.append(
        OutgoingCall(
            t=0.95,
            after_response=True,
            library="requests",
            method="POST",
            url="https://mail.example/send",
            error="ConnectTimeout: timed out",
            duration=0.05,
        )
    )
    items.append(
        LogRecord(
            t=0.96,
            after_response=True,
            level="ERROR",
            levelno=40,
            logger="app.mail",
            message="could not send the receipt",
            where="app/mail.py:12",
            exception=(
                'Traceback (most recent call last):\n  File "app/mail.py", line 12\nConnectTimeout: timed out'
            ),
        )
    )
    return items


def quiet_inside() -> list[Inside]:
    """A page that logs at INFO and runs two different statements: nothing repeated."""
    return [
        LogRecord(t=0.1, level="INFO", levelno=20, logger="app", message="hello"),
        Query(t=0.2, statement="SELECT 1", duration=0.001),
        Query(t=0.3, statement="UPDATE visits SET n = n + 1", duration=0.002, rows=1),
    ]


def inside_session() -> Session:
    """Three connections: ``/checkout`` (busy), ``/quiet`` and ``/plain`` (nothing inside)."""
    doc = {
        "format": "asgispy-session",
        "version": 1,
        "connections": [
            connection_doc("inside0-1", "/checkout", checkout_inside()),
            connection_doc("inside0-2", "/quiet", quiet_inside()),
            connection_doc("inside0-3", "/plain", []),
        ],
    }
    return session_from_document(doc)


def inside_store() -> Store:
    store = Store()
    store.add_session(inside_session())
    return store


def connection(path: str) -> Connection:
    return next(c for c in inside_session().connections if c.path == path)
