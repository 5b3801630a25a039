"""Outgoing calls made with requests: ``Session.send``, which every request of the library goes
through (``requests.get`` too), wrapped while installed. A response asked for with
``stream=True`` is not read by asgispy: its status, headers and declared size are recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgispy.inside.calls import begin, end, patch

__all__ = ["install"]


def _body(request: Any) -> bytes | None:
    body = request.body
    return body.encode() if isinstance(body, str) else body


def install() -> Callable[[], None] | None:
    try:
        import requests
    except ImportError:
        return None
    original = requests.Session.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        call = begin(
            "requests",
            lambda: (str(request.method), str(request.url), request.headers.items(), lambda: _body(request)),
        )
        if call is None:
            return original(self, request, **kwargs)
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            end(call, exc=exc)
            raise
        body = None if kwargs.get("stream") else response.content
        end(call, response.status_code, response.headers.items(), body)
        return response

    return patch(requests.Session, "send", send)
