"""Repeated work inside one connection: the same SQL statement run again and again (the N+1
pattern), or the same endpoint of another service called again and again.

Statements are compared by their *shape* (:func:`statement_shape`): literals and placeholders
become ``?`` and a list of them one ``?``, so ``... WHERE id = 3`` and ``... WHERE id = 7``, as
an ORM sends them one per row, count as the same statement. Calls are compared by method and
URL without the query string, and with path segments that are numbers or UUIDs read as
``{id}``: ``GET /users/1``, ``GET /users/2?full=1`` are one endpoint called twice, which is the
same loop over HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from asgispy.model.connection import Connection
from asgispy.model.inside import OutgoingCall, Query

__all__ = [
    "CALLS_AT_LEAST",
    "QUERIES_AT_LEAST",
    "TIMES",
    "Repeat",
    "call_target",
    "repeats",
    "statement_shape",
]

TIMES = "\u00d7"  # the multiplication sign, as in "x40"
#: A statement shape run this many times in one connection is flagged (N+1).
QUERIES_AT_LEAST = 5
#: An endpoint called this many times in one connection is flagged.
CALLS_AT_LEAST = 3

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^']|'')*'|E'(?:[^'\\]|\\.|'')*')
    | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
    | (?P<param>%\(\w+\)s|%s|\?|\$\d+|(?<!:):\w+)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<word>[A-Za-z_][\w$]*)
    | (?P<op>::|<>|!=|<=|>=|\|\||.)
    """,
    re.VERBOSE | re.DOTALL,
)
#: Words shown upper-case in a shape: keywords differ in case between hand-written SQL and an
#: ORM's; identifiers keep theirs.
_KEYWORDS = frozenset(
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "like",
        "ilike",
        "between",
        "insert",
        "into",
        "values",
        "update",
        "set",
        "delete",
        "join",
        "inner",
        "left",
        "right",
        "outer",
        "full",
        "cross",
        "on",
        "as",
        "order",
        "by",
        "group",
        "having",
        "limit",
        "offset",
        "distinct",
        "union",
        "all",
        "exists",
        "case",
        "when",
        "then",
        "else",
        "end",
        "returning",
        "with",
        "asc",
        "desc",
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "true",
        "false",
        "for",
        "share",
        "nowait",
        "skip",
        "locked",
        "conflict",
        "do",
        "nothing",
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
    ]
)
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_ROWS = re.compile(r"\(\?\)(?:\s*,\s*\(\?\))+")
_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def statement_shape(sql: str) -> str:
    """``select *  from book where id=3`` -> ``SELECT * FROM book WHERE id = ?``: the statement
    with its values taken out, so the runs of one statement with different values compare equal."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind in ("space", "comment"):
            continue
        if kind in ("string", "param", "number"):
            if (
                kind == "number"
                and tokens[-1:] == ["-"]
                and not _operand(tokens[-2] if len(tokens) > 1 else "(")
            ):
                tokens.pop()  # a negative number, not a subtraction
            tokens.append("?")
        elif kind == "word":
            tokens.append(text.upper() if text.lower() in _KEYWORDS else text)
        else:
            tokens.append(text)
    out: list[str] = []
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i else ""
        glued = (
            not out
            or token in (")", ",", ".", "::")
            or previous in ("(", ".", "::")
            or (
                token == "("
                and (previous in _FUNCTIONS or (previous not in _KEYWORD_CASE and _word(previous)))
            )
        )
        out.append(token if glued else " " + token)
    shape = "".join(out).rstrip(";").rstrip()
    shape = _LIST.sub("(?)", shape)
    return _ROWS.sub("(?)", shape)


_KEYWORD_CASE = frozenset(k.upper() for k in _KEYWORDS)
#: Keywords written like functions, ``COUNT(*)``
_FUNCTIONS = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX"})


def _operand(token: str) -> bool:
    return _word(token) or token in (")", "?")


def _word(token: str) -> bool:
    return token[:1].isalpha() or token[:1] in ("_", '"', "`")


def call_target(call: OutgoingCall) -> str:
    """``GET https://api.example/users/{id}``: the endpoint a call went to, as repeats compares them."""
    try:
        parts = urlsplit(call.url)
    except ValueError:
        return f"{call.method.upper()} {call.url}"
    path = "/".join("{id}" if _ID_SEGMENT.fullmatch(s) else s for s in parts.path.split("/"))
    where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    return f"{call.method.upper()} {where}{path or '/'}"


@dataclass(frozen=True)
class Repeat:
    """One piece of work done ``count`` times in a connection, taking ``total`` seconds in all."""

    #: ``"sql"`` (a statement shape) or ``"http"`` (an endpoint called)
    kind: str
    #: the statement's shape, or the call's ``METHOD URL`` (see :func:`call_target`)
    what: str
    count: int
    total: float
    #: when the first of them began (seconds from the connection's start)
    first: float

    def words(self) -> str:
        """``SELECT * FROM book WHERE id = ? (times sign)40, 120 ms in all — N+1?``."""
        total = f"{self.total * 1000:.0f} ms" if self.total >= 0.001 else f"{self.total * 1e6:.0f} µs"
        hint = " — N+1?" if self.kind == "sql" else " — one call per item?"
        return f"{self.what} {TIMES}{self.count}, {total} in all{hint}"


def repeats(
    conn: Connection, *, queries: int = QUERIES_AT_LEAST, calls: int = CALLS_AT_LEAST
) -> list[Repeat]:
    """The statement shapes run at least ``queries`` times and endpoints called at least
    ``calls`` times in ``conn``, most repeated first."""
    groups: dict[tuple[str, str], list[Query | OutgoingCall]] = {}
    for item in conn.inside:
        if isinstance(item, Query):
            groups.setdefault(("sql", statement_shape(item.statement)), []).append(item)
        elif isinstance(item, OutgoingCall):
            groups.setdefault(("http", call_target(item)), []).append(item)
    found = [
        Repeat(
            kind=kind,
            what=what,
            count=len(items),
            total=sum(i.duration or 0.0 for i in items),
            first=min(i.t for i in items),
        )
        for (kind, what), items in groups.items()
        if len(items) >= (queries if kind == "sql" else calls)
    ]
    found.sort(key=lambda r: (-r.count, r.first))
    return found
