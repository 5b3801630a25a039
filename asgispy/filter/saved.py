"""Saved filters: names for filters, kept in the project's file and the user's config.

::

    # asgispy.toml (or [tool.asgispy.filters] in pyproject.toml), and the user's
    # $XDG_CONFIG_HOME/asgispy/config.toml (default ~/.config/asgispy/config.toml)
    [filters]
    slow = "duration:>500ms"
    errors = "status:>=500 or error"

    [filters.slow-api]
    expr = "@slow path:/api/*"
    description = "slow calls to the API"

``@slow`` in any filter then stands for that filter as one term: ``@errors path:/api/*`` is
"(status:>=500 or error) and path:/api/*", which the language cannot spell without a name,
since it has no parentheses. The project's file is the first ``asgispy.toml``, or
``pyproject.toml`` with a ``[tool.asgispy]`` table, found walking up from the working
directory; its names win over the user's. Files are read when a filter first names one, so a
filter without ``@`` never touches them. docs/filters.md is the user's guide.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgispy.filter.fields import Predicate
from asgispy.filter.grammar import Filter, FilterError, _Token, _tokens, parse

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = [
    "SavedFilter",
    "SavedFilters",
    "load_saved",
    "parse_with_saved",
    "project_file",
    "spell_out",
    "user_file",
]

#: What may follow ``@``: a word, with ``-``, ``_`` and ``.`` inside it.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
#: The most alternatives a filter spelt out without names may have (see SavedFilters.spell_out).
MAX_ALTERNATIVES = 64

#: A filter as alternatives (or) of groups of terms (and), each term as it was written.
_Alternatives = list[list[str]]


@dataclass(frozen=True)
class SavedFilter:
    """One named filter and where it was read; ``problem`` says why it cannot be used."""

    name: str
    expr: str
    description: str
    source: str  # the file, and the table for pyproject.toml
    problem: str = ""


@dataclass
class SavedFilters:
    """The saved filters in effect (project over user), and the files they were read from."""

    filters: dict[str, SavedFilter] = field(default_factory=dict)
    #: every file looked at, in order of precedence
    sources: list[str] = field(default_factory=list)
    #: entries a file of higher precedence hid, or a file not read (pyproject.toml beside
    #: asgispy.toml), as (what, why)
    hidden: list[tuple[str, str]] = field(default_factory=list)
    _compiled: dict[str, Predicate] = field(default_factory=dict, repr=False)

    def resolve(self, name: str, _through: tuple[str, ...] = ()) -> Predicate:
        """The predicate of ``@name``; FilterError for an unknown name, a cycle or a bad filter."""
        if name in self._compiled:
            return self._compiled[name]
        if not name:
            raise FilterError("@ needs the name of a saved filter after it, as in @slow")
        if name in _through:
            chain = " -> ".join(f"@{n}" for n in (*_through[_through.index(name) :], name))
            raise FilterError(f"saved filters name each other in a circle: {chain}")
        saved = self.filters.get(name)
        if saved is None:
            raise FilterError(f"no saved filter @{name}; {self.known()}")
        where = f"saved filter @{name} (in {saved.source})"
        if saved.problem:
            raise FilterError(f"{where}: {saved.problem}")
        try:
            predicate = parse(saved.expr, lambda other: self.resolve(other, (*_through, name))).predicate
        except FilterError as exc:
            if exc.message.startswith("saved filter"):  # already says where it was
                raise
            raise FilterError(f"{where}: {exc.message} (column {exc.start + 1} of {saved.expr!r})") from None
        self._compiled[name] = predicate
        return predicate

    def known(self) -> str:
        """Which names there are, and where they were looked for: for "no such name" errors."""
        looked = ", ".join(self.sources) or "no file"
        if not self.filters:
            return f"there are no saved filters (looked in {looked})"
        names = ", ".join(f"@{n}" for n in sorted(self.filters))
        return f"saved filters: {names} (from {looked})"

    def parse(self, text: str) -> Filter:
        return parse(text, self.resolve)

    def spell_out(self, text: str) -> str:
        """``text`` with every ``@name`` written out, for a reader that knows no saved filters
        (the app's process, where breakpoints are matched). With no parentheses in the language,
        a name's alternatives are distributed over the terms beside it: ``@errors path:/api/*``
        becomes ``status:>=500 path:/api/* or error path:/api/*``; ``-@name`` is negated term
        by term. The meaning is the same; FilterError when it cannot be written (too long)."""
        self.parse(text)  # every problem, with its place in the text, first
        alternatives = self._alternatives(text)
        if not alternatives:
            raise FilterError(f"{text!r} matches nothing, which no filter without names can say")
        return " or ".join(" ".join(group) for group in alternatives)

    def _alternatives(self, text: str) -> _Alternatives:
        found: _Alternatives = []
        current: _Alternatives = [[]]
        for token in _tokens(text):
            if (token.text == "|" and not token.quoted[0]) or token.word() == "or":
                found.extend(current)
                current = [[]]
                continue
            raw = text[token.start : token.end]
            if _names_one(token):
                negate = not token.unquoted(0, "@")
                inner = self._alternatives(self.filters[token.text[1 + negate :]].expr)
                part = _negated(inner) if negate else inner
            else:
                part = [[raw]]
            current = [a + b for a in current for b in part]
            if len(current) > MAX_ALTERNATIVES:
                raise FilterError(f"{text!r} written out without names would be too long")
        found.extend(current)
        return found


def user_file(env: Mapping[str, str] | None = None) -> Path:
    """The user's config: ``$XDG_CONFIG_HOME/asgispy/config.toml``, else under ~/.config."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "asgispy" / "config.toml"


def project_file(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The project's file and its asgispy table, walking up from ``start`` (the working
    directory): the first ``asgispy.toml``, or ``pyproject.toml`` with ``[tool.asgispy]``."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        own = directory / "asgispy.toml"
        if own.is_file():
            return own, read_toml(own)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = read_toml(pyproject).get("tool", {})
            table = table.get("asgispy") if isinstance(table, dict) else None
            if isinstance(table, dict):
                return pyproject, table
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; FilterError names the file that cannot be read or is not TOML."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FilterError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FilterError(f"{path}: not valid TOML: {exc}") from exc
    return data


def _entries(table: object, source: str) -> list[SavedFilter]:
    """The ``filters`` table of one file, each entry checked (a bad one keeps its problem)."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise FilterError(f"{source}: 'filters' must be a table of name = \"filter\"")
    found = []
    for name, value in table.items():
        expr, description, problem = "", "", ""
        if isinstance(value, str):
            expr = value
        elif isinstance(value, dict):
            expr, description = value.get("expr", ""), value.get("description", "")
            unknown = sorted(set(value) - {"expr", "description"})
            if unknown:
                problem = f"unknown key {unknown[0]!r} (a saved filter has expr and description)"
            elif not isinstance(expr, str) or not expr.strip():
                problem, expr = 'needs expr = "a filter"', str(expr or "")
            elif not isinstance(description, str):
                problem, description = "description must be text", ""
        else:
            problem = f"must be a filter in quotes or a table with expr, not {value!r}"
        if not problem and not NAME.match(name):
            problem = "a name is letters, digits, '_', '-' and '.' (it follows @ in a filter)"
        found.append(SavedFilter(name, expr, description, source, problem))
    return found


def load_saved(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> SavedFilters:
    """Read the project's file and the user's config; FilterError names a file that cannot be read."""
    saved = SavedFilters()
    layers: list[list[SavedFilter]] = []
    project = project_file(cwd)
    if project is not None:
        path, table = project
        source = str(path) if path.name == "asgispy.toml" else f"{path} [tool.asgispy]"
        saved.sources.append(source)
        layers.append(_entries(table.get("filters"), source))
        beside = path.with_name("pyproject.toml")
        if path.name == "asgispy.toml" and _has_table(beside):
            saved.hidden.append((f"{beside} [tool.asgispy]", f"not read: {path.name} beside it comes first"))
    user = user_file(env)
    if user.is_file():
        saved.sources.append(str(user))
        layers.append(_entries(read_toml(user).get("filters"), str(user)))
    for layer in layers:
        for entry in layer:
            if entry.name in saved.filters:
                saved.hidden.append(
                    (f"@{entry.name} in {entry.source}", f"{saved.filters[entry.name].source} has it")
                )
            else:
                saved.filters[entry.name] = entry
    return saved


def _has_table(pyproject: Path) -> bool:
    """Does this pyproject.toml have a [tool.asgispy] table? (Unreadable: no; it is not used.)"""
    try:
        tool = read_toml(pyproject).get("tool", {}) if pyproject.is_file() else {}
    except FilterError:
        return False
    return isinstance(tool, dict) and isinstance(tool.get("asgispy"), dict)


def _negated(alternatives: _Alternatives) -> _Alternatives:
    """not (A and B or C) = (not A or not B) and not C, written back as alternatives."""
    result: _Alternatives = [[]]
    for group in alternatives:
        result = [[*a, _negate(term)] for a in result for term in group]
        if len(result) > MAX_ALTERNATIVES:
            raise FilterError("a negated saved filter written out without names would be too long")
    return result


def _names_one(token: _Token) -> bool:
    negate = token.unquoted(0, "-") or token.unquoted(0, "!")
    return token.unquoted(int(negate), "@")


def _negate(term: str) -> str:
    return term[1:] if term[:1] in ("-", "!") else f"-{term}"


def spell_out(text: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """``text`` without saved filters' names (:meth:`SavedFilters.spell_out`); files are read
    only when it names one."""
    if not any(_names_one(token) for token in _tokens(text)):
        return text
    return load_saved(cwd, env).spell_out(text)


def parse_with_saved(text: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Filter:
    """Compile ``text`` as :func:`~asgispy.filter.grammar.parse` does, with ``@name`` for the
    saved filters, read only when the text names one. Every problem is a FilterError."""
    loaded: list[SavedFilters] = []

    def resolve(name: str) -> Predicate:
        if not loaded:
            loaded.append(load_saved(cwd, env))
        return loaded[0].resolve(name)

    return parse(text, resolve)
