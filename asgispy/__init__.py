"""asgispy: see every ASGI scope and message your app receives and sends.

``from asgispy import Spy`` is all an app needs; it imports nothing of the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Connection", "Event", "Session", "SessionFileError", "Spy", "__version__", "load"]

if TYPE_CHECKING:
    from asgispy.capture.middleware import Spy
    from asgispy.capture.sessionfile import SessionFileError
    from asgispy.store.load import load
    from asgispy.store.model import Connection, Event, Session

_LAZY = {
    "Spy": "asgispy.capture.middleware",
    "load": "asgispy.store.load",
    "SessionFileError": "asgispy.capture.sessionfile",
    "Session": "asgispy.store.model",
    "Connection": "asgispy.store.model",
    "Event": "asgispy.store.model",
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
