"""Outgoing calls made with httpx, sync and async: ``Client.send`` and ``AsyncClient.send``
(every request of a client goes through them, whatever its transport), wrapped while installed.

The response body is kept when ``send`` read it (the default); a streamed response
(``client.stream(...)``) is recorded with its status and headers, and its size if declared,
and is never read by asgispy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgispy.inside.calls import Call, calling

__all__ = ["install"]


def _request_body(request: Any) -> bytes | None:
    try:
        return bytes(request.content)
    except Exception:  # a streamed request body: not read here
        return None


def _response_body(response: Any) -> bytes | None:
    try:
        return bytes(response.content)
    except Exception:  # streamed and not read yet
        return None


def _begin(request: Any) -> Call | None:
    try:
        call = calling("httpx", str(request.method), str(request.url))
        if call is not None:
            call.request(request.headers.raw, _request_body(request))
        return call
    except Exception:
        return None


def _end(call: Call, response: Any = None, exc: BaseException | None = None) -> None:
    try:
        if response is not None:
            call.response(response.status_code, response.headers.raw, _response_body(response))
        if exc is not None:
            call.failed(exc)
        call.done()
    except Exception:
        pass  # recording must never change what the app's call did


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
            _end(call, exc=exc)
            raise
        _end(call, response)
        return response

    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(request)
        if call is None:
            return await async_send(self, request, *args, **kwargs)
        try:
            response = await async_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _end(call, exc=exc)
            raise
        _end(call, response)
        return response

    send.__wrapped__ = sync_send  # type: ignore[attr-defined]
    asend.__wrapped__ = async_send  # type: ignore[attr-defined]
    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]

    def remove() -> None:
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]

    return remove
