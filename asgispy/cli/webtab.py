"""One browser tab of ``asgispy run APP --web``: ``python -m asgispy.cli.webtab``.

The dashboard is ``attach`` on the served app's socket, with ``run``'s breakpoints: the app was
started able to hold connections, as under ``asgispy run`` (see :mod:`asgispy.cli.web`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from asgispy.cli import dashboard

    parser = argparse.ArgumentParser(prog="asgispy-web-tab")
    parser.add_argument("--source", required=True, help="what the dashboard says it shows: APP")
    dashboard.add_listen_arguments(parser, "")
    dashboard.add_break_arguments(parser)
    dashboard.add_limit_arguments(parser)
    args = parser.parse_args(argv)
    args.jsonl = None
    breakpoints = [(e, "request") for e in args.break_requests]
    breakpoints += [(e, "response") for e in args.break_responses]
    return dashboard.run_live_dashboard(
        "run",
        lambda: dashboard.attached_dashboard(
            args, source=args.source, breakpoints=breakpoints, break_timeout=args.break_timeout
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
