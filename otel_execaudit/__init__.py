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

Read on in: ``instrument`` (context managers and decorators), ``observer`` (the recorder),
``records`` (the immutable record), ``ledger`` and ``verify`` (the hash chain), ``telemetry``
(fail-safe export), ``redaction`` (what may be recorded), ``runtime`` (``configure``);
``executor`` with ``plan_run``, ``plans``, ``adapters``, ``guards``, ``limits``, ``pinning``,
``results`` and ``terminal`` (the guarded executor), ``acting`` (code-first steps that act).
"""

from otel_execaudit.adapters import ActionContext, ActionOutcome, AdapterRegistry, adapter
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
from otel_execaudit.executor import Executor, execute_plan
from otel_execaudit.guards import (
    AcknowledgementGuard,
    ExecutionGuard,
    ExecutionLimitsGuard,
    Guard,
    GuardContext,
    PlanPinGuard,
    Severity,
    TenantContextGuard,
    ValidationRequiredGuard,
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
from otel_execaudit.plans import DeclaredEffect, Plan, PlanStep, RollbackHint, load_plan
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
from otel_execaudit.results import ActionRecord, ExecutionResult, ResultStatus
from otel_execaudit.runtime import Runtime, configure, get_runtime, shutdown
from otel_execaudit.terminal import TerminalEvent
from otel_execaudit.verify import VerifyReport, verify

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
