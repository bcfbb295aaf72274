"""An open step of an execution: record side effects and events on it, then complete, fail or
cancel it. The recorder (``observer.ExecutionObserver``) hands these out from ``start_step``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from otel_execaudit.ledger import LedgerEntry
from otel_execaudit.recording.records import SideEffect, SideEffectCategory, StepEventType
from otel_execaudit.recording.spans import SpanChannel, hex_ids

if TYPE_CHECKING:
    from otel_execaudit.recording.observer import ExecutionObserver

__all__ = ["StepHandle"]


class StepHandle:
    """An open step: record side effects and events on it, then complete, fail or cancel it."""

    __slots__ = ("observer", "index", "name", "channel", "trace_id", "span_id", "open",
                 "_context")

    def __init__(self, observer: ExecutionObserver, index: int, name: str,
                 channel: SpanChannel) -> None:
        self.observer, self.index, self.name, self.channel = observer, index, name, channel
        self.trace_id, self.span_id = hex_ids(channel.span)
        self.open = True
        self._context: otel_context.Context | None = None

    @property
    def span(self) -> Span:
        return self.channel.span

    @property
    def context(self) -> otel_context.Context:
        """The OpenTelemetry context with this step's span current."""
        if self._context is None:
            self._context = trace.set_span_in_context(self.channel.span)
        return self._context

    def side_effect(self, category: SideEffectCategory | str, description: str,
                    reversible: bool = False,
                    details: Mapping[str, Any] | None = None) -> SideEffect:
        return self.observer.record_side_effect(category, description, reversible, details,
                                                step_index=self.index)

    def event(self, name: str, details: Mapping[str, Any] | None = None) -> LedgerEntry:
        return self.observer._record_step_note(self, name, details)

    def complete(self, details: Mapping[str, Any] | None = None) -> None:
        self.observer._finish_step(self, StepEventType.COMPLETED, details, None)

    def fail(self, error: BaseException | str,
             details: Mapping[str, Any] | None = None) -> None:
        self.observer._finish_step(self, StepEventType.FAILED, details, error)

    def cancel(self, error: BaseException | str | None = None,
               details: Mapping[str, Any] | None = None) -> None:
        self.observer._finish_step(self, StepEventType.CANCELLED, details, error or "cancelled")
