"""A real OTLP/HTTP traces endpoint on 127.0.0.1, for tests: what a Collector receives, decoded.

::

    with OtlpEndpoint() as endpoint:
        send_session(connections, endpoint.base_url)
        spans = endpoint.wait_for_spans(len(connections))

It is a small HTTP server in a thread: it takes ``POST /v1/traces``, undoes gzip or deflate
as the Content-Encoding says, decodes the body as an ``ExportTraceServiceRequest`` with the
OpenTelemetry proto package, and keeps every span with its resource and scope, attributes
made plain Python values. ``status`` makes it refuse requests (401, 503...). Bind it without
listening (``listening=False``) and connections are refused, as by an endpoint that is down,
until :meth:`listen` is called: the same port comes up.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["OtlpEndpoint", "SpanEvent", "SpanRecord", "plain", "wait_until"]

TIMEOUT = 10.0
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def plain(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it holds."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, which) if which else None


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: plain(kv.value) for kv in items if isinstance(kv, KeyValue)}


@dataclass
class SpanEvent:
    name: str
    time: int
    attributes: dict[str, Any]


@dataclass
class SpanRecord:
    """One received span, its ids as hex like W3C trace context writes them."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    start: int
    end: int
    attributes: dict[str, Any]
    events: list[SpanEvent]
    status: str
    status_message: str
    resource: dict[str, Any]
    scope: str
    dropped_events: int = 0
    dropped_attributes: int = 0

    @property
    def id(self) -> str:
        return str(self.attributes.get("asgispy.connection.id"))


@dataclass
class Request:
    """One export request as it arrived: its headers, its raw (decompressed) body, its spans."""

    headers: dict[str, str]
    body: bytes
    spans: list[SpanRecord] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length)
        encoding = (self.headers.get("content-encoding") or "").lower()
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        if self.path != "/v1/traces":
            self._answer(404, b"not found", "text/plain")
            return
        if endpoint.status != 200:
            self._answer(endpoint.status, b"refused by the test", "text/plain")
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(data)
        received = Request({k.lower(): v for k, v in self.headers.items()}, data, list(_spans(request)))
        with endpoint.lock:
            endpoint.requests.append(received)
        self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: OtlpEndpoint


def _spans(request: ExportTraceServiceRequest) -> Any:
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield SpanRecord(
                    name=span.name,
                    kind=KINDS[span.kind],
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    trace_state=span.trace_state,
                    start=span.start_time_unix_nano,
                    end=span.end_time_unix_nano,
                    attributes=attributes(span.attributes),
                    events=[
                        SpanEvent(e.name, e.time_unix_nano, attributes(e.attributes)) for e in span.events
                    ],
                    status=STATUS[span.status.code],
                    status_message=span.status.message,
                    resource=resource,
                    scope=scope_spans.scope.name,
                    dropped_events=span.dropped_events_count,
                    dropped_attributes=span.dropped_attributes_count,
                )


class OtlpEndpoint:
    """The endpoint; a context manager that serves for the duration of the ``with`` block."""

    def __init__(self, status: int = 200, listening: bool = True) -> None:
        self.status = status
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.server.endpoint = self
        self.server.server_bind()
        self.port: int = self.server.server_address[1]
        self.thread: threading.Thread | None = None
        if listening:
            self.listen()

    def listen(self) -> None:
        """Start answering on the port (until now, connections to it are refused)."""
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans(self) -> list[SpanRecord]:
        with self.lock:
            return [span for request in self.requests for span in request.spans]

    def wait_for_spans(self, count: int, timeout: float = TIMEOUT) -> list[SpanRecord]:
        wait_until(lambda: len(self.spans) >= count, timeout, lambda: f"{len(self.spans)} of {count} spans")
        return self.spans

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(TIMEOUT)
        self.server.server_close()

    def __enter__(self) -> OtlpEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(predicate: Any, timeout: float = TIMEOUT, what: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting ({what() if what else ''})")
        time.sleep(0.01)


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port that refuses connections (bound, not listening) while the socket lives."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]
