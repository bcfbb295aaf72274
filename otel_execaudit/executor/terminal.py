"""The terminal telemetry event: exactly one per action attempt path, with a fixed schema.

Whatever happens to an action (its trace id or action type is missing, no adapter serves it, a
guard denies it, the adapter fails, raises, returns something invalid, or succeeds), exactly one
event says how it ended. The schema is fixed and minimal: no payloads, user data or secrets::

    >>> event = TerminalEvent.failed("a" * 32, "place_order", None, "unsupported_action_type")
    >>> sorted(event.to_dict())
    ['action_type', 'adapter', 'error_code', 'product', 'status', 'timestamp', 'trace_id']

It goes out as an OpenTelemetry log record (event name ``execaudit.action.terminal``) and is
mirrored in the ledger as an ``action.terminal`` entry. Emitting never raises and never changes
an execution's result.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from otel_execaudit.telemetry.logs import get_logger
from otel_execaudit.recording.records import timestamp_now
from otel_execaudit.redaction import Redactor
from otel_execaudit.telemetry.pipeline import emit_event

__all__ = ["EVENT_NAME", "LEDGER_KIND", "PRODUCT", "TerminalEvent", "emit", "withheld"]

EVENT_NAME = "execaudit.action.terminal"
LEDGER_KIND = "action.terminal"
PRODUCT = "otel_execaudit"
# Action types and adapter names are identifiers, not payloads: anything else is replaced, so
# that free text (and whatever secret it may hold) never reaches an event.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:/<>-]{1,128}")
_NOT_AN_IDENTIFIER = "<not an identifier>"
_REDACTED = "[REDACTED]"
_SECRETS = Redactor()  # what it would change in an identifier is a secret's known form

# The error codes the executor itself assigns; adapters add their own with ActionOutcome.failure.
MISSING_TRACE_ID = "missing_trace_id"
MISSING_ACTION_TYPE = "missing_action_type"
INVALID_REQUEST = "invalid_request"  # an action request with unknown fields or bad params
UNSUPPORTED_ACTION_TYPE = "unsupported_action_type"
INVALID_OUTPUT = "invalid_output"
ADAPTER_FAILURE = "adapter_failure"
ADAPTER_EXCEPTION = "adapter_exception"
GUARD_DENIED = "guard_denied"
UNDECLARED_SIDE_EFFECT = "undeclared_side_effect"
SKIPPED = "skipped_after_earlier_stop"
SECURITY_ESCALATION = "security_escalation"
CANCELLED = "cancelled"
PLAN_EXCEPTION = "plan_exception"  # a code-first plan's own code raised, outside any action
INTERNAL_ERROR = "internal_error"  # the recorder itself failed (for example, the ledger)

_log = get_logger()


@dataclass(frozen=True)
class TerminalEvent:
    """How one action attempt ended: ``status`` is ``success`` or ``failed``."""

    trace_id: str | None
    action_type: str | None
    adapter: str | None
    status: str
    product: str
    timestamp: str
    error_code: str | None = None

    @classmethod
    def success(cls, trace_id: str | None, action_type: str, adapter: str | None, *,
                product: str = PRODUCT) -> TerminalEvent:
        return cls(trace_id, _bounded(action_type), _bounded(adapter), "success", product,
                   timestamp_now())

    @classmethod
    def failed(cls, trace_id: str | None, action_type: str | None, adapter: str | None,
               error_code: str, *, product: str = PRODUCT) -> TerminalEvent:
        return cls(trace_id, _bounded(action_type), _bounded(adapter), "failed", product,
                   timestamp_now(), error_code)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def emit(event: TerminalEvent, *, record: Any = None, telemetry: Any = None) -> None:
    """Mirror ``event`` in the ledger (``record(kind, data)``) and send it as an OTel log
    record through ``telemetry`` (None: the global LoggerProvider). Never raises: a failure is
    logged locally and ignored.

    Example: ``emit(TerminalEvent.success(trace_id, "place_order", "adapters.place_order"))``
    """
    data = event.to_dict()
    if record is not None:
        try:
            record(LEDGER_KIND, data)
        except Exception as error:  # noqa: BLE001 - observability failure is not execution failure
            _log.warning("terminal event not mirrored in the ledger",
                         error=f"{type(error).__name__}: {error}", **_identity(event))
    try:  # without a configured runtime, the application's global LoggerProvider
        emit_event(telemetry, EVENT_NAME,
                   {key: value for key, value in data.items() if value is not None})
    except Exception as error:  # noqa: BLE001
        _log.warning("terminal event not emitted", error=f"{type(error).__name__}: {error}",
                     **_identity(event))


def _identity(event: TerminalEvent) -> dict[str, Any]:
    return {"action_type": event.action_type, "status": event.status,
            "error_code": event.error_code}


def withheld(name: str) -> bool:
    """Whether a terminal event would replace ``name`` (not an identifier, or holding a
    secret's known form). Example: ``withheld("password:hunter2")`` is True."""
    return _bounded(name) != name


def _bounded(name: str | None) -> str | None:
    """``name`` if it is an identifier holding no secret's known form, else a placeholder:
    decided once, so that the ledger's copy and the log record say the same."""
    if name is None:
        return None
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        return _NOT_AN_IDENTIFIER
    return name if _SECRETS.clean_text(name) == name else _REDACTED
