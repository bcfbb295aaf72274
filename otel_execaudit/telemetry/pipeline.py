"""Telemetry set-up: a tracer and a logger whose export can never hold up, crash, or outlive the application.

One call builds it, reading the standard ``OTEL_*`` variables; explicit arguments win::

    >>> from otel_execaudit.telemetry.pipeline import build_telemetry
    >>> telemetry = build_telemetry(service_name="billing-agent", exporter="none")
    >>> with telemetry.tracer.start_as_current_span("invoke_workflow refund"):
    ...     pass
    >>> telemetry.shutdown()

Events (one OpenTelemetry log record each) go through a private LoggerProvider next to the
tracer provider, exporting where the spans go unless told otherwise::

    >>> telemetry = build_telemetry(exporter="none")
    >>> telemetry.emit_event("execaudit.action.terminal", {"execaudit.outcome": "succeeded"})
    >>> telemetry.shutdown()

Export happens on the batch processors' worker threads through a ``FailSafeSpanExporter`` and a
``FailSafeLogExporter``; flush, shutdown and interpreter exit share one deadline for both signals
(telemetry is never on the critical path). The application's global TracerProvider is never
replaced unless ``set_global=True``, and its global LoggerProvider never is.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry import context as otel_context
from opentelemetry._logs import NoOpLogger, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_execaudit.errors import ConfigurationError
from otel_execaudit.telemetry.exporters import build_log_exporter, build_span_exporter, choose_log_exporter
from otel_execaudit.telemetry.exporting import (
    BoundedBatchLogRecordProcessor,
    BoundedBatchSpanProcessor,
    ExportStats,
    FailSafeLogExporter,
    FailSafeSpanExporter,
    LogExportStats,
    LogRecordExporter,
    run_bounded,
)
from otel_execaudit.telemetry.logs import get_logger

__all__ = [
    "ExportStats",
    "FailSafeLogExporter",
    "FailSafeSpanExporter",
    "LogExportStats",
    "Telemetry",
    "build_telemetry",
    "emit_event",
]

TRACER_NAME = "otel_execaudit"
LOGGER_NAME = TRACER_NAME  # one instrumentation scope for both signals
EXIT_RESERVE_SECONDS = 0.2
# Besides the record's EventName field: collectors and backends on OTLP before 1.5 drop that field.
EVENT_NAME_ATTRIBUTE = "event.name"

_log = get_logger()
_NO_STATS = ExportStats(spans_exported=0, spans_failed=0, export_errors=0, last_error=None)
_NO_LOG_STATS = LogExportStats(records_exported=0, records_failed=0, export_errors=0, last_error=None)


class Telemetry:
    """The tracer and logger this package records with, and the bounded way to flush and stop them.

    Built by :func:`build_telemetry`; not meant to be constructed directly.

    - ``tracer_provider``: the provider in use, the application's own or a private one of ours.
    - ``tracer``: the ``otel_execaudit`` tracer from it.
    - ``logger_provider``: our private SDK LoggerProvider, or None when events go nowhere.
    - ``logger``: the ``otel_execaudit`` OpenTelemetry logger (a no-op one without a provider);
      :meth:`emit_event` is the fail-safe way to use it.
    - ``enabled``: False when ``OTEL_SDK_DISABLED=true`` (the tracer is then a no-op) or the
      exporter is "none" (spans still get real ids, for the ledger, but nothing leaves).
    - ``stats``: what our span exporter did so far, as an :class:`ExportStats`.
    - ``log_stats``: what our log exporter did so far, as a :class:`LogExportStats`.

    Example::

        >>> telemetry = build_telemetry(exporter="none")
        >>> telemetry.enabled, telemetry.stats.export_errors
        (False, 0)
        >>> telemetry.force_flush(timeout=0.5)
        True
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider,
        enabled: bool,
        deadline: float,
        processor: BoundedBatchSpanProcessor | None = None,
        owns_provider: bool = False,
        logger_provider: SdkLoggerProvider | None = None,
        log_processor: BoundedBatchLogRecordProcessor | None = None,
    ):
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer(TRACER_NAME)
        self.logger_provider = logger_provider
        self.logger: _logs.Logger = (
            logger_provider.get_logger(LOGGER_NAME) if logger_provider is not None else NoOpLogger(LOGGER_NAME)
        )
        self.enabled = enabled
        self.deadline = deadline
        self._processor = processor
        self._owns_provider = owns_provider
        self._log_processor = log_processor
        self._events = _EventEmitter(self.logger)
        self._shutdown_lock = threading.Lock()
        self._is_shut_down = False
        # Our own hook, bounded by the deadline, instead of the SDKs' unbounded ones; the
        # LoggerProvider shuts down in it too, under the same deadline.
        atexit.register(self._shutdown_at_exit)

    @property
    def stats(self) -> ExportStats:
        """Counters of our span exporter; all zero when we export nothing ourselves."""
        return self._processor.exporter.stats if self._processor is not None else _NO_STATS

    @property
    def log_stats(self) -> LogExportStats:
        """Counters of our log exporter; all zero when we export no events.

        Example::

            >>> build_telemetry(exporter="none").log_stats.records_failed
            0
        """
        return self._log_processor.exporter.stats if self._log_processor is not None else _NO_LOG_STATS

    def emit_event(self, name: str, attributes: Mapping[str, Any], body: Any = None) -> None:
        """Emit one event: a log record named ``name`` (EventName and ``event.name``), with
        ``attributes``, severity INFO, the time now and the current span's trace and span ids.

        Never raises and never waits on export; a failure is logged once per streak and the
        event dropped. After :meth:`shutdown` it does nothing.

        Example::

            >>> from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
            >>> memory = InMemoryLogRecordExporter()
            >>> telemetry = build_telemetry(exporter="none", log_exporter=memory)
            >>> with telemetry.tracer.start_as_current_span("execute_tool refund"):
            ...     telemetry.emit_event("execaudit.action.terminal", {"execaudit.outcome": "succeeded"})
            >>> telemetry.force_flush(timeout=1.0)
            True
            >>> [(record.log_record.event_name, record.log_record.attributes["execaudit.outcome"])
            ...  for record in memory.get_finished_logs()]
            [('execaudit.action.terminal', 'succeeded')]
            >>> telemetry.shutdown()
        """
        if not self._is_shut_down:
            self._events.emit(name, attributes, body)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export what is queued; wait at most ``timeout`` (default: the deadline). Never raises.

        Flushes our span processor, or, when we added none, the application's provider; and
        our events, side by side within the same ``timeout``. Returns True when both finished
        in time (an export that failed is counted in ``stats`` or ``log_stats``).

        Example::

            >>> build_telemetry(exporter="none").force_flush(timeout=1.0)
            True
        """
        budget = self.deadline if timeout is None else max(timeout, 0.0)
        if self._is_shut_down:
            return False
        spans_flushed, logs_flushed = self._alongside_logs(self._flush_spans, self._flush_logs, budget)
        return spans_flushed is True and logs_flushed is True

    def _flush_spans(self, budget: float) -> bool:
        if self._processor is not None:
            return self._processor.force_flush(timeout_millis=int(budget * 1000))
        flush = getattr(self.tracer_provider, "force_flush", None)
        if flush is None:
            return True
        finished, result = run_bounded(lambda: flush(int(budget * 1000)), budget, "provider-flush")
        return finished and result is True

    def _flush_logs(self, budget: float) -> bool:
        if self._log_processor is None:
            return True
        return self._log_processor.force_flush(timeout_millis=int(budget * 1000))

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and stop our export within ``timeout`` (default: the deadline). Idempotent.

        An application's own provider is left running; only the processor we added to it stops.
        Spans and events shut down side by side within the same ``timeout``.

        Example::

            >>> telemetry = build_telemetry(exporter="none")
            >>> telemetry.shutdown(); telemetry.shutdown()
        """
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        budget = self.deadline if timeout is None else max(timeout, 0.0)
        atexit.unregister(self._shutdown_at_exit)
        self._alongside_logs(self._shutdown_spans, self._shutdown_logs, budget)

    def _shutdown_spans(self, budget: float) -> None:
        started = time.monotonic()
        try:
            if self._processor is not None:
                # The batch processor flushes its queue as part of its own shutdown.
                self._processor.shutdown(timeout=budget)
            if self._owns_provider:
                remaining = budget - (time.monotonic() - started)
                run_bounded(self.tracer_provider.shutdown, remaining, "provider-shutdown")
        except Exception as error:  # noqa: BLE001 - shutdown must never raise into the caller
            _log.warning("telemetry shutdown failed", error=f"{type(error).__name__}: {error}")

    def _shutdown_logs(self, budget: float) -> None:
        started = time.monotonic()
        try:
            if self._log_processor is not None:
                self._log_processor.shutdown(timeout=budget)
            if self.logger_provider is not None:
                remaining = budget - (time.monotonic() - started)
                run_bounded(self.logger_provider.shutdown, remaining, "logger-provider-shutdown")
        except Exception as error:  # noqa: BLE001 - shutdown must never raise into the caller
            _log.warning("telemetry shutdown failed", error=f"{type(error).__name__}: {error}")

    def _alongside_logs(
        self, span_part: Callable[[float], Any], log_part: Callable[[float], Any], budget: float
    ) -> tuple[Any, Any]:
        """Run ``span_part`` here and ``log_part`` in a daemon thread, both within ``budget``.

        Side by side rather than one after the other: both signals usually go to one collector,
        so a slow one would otherwise leave the second signal no time, and the two together
        must still keep to the one deadline. Returns both results (None for a part cut short).
        """
        if self._log_processor is None:
            # Nothing of ours can be slow on the log side: no thread needed.
            return span_part(budget), log_part(budget)
        started = time.monotonic()
        outcome: list[Any] = []
        logs = threading.Thread(
            target=lambda: outcome.append(log_part(budget)), name="otel_execaudit-logs", daemon=True
        )
        logs.start()
        span_result = span_part(budget)
        logs.join(max(budget - (time.monotonic() - started), 0.0))
        return span_result, outcome[0] if outcome else None

    def _shutdown_at_exit(self) -> None:
        # The interpreter still has to finalise after our hook; keep a slice of the deadline for it.
        self.shutdown(timeout=self.deadline - min(EXIT_RESERVE_SECONDS, self.deadline / 10))


