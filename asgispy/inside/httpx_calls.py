"""Outgoing calls made with httpx, sync and async: ``Client.send`` and ``AsyncClient.send``
(every request of a client goes through them, whatever its transport), wrapped while installed.

The response body is kept when ``send`` read it (the default); a streamed response
(``client.stream(...)``) is recorded with its status and headers, and its size if declared,
and is never read by asgispy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgispy.inside.calls import Call, begin, end, patch

__all__ = ["install"]


def _begin(request: Any) -> Call | None:
    return begin(
        "httpx",
        lambda: (str(request.method), str(request.url), request.headers.raw, lambda: bytes(request.content)),
    )


def _response_body(response: Any) -> bytes | None:
    try:
        return bytes(response.content)
    except Exception:  # streamed and not read yet
        return None


def install() -> Callable[[], None] | None:
    try:
        import httpx
    except ImportError:
        return None
    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(request)
        if call is None:
            return sync_send(self, request, *args, **kwargs)
        try:
            response = sync_send(self, request, *args, **kwargs)
        except BaseException as exc:
            end(call, exc=exc)
            raise
        end(call, response.status_code, response.headers.raw, _response_body(response))
        return response

    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(request)
        if call is None:
            return await async_send(self, request, *args, **kwargs)
        try:
            response = await async_send(self, request, *args, **kwargs)
        except BaseException as exc:
            end(call, exc=exc)
            raise
        end(call, response.status_code, response.headers.raw, _response_body(response))
        return response

    removers = [patch(httpx.Client, "send", send), patch(httpx.AsyncClient, "send", asend)]

    def remove() -> None:
        for remover in removers:
            remover()

    return remove
