"""The OpenTelemetry SDK side of :mod:`asgispy.exports.otlp`: plans made spans, and sent.

Imported only when something is sent over OTLP (it needs the ``otlp`` extra). A
:class:`Pipeline` turns each :class:`~asgispy.exports.otlp_spans.SpanPlan` into an SDK span with its
recorded times, on tracer providers of its own (one per recording process, whose resource
names it), never the global one: an app's own tracing is left alone. Spans go out through the
OTLP/HTTP protobuf exporter, wrapped to count what the endpoint took and to remember why it
did not take the rest, which the SDK only logs. While a pipeline runs, the SDK's own log lines
about failed exports go to debug: asgispy says it once, in its words.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from asgispy.exports.otlp_spans import SpanPlan, service_name_for
from asgispy.model.session import ProducerInfo
from asgispy.version import __version__

__all__ = ["Pipeline"]

logger = logging.getLogger("asgispy.otlp")

Report = Callable[[list[int], bool, str | None], None]

_COMPRESSION = {"gzip": Compression.Gzip, "deflate": Compression.Deflate, "none": Compression.NoCompression}
_KINDS = {"server": SpanKind.SERVER, "internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT}
_PROPAGATOR = TraceContextTextMapPropagator()
#: Recording processes with a resource of their own; past that, spans share a generic one.
_MAX_PROVIDERS = 64


class Pipeline:
    """Tracer providers, a span processor and the OTLP/HTTP exporter, for one endpoint.

    Without ``batch``, ended spans are collected and :meth:`flush` sends them, in the caller's
    thread (a saved session: exact counts, and a stop at the first failure). With ``batch``
    (queue size, batch size, delay in seconds), the SDK's ``BatchSpanProcessor`` sends them
    from its thread and ``report(span_ids, ok, reason)`` is told of each export.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str],
        timeout: float,
        compression: str,
        service_name: str | None,
        max_events: int,
        body_limit: int,
        batch: tuple[int, int, float] | None = None,
        report: Report | None = None,
    ) -> None:
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {', '.join(_COMPRESSION)}, not {compression!r}")
        self.url = url
        self.service_name = service_name
        self._closed = False
        self._failure = _Failure()
        self._report = report
        inner = OTLPSpanExporter(
            endpoint=url,
            headers=headers,
            timeout=timeout,
            compression=_COMPRESSION[compression],
            session=_recording_session(self._failure),
        )
        self.exporter = _CountingExporter(inner, self._failure, self._exported)
        _quiet_sdk(True)
        self._collected: list[ReadableSpan] = []
        #: span ids of the client spans under connections' spans, until exported
        self._children: set[int] = set()
        self._lock = threading.Lock()
        self._last: tuple[int, str | None] = (0, None)
        self.processor: SpanProcessor
        if batch is None:
            self.processor = _Collector(self._collected)
        else:
            queue, size, delay = batch
            self.processor = BatchSpanProcessor(
                self.exporter,
                max_queue_size=queue,
                schedule_delay_millis=delay * 1000,
                max_export_batch_size=size,
            )
        # Room for every event sent (plus the exception), attribute values bounded (a base64 body).
        self._limits = SpanLimits(
            max_events=2 * max_events + 8,  # the messages, then logs (and their exceptions)
            max_span_attributes=512,
            max_event_attributes=64,
            max_attribute_length=max(16384, body_limit * 4 // 3 + 8),
        )
        self._providers: dict[str, TracerProvider] = {}
        self._tracers: dict[str, Tracer] = {}

    # Making spans ---------------------------------------------------------------------------

    def tracer(self, producer: ProducerInfo | None) -> Tracer:
        """The tracer whose resource names ``producer`` (the process that recorded the connection)."""
        key = producer.tag if producer is not None else ""
        tracer = self._tracers.get(key)
        if tracer is not None:
            return tracer
        if len(self._tracers) >= _MAX_PROVIDERS:
            return self.tracer(None)
        attributes: dict[str, str | int] = {"service.name": service_name_for(producer, self.service_name)}
        if producer is not None:
            attributes["service.instance.id"] = producer.tag
            if producer.host:
                attributes["host.name"] = producer.host
            if producer.pid:
                attributes["process.pid"] = producer.pid
        provider = TracerProvider(
            sampler=ALWAYS_ON,  # what was recorded is sent, whatever the caller's sampling flag said
            resource=Resource.create(attributes),
            shutdown_on_exit=False,
            span_limits=self._limits,
        )
        provider.add_span_processor(self.processor)
        self._providers[key] = provider
        tracer = self._tracers[key] = provider.get_tracer("asgispy", __version__)
        return tracer

    def emit(
        self,
        plan: SpanPlan,
        producer: ProducerInfo | None,
        started: Callable[[int], None] | None = None,
    ) -> None:
        """Make the span of ``plan`` and end it, which hands it to the processor; ``started``
        is told its span id before that."""
        context = Context()  # never the caller's current span
        if plan.traceparent:
            carrier = {"traceparent": plan.traceparent}
            if plan.tracestate:
                carrier["tracestate"] = plan.tracestate
            context = _PROPAGATOR.extract(carrier, context=Context())
        tracer = self.tracer(producer)
        span = self._start(tracer, plan, context)
        if started is not None:
            started(span.get_span_context().span_id)
        inner = set_span_in_context(span, context)
        for child in plan.children:
            child_span = self._start(tracer, child, inner)
            # Counted as part of their connection's span, not as connections of their own.
            self._children.add(child_span.get_span_context().span_id)
            child_span.end(end_time=child.end)
        span.end(end_time=plan.end)

    @staticmethod
    def _start(tracer: Tracer, plan: SpanPlan, context: Context) -> Span:
        span = tracer.start_span(
            plan.name,
            context=context,
            kind=_KINDS[plan.kind],
            attributes=plan.attributes,
            start_time=plan.start,
            record_exception=False,
            set_status_on_exception=False,
        )
        for name, when, attributes in plan.events:
            span.add_event(name, attributes, timestamp=when)
        if plan.error is not None:
            span.set_status(Status(StatusCode.ERROR, plan.error or None))
        return span

    # Sending --------------------------------------------------------------------------------

    @property
    def collected(self) -> int:
        return len(self._collected)

    def flush(self) -> tuple[int, str | None]:
        """Send the collected spans in one request: (how many the endpoint took, why not, or None)."""
        batch = list(self._collected)
        self._collected.clear()
        self._last = (0, None)
        if batch:
            self.exporter.export(batch)
        return self._last

    def _exported(self, spans: Sequence[ReadableSpan], ok: bool, reason: str | None) -> None:
        ids = [span.context.span_id for span in spans if span.context is not None]
        with self._lock:
            children = self._children.intersection(ids)
            self._children.difference_update(children)
        ids = [i for i in ids if i not in children]  # a connection's span, its children aside
        self._last = (len(ids) if ok else 0, None if ok else reason or "the export failed")
        if self._report is not None:
            self._report(ids, ok, reason)

    def close(self, timeout: float) -> bool:
        """Send what the processor holds within ``timeout`` seconds, then let go of the endpoint;
        False when that took longer (what was left is not sent).

        The SDK's shutdown runs in a thread of its own so that this returns in time even while
        an export waits on an endpoint that does not answer; then retries are cut short.
        """
        if self._closed:
            return True
        self._closed = True
        done = threading.Thread(target=self.processor.shutdown, name="asgispy-otlp-close", daemon=True)
        done.start()
        done.join(timeout)
        if done.is_alive():
            self.exporter.abort()
            done.join(0.2)
        else:
            self.exporter.shutdown()
        if done.is_alive():
            return False  # (the SDK's lines stay quiet: that export may still end, late)
        _quiet_sdk(False)
        return True


class _Collector(SpanProcessor):
    """Keeps ended spans for :meth:`Pipeline.flush`."""

    def __init__(self, spans: list[ReadableSpan]) -> None:
        self.spans = spans

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class _Failure:
    """Why the last request failed, as the HTTP session saw it (the SDK keeps that to its log)."""

    def __init__(self) -> None:
        self.reason: str | None = None


class _CountingExporter(SpanExporter):
    """The OTLP exporter, telling ``report`` of each export's result and reason."""

    def __init__(
        self,
        inner: SpanExporter,
        failure: _Failure,
        report: Callable[[Sequence[ReadableSpan], bool, str | None], None],
    ) -> None:
        self._inner = inner
        self._failure = failure
        self._report = report
        self._aborted = False
        self._shut = False
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        reason: str | None
        if self._aborted:
            result, reason = SpanExportResult.FAILURE, "closed before the endpoint answered"
        else:
            self._failure.reason = None
            try:
                result = self._inner.export(spans)
            except Exception as exc:  # older exporters raise what newer ones return
                result = SpanExportResult.FAILURE
                self._failure.reason = self._failure.reason or _describe(exc)
            ok = result is SpanExportResult.SUCCESS
            reason = None if ok else self._failure.reason or "the export failed"
        try:
            self._report(spans, result is SpanExportResult.SUCCESS, reason)
        except Exception:
            logger.debug("otlp: reporting an export failed", exc_info=True)
        return result

    def abort(self) -> None:
        """Fail every later export at once, and cut the SDK's retries short."""
        self._aborted = True
        self.shutdown()

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _recording_session(failure: _Failure) -> Any:
    """A ``requests`` session for the exporter that notes why a request failed; None (the
    exporter's own) when requests cannot be imported."""
    try:
        requests = importlib.import_module("requests")
    except ImportError:
        return None
    session = requests.Session()
    request = session.request

    def recording_request(*args: Any, **kwargs: Any) -> Any:
        try:
            response = request(*args, **kwargs)
        except Exception as exc:
            failure.reason = _describe(exc)
            raise
        status = getattr(response, "status_code", 200)
        if status >= 400:
            failure.reason = f"it answered {status} {getattr(response, 'reason', '') or ''}".rstrip()
        return response

    session.request = recording_request
    return session


def _describe(exc: BaseException) -> str:
    """A short reason for a failed request: "connection refused", not urllib3's repr chain."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    timeout = False
    while queue:
        error = queue.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.strerror:
            return error.strerror[:1].lower() + error.strerror[1:]
        if "timeout" in type(error).__name__.lower():
            timeout = True
        for linked in (error.__cause__, error.__context__, getattr(error, "reason", None), *error.args):
            if isinstance(linked, BaseException):
                queue.append(linked)
    if timeout:
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"[:300]


# The SDK's own log lines ------------------------------------------------------------------------

_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
)
_quiet_lock = threading.Lock()
_quiet_users = 0


class _ToDebug(logging.Filter):
    """Turns the SDK's export errors into asgispy debug lines: asgispy reports them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger.debug("otlp sdk: %s", record.getMessage())
        return False


_FILTER = _ToDebug()


def _quiet_sdk(on: bool) -> None:
    global _quiet_users
    with _quiet_lock:
        _quiet_users += 1 if on else -1
        if (on and _quiet_users == 1) or (not on and _quiet_users == 0):
            for name in _SDK_LOGGERS:
                log = logging.getLogger(name)
                if on:
                    log.addFilter(_FILTER)
                else:
                    log.removeFilter(_FILTER)