class _EventEmitter:
    """Emits events on one logger; a failure streak is reported once, as export failures are."""

    def __init__(self, logger: _logs.Logger):
        self.logger = logger
        self._failing = False

    def emit(self, name: str, attributes: Mapping[str, Any], body: Any) -> None:
        try:
            record_attributes = dict(attributes)
            record_attributes[EVENT_NAME_ATTRIBUTE] = name
            self.logger.emit(
                timestamp=time.time_ns(),
                # Explicit, so that the record carries the span current at the call, whatever
                # the logger implementation defaults to.
                context=otel_context.get_current(),
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=body,
                attributes=record_attributes,
                event_name=name,
            )
        except Exception as error:  # noqa: BLE001 - an event must never break an execution
            if not self._failing:
                self._failing = True
                _log.warning("telemetry event dropped", event_name=str(name),
                             error=f"{type(error).__name__}: {error}")
            return
        self._failing = False


_global_events: _EventEmitter | None = None


def emit_event(telemetry: Telemetry | None, name: str, attributes: Mapping[str, Any], body: Any = None) -> None:
    """Emit one event through ``telemetry``, or, when it is None (the runtime nobody configured),
    through the application's global LoggerProvider: a no-op unless the application set one up,
    as spans of that runtime go to its global TracerProvider. Never raises.

    Example::

        >>> emit_event(None, "execaudit.action.terminal", {"execaudit.outcome": "failed"})
        >>> telemetry = build_telemetry(exporter="none")
        >>> emit_event(telemetry, "execaudit.action.terminal", {"execaudit.outcome": "failed"})
        >>> telemetry.shutdown()
    """
    global _global_events
    if telemetry is not None:
        telemetry.emit_event(name, attributes, body)
        return
    if _global_events is None:
        try:
            # A proxy until the application sets its provider, then the provider's logger.
            _global_events = _EventEmitter(_logs.get_logger(LOGGER_NAME))
        except Exception as error:  # noqa: BLE001 - a broken global provider must not break us
            _log.warning("telemetry event dropped", event_name=str(name), error=f"{type(error).__name__}: {error}")
            return
    _global_events.emit(name, attributes, body)


