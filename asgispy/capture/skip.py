"""Which connections Spy leaves unrecorded: path globs and scope types (``Spy(skip=...)``)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from asgispy.types import Scope

__all__ = ["SCOPE_TYPES", "Skip"]

#: Words in ``skip`` that name a scope type rather than a path.
SCOPE_TYPES = frozenset({"http", "websocket", "lifespan"})


class Skip:
    """``"/health"``, ``"/metrics*"`` (globs on the path) and ``"lifespan"`` (a scope type).

    Falsy when empty, so Spy pays for no check at all unless asked to skip something.
    """

    def __init__(self, rules: Iterable[str] = ()) -> None:
        if isinstance(rules, (str, bytes)):
            raise TypeError(
                'skip takes a list of paths and scope types, not a single string: skip=["/health"]'
            )
        rules = list(rules)
        for rule in rules:
            if not isinstance(rule, str) or not rule:
                raise ValueError(f"skip rules are non-empty strings, not {rule!r}")
            if rule not in SCOPE_TYPES and not rule.startswith(("/", "*")):
                raise ValueError(
                    f"skip rule {rule!r} is neither a path (starting with / or *) "
                    f"nor a scope type ({', '.join(sorted(SCOPE_TYPES))})"
                )
        self.rules = tuple(rules)
        self.types = frozenset(r for r in rules if r in SCOPE_TYPES)
        paths = [r for r in rules if r not in SCOPE_TYPES]
        self._match = re.compile("|".join(fnmatch.translate(p) for p in paths)).match if paths else None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def matches(self, scope: Scope) -> bool:
        """Whether the connection of ``scope`` is to be left unrecorded."""
        if scope.get("type") in self.types:
            return True
        path = scope.get("path")
        return self._match is not None and type(path) is str and self._match(path) is not None

    def __repr__(self) -> str:
        return f"Skip({list(self.rules)!r})"
