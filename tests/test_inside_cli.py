"""``asgispy record APP --inside``: the served app's outgoing calls, logs and SQL land in the
session it writes; a bad ``--inside`` is refused before anything starts."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

import asgispy
from asgispy.model.inside import LogRecord, OutgoingCall, Query
from tests.inside_apps import UPSTREAM
from tests.servers import serve
from tests.test_record import Recorder

pytestmark = pytest.mark.timeout(90)

APP = """
import os
from pathlib import Path
from tests.inside_apps import shop

app = shop(os.environ["UPSTREAM"], Path(__file__).with_name("cli.db"))
"""


def test_record_inside_writes_calls_logs_and_queries(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sockdir / "insideapp.py").write_text(APP)
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", root)
    with serve(UPSTREAM) as upstream:
        monkeypatch.setenv("UPSTREAM", upstream.url("").rstrip("/"))
        argv = ["insideapp:app", "--app-dir", str(sockdir), "--port", "0", "-o", "out.json"]
        recorder = Recorder([*argv, "--inside", "--inside-level", "warning", "--inside-sql-params"], sockdir)
        try:
            port = recorder.port
            assert httpx.post(f"http://127.0.0.1:{port}/orders?n=9", timeout=20).status_code == 502
            assert httpx.get(f"http://127.0.0.1:{port}/books?n=4", timeout=20).status_code == 200
            recorder.wait_for(recorder.out, r"GET /books\?n=4 200")
        finally:
            code = recorder.finish(signal.SIGTERM)
    assert code == 0, recorder.err
    session = asgispy.load(sockdir / "out.json")
    orders = next(c for c in session if c.path == "/orders")
    books = next(c for c in session if c.path == "/books")
    assert [i.status for i in orders.inside if isinstance(i, OutgoingCall)] == [503]
    assert [i.level for i in orders.inside if isinstance(i, LogRecord)] == ["WARNING"]  # INFO left out
    assert not [i for i in books.inside if isinstance(i, LogRecord)]
    assert [q.parameters for q in books.inside if isinstance(q, Query)] == [(i,) for i in range(1, 7)]


def test_a_bad_inside_kind_is_refused(sockdir: Path) -> None:
    (sockdir / "insideapp.py").write_text(APP)
    recorder = Recorder(["insideapp:app", "--port", "0", "-o", "x.json", "--inside", "http,smtp"], sockdir)
    assert recorder.finish(None) == 2
    assert any("--inside" in line and "smtp" in line for line in recorder.err), recorder.err
