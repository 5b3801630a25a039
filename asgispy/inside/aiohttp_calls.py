"""Outgoing calls made with aiohttp's client: ``ClientSession._request``, the one path every
request method of a session takes (aiohttp has no process-wide hook; its tracing is per
session, which the app would have to set up). The response body is the app's to read, after
the call returns, so it is not recorded: status, headers and declared size are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgispy.inside.calls import calling

__all__ = ["install"]


def install() -> Callable[[], None] | None:
    try:
        import aiohttp
    except ImportError:
        return None
    original = aiohttp.ClientSession._request

    async def request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        try:
            call = calling("aiohttp", str(method).upper(), str(str_or_url))
            if call is not None:
                body = kwargs.get("data")
                headers = kwargs.get("headers") or {}
                call.request(
                    dict(headers).items(), bytes(body) if isinstance(body, (bytes, bytearray)) else None
                )
        except Exception:
            call = None
        if call is None:
            return await original(self, method, str_or_url, **kwargs)
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            call.done()
            raise
        try:
            call.entry["url"] = str(response.url)
            call.response(response.status, response.raw_headers, None)
            call.done()
        except Exception:
            pass  # recording must never change what the app's call did
        return response

    request.__wrapped__ = original  # type: ignore[attr-defined]
    aiohttp.ClientSession._request = request  # type: ignore[method-assign]

    def remove() -> None:
        aiohttp.ClientSession._request = original  # type: ignore[method-assign]

    return remove
