"""A record's parts as JSON documents, off the request path: scope, events, error, matched route.

Secrets are masked here, with the redactor the caller gives; values are made readable by
:mod:`asgispy.codec.jsonform`.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from asgispy.capture.snapshot import RecordedEvent
from asgispy.codec import jsonform
from asgispy.codec.redact import Redactor

__all__ = ["error_document", "event_document", "handler_document", "scope_document"]

#: Where Spy's own frames come from (its ``__call__`` and the receive/send wrappers in spy.py, the
#: layer taps here in capture/): a traceback the app raised is shown without them.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_CODE = (os.path.join(_PACKAGE_DIR, "capture") + os.sep, os.path.join(_PACKAGE_DIR, "spy.py"))


def scope_document(scope: dict[str, Any], redactor: Redactor) -> Any:
    return jsonform.encode(redactor.message(scope))


def event_document(event: RecordedEvent, redactor: Redactor) -> dict[str, Any]:
    direction, t, message, cut = event[:4]
    message_doc = jsonform.encode(redactor.message(message))
    doc: dict[str, Any] = {"direction": direction, "t": t, "message": message_doc}
    if cut:
        doc["cut"] = cut
    wait = event[4] if len(event) > 4 else None
    if wait is not None:
        doc["wait"] = wait
    return doc


def error_document(error: traceback.TracebackException | dict[str, str] | None) -> dict[str, str] | None:
    if error is None or isinstance(error, dict):
        return error
    name = getattr(error, "exc_type_str", None)  # Python 3.13+
    if name is None:
        exc_type = error.exc_type
        name = f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type is not None else "?"
    if name.startswith("builtins."):
        name = name[len("builtins.") :]
    # Spy's own frames (its __call__ and the receive/send wrappers) say nothing about the app.
    frames = [f for f in error.stack if not f.filename.startswith(_OWN_CODE)]
    if frames and len(frames) != len(error.stack):
        error.stack = traceback.StackSummary.from_list(frames)
    for frame in error.stack:
        frame.line  # noqa: B018 - reads the source line now that we are off the request path
    return {"type": name, "message": str(error), "traceback": "".join(error.format())}


def _attr(obj: Any, name: str) -> Any:
    # Route and endpoint objects belong to the app; a property of theirs may raise anything.
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _qualname(obj: Any) -> str | None:
    if obj is None:
        return None
    target = _attr(obj, "__func__") or obj
    module = _attr(target, "__module__")
    name = _attr(target, "__qualname__") or type(target).__qualname__
    return f"{module}.{name}" if isinstance(module, str) else str(name)


_handler_docs: dict[tuple[int, int], tuple[Any, Any, dict[str, Any] | None]] = {}


def handler_document(handler: tuple[Any, Any, Any] | None) -> dict[str, Any] | None:
    """Which route and endpoint the framework matched (Starlette and FastAPI put them in the scope).

    Never raises: what cannot be read of an odd route object is left out. Routes recur from
    one connection to the next, so the document of a route without parameters is remembered
    (by identity, a few thousand at most).
    """
    if handler is None:
        return None
    route, endpoint, params = handler
    if route is None and endpoint is None and not params:
        return None  # taken as it was, off the request path: the app matched nothing
    if params:
        return _handler_document(route, endpoint, params)
    key = (id(route), id(endpoint))
    known = _handler_docs.get(key)
    if known is not None and known[0] is route and known[1] is endpoint:
        return known[2]
    doc = _handler_document(route, endpoint, params)
    if len(_handler_docs) >= 4096:
        _handler_docs.clear()
    _handler_docs[key] = (route, endpoint, doc)
    return doc


def _handler_document(route: Any, endpoint: Any, params: Any) -> dict[str, Any] | None:
    doc: dict[str, Any] = {}
    path = _attr(route, "path")
    if isinstance(path, str):
        doc["route"] = path
    name = _attr(route, "name")
    if isinstance(name, str):
        doc["name"] = name
    try:
        methods = _attr(route, "methods")
        if methods:
            doc["methods"] = sorted(str(m) for m in methods)
    except Exception:
        pass
    if endpoint is None:
        endpoint = _attr(route, "endpoint")
    if endpoint is not None:
        doc["endpoint"] = _qualname(endpoint)
    if params:
        doc["path_params"] = jsonform.encode(params)
    return doc or None
