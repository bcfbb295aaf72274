"""Fail-safe span and log export: nothing raises, nothing waits past its deadline, failures are counted.

The OTLP exporters retry with exponential backoff for up to their timeout (10 s by default) and
only notice a shutdown after the batch processor has joined its worker, so a dead collector can
hold a short script at exit for many seconds. Everything here exists to keep telemetry off the
critical path::

    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> exporter = FailSafeSpanExporter(InMemorySpanExporter(), timeout=2.0)
    >>> exporter.stats
    ExportStats(spans_exported=0, spans_failed=0, export_errors=0, last_error=None)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

try:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
except ImportError:  # SDKs before the Log -> LogRecord rename (after it the old names are deprecated)
    from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporter  # type: ignore[assignment]
    from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult  # type: ignore[assignment]

from otel_execaudit.telemetry.logs import get_logger

__all__ = [
    "ExportStats",
    "FailSafeLogExporter",
    "FailSafeSpanExporter",
    "LogExportStats",
    "LogRecordExporter",
    "run_bounded",
]

# The loggers that report every failed batch (and every retry) on their own. While one of our
# export threads is running, their records are replaced by one structlog event per failure streak.
NOISY_LOGGER_PREFIXES = ("opentelemetry.exporter", "opentelemetry.sdk")

_log = get_logger()
_export_thread = threading.local()


@dataclass(frozen=True)
class ExportStats:
    """What happened to the spans handed to an exporter so far.

    Example::

        >>> ExportStats(spans_exported=3, spans_failed=0, export_errors=0, last_error=None).spans_exported
        3
    """

    spans_exported: int
    spans_failed: int
    export_errors: int
    last_error: str | None


@dataclass(frozen=True)
class LogExportStats:
    """What happened to the log records handed to an exporter so far.

    Example::

        >>> LogExportStats(records_exported=0, records_failed=2, export_errors=1, last_error="refused").records_failed
        2
    """

    records_exported: int
    records_failed: int
    export_errors: int
    last_error: str | None


def run_bounded(function: Callable[[], Any], timeout: float, name: str) -> tuple[bool, Any]:
    """Call ``function`` in a daemon thread; wait at most ``timeout`` seconds.

    Returns ``(finished, result)``. An exception counts as finished with the exception as result,
    so that nothing escapes; a call still running after ``timeout`` is left behind in its daemon
    thread, which cannot hold the interpreter at exit.

    Example::

        >>> run_bounded(lambda: 42, timeout=1.0, name="example")
        (True, 42)
    """
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(function())
        except BaseException as error:  # noqa: BLE001 - a telemetry failure must not escape
            outcome.append(error)

    thread = threading.Thread(target=call, name=f"otel_execaudit-{name}", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        return False, None
    return True, outcome[0]


class _QuietWhileExporting(logging.Filter):
    """Drops SDK/exporter log records emitted from our own export threads, and nowhere else.

    The dropped messages are kept on the thread: they are the only place the OTLP exporters say
    why a batch failed, and become ``ExportStats.last_error``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        messages = getattr(_export_thread, "messages", None)
        if messages is None:
            return True
        if record.levelno >= logging.WARNING:
            try:
                messages.append(record.getMessage())
            except Exception:  # noqa: BLE001 - a malformed record must not break export
                pass
        return False


_quiet_filter = _QuietWhileExporting()
_quiet_users = 0
_quiet_lock = threading.Lock()


def _quiet_sdk_loggers(enable: bool) -> None:
    """Attach the filter to the SDK loggers that exist now; detach it when no exporter is left.

    Filters on a logger only see records created on that very logger, so the parents are not
    enough; the exporter modules are imported by the time an exporter is built, so their loggers
    exist. The application's own handlers and loggers are left alone.
    """
    global _quiet_users
    with _quiet_lock:
        _quiet_users += 1 if enable else -1
        if not enable and _quiet_users > 0:
            return
        names = [name for name in logging.root.manager.loggerDict if name.startswith(NOISY_LOGGER_PREFIXES)]
        for name in names:
            logger = logging.getLogger(name)
            if enable:
                logger.addFilter(_quiet_filter)  # a no-op when it is already there
            else:
                logger.removeFilter(_quiet_filter)


