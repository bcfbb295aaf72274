"""The package's own log lines, through structlog.

When the application has configured structlog, our events go through its configuration. When it
has not, they go to standard error (never standard output, which may carry a program's data)::

    >>> log = get_logger()
    >>> log.warning("export failing", spans_failed=3)  # written to standard error

Values logged here are already redacted: they are the same values the ledger records.
"""

from __future__ import annotations

import sys
from typing import Any

import structlog

LOGGER_NAME = "otel_execaudit"


class _Logger:
    """Resolves the structlog configuration at each call, so configuring structlog after
    importing this package still takes effect."""

    def _target(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger(LOGGER_NAME)
        return structlog.wrap_logger(
            structlog.PrintLogger(sys.stderr),
            processors=[structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.dev.ConsoleRenderer(colors=False)],
            logger_name=LOGGER_NAME)

    def __getattr__(self, level: str) -> Any:
        def emit(event: str, **values: Any) -> None:
            try:
                getattr(self._target(), level)(event, **values)
            except Exception:  # a broken log configuration never reaches an execution
                pass

        return emit


def get_logger() -> Any:
    """The package logger: ``get_logger().warning("event", key=value)``; never raises."""
    return _Logger()
