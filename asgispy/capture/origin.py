"""Who recorded a connection: host, pid and app, under a short tag that is new after a fork.

Every connection id is ``<tag>-<seq>``, so connections from the workers of one server, or
from a process that forked after the app was built (gunicorn's ``--preload``), never clash.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Origin", "fork_generation", "new_origin"]

_generation = 0


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_generation() -> int:
    """A number that changes in a child process after each ``fork``."""
    return _generation


@dataclass(frozen=True)
class Origin:
    """The process (and app within it) that recorded some connections."""

    tag: str
    host: str
    pid: int
    app: str
    started: float

    def document(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "app": self.app, "started": self.started}


def new_origin(app: str) -> Origin:
    return Origin(
        tag=secrets.token_hex(3),
        host=socket.gethostname(),
        pid=os.getpid(),
        app=app,
        started=time.time(),
    )
