"""asgispy: see every ASGI scope and message your app receives and sends.

``from asgispy import Spy`` is all an app needs; it imports nothing of the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgispy.version import __version__

__all__ = ["Connection", "Event", "Session", "SessionFileError", "Spy", "__version__", "load"]

if TYPE_CHECKING:
    from asgispy.codec.sessionfile import SessionFileError
    from asgispy.model.connection import Connection
    from asgispy.model.event import Event
    from asgispy.model.session import Session
    from asgispy.spy import Spy
    from asgispy.store.load import load

_LAZY = {
    "Spy": "asgispy.spy",
    "load": "asgispy.store.load",
    "SessionFileError": "asgispy.codec.sessionfile",
    "Session": "asgispy.model.session",
    "Connection": "asgispy.model.connection",
    "Event": "asgispy.model.event",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import asgispy` costs next to nothing in a production app.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asgispy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
