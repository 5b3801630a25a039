"""Installing and removing the hooks, shared by every Spy of the process.

Each kind is installed once, when the first Spy asks for it, and removed when the last one that
asked closes, so two Spies (two apps, or a test's) never patch a client twice or leave a patch
behind. A kind whose library is not installed (aiohttp, requests, SQLAlchemy) is skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

__all__ = ["Installed", "install"]

Remove = Callable[[], None]

_lock = threading.Lock()
_users: dict[str, int] = {}
_removers: dict[str, list[Remove]] = {}


def _installers(kind: str, level: int) -> list[Callable[[], Remove | None]]:
    if kind == "logging":
        from asgispy.inside import logs

        return [lambda: logs.install(level)]
    if kind == "http":
        from asgispy.inside import aiohttp_calls, httpx_calls, requests_calls

        return [httpx_calls.install, requests_calls.install, aiohttp_calls.install]
    from asgispy.inside import sql

    return [sql.install]


class Installed:
    """The hooks one Spy asked for; :meth:`remove` gives them back (once)."""

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        self._removed = False

    def remove(self) -> None:
        with _lock:
            if self._removed:
                return
            self._removed = True
            for kind in self.kinds:
                _users[kind] -= 1
                if _users[kind] == 0:
                    for remover in reversed(_removers.pop(kind, [])):
                        remover()


def install(kinds: Iterable[str], level: int = 20) -> Installed:
    """Install the hooks of ``kinds`` (those not installed yet); the logging handler's level is
    the lowest any Spy asked for."""
    installed = Installed(kinds)
    with _lock:
        for kind in installed.kinds:
            _users[kind] = _users.get(kind, 0) + 1
            if _users[kind] == 1:
                removers = [r for make in _installers(kind, level) if (r := make()) is not None]
                _removers[kind] = removers
            elif kind == "logging":
                from asgispy.inside import logs

                logs.lower_level(level)
    return installed
