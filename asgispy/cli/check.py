"""``asgispy check SESSION``: the ASGI protocol checker over a saved session, for CI.

Prints each violation with its connection and the message at fault, then a count by
severity; exits 1 when any rule at or above ``--fail-on`` (errors, by default) was broken,
so a team can record a session while its tests run and fail the build on a protocol mistake.
``--format`` writes the same findings for CI tools instead (JSON, SARIF for code scanning,
JUnit XML for test reports, GitHub workflow annotations), to stdout or ``-o FILE``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asgispy.exports.checkreport import CheckResult

__all__ = ["FORMATS", "add_parser", "run"]

_SEVERITIES = ("error", "warning", "notice")
_MARKS = {"error": "✖", "warning": "⚠", "notice": "·"}
FORMATS = ("text", "json", "sarif", "junit", "github")


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=(
            "Check every connection of SESSION against the ASGI specification's rules "
            "(docs/rules.md). Exits 1 when a rule of the --fail-on severity or worse was broken."
        ),
    )
    parser.add_argument("session", metavar="SESSION", help="a session file (JSON, or --jsonl event log)")
    parser.add_argument(
        "--filter", metavar="EXPR", help="check only the connections this filter shows (as the dashboard's /)"
    )
    parser.add_argument(
        "--fail-on",
        choices=_SEVERITIES,
        default="error",
        help="the least severity that makes the check fail (default: error)",
    )
    parser.add_argument(
        "--show", choices=_SEVERITIES, default="notice", help="the least severity to report (default: notice)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text for people (default); json; sarif (code scanning); junit (CI test reports); "
        "github (workflow annotations). See docs/ci.md",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the report to FILE (default, or -: stdout)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.cli.sessions import CommandError, filtered_connections
    from asgispy.exports.checkreport import check_result

    try:
        connections = filtered_connections("check", args.session, args.filter)
    except CommandError:
        return 2
    result = check_result(connections, show=args.show, fail_on=args.fail_on)
    report = _report(args.format, result, args.session)
    if args.output and args.output != "-":
        from asgispy.codec.sessionfile import write_bytes_atomically

        try:
            write_bytes_atomically(args.output, report.encode("utf-8"))
        except OSError as exc:
            print(f"asgispy check: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(report)
        sys.stdout.flush()
    return 1 if result.failed else 0


def _report(kind: str, result: CheckResult, session: str) -> str:
    if kind == "text":
        return _text(result)
    if kind == "json":
        import orjson

        from asgispy.exports.checkreport import check_document

        return orjson.dumps(check_document(result, session), option=orjson.OPT_INDENT_2).decode() + "\n"
    if kind == "junit":
        from asgispy.exports.junit import junit_xml

        return junit_xml(result).decode("utf-8")
    lines = _lines(session, {f.conn.id for f in result.shown})
    if kind == "sarif":
        import orjson

        from asgispy.exports.sarif import sarif_log

        return orjson.dumps(sarif_log(result, session, lines), option=orjson.OPT_INDENT_2).decode() + "\n"
    from asgispy.exports.github import workflow_commands

    return workflow_commands(result, session, lines)


def _lines(session: str, ids: set[str]) -> dict[str, int]:
    """Where each connection begins in the session file, for reports that point into it."""
    from asgispy.exports.checkreport import connection_lines

    try:
        with open(session, encoding="utf-8", errors="replace") as file:
            return connection_lines(file.read(), ids)
    except OSError:
        return {}


def _text(result: CheckResult) -> str:
    """Today's report for people: each connection with its violations, then the counts."""
    from asgispy.exports.checkreport import place, tally
    from asgispy.exports.line import summary_line

    out: list[str] = []
    printed: set[int] = set()
    for found in result.shown:
        conn, violation = found.conn, found.violation
        if id(conn) not in printed:
            out.append(f"{conn.id}  {summary_line(conn)}")
            printed.add(id(conn))
        where = f" at {at}" if (at := place(found)) else ""
        out.append(f"  {_MARKS.get(violation.severity, '?')} {violation.rule}{where}: {violation.message}")
    out.append(tally(result))
    return "\n".join(out) + "\n"
