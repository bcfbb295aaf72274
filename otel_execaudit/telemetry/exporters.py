"""Choosing exporters: which one a name, an instance or the ``OTEL_*`` variables ask for, and
how its OTLP protocol, endpoint, headers and timeout are set. Explicit arguments win over the
environment; the result is the inner exporter that ``telemetry`` wraps to make it fail-safe::

    >>> build_span_exporter("none", None, None, None, 2.0, None) is None
    True
    >>> _http_signal_url("http://collector:4318", "logs")
    'http://collector:4318/v1/logs'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from otel_execaudit.errors import ConfigurationError
from otel_execaudit.telemetry.exporting import LogRecordExporter

try:
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
except ImportError:  # SDKs before the Log -> LogRecord rename
    from opentelemetry.sdk._logs.export import (
        ConsoleLogExporter as ConsoleLogRecordExporter,  # type: ignore[assignment]
    )

__all__ = ["EXPORTERS", "PROTOCOLS", "build_log_exporter", "build_span_exporter",
           "choose_log_exporter"]

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")


def choose_log_exporter(
    explicit: str | SpanExporter | None,
    span_choice: str | SpanExporter | None,
    log_exporter: LogRecordExporter | None,
) -> str | LogRecordExporter | None:
    """``log_exporter``, else an explicit exporter name, else OTEL_LOGS_EXPORTER, else what
    the spans use (None: nothing). Explicit arguments win over the environment, as for spans."""
    if log_exporter is not None:
        return log_exporter
    if isinstance(explicit, str):
        return explicit
    from_environment = os.environ.get("OTEL_LOGS_EXPORTER", "").strip()
    if from_environment:
        return from_environment
    if span_choice is None or isinstance(span_choice, SpanExporter):
        return None
    return span_choice


def build_log_exporter(
    chosen: str | LogRecordExporter | None,
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    deadline: float,
) -> LogRecordExporter | None:
    """The inner log exporter for ``chosen``; None means "export no events"."""
    if chosen is None or isinstance(chosen, LogRecordExporter):
        return chosen
    name = str(chosen).strip().lower()
    if name not in EXPORTERS:
        raise ConfigurationError(
            f"Unknown log exporter {chosen!r}: use one of {', '.join(EXPORTERS)} "
            "(OTEL_LOGS_EXPORTER, or the exporter= it follows), or pass a LogRecordExporter as log_exporter=."
        )
    if name == "none":
        return None
    if name == "console":
        return ConsoleLogRecordExporter(out=sys.stdout)
    return _build_otlp_exporter(
        _resolve_protocol(protocol, "logs"), endpoint, headers, _export_timeout(deadline, "logs"), "logs")


def build_span_exporter(
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


def _resolve_protocol(protocol: str | None, signal: str = "traces") -> str:
    per_signal = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    chosen = protocol or os.environ.get(per_signal) or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    name = chosen.strip().lower()
    if name not in PROTOCOLS:
        raise ConfigurationError(
            f"Unsupported OTLP protocol {chosen!r}: use one of {', '.join(PROTOCOLS)} "
            f"(argument protocol= or {per_signal} / OTEL_EXPORTER_OTLP_PROTOCOL)."
        )
    return name


def _export_timeout(deadline: float, signal: str = "traces") -> float:
    """The exporter's own timeout (its whole retry loop): the OTLP variable, capped by the deadline.

    The Python OTLP exporters read these variables as seconds, so we do too.
    """
    raw = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT") or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    try:
        configured = float(raw) if raw else deadline
    except ValueError:
        raise ConfigurationError(f"OTEL_EXPORTER_OTLP_TIMEOUT must be a number of seconds, not {raw!r}") from None
    return min(configured, deadline) if configured > 0 else deadline


def _build_otlp_exporter(
    protocol: str, endpoint: str | None, headers: Mapping[str, str] | None, timeout: float, signal: str = "traces"
) -> Any:
    """The OTLP exporter of ``signal`` ("traces" or "logs") for ``protocol``."""
    # Anything not given here (endpoint, headers, insecure, certificates, compression) the
    # exporters read from OTEL_EXPORTER_OTLP_* themselves, the per-signal variables first.
    options: dict[str, object] = {"timeout": timeout}
    if headers is not None:
        # gRPC rejects upper-case metadata keys; HTTP header names are case-insensitive anyway.
        options["headers"] = {key.lower(): value for key, value in headers.items()}
    if protocol == "grpc":
        if endpoint is not None:
            options["endpoint"] = endpoint
        if signal == "logs":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
                OTLPLogExporter as GrpcLogExporter,
            )

            return GrpcLogExporter(**options)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(**options)
    if endpoint is not None:
        options["endpoint"] = _http_signal_url(endpoint, signal)
    if signal == "logs":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (
            OTLPLogExporter as HttpLogExporter,
        )

        return HttpLogExporter(**options)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(**options)


def _http_signal_url(endpoint: str, signal: str = "traces") -> str:
    """A base URL gets the signal's path, as OTEL_EXPORTER_OTLP_ENDPOINT does; a full one is kept,
    except that a full traces URL given for both signals sends events to the logs path beside it.

    Example::

        >>> _http_signal_url("http://collector:4318", "logs"), _http_signal_url("http://collector:4318/v1/traces", "logs")
        ('http://collector:4318/v1/logs', 'http://collector:4318/v1/logs')
    """
    parts = urlparse(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + f"/v1/{signal}"
    if signal != "traces" and parts.path.endswith("/v1/traces"):
        return parts._replace(path=parts.path.removesuffix("traces") + signal).geturl()
    return endpoint
