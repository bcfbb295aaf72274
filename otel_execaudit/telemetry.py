"""Telemetry set-up: a tracer whose export can never hold up, crash, or outlive the application.

One call builds it, reading the standard ``OTEL_*`` variables; explicit arguments win::

    >>> from otel_execaudit.telemetry import build_telemetry
    >>> telemetry = build_telemetry(service_name="billing-agent", exporter="none")
    >>> with telemetry.tracer.start_as_current_span("invoke_workflow refund"):
    ...     pass
    >>> telemetry.shutdown()

Export happens on the batch processor's worker thread through a ``FailSafeSpanExporter``; flush,
shutdown and interpreter exit share one deadline (DESIGN.md, Invariant 1). The application's
global TracerProvider is never replaced unless ``set_global=True`` (Invariant 7).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlparse

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from otel_execaudit.errors import ConfigurationError
from otel_execaudit.exporting import (
    BoundedBatchSpanProcessor,
    ExportStats,
    FailSafeSpanExporter,
    run_bounded,
)
from otel_execaudit.logs import get_logger

__all__ = ["ExportStats", "FailSafeSpanExporter", "Telemetry", "build_telemetry"]

TRACER_NAME = "otel_execaudit"
EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
EXIT_RESERVE_SECONDS = 0.2

_log = get_logger()
_NO_STATS = ExportStats(spans_exported=0, spans_failed=0, export_errors=0, last_error=None)


class Telemetry:
    """The tracer this package records with, and the bounded way to flush and stop it.

    Built by :func:`build_telemetry`; not meant to be constructed directly.

    - ``tracer_provider``: the provider in use, the application's own or a private one of ours.
    - ``tracer``: the ``otel_execaudit`` tracer from it.
    - ``enabled``: False when ``OTEL_SDK_DISABLED=true`` (the tracer is then a no-op) or the
      exporter is "none" (spans still get real ids, for the ledger, but nothing leaves).
    - ``stats``: what our exporter did so far, as an :class:`ExportStats`.

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
    ):
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer(TRACER_NAME)
        self.enabled = enabled
        self.deadline = deadline
        self._processor = processor
        self._owns_provider = owns_provider
        self._shutdown_lock = threading.Lock()
        self._is_shut_down = False
        # Our own hook, bounded by the deadline, instead of the SDK's unbounded one. A later
        # LoggerProvider joins the same shutdown and so the same deadline.
        atexit.register(self._shutdown_at_exit)

    @property
    def stats(self) -> ExportStats:
        """Counters of our exporter; all zero when we export nothing ourselves."""
        return self._processor.exporter.stats if self._processor is not None else _NO_STATS

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export what is queued; wait at most ``timeout`` (default: the deadline). Never raises.

        Flushes our processor, or, when we added none, the application's provider. Returns True
        when the flush finished in time (an export that failed is counted in ``stats``).

        Example::

            >>> build_telemetry(exporter="none").force_flush(timeout=1.0)
            True
        """
        budget = self.deadline if timeout is None else max(timeout, 0.0)
        if self._is_shut_down:
            return False
        if self._processor is not None:
            return self._processor.force_flush(timeout_millis=int(budget * 1000))
        flush = getattr(self.tracer_provider, "force_flush", None)
        if flush is None:
            return True
        finished, result = run_bounded(lambda: flush(int(budget * 1000)), budget, "provider-flush")
        return finished and result is True

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and stop our export within ``timeout`` (default: the deadline). Idempotent.

        An application's own provider is left running; only the processor we added to it stops.

        Example::

            >>> telemetry = build_telemetry(exporter="none")
            >>> telemetry.shutdown(); telemetry.shutdown()
        """
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        budget = self.deadline if timeout is None else max(timeout, 0.0)
        started = time.monotonic()
        try:
            atexit.unregister(self._shutdown_at_exit)
            if self._processor is not None:
                # The batch processor flushes its queue as part of its own shutdown.
                self._processor.shutdown(timeout=budget)
            if self._owns_provider:
                remaining = budget - (time.monotonic() - started)
                run_bounded(self.tracer_provider.shutdown, remaining, "provider-shutdown")
        except Exception as error:  # noqa: BLE001 - shutdown must never raise into the caller
            _log.warning("telemetry shutdown failed", error=f"{type(error).__name__}: {error}")

    def _shutdown_at_exit(self) -> None:
        # The interpreter still has to finalise after our hook; keep a slice of the deadline for it.
        self.shutdown(timeout=self.deadline - min(EXIT_RESERVE_SECONDS, self.deadline / 10))


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
) -> Telemetry:
    """Build the tracer and fail-safe export; read ``OTEL_*`` for whatever is not given.

    ``exporter`` is "otlp", "console", "none" or a SpanExporter (default: ``OTEL_TRACES_EXPORTER``,
    else "otlp"). ``protocol`` is "grpc" or "http/protobuf" (default: the OTLP protocol
    variables, else "grpc"). An ``endpoint`` is a base URL for both protocols, as in
    ``OTEL_EXPORTER_OTLP_ENDPOINT``: "/v1/traces" is added for HTTP when it has no path.
    With ``tracer_provider`` (the application's own), spans go through it and our processor is
    added only if ``exporter`` is given and the provider is an SDK one. ``deadline`` bounds
    flush, shutdown and the wait at interpreter exit together.

    Raises ConfigurationError for a setting that cannot work (unknown exporter or protocol).

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
            span_exporter = _build_exporter(exporter, protocol, endpoint, headers, deadline, service_name)
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
        return Telemetry(
            tracer_provider=tracer_provider,
            enabled=exporter is None or span_exporter is not None,
            deadline=deadline,
            processor=processor,
        )

    chosen = exporter if exporter is not None else os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    span_exporter = _build_exporter(chosen, protocol, endpoint, headers, deadline, service_name)
    attributes = {SERVICE_NAME: service_name} if service_name else {}
    provider = SdkTracerProvider(
        resource=Resource.create(attributes),
        span_limits=SpanLimits(max_events=max_span_events) if max_span_events is not None else None,
        # The SDK's own exit hook waits up to 30 s on the worker; ours is bounded.
        shutdown_on_exit=False,
    )
    processor = None
    if span_exporter is not None:
        processor = _processor(span_exporter, deadline)
        provider.add_span_processor(processor)
    if set_global:
        _set_global(provider)
    return Telemetry(
        tracer_provider=provider,
        enabled=span_exporter is not None,
        deadline=deadline,
        processor=processor,
        owns_provider=True,
    )


def _processor(span_exporter: SpanExporter, deadline: float) -> BoundedBatchSpanProcessor:
    return BoundedBatchSpanProcessor(FailSafeSpanExporter(span_exporter, timeout=deadline), deadline=deadline)


def _build_exporter(
    chosen: str | SpanExporter,
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    deadline: float,
    service_name: str | None,
) -> SpanExporter | None:
    """The inner exporter for ``chosen``; None means "export nothing"."""
    if isinstance(chosen, SpanExporter):
        return chosen
    name = str(chosen).strip().lower()
    if name not in EXPORTERS:
        raise ConfigurationError(
            f"Unknown trace exporter {chosen!r}: use one of {', '.join(EXPORTERS)} "
            "(argument exporter= or OTEL_TRACES_EXPORTER), or pass a SpanExporter instance."
        )
    if name == "none":
        return None
    if name == "console":
        # sys.stdout now, not at import time, so redirected output (and demos under capture) work.
        return ConsoleSpanExporter(service_name=service_name, out=sys.stdout)
    return _build_otlp_exporter(_resolve_protocol(protocol), endpoint, headers, _export_timeout(deadline))


def _resolve_protocol(protocol: str | None) -> str:
    chosen = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    name = chosen.strip().lower()
    if name not in PROTOCOLS:
        raise ConfigurationError(
            f"Unsupported OTLP protocol {chosen!r}: use one of {', '.join(PROTOCOLS)} "
            "(argument protocol= or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL)."
        )
    return name


def _export_timeout(deadline: float) -> float:
    """The exporter's own timeout (its whole retry loop): the OTLP variable, capped by the deadline.

    The Python OTLP exporters read these variables as seconds, so we do too.
    """
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    try:
        configured = float(raw) if raw else deadline
    except ValueError:
        raise ConfigurationError(f"OTEL_EXPORTER_OTLP_TIMEOUT must be a number of seconds, not {raw!r}") from None
    return min(configured, deadline) if configured > 0 else deadline


def _build_otlp_exporter(
    protocol: str, endpoint: str | None, headers: Mapping[str, str] | None, timeout: float
) -> SpanExporter:
    # Anything not given here (endpoint, headers, insecure, certificates, compression) the
    # exporters read from OTEL_EXPORTER_OTLP_* themselves, the per-signal variables first.
    options: dict[str, object] = {"timeout": timeout}
    if headers is not None:
        # gRPC rejects upper-case metadata keys; HTTP header names are case-insensitive anyway.
        options["headers"] = {key.lower(): value for key, value in headers.items()}
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        if endpoint is not None:
            options["endpoint"] = endpoint
        return GrpcSpanExporter(**options)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    if endpoint is not None:
        options["endpoint"] = _http_traces_url(endpoint)
    return HttpSpanExporter(**options)


def _http_traces_url(endpoint: str) -> str:
    """A base URL gets the traces path, as OTEL_EXPORTER_OTLP_ENDPOINT does; a full one is kept."""
    if urlparse(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _set_global(provider: trace.TracerProvider) -> None:
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        # The API allows one global provider per process; say so rather than pretend.
        _log.warning("a global TracerProvider was already set; it was not replaced")


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"
