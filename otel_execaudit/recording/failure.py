"""A failure as recorded: an error described once (type, redacted message, redacted traceback)
for the ledger, the spans and the log alike, and how a cancellation is told from a failure."""

from __future__ import annotations

import traceback as traceback_module
from typing import Any, NamedTuple

from otel_execaudit.recording.spans import qualified_name
from otel_execaudit.redaction import Redactor

__all__ = ["CANCELLATION", "Failure", "TRACEBACK_LIMIT", "describe_failure", "is_cancellation",
           "printable"]

CANCELLATION = (KeyboardInterrupt, GeneratorExit)  # plus asyncio.CancelledError (a BaseException)
TRACEBACK_LIMIT = 32768  # characters kept of a traceback: the end, where the error is


class Failure(NamedTuple):
    """An error as recorded: redacted once, then used for ledger, span and log alike."""

    error_type: str
    message: str
    traceback: str | None


def describe_failure(redactor: Redactor, error: BaseException | str) -> Failure:
    """Describe an error without ever raising, even when its ``__str__`` does."""
    if not isinstance(error, BaseException):
        return Failure("error", redactor.clean_text(printable(error)), None)
    try:
        stack = "".join(traceback_module.format_exception(error))
    except Exception:  # a hostile __traceback__ or __notes__: keep what we can
        stack = None
    return Failure(redactor.bound_name(qualified_name(type(error))),
                   redactor.clean_text(printable(error)),
                   None if stack is None else redactor.clean_text(stack, TRACEBACK_LIMIT))


def printable(value: Any) -> str:
    """``str(value)``, or a placeholder when that raises or returns a non-str."""
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return text if isinstance(text, str) else f"<unprintable {type(value).__name__}>"


def is_cancellation(error: BaseException) -> bool:
    """CancelledError, KeyboardInterrupt and GeneratorExit end an execution as CANCELLED."""
    return isinstance(error, CANCELLATION) or type(error).__name__ == "CancelledError"
