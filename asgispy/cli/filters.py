"""``asgispy filters``: the saved filters ``@name`` stands for here, where each was read, and
whether it parses, so a mistake in a file is found before a command trips on it.

Exits 0 when every saved filter parses, 1 when one does not, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=(
            "List the saved filters (@name in --filter and the dashboard's /) of the project's "
            "asgispy.toml or pyproject.toml [tool.asgispy], and of the user's "
            "$XDG_CONFIG_HOME/asgispy/config.toml; the project's come first (docs/filters.md)."
        ),
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from asgispy.filter.grammar import FilterError
    from asgispy.filter.saved import load_saved, project_file, user_file

    try:
        saved = load_saved()
        project = project_file()
    except FilterError as exc:
        print(f"asgispy filters: {exc.message}", file=sys.stderr)
        return 2
    user = user_file()
    print(f"project: {project[0] if project else '(no asgispy.toml or pyproject.toml [tool.asgispy] found)'}")
    print(f"user:    {user}{'' if user.is_file() else ' (none)'}")
    if not saved.filters:
        print('no saved filters: add a [filters] table, as in slow = "duration:>500ms"')
        return 0
    print()
    width = max(len(name) for name in saved.filters) + 1
    bad = 0
    for name, entry in saved.filters.items():
        try:
            saved.resolve(name)
            verdict = ""
        except FilterError as exc:
            bad += 1
            verdict = f"\n{'':{width + 2}}✖ {exc.message}"
        about = f"  ({entry.description})" if entry.description else ""
        print(f"@{name:<{width}} {entry.expr}{about}\n{'':{width + 2}}from {entry.source}{verdict}")
    for what, why in saved.hidden:
        print(f"hidden: {what}: {why}")
    if bad:
        print(f"\n{bad} saved filter{'s' if bad != 1 else ''} cannot be used", file=sys.stderr)
    return 1 if bad else 0
