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

Plans that act run through the guarded ``Executor``: DRY_RUN unless LIVE is asked for and
acknowledged, every guard run and reported, any deny blocking before a single side effect.

Read on in the subpackages, in the direction data flows: ``executor`` (the guarded executor,
loaded when first used), ``recording`` (context managers, decorators, the recorder and its
records), ``ledger`` (the hash chain and ``verify``), ``telemetry`` (fail-safe export),
``inspection`` (reading what happened), ``cli`` (the ``execaudit`` command), ``demo``; and the
modules ``runtime`` (``configure``), ``redaction`` (what may be recorded), ``errors`` and
``testing`` (the pytest fixture).
"""

from typing import TYPE_CHECKING, Any

from otel_execaudit.errors import (
    AdapterError,
    ConfigurationError,
    ExecAuditError,
    ExecutionEndedError,
    GuardDeniedError,
    LedgerError,
    LedgerNotFoundError,
    LedgerWriteError,
    NotALedgerError,
    PlanError,
    RecordingError,
    SecurityEscalationError,
)
from otel_execaudit.ledger import (
    Durability,
    Ledger,
    LedgerEntry,
    VerifyReport,
    default_ledger_path,
    verify,
)
from otel_execaudit.recording import (
    DeclaredEffect,
    Execution,
    ExecutionMode,
    ExecutionObserver,
    ExecutionRecord,
    ExecutionStatus,
    SecuritySnapshot,
    SecurityState,
    SideEffect,
    SideEffectCategory,
    SideEffectReport,
    Step,
    StepEvent,
    StepEventType,
    StepHandle,
    bind,
    current_execution,
    current_step,
    execution,
    plan,
    step,
)
from otel_execaudit.redaction import Limits, Redactor
from otel_execaudit.runtime import Runtime, configure, get_runtime, shutdown

# The executor's names are imported when first used: code that only records never loads it.
_EXECUTION_NAMES = frozenset((
    "AcknowledgementGuard", "ActionContext", "ActionOutcome", "ActionRecord", "AdapterRegistry",
    "ExecutionGuard", "ExecutionLimitsGuard", "ExecutionResult", "Executor", "Guard",
    "GuardContext", "Plan", "PlanPinGuard", "PlanStep", "ResultStatus", "RollbackHint",
    "Severity", "TenantContextGuard", "TerminalEvent", "ValidationRequiredGuard", "adapter",
    "execute_plan", "load_plan"))

if TYPE_CHECKING:
    from otel_execaudit.executor import (  # noqa: F401
        AcknowledgementGuard,
        ActionContext,
        ActionOutcome,
        ActionRecord,
        AdapterRegistry,
        ExecutionGuard,
        ExecutionLimitsGuard,
        ExecutionResult,
        Executor,
        Guard,
        GuardContext,
        Plan,
        PlanPinGuard,
        PlanStep,
        ResultStatus,
        RollbackHint,
        Severity,
        TenantContextGuard,
        TerminalEvent,
        ValidationRequiredGuard,
        adapter,
        execute_plan,
        load_plan,
    )


def __getattr__(name: str) -> Any:
    if name in _EXECUTION_NAMES:
        from otel_execaudit import executor as _executor

        value = getattr(_executor, name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    raise AttributeError(f"module 'otel_execaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))  # the lazy names too


__all__ = [
    "AcknowledgementGuard", "ActionContext", "ActionOutcome", "ActionRecord", "AdapterError",
    "AdapterRegistry", "ConfigurationError", "DeclaredEffect", "Durability", "ExecAuditError",
    "Execution", "ExecutionEndedError", "ExecutionGuard", "ExecutionLimitsGuard", "ExecutionMode",
    "ExecutionObserver", "ExecutionRecord", "ExecutionResult", "ExecutionStatus", "Executor",
    "Guard", "GuardContext", "GuardDeniedError", "Ledger", "LedgerEntry", "LedgerError",
    "LedgerNotFoundError", "LedgerWriteError", "Limits", "NotALedgerError", "Plan", "PlanError",
    "PlanPinGuard", "PlanStep", "RecordingError", "Redactor", "ResultStatus", "RollbackHint",
    "Runtime", "SecurityEscalationError", "SecuritySnapshot", "SecurityState", "Severity",
    "SideEffect", "SideEffectCategory", "SideEffectReport", "Step", "StepEvent", "StepEventType",
    "StepHandle", "TenantContextGuard", "TerminalEvent", "ValidationRequiredGuard", "VerifyReport",
    "adapter", "bind", "configure", "current_execution", "current_step", "default_ledger_path",
    "execute_plan", "execution", "get_runtime", "load_plan", "plan", "shutdown", "step", "verify",
]
