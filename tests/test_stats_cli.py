"""``asgispy stats`` run as a user runs it, on sessions recorded from a real uvicorn; every figure
is checked against the recorded connections themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import asgispy
from asgispy.model.connection import Connection
from tests.stats_sessions import BOOMS, CREATES, ORDER_IDS, rank, record, route_key
from tests.test_replay import asgispy as run_cli

pytestmark = pytest.mark.timeout(120)

ORDERS = "GET /orders/{order_id:int}"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same traffic recorded twice: fast, then with ``GET /orders/{id}`` 30 ms slower."""
    folder = tmp_path_factory.mktemp("stats")
    (folder / "before").mkdir()
    (folder / "after").mkdir()
    return record(folder / "before" / "s.json"), record(folder / "after" / "s.json", slow=0.03)


@pytest.fixture(scope="module")
def session(sessions: tuple[Path, Path]) -> Path:
    return sessions[0]


def requests(path: Path) -> list[Connection]:
    return [c for c in asgispy.load(path).connections if c.type != "lifespan"]


def stats_json(*args: str) -> Any:
    result = run_cli("stats", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def expected_percentiles(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": rank(values, 50),
        "p90": rank(values, 90),
        "p99": rank(values, 99),
        "max": max(values) if values else None,
    }


def test_json_by_route_matches_the_connections(session: Path) -> None:
    conns = requests(session)
    groups = stats_json(str(session))
    by_key = {g["key"]: g for g in groups}
    assert set(by_key) == {route_key(c) for c in conns} == {ORDERS, "POST /orders", "GET /boom", "WS /feed"}
    # busiest first
    assert [g["count"] for g in groups] == sorted((g["count"] for g in groups), reverse=True)
    for key, group in by_key.items():
        members = [c for c in conns if route_key(c) == key]
        http = [c for c in members if c.type == "http"]
        assert group["count"] == len(members)
        assert group["errors"] == sum(c.outcome == "exception" or (c.status or 0) >= 500 for c in members)
        assert group["client_errors"] == sum(400 <= (c.status or 0) < 500 for c in members)
        assert group["duration"] == expected_percentiles([c.duration for c in http if c.duration is not None])
        assert group["ttfb"] == expected_percentiles([c.ttfb for c in http if c.ttfb is not None])
        assert group["request_bytes"]["total"] == sum(c.request_bytes for c in members)
        assert group["response_bytes"]["total"] == sum(c.response_bytes for c in members)
        mean = group["response_bytes"]["mean"]
        assert mean == pytest.approx(group["response_bytes"]["total"] / len(members))
    # what the traffic sent, as the server saw it
    assert by_key[ORDERS]["count"] == len(ORDER_IDS) and by_key[ORDERS]["client_errors"] == 2
    assert by_key["POST /orders"]["request_bytes"]["total"] == sum(10 * (n + 1) for n in range(CREATES))
    assert by_key["GET /boom"]["errors"] == BOOMS
    # a WebSocket counts, but gives no latency
    assert by_key["WS /feed"]["count"] == 1
    assert by_key["WS /feed"]["duration"] == {"p50": None, "p90": None, "p99": None, "max": None}


def test_grouping_by_path_status_and_endpoint(session: Path) -> None:
    conns = requests(session)
    paths = {g["key"]: g["count"] for g in stats_json(str(session), "--by", "path")}
    assert paths[f"GET /orders/{ORDER_IDS[0]}"] == 1 and len(paths) == len(conns) - CREATES + 1 - BOOMS + 1
    statuses = {g["key"]: g for g in stats_json(str(session), "--by", "status")}
    assert {k: g["count"] for k, g in statuses.items()} == {
        str(s): sum(c.status == s for c in conns) for s in {c.status for c in conns}
    }
    assert statuses["500"]["errors"] == BOOMS and statuses["404"]["client_errors"] == 2
    endpoints = {g["key"] for g in stats_json(str(session), "--by", "endpoint")}
    assert endpoints == {(c.handler or {})["endpoint"] for c in conns}
    assert any(e.endswith(".order") for e in endpoints)


def test_the_filter_limits_what_is_counted(session: Path) -> None:
    groups = stats_json(str(session), "--filter", "status:>=400")
    assert {g["key"]: g["count"] for g in groups} == {ORDERS: 2, "GET /boom": BOOMS}


def test_the_table_for_people_is_aligned_in_milliseconds(session: Path) -> None:
    result = run_cli("stats", str(session))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["route", "count", "errors", "4xx", "p50", "ms"]
    row = next(line for line in lines if line.startswith(ORDERS))
    orders = [c for c in requests(session) if route_key(c) == ORDERS]
    p50 = rank([c.duration for c in orders if c.duration is not None], 50)
    assert p50 is not None
    cells = row[len(ORDERS) :].split()
    assert cells[:3] == [str(len(ORDER_IDS)), "0", "2"]
    assert float(cells[3]) == pytest.approx(p50 * 1000, rel=0.01)
    # every row is as wide as the header's columns place it: the counts end in the same column
    count_end = lines[0].index("count") + len("count")
    assert all(line[count_end - 1] != " " for line in lines[1:])
    assert lines[-1].startswith("(all)") and lines[-1].split()[1] == str(len(requests(session)))


def test_two_sessions_side_by_side_say_what_got_slower(sessions: tuple[Path, Path]) -> None:
    before, after = sessions
    changes = {c["key"]: c for c in stats_json(str(before), str(after))}
    orders = changes[ORDERS]
    assert orders["before"]["count"] == orders["after"]["count"] == len(ORDER_IDS)
    slow = orders["change"]["duration"]["p50"]
    assert slow == pytest.approx(orders["after"]["duration"]["p50"] - orders["before"]["duration"]["p50"])
    assert slow > 0.02  # the app sleeps 30 ms more per order after the change
    assert orders["change"]["duration_ratio"]["p50"] > 1
    assert changes["GET /boom"]["change"]["errors"] == 0
    table = run_cli("stats", str(before), str(after))
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith(ORDERS))
    pairs = re.findall(r"(\S+) → (\S+)(?:\s+([+-]\d+%))?", row)
    assert pairs[0][:2] == (str(len(ORDER_IDS)), str(len(ORDER_IDS))) and pairs[1][:2] == ("0", "0")
    old_p50, new_p50, change = pairs[2]
    assert float(old_p50) == pytest.approx(orders["before"]["duration"]["p50"] * 1000, rel=0.01)
    assert float(new_p50) == pytest.approx(orders["after"]["duration"]["p50"] * 1000, rel=0.01)
    assert change.startswith("+") and change.endswith("%")


