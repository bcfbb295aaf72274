"""Recording: the context managers and decorators, the recorder where every event is born, the
immutable records, and the spans. It writes to the ledger and the telemetry below it and never
imports the executor above it: code-first actions reach the executor through ``acting.gate``.

``instrument`` (``execution()``, ``step()``, ``@plan``, ``@step``, ``bind``), ``observer`` (the
recorder), ``steps`` (the recorder's steps and their events), ``security`` (the security state as
read), ``step_handle`` (an open step), ``failure`` (an error as recorded), ``records``
(``ExecutionRecord`` and its parts), ``declarations`` (what a step may change and consume),
``acting`` (steps that act, and the gate they pass), ``spans`` and ``semantic`` (span plumbing
and names).
"""

from otel_execaudit.recording.acting import ActionGate, ActionSpec, gate
from otel_execaudit.recording.declarations import (
    DeclaredEffect,
    RollbackHint,
    amounts,
    declared_effects,
)
from otel_execaudit.recording.instrument import (
    Execution,
    Step,
    bind,
    current_execution,
    current_step,
    execution,
    plan,
    step,
)
from otel_execaudit.recording.failure import describe_failure, is_cancellation, printable
from otel_execaudit.recording.observer import ExecutionObserver
from otel_execaudit.recording.step_handle import StepHandle
from otel_execaudit.recording.records import (
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
    escaped_text,
    frozen,
    thawed,
    timestamp_now,
)

__all__ = [
    "ActionGate", "ActionSpec", "DeclaredEffect", "Execution", "ExecutionMode",
    "ExecutionObserver", "ExecutionRecord", "ExecutionStatus", "RollbackHint", "SecuritySnapshot",
    "SecurityState", "SideEffect", "SideEffectCategory", "SideEffectReport", "Step", "StepEvent",
    "StepEventType", "StepHandle", "amounts", "bind", "current_execution", "current_step",
    "declared_effects", "describe_failure", "escaped_text", "execution", "frozen", "gate",
    "is_cancellation", "plan", "printable", "step", "thawed", "timestamp_now",
]
