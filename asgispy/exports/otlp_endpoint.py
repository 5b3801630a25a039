"""Where OTLP spans go, and what can go wrong there, before and while anything is sent.

The traces URL a user's ``--otlp`` means, the ``--otlp-header`` pairs, whether the ``otlp``
extra is installed (:class:`OtlpMissing`, with the pip command), the quick check that something
listens at the URL, and the errors and explanations that sending a session
(:func:`~asgispy.exports.otlp.send_session`) and the live forwarder both give. The command line
checks its options with these before it starts either, so they sit apart from both.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_TIMEOUT",
    "INSTALL_HINT",
    "OtlpError",
    "OtlpMissing",
    "check_installed",
    "explain",
    "load_sdk",
    "parse_headers",
    "traces_url",
    "unreachable",
]

INSTALL_HINT = "pip install 'asgispy[otlp]'"
#: Seconds one export (with the SDK's own retries) may take before it counts as failed.
DEFAULT_TIMEOUT = 10.0
TRACES_PATH = "/v1/traces"


class OtlpMissing(ImportError):
    """The ``otlp`` extra (the OpenTelemetry SDK and its OTLP/HTTP exporter) is not installed."""

    def __init__(self, missing: str = "") -> None:
        detail = f" ({missing})" if missing else ""
        super().__init__(f"sending to OpenTelemetry needs the otlp extra{detail}: {INSTALL_HINT}")


class OtlpError(RuntimeError):
    """The endpoint could not be reached, or did not accept the spans; ``sent`` got through."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


def check_installed() -> None:
    """Raise :class:`OtlpMissing` (which names the pip command) unless the extra is installed."""
    load_sdk()


def load_sdk() -> Any:
    """The SDK side, imported on first use; :class:`OtlpMissing` when the extra is absent."""
    try:
        from asgispy.exports import otlp_sdk
    except ImportError as exc:
        raise OtlpMissing(getattr(exc, "name", None) or str(exc)) from exc
    return otlp_sdk


def traces_url(url: str) -> str:
    """The OTLP/HTTP traces URL for what the user gave: a base URL (``http://host:4318``, or one
    ending in ``/``) gets ``v1/traces`` appended; any other path is taken as the full URL.

    Raises ValueError for anything that is not an http(s) URL with a host.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an OTLP/HTTP URL: give http://HOST:PORT (4318 is OTLP/HTTP's usual port)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    path = parts.path
    if not path or path.endswith("/"):
        path = path.rstrip("/") + TRACES_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_headers(items: Iterable[str]) -> dict[str, str]:
    """``["Authorization=Bearer x", "X-Scope-OrgID=a"]`` (``--otlp-header K=V``) as a dict.

    Raises ValueError for an item without ``=`` or with an empty name.
    """
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not NAME=VALUE")
        headers[name.strip()] = value.strip()
    return headers


def unreachable(endpoint: str, timeout: float) -> str | None:
    """Why nothing listens at ``endpoint`` (no such host, connection refused), or None.

    The SDK retries a refused connection for most of its timeout; a saved session is better
    told at once that the URL is wrong. Skipped when a proxy would carry the request.
    """
    import urllib.request

    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return reason[:1].lower() + reason[1:]
    return None


def explain(reason: str, endpoint: str) -> str:
    """``reason`` for a failed export, with a hint when the URL names OTLP/gRPC's port."""
    if urlsplit(endpoint).port == 4317:
        return f"{reason} (4317 is OTLP/gRPC's port; asgispy speaks OTLP/HTTP, usually on 4318)"
    return reason