class _FailSafeExport:
    """What the span and log wrappers share: each call bounded by a timeout, failures counted
    and reported once per streak. Subclasses name what a failure drops and give ``export``
    the result type their processor expects.
    """

    _dropped = "spans"  # what the failure warning says is lost
    _counted = "spans"  # the prefix of the counter named when export recovers
    _stats_type: Callable[[int, int, int, str | None], Any] = ExportStats

    def __init__(self, inner: Any, *, timeout: float = 2.0):
        self.inner = inner
        self.timeout = timeout
        self._lock = threading.Lock()
        self._exported = 0
        self._failed = 0
        self._errors = 0
        self._last_error: str | None = None
        self._failing = False
        self._cutoff: float | None = None  # time.monotonic() after which no call may wait
        self._running: threading.Thread | None = None
        self._in_flight: list[Any] | None = None  # [item count, settled] of the running export
        self._is_shut_down = False
        _quiet_sdk_loggers(True)

    @property
    def stats(self) -> Any:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats_type(self._exported, self._failed, self._errors, self._last_error)

    def cut_off_at(self, cutoff: float) -> None:
        """From now on, no call waits beyond ``cutoff`` (a ``time.monotonic()`` value).

        Shutdown sets this so that the last batches cannot outlive the exit deadline.
        """
        self._cutoff = cutoff if self._cutoff is None else min(self._cutoff, cutoff)

    def _budget(self, timeout: float | None = None) -> float:
        budget = self.timeout if timeout is None else min(timeout, self.timeout)
        if self._cutoff is not None:
            budget = min(budget, self._cutoff - time.monotonic())
        return budget

    def _export_batch(self, batch: Sequence[Any], succeeded: Callable[[Any], bool]) -> bool:
        """Hand ``batch`` to the inner exporter within the budget; True when it was exported."""
        count = len(batch)
        budget = self._budget()
        if self._is_shut_down:
            return self._record_failure(count, "exporter is shut down")
        if budget <= 0:
            return self._record_failure(count, "export deadline passed")
        if self._running is not None and self._running.is_alive():
            return self._record_failure(count, "previous export still running past its timeout")

        outcome: list[Any] = []
        messages: list[str] = []

        def call() -> None:
            _export_thread.messages = messages
            try:
                outcome.append(self.inner.export(batch))
            except BaseException as error:  # noqa: BLE001 - exporter errors never reach user code
                outcome.append(error)

        thread = threading.Thread(target=call, name="otel_execaudit-export", daemon=True)
        thread.start()
        # Published only once started: shutdown takes "not alive" to mean "finished".
        in_flight = self._in_flight = [count, False]
        self._running = thread
        thread.join(budget)
        if not self._settle(in_flight):
            return False  # shutdown gave up on this batch and counted it
        if thread.is_alive():
            said = f" ({messages[0]})" if messages else ""
            return self._record_failure(count, f"export did not finish within {budget:.2f} s{said}")
        result = outcome[0]
        if isinstance(result, BaseException):
            return self._record_failure(count, f"{type(result).__name__}: {result}")
        if not succeeded(result):
            said = f": {messages[0]}" if messages else ""
            return self._record_failure(count, f"exporter returned {getattr(result, 'name', result)}{said}")
        self._record_success(count)
        return True

    def _settle(self, batch: list[Any]) -> bool:
        """Claim the right to count a batch once: by its export call, or by a shutdown that
        gave up waiting for it."""
        with self._lock:
            settled, batch[1] = batch[1], True
            return not settled

    def _record_success(self, count: int) -> None:
        with self._lock:
            self._exported += count
            recovered, self._failing = self._failing, False
            failed = self._failed
        if recovered:
            _log.info("telemetry export recovered", **{f"{self._counted}_failed_total": failed})

    def _record_failure(self, count: int, reason: str) -> bool:
        with self._lock:
            self._failed += count
            self._errors += 1
            self._last_error = reason
            first_of_streak, self._failing = not self._failing, True
        if first_of_streak:
            # Once per streak: a dead collector must not flood the application's logs.
            _log.warning(
                f"telemetry export failing; {self._dropped} are dropped, executions are unaffected",
                exporter=type(self.inner).__name__,
                error=reason,
            )
        return False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        finished, result = run_bounded(self.inner.force_flush, self._budget(timeout_millis / 1000), "flush")
        return finished and result is True

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Shut the inner exporter down within the timeout (and the cut-off); never raises."""
        if self._is_shut_down:
            return
        self._is_shut_down = True
        budget = self._budget(None if timeout_millis is None else timeout_millis / 1000)
        # Even with no time left, ask: the OTLP exporters' shutdown wakes a retry backoff and
        # closes the channel, which is what lets an abandoned export thread finish.
        run_bounded(self.inner.shutdown, max(budget, 0.05), "exporter-shutdown")
        batch = self._in_flight
        if batch is not None and self._running is not None and self._running.is_alive() \
                and self._settle(batch):
            # The export thread outlives us: its items are dropped, and they count as such.
            self._record_failure(batch[0], "export abandoned at shutdown")
        _quiet_sdk_loggers(False)


class FailSafeSpanExporter(_FailSafeExport, SpanExporter):
    """Wraps any SpanExporter: export/force_flush/shutdown never raise, failures are counted,
    and each call is bounded by a timeout.

    A call that overruns is abandoned in its daemon thread and reported as a failure; while it
    is still running, later batches fail at once instead of piling up threads.

    Example::

        >>> from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        >>> exporter = FailSafeSpanExporter(ConsoleSpanExporter(), timeout=2.0)
        >>> exporter.shutdown()
    """

    def __init__(self, inner: SpanExporter, *, timeout: float = 2.0):
        super().__init__(inner, timeout=timeout)

    @property
    def stats(self) -> ExportStats:
        """A snapshot of the counters."""
        return super().stats

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        exported = self._export_batch(spans, lambda result: result is SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if exported else SpanExportResult.FAILURE


class FailSafeLogExporter(_FailSafeExport, LogRecordExporter):
    """Wraps any LogRecordExporter as :class:`FailSafeSpanExporter` wraps a span exporter, and
    counts in a :class:`LogExportStats`.

    Example::

        >>> from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
        >>> exporter = FailSafeLogExporter(InMemoryLogRecordExporter(), timeout=2.0)
        >>> exporter.export([]).name, exporter.stats.records_failed
        ('SUCCESS', 0)
        >>> exporter.shutdown()
    """

    _dropped = "log records"
    _counted = "records"
    _stats_type = LogExportStats

    def __init__(self, inner: LogRecordExporter, *, timeout: float = 2.0):
        super().__init__(inner, timeout=timeout)

    @property
    def stats(self) -> LogExportStats:
        """A snapshot of the counters."""
        return super().stats

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        # By name: an exporter written against the deprecated LogExportResult returns a
        # member of that other enum on success.
        exported = self._export_batch(batch, lambda result: getattr(result, "name", None) == "SUCCESS")
        return LogRecordExportResult.SUCCESS if exported else LogRecordExportResult.FAILURE
