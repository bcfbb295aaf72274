"""otel_execaudit: a flight recorder for plan execution.

Each execution becomes an OpenTelemetry span tree (``invoke_workflow {plan}`` with one
``execute_tool {step}`` child per step) and every event is mirrored, synchronously and in order,
into a local append-only hash-chained ledger that anyone can verify offline::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit import execution, verify
    >>> runtime = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                                    exporter="none")
    >>> with execution("hello") as ex:
    ...     with ex.step("greet") as st:
    ...         st.set_output(greeting="hello, world")
    >>> runtime.ledger.sync()
    >>> verify(runtime.ledger.path).ok
    True
    >>> otel_execaudit.shutdown()

Read on in: ``instrument`` (context managers and decorators), ``observer`` (the recorder),
``records`` (the immutable record), ``ledger`` and ``verify`` (the hash chain), ``telemetry``
(fail-safe export), ``redaction`` (what may be recorded), ``runtime`` (``configure``).
"""

from otel_execaudit.errors import (
    ConfigurationError,
    ExecAuditError,
    ExecutionEndedError,
    LedgerError,
    LedgerNotFoundError,
    LedgerWriteError,
    NotALedgerError,
    RecordingError,
    SecurityEscalationError,
)
from otel_execaudit.instrument import (
    Execution,
    Step,
    bind,
    current_execution,
    current_step,
    execution,
    plan,
    step,
)
from otel_execaudit.ledger import Durability, Ledger, LedgerEntry, default_ledger_path
from otel_execaudit.observer import ExecutionObserver, StepHandle
from otel_execaudit.records import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionStatus,
    SecuritySnapshot,
    SecurityState,
    SideEffect,
    SideEffectCategory,
    SideEffectReport,
    StepEvent,
    StepEventType,
)
from otel_execaudit.redaction import Limits, Redactor
from otel_execaudit.runtime import Runtime, configure, get_runtime, shutdown
from otel_execaudit.verify import VerifyReport, verify

__all__ = [
    "ConfigurationError", "Durability", "ExecAuditError", "Execution", "ExecutionEndedError",
    "ExecutionMode", "ExecutionObserver", "ExecutionRecord", "ExecutionStatus", "Ledger",
    "LedgerEntry", "LedgerError", "LedgerNotFoundError", "LedgerWriteError", "Limits",
    "NotALedgerError", "RecordingError", "Redactor", "Runtime", "SecurityEscalationError",
    "SecuritySnapshot", "SecurityState", "SideEffect", "SideEffectCategory", "SideEffectReport",
    "Step", "StepEvent", "StepEventType", "StepHandle", "VerifyReport", "bind", "configure",
    "current_execution", "current_step", "default_ledger_path", "execution", "get_runtime",
    "plan", "shutdown", "step", "verify",
]
