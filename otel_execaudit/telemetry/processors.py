"""Bounded batch processors: the SDK's batch processors, whose shutdown and flush return within
a deadline whoever calls them, exporting through the fail-safe exporters of ``exporting``.
"""

from __future__ import annotations

import time

from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_execaudit.telemetry.exporting import (
    FailSafeLogExporter,
    FailSafeSpanExporter,
    run_bounded,
)

__all__ = ["BoundedBatchLogRecordProcessor", "BoundedBatchSpanProcessor"]


class _BoundedBatching:
    """Shutdown and flush within ``deadline`` seconds, whoever calls them, for either SDK
    batch processor.

    The SDK's shutdown joins the export worker for up to 30 s, and its flush exports on the
    caller's thread whatever the timeout; the application's own provider (and its atexit hook)
    may call either, so the bound lives here rather than only in our hook.
    """

    def __init__(self, exporter: FailSafeSpanExporter | FailSafeLogExporter, *, deadline: float):
        super().__init__(exporter)  # type: ignore[call-arg] - the SDK processor comes next
        self.exporter = exporter
        self.deadline = deadline
        self._shutdown_started = False

    def shutdown(self, timeout: float | None = None) -> None:
        if self._shutdown_started:
            return
        self._shutdown_started = True
        budget = self.deadline if timeout is None else min(timeout, self.deadline)
        # Keep a slice of the budget for shutting the exporter down, so the whole stays in it.
        margin = min(0.1, budget / 10)
        cutoff = time.monotonic() + budget - margin
        self.exporter.cut_off_at(cutoff)
        finished, _ = run_bounded(super().shutdown, budget - margin, "processor-shutdown")  # type: ignore[misc]
        if not finished:
            # The worker is stuck in a last export: shutting the exporter down wakes it.
            self.exporter.shutdown(timeout_millis=margin * 1000)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        budget = self.deadline if timeout_millis is None else timeout_millis / 1000
        flush = super().force_flush  # type: ignore[misc]
        finished, result = run_bounded(lambda: flush(), budget, "flush")
        return finished and result is True


class BoundedBatchSpanProcessor(_BoundedBatching, BatchSpanProcessor):
    """A BatchSpanProcessor whose shutdown and flush return within ``deadline`` seconds.

    Example::

        >>> from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        >>> processor = BoundedBatchSpanProcessor(FailSafeSpanExporter(ConsoleSpanExporter()), deadline=2.0)
        >>> processor.shutdown()
    """

    def __init__(self, exporter: FailSafeSpanExporter, *, deadline: float):
        super().__init__(exporter, deadline=deadline)


class BoundedBatchLogRecordProcessor(_BoundedBatching, BatchLogRecordProcessor):
    """A BatchLogRecordProcessor whose shutdown and flush return within ``deadline`` seconds.

    Example::

        >>> from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
        >>> processor = BoundedBatchLogRecordProcessor(
        ...     FailSafeLogExporter(InMemoryLogRecordExporter()), deadline=2.0)
        >>> processor.force_flush(timeout_millis=500)
        True
        >>> processor.shutdown()
    """

    def __init__(self, exporter: FailSafeLogExporter, *, deadline: float):
        super().__init__(exporter, deadline=deadline)
