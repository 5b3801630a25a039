"""Outgoing calls made with requests: ``Session.send``, which every request of the library goes
through (``requests.get`` too), wrapped while installed. A response asked for with
``stream=True`` is not read by asgispy: its status, headers and declared size are recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgispy.inside.calls import calling

__all__ = ["install"]


def install() -> Callable[[], None] | None:
    try:
        import requests
    except ImportError:
        return None
    original = requests.Session.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        try:
            call = calling("requests", str(request.method), str(request.url))
            if call is not None:
                body = request.body
                call.request(request.headers.items(), body.encode() if isinstance(body, str) else body)
        except Exception:
            call = None
        if call is None:
            return original(self, request, **kwargs)
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            call.done()
            raise
        try:
            body = None if kwargs.get("stream") else response.content
            call.response(response.status_code, response.headers.items(), body)
            call.done()
        except Exception:
            pass  # recording must never change what the app's call did
        return response

    send.__wrapped__ = original  # type: ignore[attr-defined]
    requests.Session.send = send  # type: ignore[method-assign]

    def remove() -> None:
        requests.Session.send = original  # type: ignore[method-assign]

    return remove
