"""Building the telemetry pipeline: a tracer and a logger whose export can never hold up, crash,
or outlive the application.

One call builds it, reading the standard ``OTEL_*`` variables; explicit arguments win::

    >>> from otel_execaudit.telemetry.build import build_telemetry
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

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_execaudit.errors import ConfigurationError
from otel_execaudit.telemetry.exporters import build_log_exporter, build_span_exporter, choose_log_exporter
from otel_execaudit.telemetry.exporting import FailSafeLogExporter, FailSafeSpanExporter, LogRecordExporter
from otel_execaudit.telemetry.logs import get_logger
from otel_execaudit.telemetry.pipeline import Telemetry
from otel_execaudit.telemetry.processors import BoundedBatchLogRecordProcessor, BoundedBatchSpanProcessor

__all__ = ["build_telemetry"]

_log = get_logger()


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
