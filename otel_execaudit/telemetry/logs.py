"""The package's own log lines, through structlog.

When the application has configured structlog, our events go through its configuration. When it
has not, they go to standard error (never standard output, which may carry a program's data)::

    >>> log = get_logger()
    >>> log.warning("export failing", spans_failed=3)  # written to standard error

Values logged here are already redacted: they are the same values the ledger records. Which
lines are written is ``$EXECAUDIT_LOG_LEVEL`` (``debug``, ``info``, the default,
``warning``, ``error`` or ``off``), or ``set_level``; the ``execaudit`` command writes none unless ``-v``::

    >>> previous = set_level("off"); log.warning("not written"); _ = set_level(previous)
"""

from __future__ import annotations

import os
import sys
from typing import Any

LOGGER_NAME = "otel_execaudit"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50, "off": 100}
_chosen: str | None = None  # set_level's; None: $EXECAUDIT_LOG_LEVEL, else info


def set_level(level: str | None) -> str | None:
    """Write only log lines at ``level`` or above (``"off"``: none); None goes back to
    ``$EXECAUDIT_LOG_LEVEL``, else ``info``. Returns the level set before, to restore it.
    Example: ``previous = set_level("error")``."""
    global _chosen
    if level is not None and level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    previous, _chosen = _chosen, None if level is None else level.lower()
    return previous


def _threshold() -> int:
    chosen = _chosen or os.environ.get("EXECAUDIT_LOG_LEVEL", "").strip().lower() or "info"
    return LEVELS.get(chosen, LEVELS["info"])


class _Logger:
    """Resolves the structlog configuration at each call, so configuring structlog after
    importing this package still takes effect."""

    def _target(self) -> Any:
        import structlog  # when a line is written: structlog costs 0.15 s to import, and
        # most processes that record never log a line

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
            if LEVELS.get(level, LEVELS["warning"]) < _threshold():
                return
            try:
                getattr(self._target(), level)(event, **values)
            except Exception:  # a broken log configuration never reaches an execution
                pass

        return emit


def get_logger() -> Any:
    """The package logger: ``get_logger().warning("event", key=value)``; never raises."""
    return _Logger()
