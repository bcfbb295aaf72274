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
    AmbiguousExecutionError,
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
    UnknownExecutionError,
    UnreadableExecutionError,
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
    RollbackHint,
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
    "GuardContext", "Plan", "PlanPinGuard", "PlanStep", "ResultStatus", "Severity", "TenantContextGuard", "TerminalEvent", "ValidationRequiredGuard", "adapter",
    "execute_plan", "load_plan"))

# Inspection's too: reading what happened loads rich, which recording has no need of.
_INSPECTION_NAMES = frozenset((
    "ExecutionDisplay", "ExecutionLog", "HestiaAgent", "LastError", "RollbackPlanner",
    "RollbackScaffold", "get_last_error"))

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
        Severity,
        TenantContextGuard,
        TerminalEvent,
        ValidationRequiredGuard,
        adapter,
        execute_plan,
        load_plan,
    )
    from otel_execaudit.inspection import (  # noqa: F401
        ExecutionDisplay,
        ExecutionLog,
        HestiaAgent,
        LastError,
        RollbackPlanner,
        RollbackScaffold,
        get_last_error,
    )


def __getattr__(name: str) -> Any:
    if name in _EXECUTION_NAMES or name in _INSPECTION_NAMES:
        import importlib

        part = "executor" if name in _EXECUTION_NAMES else "inspection"
        value = getattr(importlib.import_module(f"otel_execaudit.{part}"), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    raise AttributeError(f"module 'otel_execaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))  # the lazy names too


__all__ = [
    "AcknowledgementGuard", "ActionContext", "ActionOutcome", "ActionRecord", "AdapterError",
    "AdapterRegistry", "AmbiguousExecutionError", "ConfigurationError", "DeclaredEffect",
    "Durability", "ExecAuditError", "Execution", "ExecutionDisplay", "ExecutionEndedError",
    "ExecutionGuard", "ExecutionLimitsGuard", "ExecutionLog", "ExecutionMode", "ExecutionObserver",
    "ExecutionRecord", "ExecutionResult", "ExecutionStatus", "Executor", "Guard", "GuardContext",
    "GuardDeniedError", "HestiaAgent", "LastError", "Ledger", "LedgerEntry", "LedgerError",
    "LedgerNotFoundError", "LedgerWriteError", "Limits", "NotALedgerError", "Plan", "PlanError",
    "PlanPinGuard", "PlanStep", "RecordingError", "Redactor", "ResultStatus", "RollbackHint",
    "RollbackPlanner", "RollbackScaffold", "Runtime", "SecurityEscalationError",
    "SecuritySnapshot", "SecurityState", "Severity", "SideEffect", "SideEffectCategory",
    "SideEffectReport", "Step", "StepEvent", "StepEventType", "StepHandle", "TenantContextGuard",
    "TerminalEvent", "UnknownExecutionError", "UnreadableExecutionError", "ValidationRequiredGuard",
    "VerifyReport", "adapter",
    "bind", "configure", "current_execution", "current_step", "default_ledger_path",
    "execute_plan", "execution", "get_last_error", "get_runtime", "load_plan", "plan", "shutdown",
    "step", "verify",
]
