"""Telemetry: a tracer and a logger whose export can never hold up, crash, or outlive the
application, and the package's own log lines.

``build`` (``build_telemetry``: providers, processors, exporters), ``pipeline``
(``Telemetry``: flush and shutdown under one deadline, events), ``exporting`` (the
fail-safe, bounded exporters), ``processors`` (batch processors whose shutdown and flush keep
to a deadline), ``exporters`` (which exporter is built, from arguments and the
``OTEL_*`` variables), ``logs`` (the package's log lines).
"""

from otel_execaudit.telemetry.logs import get_logger, set_level
from otel_execaudit.telemetry.pipeline import Telemetry
from otel_execaudit.telemetry.build import build_telemetry

__all__ = ["Telemetry", "build_telemetry", "get_logger", "set_level"]
