"""Execution: the guarded executor. Plans run safe by default, DRY_RUN unless LIVE is asked
for and acknowledged, every guard run and any deny blocking before a single side effect.

``executor`` (``Executor``), ``run`` (one run's life cycle), ``function_run`` (a code-first
plan's), ``usage`` (a run's limit keeping), ``endings`` (how its action paths end), ``plans``
(plans as data), ``adapters`` (what acts), ``guards``, ``limits`` (daily counters in the
ledger's file), ``evaluation`` (running guards fail closed), ``pinning`` (plan hashes),
``exact`` (values and code in an exact form, for plan hashes and limit keys), ``results`` (what
a run returns), ``terminal`` (one terminal event per action path).
"""

from otel_execaudit.executor.adapters import (
    ActionContext,
    ActionOutcome,
    Adapter,
    AdapterRegistry,
    adapter,
    default_registry,
    load_adapters,
)
from otel_execaudit.executor.executor import Executor, execute_plan
from otel_execaudit.executor.guards import (
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
from otel_execaudit.executor.plans import Plan, PlanStep, load_plan
from otel_execaudit.executor.results import ActionRecord, ExecutionResult, ResultStatus
from otel_execaudit.executor.terminal import TerminalEvent

__all__ = [
    "AcknowledgementGuard", "ActionContext", "ActionOutcome", "ActionRecord", "Adapter",
    "AdapterRegistry", "ExecutionGuard", "ExecutionLimitsGuard", "ExecutionResult", "Executor",
    "Guard", "GuardContext", "Plan", "PlanPinGuard", "PlanStep", "ResultStatus",
    "Severity", "TenantContextGuard", "TerminalEvent", "ValidationRequiredGuard", "adapter",
    "default_registry", "execute_plan", "load_adapters", "load_plan",
]
