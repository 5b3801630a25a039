"""Outgoing calls made with aiohttp's client: ``ClientSession._request``, the one path every
request method of a session takes (aiohttp has no process-wide hook; its tracing is per
session, which the app would have to set up). The response body is the app's to read, after
the call returns, so it is not recorded: status, headers and declared size are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgispy.inside.calls import begin, end, patch

__all__ = ["install"]


def _body(kwargs: dict[str, Any]) -> bytes | None:
    body = kwargs.get("data")
    return bytes(body) if isinstance(body, (bytes, bytearray)) else None


def install() -> Callable[[], None] | None:
    try:
        import aiohttp
    except ImportError:
        return None
    original = aiohttp.ClientSession._request

    async def request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        call = begin(
            "aiohttp",
            lambda: (
                str(method).upper(),
                str(str_or_url),
                dict(kwargs.get("headers") or {}).items(),
                lambda: _body(kwargs),
            ),
        )
        if call is None:
            return await original(self, method, str_or_url, **kwargs)
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            end(call, exc=exc)
            raise
        end(call, response.status, response.raw_headers, None, url=str(response.url))
        return response

    return patch(aiohttp.ClientSession, "_request", request)
