"""Span plumbing for the recorder: ids as hex, safe calls, and event channels that never lose
events to the SDK's per-span limit.

>>> from opentelemetry import trace
>>> hex_ids(trace.INVALID_SPAN)
(None, None)
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from opentelemetry import trace
from opentelemetry.trace import Span

from otel_execaudit.recording import semantic

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
