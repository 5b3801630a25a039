"""The filter language of the dashboard's ``/``: typed text becomes a predicate over connections.

::

    items                      free text: method, path, query, route, status, type, endpoint,
                               request header values (case-insensitive substring)
    method:POST  status:>=400  status:4xx  status:200-299  path:/api/*  type:websocket
    route:/items/{id}  host:localhost  header:content-type=application/json  body:teapot
    duration:>100ms  size:>10k  error  cut  open  -path:/health  !type:lifespan
    ttfb:>200ms  gap:>1s  blocked:>50ms  waited:>1s  violation  rule:http.content-length
    status:5xx or error        groups of terms (all must match) joined by ``or`` / ``|``
    @slow                      a saved filter, as one term (with a ``saved`` resolver; see
                               :mod:`asgispy.filter.saved`)

:func:`parse` compiles the text once into a :class:`Filter`, a plain callable that is cheap
enough to run over every connection the store holds on each keystroke. Mistakes raise
:class:`FilterError` naming the offending token and where it is, so a view can show it as
the user types. docs/filters.md is the user's guide.

This module is the syntax: words, quotes, ``or``/``|`` and ``-``/``!``. What each field reads of
a connection and how its value compares is :mod:`asgispy.filter.fields`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from asgispy.filter.fields import FIELDS, KEYWORDS, BadValue, Predicate, free_text
from asgispy.model.connection import Connection

__all__ = ["Filter", "FilterError", "Resolver", "language", "parse"]

#: Turns a saved filter's name (``slow`` for ``@slow``) into its predicate, or raises FilterError.
Resolver = Callable[[str], Predicate]


class FilterError(ValueError):
    """A filter that cannot be understood; ``start``/``end`` locate the bad token in the text."""

    def __init__(self, message: str, start: int = 0, end: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = max(end, start)

    def __str__(self) -> str:
        return f"{self.message} (column {self.start + 1})"


# Tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str  # with quotes removed
    quoted: tuple[bool, ...]  # per character of ``text``: did it come from inside quotes?
    start: int
    end: int

    @property
    def raw(self) -> str:
        return self.text if not any(self.quoted) else repr(self.text)

    def unquoted(self, i: int, char: str) -> bool:
        return 0 <= i < len(self.text) and self.text[i] == char and not self.quoted[i]

    def word(self) -> str | None:
        """The token as a bare word (no quotes anywhere), lower-cased; None when quoted."""
        return None if any(self.quoted) else self.text.lower()


_OR = "|"


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char == _OR:
            tokens.append(_Token(_OR, (False,), i, i + 1))
            i += 1
            continue
        start = i
        chars: list[str] = []
        quoted: list[bool] = []
        while i < n and not text[i].isspace() and text[i] != _OR:
            if text[i] in "\"'":
                quote = text[i]
                close = text.find(quote, i + 1)
                if close < 0:
                    raise FilterError(f"unclosed quote {quote} in {text[start:]!r}", i, n)
                chars.extend(text[i + 1 : close])
                quoted.extend([True] * (close - i - 1))
                i = close + 1
            else:
                chars.append(text[i])
                quoted.append(False)
                i += 1
        word = "".join(chars)
        # A token that is only quotes ("") is an empty quoted text.
        tokens.append(_Token(word, tuple(quoted) or (True,), start, i))
    return tokens


# Parsing -------------------------------------------------------------------------------------


def _term(token: _Token, saved: Resolver | None) -> Predicate:
    negate = token.unquoted(0, "-") or token.unquoted(0, "!")
    if negate:
        if len(token.text) == 1:
            raise FilterError(
                f"{token.text} needs something to negate, as in -path:/health", token.start, token.end
            )
        token = _Token(token.text[1:], token.quoted[1:], token.start + 1, token.end)
    predicate = _saved_term(token, saved) if saved and token.unquoted(0, "@") else _positive_term(token)
    if negate:
        return lambda conn: not predicate(conn)
    return predicate


def _saved_term(token: _Token, saved: Resolver) -> Predicate:
    """``@name``: the whole saved filter as one term; its errors point at this token."""
    try:
        return saved(token.text[1:])
    except FilterError as error:
        raise FilterError(error.message, token.start, token.end) from None


def _positive_term(token: _Token) -> Predicate:
    colon = next((i for i, c in enumerate(token.text) if c == ":" and not token.quoted[i]), -1)
    if colon < 0:
        word = token.word()
        if word in KEYWORDS:
            return KEYWORDS[word][0]
        return free_text(token.text)
    name = token.text[:colon].lower()
    value = token.text[colon + 1 :]
    if not name:
        raise FilterError(
            f"{token.raw}: a field name goes before the ':' (as in path:/api)", token.start, token.end
        )
    entry = FIELDS.get(name)
    if entry is None:
        known = ", ".join(FIELDS)
        raise FilterError(
            f"unknown field {name!r} in {token.raw} (fields: {known}; quote text with a ':' to find it)",
            token.start,
            token.start + colon + 1,
        )
    if not value.strip():
        example = entry[1].split(": ", 1)[-1]
        raise FilterError(f"{name}: needs a value, as in {example}", token.start, token.end)
    try:
        return entry[0](value)
    except BadValue as error:
        raise FilterError(f"{token.raw}: expected {error.expected}", token.start, token.end) from None


def _all(predicates: list[Predicate]) -> Predicate:
    first, *rest = predicates
    if not rest:
        return first
    then = _all(rest)
    return lambda conn: first(conn) and then(conn)


def _any(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda conn: any(p(conn) for p in predicates)


def _everything(conn: Connection) -> bool:
    return True


class Filter:
    """A compiled filter: call it with a connection. The empty filter matches everything."""

    __slots__ = ("predicate", "text")

    def __init__(self, text: str, predicate: Predicate) -> None:
        self.text = text
        #: The compiled predicate itself; passing it around saves a call per connection.
        self.predicate = predicate

    def __call__(self, conn: Connection) -> bool:
        return self.predicate(conn)

    @property
    def matches_all(self) -> bool:
        return self.predicate is _everything

    def select(self, connections: Iterable[Connection]) -> list[Connection]:
        """The connections that match, in order."""
        return list(filter(self.predicate, connections))

    def __repr__(self) -> str:
        return f"<Filter {self.text!r}>"


def parse(text: str, saved: Resolver | None = None) -> Filter:
    """Compile ``text``; raises FilterError pointing at the first token it cannot understand.

    With ``saved``, a bare word starting with ``@`` names a saved filter; without, it is text.
    """
    groups: list[list[Predicate]] = [[]]
    last_or: _Token | None = None
    for token in _tokens(text):
        if (token.text == _OR and not token.quoted[0]) or token.word() == "or":
            if not groups[-1]:
                raise FilterError("'or' needs a filter before it", token.start, token.end)
            groups.append([])
            last_or = token
            continue
        groups[-1].append(_term(token, saved))
    if not groups[-1]:
        if last_or is not None:
            raise FilterError("'or' needs a filter after it", last_or.start, last_or.end)
        return Filter(text, _everything)
    return Filter(text, _any([_all(group) for group in groups]))


# Help ----------------------------------------------------------------------------------------


def language() -> str:
    """The filter language in one paragraph, made from the fields' and keywords' own
    descriptions, for help that cannot drift from what parses (an agent's tool description)."""
    fields = "; ".join(f"{name}: {text}" for name, (_, text) in FIELDS.items())
    words = "; ".join(f"{word}: {text}" for word, (_, text) in KEYWORDS.items())
    return (
        "space-separated terms that must all match; 'or' between alternatives; '-' before a term "
        f"negates it. Fields: {fields}. Keywords: {words}. Other words are searched in the method, "
        "path and query, route, endpoint, status, type and request header values. Empty: everything."
    )
