"""Span plumbing for the recorder: ids as hex, safe calls, and event channels that never lose
events to the SDK's per-span limit.

>>> from opentelemetry import trace
>>> hex_ids(trace.INVALID_SPAN)
(None, None)
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any, Callable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from otel_execaudit.recording import semantic

if TYPE_CHECKING:
    from otel_execaudit.recording.failure import Failure

_RESERVED_EVENTS = 2  # room kept on a span for its exception event and final step event


def hex_ids(span: Span) -> tuple[str | None, str | None]:
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def event_limit(span: Span) -> int | None:
    """The SDK's per-span event limit (the same for every span of a provider), if any."""
    limits = getattr(span, "_limits", None)
    maximum = getattr(limits, "max_events", None) if span.is_recording() else None
    return maximum if isinstance(maximum, int) and maximum > 0 else None


def qualified_name(error_type: type) -> str:
    module = error_type.__module__
    return error_type.__qualname__ if module == "builtins" else f"{module}.{error_type.__qualname__}"


class SpanChannel:
    """A span and the events written to it. When the span's event limit (128 by default in the
    SDK) would drop events, later events go to continuation spans instead of being lost."""

    __slots__ = ("tracer", "span", "name", "limit", "count", "overflow", "overflow_count",
                 "continuations")

    def __init__(self, tracer: trace.Tracer, span: Span, name: str, limit: int | None) -> None:
        self.tracer, self.span, self.name, self.limit = tracer, span, name, limit
        self.count = 0
        self.overflow: Span | None = None
        self.overflow_count = 0
        self.continuations = 0

    def add_event(self, name: str, attributes: Mapping[str, Any], *,
                  reserved: bool = False) -> None:
        """Add an event; ``reserved`` ones (a step's outcome, an exception) may use the slots
        kept free on the main span, so they stay where backends look for them."""
        try:
            limit = self.limit
            if limit is None or self.count < limit - (0 if reserved else _RESERVED_EVENTS):
                self.count += 1
                self.span.add_event(name, attributes)
                return
            if self.overflow is None or self.overflow_count >= limit:
                self._continue()
            self.overflow_count += 1
            self.overflow.add_event(name, attributes)  # type: ignore[union-attr]
        except Exception:  # telemetry never raises into the execution
            pass

    def _continue(self) -> None:
        if self.overflow is not None:
            self.overflow.end()
        self.continuations += 1
        self.overflow = self.tracer.start_span(
            f"{self.name} (continued)", context=trace.set_span_in_context(self.span),
            attributes={semantic.CONTINUATION: self.continuations})
        self.overflow_count = 0
        self.span.set_attribute(semantic.CONTINUATION, self.continuations)

    def end(self) -> None:
        try:
            if self.overflow is not None:
                self.overflow.end()
            self.span.end()
        except Exception:
            pass


def safe(function: Callable[..., Any], *arguments: Any) -> None:
    """Call a telemetry function; whatever it raises stays here."""
    try:
        function(*arguments)
    except Exception:
        pass


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def start_span(tracer: trace.Tracer, name: str, parent: otel_context.Context | None,
               attributes: dict[str, Any]) -> Span:
    """A span of its own, never raising. Without an SDK the no-op tracer hands back the parent
    span itself: a span of our own (same trace, new id) keeps every step's ledger entries apart
    from its parent's."""
    try:
        span = tracer.start_span(name, context=parent, attributes=attributes)
    except Exception:
        return trace.INVALID_SPAN
    if span.is_recording():
        return span
    parent_ids = trace.get_current_span(parent).get_span_context()
    if parent_ids.is_valid and span.get_span_context() == parent_ids:
        return trace.NonRecordingSpan(trace.SpanContext(
            trace_id=parent_ids.trace_id, span_id=random.getrandbits(64) or 1, is_remote=False))
    return span


def root_span(tracer: trace.Tracer, name: str, parent: otel_context.Context | None,
              attributes: dict[str, Any]) -> Span:
    """An execution's root span. With telemetry off (a no-op tracer) the execution still gets
    ids of its own, so that ledger entries, terminal events and downstream calls correlate the
    same way."""
    span = start_span(tracer, name, parent, attributes)
    if span.get_span_context().is_valid:
        return span
    return trace.NonRecordingSpan(trace.SpanContext(
        trace_id=random.getrandbits(128) or 1, span_id=random.getrandbits(64) or 1,
        is_remote=False))


def record_error(channel: SpanChannel, failure: Failure) -> None:
    """One ``exception`` event and status ERROR, with the redacted message and stack."""
    attributes = {"exception.type": failure.error_type,
                  "exception.message": failure.message, "exception.escaped": True}
    if failure.traceback:
        attributes["exception.stacktrace"] = failure.traceback
    channel.add_event(semantic.EVENT_EXCEPTION, attributes, reserved=True)
    safe(channel.span.set_attribute, semantic.ERROR_TYPE, failure.error_type)
    safe(channel.span.set_status,
         Status(StatusCode.ERROR, f"{failure.error_type}: {failure.message}"))
