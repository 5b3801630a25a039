"""benchmarks/bench_instructions.py without valgrind: its in-process loop, its checks and its
child protocol, for a few requests of every workload and variant, so that the benchmark cannot
rot between the rare runs that count instructions (CI has no valgrind, and needs none here)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asgispy import Spy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_instructions as bench  # found through the path set above

#: Messages the app sends in one request of each workload, as Spy must record them: start and
#: body; start, 100 chunks and the closing empty body; the accept and every message echoed.
SENT = {"json": 2, "stream": 102, "ws": 1 + bench.WS_MESSAGES}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short path: the live recorder's Unix socket lives in it (at most 108 bytes)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="asgispy-bi-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("workload", list(bench.WORKLOADS))
@pytest.mark.parametrize("variant", [v for v in bench.VARIANTS if not bench.VARIANTS[v].live])
def test_the_loop_gets_right_answers_and_spy_records_each_request(variant: str, workload: str) -> None:
    app = bench.VARIANTS[variant].wrap(bench.build_app())
    asyncio.run(bench.requests(app, bench.WORKLOADS[workload], 3, check=True))
    if isinstance(app, Spy):
        app.close()  # the hooks Spy(inside=True) installed go with it
        records = app.records
        assert len(records) == (0 if variant == "spy-history0" else 3)
        for record in records:
            assert record.outcome == "completed"
            assert sum(1 for e in record.events if e[0] == "send") == SENT[workload]


@pytest.mark.parametrize("workload", list(bench.WORKLOADS))
def test_the_checks_catch_a_wrong_answer(workload: str) -> None:
    async def wrong(scope: bench.Scope, receive: bench.Receive, send: bench.Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"not it"})

    with pytest.raises(AssertionError, match=workload):
        asyncio.run(bench.request(wrong, bench.WORKLOADS[workload], check=True))


@pytest.mark.parametrize("workload", list(bench.WORKLOADS))
def test_the_live_recorder_receives_every_connection(workload: str, workdir: Path) -> None:
    """The child process and the recorder beside it, as the benchmark runs them (run_once
    raises unless the recorder's session file holds all 5 connections, whole)."""
    assert bench.run_once("spy-live", workload, 3, 2, workdir, valgrind=None) is None


def test_a_child_without_recorder_runs_its_phases(workdir: Path) -> None:
    assert bench.run_once("spy", "json", 2, 1, workdir, valgrind=None) is None


def test_per_request_is_the_difference_over_n(capsys: pytest.CaptureFixture[str]) -> None:
    rows: dict[str, dict[str, object]] = {}
    rows["bare"] = bench.figures("bare", bench.Pair(10, [2000], [1000]), rows)
    rows["floor"] = bench.figures("floor", bench.Pair(10, [2200], [1100]), rows)
    spy = bench.figures("spy", bench.Pair(10, [3000, 3010], [1000, 1000]), rows)
    assert rows["bare"]["per_request"] == 100
    assert rows["floor"]["added_over_bare"] == 10
    assert rows["floor"]["spread"] is None  # one run shows no spread
    assert spy["per_request"] == 200.5 and spy["spread"] == 1
    assert spy["multiple_of_floor"] == pytest.approx(10.05)
    assert "Spy()" in capsys.readouterr().out


def test_the_total_is_callgrinds_over_every_thread(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text("# callgrind format\nevents: Ir\nfn=main\n1 5\nsummary: 1234\ntotals: 1234\n")
    assert bench.read_total(out) == 1234
    out.write_text("events: Ir\n")
    with pytest.raises(RuntimeError, match="no totals"):
        bench.read_total(out)


def test_without_valgrind_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "argv", ["bench_instructions.py", "--quick"])
    with pytest.raises(SystemExit) as exit_:
        bench.main()
    assert "apt-get install -y valgrind" in str(exit_.value.code)
