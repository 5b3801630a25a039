"""OpenTelemetry traces of recorded connections, sent over OTLP/HTTP (the ``otlp`` extra).

Teams whose apps run on many hosts already look at traces in an OpenTelemetry Collector,
Jaeger or Grafana Tempo; this puts what asgispy recorded there too. Each connection becomes one
span that follows the HTTP semantic conventions, with its recorded start and end; each ASGI
message becomes an event on it, at the time it happened. docs/otlp.md has the whole mapping.

Two ways in:

- :func:`send_session` sends recorded connections (a saved session) in batches and returns how
  many spans the endpoint took (``asgispy export SESSION --otlp URL``);
- :class:`OtlpForwarder` follows a live :class:`~asgispy.store.store.Store` and sends each
  connection once it ends, batched, within a memory bound (``asgispy record --otlp URL``).

:mod:`asgispy.exports.otlp_spans` maps each connection to a plain :class:`SpanPlan` without the
OpenTelemetry SDK (secrets masked there); :mod:`asgispy.exports.otlp_sdk`, imported only when
something is sent, turns plans into SDK spans. So ``import asgispy`` never loads OpenTelemetry,
and a missing extra is reported as :class:`~asgispy.exports.otlp_endpoint.OtlpMissing` (with the
pip command) only by the function that needed it. The URL, headers and errors both ways share
are in :mod:`asgispy.exports.otlp_endpoint`; the forwarder's warnings, in
:mod:`asgispy.exports.otlp_health`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from asgispy.codec.redact import DEFAULT_REDACT, Redactor
from asgispy.exports.otlp_endpoint import (
    DEFAULT_TIMEOUT,
    OtlpError,
    explain,
    load_sdk,
    traces_url,
    unreachable,
)
from asgispy.exports.otlp_health import EndpointHealth
from asgispy.exports.otlp_inside import with_inside
from asgispy.exports.otlp_spans import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_MAX_EVENTS,
    span_plan,
)
from asgispy.model.connection import Connection
from asgispy.model.session import ProducerInfo

if TYPE_CHECKING:
    from asgispy.exports.otlp_sdk import Pipeline
    from asgispy.store.store import Change, Store

__all__ = ["OtlpForwarder", "send_session"]

logger = logging.getLogger("asgispy")


# Sending a session -----------------------------------------------------------------------------


def send_session(
    connections: Iterable[Connection],
    url: str,
    *,
    producers: Mapping[str, ProducerInfo] | None = None,
    bodies: bool = False,
    body_limit: int = DEFAULT_BODY_LIMIT,
    headers: Mapping[str, str] | None = None,
    service_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    compression: str = "gzip",
    batch_size: int = 512,
    max_events: int = DEFAULT_MAX_EVENTS,
    redact: Iterable[str] = DEFAULT_REDACT,
) -> int:
    """Send each connection as a span to the OTLP/HTTP endpoint at ``url``; returns how many it took.

    ``producers`` (a session's) name the resources: ``service.name`` is ``service_name``, else
    ``$OTEL_SERVICE_NAME``, else the recording app's name, else "asgispy". ``headers`` go with
    every request (authentication). A URL where nothing listens fails at once; then spans go
    ``batch_size`` at a time, and the first batch the endpoint does not take (refused, or no
    answer within ``timeout`` seconds, the SDK's retries included) stops it with
    :class:`OtlpError` (its ``sent`` says what got through). :class:`OtlpMissing` without the extra;
    ValueError for a URL that is not http(s).
    """
    endpoint = traces_url(url)
    sdk = load_sdk()
    connections = list(connections)
    if not connections:
        return 0
    down = unreachable(endpoint, min(timeout, 5.0))
    if down is not None:
        raise OtlpError(f"cannot send spans to {endpoint}: {explain(down, endpoint)}")
    redactor = Redactor(redact)
    pipeline: Pipeline = sdk.Pipeline(
        endpoint,
        headers=dict(headers or {}),
        timeout=timeout,
        compression=compression,
        service_name=service_name,
        max_events=max_events,
        body_limit=body_limit,
    )
    sent = 0
    try:
        for conn in connections:
            plan = span_plan(
                conn, bodies=bodies, body_limit=body_limit, max_events=max_events, redactor=redactor
            )
            plan = with_inside(plan, conn, redactor)
            pipeline.emit(plan, producers.get(conn.producer) if producers else None)
            if pipeline.collected >= batch_size:
                sent += _flush(pipeline, endpoint, sent)
        if pipeline.collected:
            sent += _flush(pipeline, endpoint, sent)
    finally:
        pipeline.close(1.0)
    return sent


def _flush(pipeline: Pipeline, endpoint: str, sent: int) -> int:
    count, reason = pipeline.flush()
    if reason is not None:
        raise OtlpError(f"cannot send spans to {endpoint}: {explain(reason, endpoint)}", sent)
    return count


# Forwarding live -------------------------------------------------------------------------------


class OtlpForwarder:
    """Sends each connection of a live store to an OTLP/HTTP endpoint once it ends.

    ::

        forwarder = OtlpForwarder(store, "http://localhost:4318", bodies=False)
        ...                        # the collector feeds the store
        print(forwarder.close())   # "otlp: sent 120 spans to http://localhost:4318/v1/traces"

    It subscribes to ``store``; the store's callback (on the collector's event loop) only queues
    the ended connection, so the loop never waits for the network. A thread of its own builds
    the spans and hands them to the SDK's ``BatchSpanProcessor``, which sends them in batches
    of ``batch_size`` at least every ``delay`` seconds, each export bounded by ``timeout``.

    Memory is bounded: at most ``max_queue`` connections wait or are in flight, and their spans
    hold at most about ``max_bytes``; past that, newly ended connections are dropped and
    counted, never waited for. When the endpoint is down or refuses the spans, one warning says
    so (and one more when it answers again): through ``warn`` when given, else the "asgispy"
    logger. The store, and so the session file, loses nothing either way.

    ``sent`` and ``dropped`` count spans. ``close(timeout)`` stops following the store, sends
    what is queued within ``timeout`` seconds (dropping the rest), and returns a one-line
    summary. Call it once the collector has stopped, so that connections still open then
    (cut off) and the lifespan shutdown are sent too. The other options are
    :func:`send_session`'s. Raises :class:`OtlpMissing` without the extra, ValueError for a bad URL.
    """

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        bodies: bool = False,
        body_limit: int = DEFAULT_BODY_LIMIT,
        headers: Mapping[str, str] | None = None,
        service_name: str | None = None,
        timeout: float = 5.0,
        compression: str = "gzip",
        max_queue: int = 1024,
        max_bytes: int = 32 * 1024 * 1024,
        batch_size: int = 256,
        delay: float = 1.0,
        max_events: int = DEFAULT_MAX_EVENTS,
        redact: Iterable[str] = DEFAULT_REDACT,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.url = traces_url(url)
        sdk = load_sdk()
        self.store = store
        self.bodies = bodies
        self.body_limit = body_limit
        self.max_events = max_events
        self.max_queue = max(max_queue, 1)
        self.max_bytes = max_bytes
        self._redactor = Redactor(redact)
        self._health = EndpointHealth(self.url, warn)
        self.sent = 0
        self.dropped = 0
        self._offered = 0
        self.last_error: str | None = None
        self._pending: collections.deque[Connection] = collections.deque()
        self._held = 0  # connections waiting or in flight
        self._held_bytes = 0  # weight of the spans in flight
        self._weights: dict[int, int] = {}
        self._seen: dict[str, None] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._summary: str | None = None
        self._pipeline: Pipeline = sdk.Pipeline(
            self.url,
            headers=dict(headers or {}),
            timeout=timeout,
            compression=compression,
            service_name=service_name,
            max_events=max_events,
            body_limit=body_limit,
            batch=(self.max_queue, max(min(batch_size, self.max_queue), 1), delay),
            report=self._exported,
        )
        self._worker = threading.Thread(target=self._work, name="asgispy-otlp", daemon=True)
        self._worker.start()
        self._unsubscribe = store.subscribe(self._on_change)

    # The store's side (the collector's event loop): queue, never wait -------------------------

    def _on_change(self, change: Change) -> None:
        conn = change.connection
        if change.kind != "close" or conn is None or conn.outcome == "open":
            return
        try:
            self._offer(conn)
        except Exception:  # never let a view break the collector
            logger.debug("otlp: could not queue %s", conn.id, exc_info=True)

    def _offer(self, conn: Connection) -> None:
        seen = self._seen
        if conn.id in seen:
            return  # sent again after a producer reconnected
        seen[conn.id] = None
        if len(seen) > 100_000:
            del seen[next(iter(seen))]
        with self._cond:
            if self._closing:
                return
            self._offered += 1
            if self._held >= self.max_queue:
                self.dropped += 1
                self._health.queue_full(self.sent)
                return
            self._held += 1
            self._pending.append(conn)
            self._cond.notify_all()

    # The worker: spans built off the event loop, within the byte budget ------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending or time.monotonic() > self._deadline:
                    return
                conn = self._pending.popleft()
            try:
                self._send(conn)
            except Exception:
                logger.debug("otlp: could not make a span of %s", conn.id, exc_info=True)
                with self._cond:
                    self._held -= 1
                    self.dropped += 1

    def _send(self, conn: Connection) -> None:
        plan = span_plan(
            conn,
            bodies=self.bodies,
            body_limit=self.body_limit,
            max_events=self.max_events,
            redactor=self._redactor,
        )
        plan = with_inside(plan, conn, self._redactor)
        with self._cond:
            # Wait for room while spans are in flight (a slow or absent endpoint); meanwhile new
            # connections find the queue full and are dropped, so memory stays bounded.
            while self._held_bytes and self._held_bytes + plan.weight > self.max_bytes:
                if time.monotonic() > self._deadline:
                    raise TimeoutError("closed before there was room")
                self._cond.wait(0.1)
            self._held_bytes += plan.weight
        state = self.store.producers.get(conn.producer)

        def started(span_id: int) -> None:
            self._weights[span_id] = plan.weight

        try:
            self._pipeline.emit(plan, state.info if state is not None else None, started)
        except BaseException:
            with self._cond:
                self._held_bytes -= plan.weight
            raise

    # The exporter's side (the SDK's batch thread) ---------------------------------------------

    def _exported(self, span_ids: list[int], ok: bool, reason: str | None) -> None:
        count = len(span_ids)
        weight = sum(self._weights.pop(i, 0) for i in span_ids)
        with self._cond:
            if self._summary is not None:
                # A batch the SDK gave up on while shutting down, after close() counted it as
                # dropped: the summary already said so, and the counts must agree with it.
                return
            self._held -= count
            self._held_bytes -= weight
            if ok:
                self.sent += count
            else:
                self.dropped += count
                self.last_error = reason
            message = self._health.exported(ok, count, reason)
            self._cond.notify_all()
        if message is not None:
            self._health.say(message)

    # Closing ----------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Connections ended but not yet sent (waiting, or in a batch on its way)."""
        return self._held

    def close(self, timeout: float = 5.0) -> str:
        """Stop following the store, send what is queued within ``timeout`` seconds, and return
        the one-line summary (the same on every later call)."""
        if self._summary is not None:
            return self._summary
        self._unsubscribe()
        started = time.monotonic()
        with self._cond:
            self._closing = True
            self._deadline = started + timeout
            self._cond.notify_all()
        self._worker.join(max(self._deadline - time.monotonic(), 0.0))
        in_time = self._pipeline.close(max(self._deadline - time.monotonic(), 0.05))
        with self._cond:
            if not in_time and self.last_error is None:
                self.last_error = f"no answer within {timeout:g} s of closing"
            self.dropped = self._offered - self.sent  # dropped, failed, or left at the deadline
            self._summary = self.summary()
        return self._summary

    def summary(self) -> str:
        """``otlp: sent 118 spans to URL, 2 dropped (connection refused)``."""
        text = f"otlp: sent {self.sent} span{'s' if self.sent != 1 else ''} to {self.url}"
        if self.dropped:
            why = f" ({self.last_error})" if self.last_error else ""
            text += f", {self.dropped} dropped{why}"
        return text

    def __enter__(self) -> OtlpForwarder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
