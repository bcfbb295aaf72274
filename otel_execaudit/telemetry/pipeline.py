"""The telemetry pipeline: a tracer and a logger whose export can never hold up, crash, or
outlive the application (``build.build_telemetry`` makes one).

Export happens on the batch processors' worker threads through a ``FailSafeSpanExporter`` and a
``FailSafeLogExporter``; flush, shutdown and interpreter exit share one deadline for both signals
(telemetry is never on the critical path). Events (one OpenTelemetry log record each) go through
a private LoggerProvider next to the tracer provider.
"""
from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry import context as otel_context
from opentelemetry._logs import NoOpLogger, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider

from otel_execaudit.telemetry.exporting import (
    ExportStats,
    FailSafeLogExporter,
    FailSafeSpanExporter,
    LogExportStats,
    run_bounded,
)
from otel_execaudit.telemetry.logs import get_logger
from otel_execaudit.telemetry.processors import BoundedBatchLogRecordProcessor, BoundedBatchSpanProcessor

__all__ = [
    "ExportStats",
    "FailSafeLogExporter",
    "FailSafeSpanExporter",
    "LogExportStats",
    "Telemetry",
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

        >>> from otel_execaudit.telemetry.build import build_telemetry
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

            >>> from otel_execaudit.telemetry.build import build_telemetry
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
            >>> from otel_execaudit.telemetry.build import build_telemetry
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

            >>> from otel_execaudit.telemetry.build import build_telemetry
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

            >>> from otel_execaudit.telemetry.build import build_telemetry
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

        >>> from otel_execaudit.telemetry.build import build_telemetry
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