def test_a_route_in_one_session_only_is_new_or_gone(sessions: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = sessions
    booms = tmp_path / "booms.json"
    assert run_cli("export", str(after), "--filter", "path:/boom", "-o", str(booms)).returncode == 0
    changes = {c["key"]: c for c in stats_json(str(booms), str(before))}
    assert next(iter(changes)) == "GET /boom"  # the first session's keys first
    assert changes[ORDERS]["before"] is None and changes[ORDERS]["after"]["count"] == len(ORDER_IDS)
    assert changes[ORDERS]["change"]["duration"]["p50"] is None
    table = run_cli("stats", str(before), str(booms)).stdout.splitlines()
    assert any(line.startswith(f"{ORDERS} (gone)") and "12 → -" in line for line in table), table


def test_bad_input_exits_2_with_a_message(session: Path, tmp_path: Path) -> None:
    missing = run_cli("stats", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "nope.json" in missing.stderr and "Traceback" not in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    garbage = run_cli("stats", str(session), str(broken))
    assert garbage.returncode == 2 and "broken.json" in garbage.stderr and "Traceback" not in garbage.stderr
    bad = run_cli("stats", str(session), "--filter", "status:abc")
    assert bad.returncode == 2 and "--filter" in bad.stderr and "Traceback" not in bad.stderr
    wrong = run_cli("stats", str(session), "--by", "colour")
    assert wrong.returncode == 2 and "--by" in wrong.stderr
    empty = run_cli("stats", str(session), "--filter", "path:/nothing-here")
    assert empty.returncode == 0 and empty.stdout == "" and "no requests" in empty.stderr
    assert stats_json(str(session), "--filter", "path:/nothing-here") == []


def test_a_reader_that_stops_early_gets_no_traceback(sessions: tuple[Path, Path]) -> None:
    # `asgispy stats A B | head -1` where head is gone before the table is written: the pipe's
    # reading end is closed before the command writes a byte, so its first write meets no reader.
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "asgispy", "stats", *map(str, sessions), "--by", "path"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(root)),
            cwd=root,
            timeout=60,
        )
    finally:
        os.close(write_end)
    errors = process.stderr.decode()
    assert process.returncode == 141, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors
