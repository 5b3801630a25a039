"""Saving a filter under a name in the project's file, without touching the rest of the file.

There is no TOML writer that keeps a file's comments and layout, so the file is edited as text:
one ``name = "filter"`` line goes right under the ``[filters]`` header (``[tool.asgispy.filters]``
in pyproject.toml), or a new table is appended. The edited text is then read back, and written
only if it holds exactly what the file held plus the new entry; anything else (a ``filters``
table spelt inline, a header inside a multi-line string) is refused with what to add by hand.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from asgispy.filter.grammar import FilterError
from asgispy.filter.saved import NAME, parse_with_saved, project_file, read_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = ["save_filter"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def save_filter(name: str, expr: str, cwd: Path | None = None) -> Path:
    """Add ``name = expr`` to the project's saved filters (a new asgispy.toml in ``cwd`` when the
    project has no file); the file written. FilterError says why not."""
    expr = expr.strip()
    if not NAME.match(name):
        raise FilterError(f"{name!r}: a name is letters, digits, '_', '-' and '.' (it follows @ in a filter)")
    if not expr:
        raise FilterError("there is no filter to save")
    parse_with_saved(expr, cwd)  # a filter that does not parse is not saved
    here = (cwd or Path.cwd()).resolve()
    found = project_file(here)
    path, pyproject = (
        (found[0], found[0].name == "pyproject.toml") if found else (here / "asgispy.toml", False)
    )
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before = read_toml(path) if path.exists() else {}
    table = before.get("tool", {}).get("asgispy", {}) if pyproject else before
    if not isinstance(table.get("filters", {}), dict):
        raise FilterError(f"{path}: filters is not a table; add @{name} by hand")
    if name in (table.get("filters") or {}):
        raise FilterError(f"@{name} is already in {path}; choose another name or edit the file")
    header = "[tool.asgispy.filters]" if pyproject else "[filters]"
    key = name if _BARE_KEY.match(name) else json.dumps(name)
    line = f"{key} = {json.dumps(expr, ensure_ascii=False)}\n"
    after = _with_line(text, header, line)
    expected = copy.deepcopy(before)
    place = expected.setdefault("tool", {}).setdefault("asgispy", {}) if pyproject else expected
    place.setdefault("filters", {})[name] = expr
    if _loads(after) != expected:
        raise FilterError(
            f"cannot add @{name} to {path} without changing the rest of it; "
            f"add {line.strip()} to its {header} by hand"
        )
    _write(path, after)
    return path


def _with_line(text: str, header: str, line: str) -> str:
    """``line`` right under ``header``'s line, or ``header`` and ``line`` appended."""
    words = r"[ \t]*\.[ \t]*".join(map(re.escape, header.strip("[]").split(".")))
    match = re.search(rf"^[ \t]*\[[ \t]*{words}[ \t]*\][ \t]*(#.*)?$", text, re.M)
    if match is not None:
        head, rest = text[: match.end()], text[match.end() :].removeprefix("\n")
        return f"{head}\n{line}{rest}"
    if text and not text.endswith("\n"):
        text += "\n"
    gap = "\n" if text else ""
    return f"{text}{gap}{header}\n{line}"


def _loads(text: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    return data


def _write(path: Path, text: str) -> None:
    """Replace the file at once (never half written), keeping its permissions."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
