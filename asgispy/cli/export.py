"""``asgispy export SESSION --format json|jsonl|har|curl [--filter EXPR] [-o OUT]``.

Every export from the command line: a JSON session (the filtered part of one), the JSON-lines
event log ``asgispy record --jsonl`` writes (both load back with ``asgispy.load``), HAR 1.2 for
browser tools, or one curl command per HTTP request. Text formats go to stdout without ``-o``.

``--otlp URL`` sends the connections as OpenTelemetry spans to an OTLP/HTTP endpoint instead
(a Collector, Jaeger, Tempo; needs ``asgispy[otlp]``, see docs/otlp.md); with ``-o`` too, the
file is written as well. ``asgispy record`` takes the same ``--otlp`` options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_otlp_arguments", "add_parser", "otlp_settings", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    from asgispy.exports.formats import FORMATS

    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=__doc__)
    parser.add_argument("session", metavar="SESSION", help="a session file (JSON, or --jsonl event log)")
    parser.add_argument(
        "--format", choices=FORMATS, help="what to write (default: by OUT's extension, else json)"
    )
    parser.add_argument("--filter", metavar="EXPR", help="export only the connections this filter shows")
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="where to write (default: stdout, or nothing with --otlp)"
    )
    add_otlp_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.cli.sessions import CommandError, filtered_session
    from asgispy.codec.sessionfile import write_bytes_atomically
    from asgispy.exports.formats import export_bytes, format_for

    otlp = otlp_settings("export", args)
    if isinstance(otlp, int):
        return otlp
    fmt = args.format or format_for(args.output) or "json"
    try:
        session = filtered_session("export", args.session, args.filter)
    except CommandError:
        return 2
    connections = session.connections
    if args.output or otlp is None:
        data = export_bytes(session, fmt, comment=f"exported from {args.session}").data
    if args.output:
        path = write_bytes_atomically(Path(args.output), data)
        print(
            f"wrote {len(connections)} connection{'s' if len(connections) != 1 else ''} as {fmt} to {path}",
            file=sys.stderr,
        )
    elif otlp is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if otlp is not None:
        return _send_otlp(session, otlp)
    return 0


# OpenTelemetry ---------------------------------------------------------------------------------


def add_otlp_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--otlp`` options, shared by ``export`` and ``record``; :func:`otlp_settings` reads them."""
    group = parser.add_argument_group("OpenTelemetry (needs asgispy[otlp]; see docs/otlp.md)")
    group.add_argument(
        "--otlp",
        metavar="URL",
        help="send each connection as a span to this OTLP/HTTP endpoint (http://HOST:4318 gets /v1/traces)",
    )
    group.add_argument(
        "--otlp-bodies", action="store_true", help="put each message's payload in its span event, cut"
    )
    group.add_argument(
        "--otlp-body-limit",
        type=int,
        default=1024,
        metavar="BYTES",
        help="bytes of each payload sent with --otlp-bodies (default: 1024)",
    )
    group.add_argument(
        "--otlp-header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a header for every OTLP request, such as Authorization=... (repeatable)",
    )
    group.add_argument(
        "--otlp-service",
        metavar="NAME",
        help="service.name of the spans (default: $OTEL_SERVICE_NAME, else the app's name)",
    )
    group.add_argument(
        "--otlp-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long one batch may take, retries included, before it counts as lost (default: 10)",
    )


def otlp_settings(command: str, args: argparse.Namespace) -> dict[str, Any] | int | None:
    """The keyword arguments of ``send_session`` and ``OtlpForwarder`` (``url`` included) from
    the ``--otlp`` options; None without ``--otlp``; 2 (the exit status) after saying what is
    wrong: an option without ``--otlp``, a bad URL or header, the extra not installed."""
    if args.otlp is None:
        if args.otlp_bodies or args.otlp_header or args.otlp_service:
            print(f"asgispy {command}: the --otlp-* options need --otlp URL", file=sys.stderr)
            return 2
        return None
    from asgispy.exports.otlp_endpoint import OtlpMissing, check_installed, parse_headers, traces_url

    try:
        url = traces_url(args.otlp)
        headers = parse_headers(args.otlp_header)
        if args.otlp_body_limit < 0 or args.otlp_timeout <= 0:
            raise ValueError("--otlp-body-limit must be 0 or more, --otlp-timeout more than 0")
    except ValueError as exc:
        print(f"asgispy {command}: --otlp: {exc}", file=sys.stderr)
        return 2
    try:
        check_installed()
    except OtlpMissing as exc:
        print(f"asgispy {command}: {exc}", file=sys.stderr)
        return 2
    return {
        "url": url,
        "bodies": args.otlp_bodies,
        "body_limit": args.otlp_body_limit,
        "headers": headers,
        "service_name": args.otlp_service,
        "timeout": args.otlp_timeout,
    }


def _send_otlp(session: Any, settings: dict[str, Any]) -> int:
    from asgispy.exports.otlp import send_session
    from asgispy.exports.otlp_endpoint import OtlpError

    url = settings["url"]
    total = len(session.connections)
    try:
        sent = send_session(session.connections, producers=session.producers, **settings)
    except OtlpError as exc:
        print(f"asgispy export: {exc} (sent {exc.sent} of {total} spans)", file=sys.stderr)
        return 1
    print(f"asgispy export: sent {sent} span{'s' if sent != 1 else ''} to {url}", file=sys.stderr)
    return 0