def build_telemetry(
    *,
    service_name: str | None = None,
    exporter: str | SpanExporter | None = None,
    protocol: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    set_global: bool = False,
    deadline: float = 2.0,
    max_span_events: int | None = None,
    log_exporter: LogRecordExporter | None = None,
) -> Telemetry:
    """Build the tracer, the event logger and their fail-safe export; read ``OTEL_*`` for whatever
    is not given.

    ``exporter`` is "otlp", "console", "none" or a SpanExporter (default: ``OTEL_TRACES_EXPORTER``,
    else "otlp"). ``protocol`` is "grpc" or "http/protobuf" (default: the OTLP protocol
    variables, else "grpc"). An ``endpoint`` is a base URL for both protocols, as in
    ``OTEL_EXPORTER_OTLP_ENDPOINT``: "/v1/traces" is added for HTTP when it has no path.
    With ``tracer_provider`` (the application's own), spans go through it and our processor is
    added only if ``exporter`` is given and the provider is an SDK one. ``deadline`` bounds
    flush, shutdown and the wait at interpreter exit together, for spans and events alike.

    Events (log records) get a private LoggerProvider with the tracer provider's Resource; the
    global one is never set. They are exported by ``log_exporter`` (a LogRecordExporter) when
    given; else as an explicit ``exporter`` name says; else as ``OTEL_LOGS_EXPORTER`` says
    ("otlp", "console" or "none") when set; else where the spans go: OTLP with the same protocol, endpoint ("/v1/logs" for HTTP, also in
    place of a "/v1/traces" path), headers and timeout rules (the ``OTEL_EXPORTER_OTLP_LOGS_*``
    variables first), or the console. A SpanExporter instance says nothing about logs: events
    are then dropped. With the application's ``tracer_provider`` and neither ``exporter`` nor
    ``log_exporter``, the logger is a no-op.

    Raises ConfigurationError for a setting that cannot work (unknown exporter or protocol),
    before anything is added to the application's provider.

    Example::

        >>> telemetry = build_telemetry(service_name="deploy-bot", exporter="console", deadline=1.0)
        >>> telemetry.enabled
        True
        >>> telemetry.shutdown()
    """
    if deadline <= 0:
        raise ConfigurationError(f"deadline must be a positive number of seconds, not {deadline!r}")
    if _is_true(os.environ.get("OTEL_SDK_DISABLED")):
        return Telemetry(tracer_provider=trace.NoOpTracerProvider(), enabled=False, deadline=deadline)

    if tracer_provider is not None:
        # The application's provider exports as the application set it up, unless we are handed
        # an exporter to add; so the environment's exporter is not built for it.
        span_exporter = None
        if exporter is not None:
            span_exporter = build_span_exporter(exporter, protocol, endpoint, headers, deadline, service_name)
        events = None
        if exporter is not None or log_exporter is not None:
            inner_log_exporter = build_log_exporter(
                choose_log_exporter(exporter, exporter, log_exporter), protocol, endpoint, headers,
                deadline)
            resource = getattr(tracer_provider, "resource", None)
            if not isinstance(resource, Resource):
                resource = _resource(service_name)
            events = _log_pipeline(inner_log_exporter, resource, deadline)
        processor = None
        if span_exporter is not None:
            if isinstance(tracer_provider, SdkTracerProvider):
                processor = _processor(span_exporter, deadline)
                tracer_provider.add_span_processor(processor)
            else:
                _log.warning(
                    "tracer_provider is not an SDK TracerProvider; the exporter was not added",
                    provider=type(tracer_provider).__name__,
                )
        if set_global:
            _set_global(tracer_provider)
        logger_provider, log_processor = events if events is not None else (None, None)
        return Telemetry(
            tracer_provider=tracer_provider,
            enabled=exporter is None or span_exporter is not None,
            deadline=deadline,
            processor=processor,
            logger_provider=logger_provider,
            log_processor=log_processor,
        )

    chosen = exporter if exporter is not None else os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    span_exporter = build_span_exporter(chosen, protocol, endpoint, headers, deadline, service_name)
    inner_log_exporter = build_log_exporter(
        choose_log_exporter(exporter, chosen, log_exporter), protocol, endpoint, headers, deadline)
    provider = SdkTracerProvider(
        resource=_resource(service_name),
        span_limits=SpanLimits(max_events=max_span_events) if max_span_events is not None else None,
        # The SDK's own exit hook waits up to 30 s on the worker; ours is bounded.
        shutdown_on_exit=False,
    )
    processor = None
    if span_exporter is not None:
        processor = _processor(span_exporter, deadline)
        provider.add_span_processor(processor)
    logger_provider, log_processor = _log_pipeline(inner_log_exporter, provider.resource, deadline)
    if set_global:
        _set_global(provider)
    return Telemetry(
        tracer_provider=provider,
        enabled=span_exporter is not None,
        deadline=deadline,
        processor=processor,
        owns_provider=True,
        logger_provider=logger_provider,
        log_processor=log_processor,
    )


def _resource(service_name: str | None) -> Resource:
    return Resource.create({SERVICE_NAME: service_name} if service_name else {})


def _log_pipeline(
    inner: LogRecordExporter | None, resource: Resource, deadline: float
) -> tuple[SdkLoggerProvider, BoundedBatchLogRecordProcessor | None]:
    """A private LoggerProvider; without an exporter it has no processor and records are dropped."""
    # The SDK's own exit hook waits on the worker without a bound; ours is bounded.
    logger_provider = SdkLoggerProvider(resource=resource, shutdown_on_exit=False)
    if inner is None:
        return logger_provider, None
    log_processor = BoundedBatchLogRecordProcessor(FailSafeLogExporter(inner, timeout=deadline), deadline=deadline)
    logger_provider.add_log_record_processor(log_processor)
    return logger_provider, log_processor


def _processor(span_exporter: SpanExporter, deadline: float) -> BoundedBatchSpanProcessor:
    return BoundedBatchSpanProcessor(FailSafeSpanExporter(span_exporter, timeout=deadline), deadline=deadline)


def _set_global(provider: trace.TracerProvider) -> None:
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        # The API allows one global provider per process; say so rather than pretend.
        _log.warning("a global TracerProvider was already set; it was not replaced")


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"
