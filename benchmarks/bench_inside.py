"""What ``Spy(app, inside=True)`` adds per outgoing call, log record and SQL statement, counted
in instructions under callgrind.

    python benchmarks/bench_inside.py              # 500 of each operation
    python benchmarks/bench_inside.py --count 2000

Each operation runs N times inside one connection's context, in a fresh Python under
``valgrind --tool=callgrind``, once after ``Spy(app, inside=True)`` installed its hooks and once
without (no Spy at all), each at N and at 0 operations: ((hooked at N - hooked at 0) - (bare at N
- bare at 0)) / N is what recording one operation costs. The operations touch no network: an
httpx client on a MockTransport, SQLAlchemy on an in-memory SQLite database, a logger with a
handler that discards. The in-request cost of ``inside=True`` per connection (its context
variable) is measured by ``bench_instructions.py --only spy,spy-inside``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_instructions import INSTALL_HINT, environment, read_total  # noqa: E402

OPERATIONS = ("call", "log", "query")


def _operation(name: str) -> Any:
    if name == "call":
        import httpx

        client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"ok")))
        return lambda: client.get("http://upstream.test/items?id=3")
    if name == "log":
        logger = logging.getLogger("bench.inside")
        logger.setLevel(logging.INFO)
        logger.addHandler(logging.NullHandler())
        logger.propagate = True
        return lambda: logger.info("item %d listed", 3)
    from sqlalchemy import create_engine, text

    engine = create_engine("sqlite://")
    conn = engine.connect()
    statement = text("SELECT 1")
    return lambda: conn.execute(statement).all()


def child(operation: str, hooked: bool, count: int) -> None:
    """The process measured: ``count`` operations inside one connection's context."""
    from asgispy.capture.inside import InsideOptions
    from asgispy.capture.layers import current_record
    from asgispy.capture.record import ConnectionRecord

    run = _operation(operation)
    if hooked:
        from asgispy import Spy

        Spy(lambda s, r, se: None, inside=True, address=False)  # installs the hooks
    record = ConnectionRecord("bench", 1, {"type": "http", "path": "/"}, 10_000)
    record.inside_options = InsideOptions(frozenset({"http", "logging", "sql"})) if hooked else None
    run()  # the first one imports and warms what every later one uses
    token = current_record.set(record)
    for _ in range(count):
        run()
    current_record.reset(token)
    if hooked:
        # only what fits under the record's bound is kept; the rest are counted, as in use
        assert len(record.inside) == min(count, 1000) + (count > 1000), len(record.inside)


def measure(operation: str, hooked: bool, count: int, valgrind: str, workdir: Path) -> int:
    out = workdir / f"{operation}-{hooked}-{count}.out"
    command = [
        valgrind,
        "--tool=callgrind",
        "--dump-instr=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        operation,
        "1" if hooked else "0",
        str(count),
    ]
    subprocess.run(command, env=environment(), check=True, capture_output=True, timeout=900)
    return read_total(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=500, help="operations measured (default 500)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1", int(args.child[2]))
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit(INSTALL_HINT)
    workdir = Path(tempfile.mkdtemp(prefix="asgispy-bin-"))
    try:
        print(f"instructions per operation inside a connection, {args.count:,} each (callgrind)")
        print(f"{'operation':<10}{'bare':>12}{'recorded':>12}{'added':>10}")
        for operation in OPERATIONS:
            per = {}
            for hooked in (False, True):
                high = measure(operation, hooked, args.count, valgrind, workdir)
                low = measure(operation, hooked, 0, valgrind, workdir)
                per[hooked] = (high - low) / args.count
            print(f"{operation:<10}{per[False]:>12,.0f}{per[True]:>12,.0f}{per[True] - per[False]:>+10,.0f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
