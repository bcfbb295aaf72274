"""A run's limit keeping: the key and digest each consumption is known by (a replay presents
them again), the strictest maximum of each counter, the limits consumed atomically just before
an action, and the usage an action reports after it, each with its ledger entry
(``limits.consumed``, ``limits.recorded``). ``limits.LimitCounters`` keeps the counters;
``run.PlanRun`` takes this as its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from otel_execaudit.executor.guards import ExecutionLimitsGuard, Guard, GuardContext
from otel_execaudit.executor.limits import Consumption, LimitCounters
from otel_execaudit.executor.exact import exact_bytes
from otel_execaudit.executor.plans import Plan, PlanStep
from otel_execaudit.recording import ExecutionObserver, StepHandle
from otel_execaudit.recording.records import ExecutionMode, thawed, timestamp_now

__all__ = ["UsageKeeping"]


class UsageKeeping:
    """The limit keeping of a run (``run.PlanRun``): what it consumes, and under which key."""

    plan: Plan
    mode: ExecutionMode
    guards: list[Guard]
    counters: LimitCounters
    context: GuardContext
    observer: ExecutionObserver | None

    def _replayed(self, steps: Iterable[PlanStep]) -> frozenset[str]:
        """Those of ``steps`` whose consumption this run replays: their key consumed before."""
        keys = {step.name: self._key(index, step) for index, step in enumerate(steps)
                if step.consumption}
        consumed = self.counters.consumed(keys.values(), self.context.scope)
        return frozenset(name for name, key in keys.items() if key in consumed)

    def _replaying(self, context: GuardContext, step: PlanStep, key: str) -> GuardContext:
        """``context``, with ``step`` among the replayed if ``key`` was consumed before."""
        if step.consumption and step.name not in context.replayed \
                and key in self.counters.consumed([key], context.scope):
            context = replace(context, replayed=context.replayed | {step.name})
        return context

    def _consume(self, handle: StepHandle, index: int, step: PlanStep,
                 context: GuardContext, key: str, content: str) -> Consumption | None:
        amounts = step.consumption
        if not amounts:
            return None
        maxima: dict[str, float] = {}
        for guard in self.guards:  # several limit guards: the strictest maximum of each counter
            if isinstance(guard, ExecutionLimitsGuard):
                for name, maximum in guard.maxima(context).items():
                    maxima[name] = min(maximum, maxima.get(name, maximum))
        observer = self.observer
        assert observer is not None
        return self.counters.consume(key, context.scope, amounts, maxima,
                                     self._limits_entry("limits.consumed", handle, index),
                                     content=content, acting=step.acts)

    def _limits_entry(self, kind: str, handle: StepHandle,
                      index: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        observer = self.observer
        assert observer is not None
        return lambda data: {
            "kind": kind, "ts": timestamp_now(), "execution_id": observer.execution_id,
            "plan_id": observer.plan_id, "trace_id": handle.trace_id,
            "span_id": handle.span_id, "data": {"step_index": index, **data}}

    def _content(self, step: PlanStep, **more: Any) -> str:
        """What a replay must repeat to be one: the plan, the action, its exact params (not
        as recorded: two actions that differ only in a redacted or cut value are two) and
        amounts, and ``more``. A digest: the values themselves are never stored."""
        return hashlib.sha256(exact_bytes({
            "plan_id": self.plan.plan_id, "action_type": step.action_type,
            "params": thawed(step.params), "amounts": dict(step.consumption),
            **more})).hexdigest()

    def _record_usage(self, handle: StepHandle, index: int, step: PlanStep, number: int,
                      amounts: Mapping[str, float]) -> None:
        """What an action reports it used (``ActionContext.add_usage``): counted in LIVE,
        keyed so that a replay replaces its earlier report; in DRY_RUN only noted."""
        if self.mode is not ExecutionMode.LIVE:
            handle.event("usage.not_counted", {"would_add": dict(amounts),
                                               "reason": "DRY_RUN counts nothing"})
            return
        self.counters.record(f"{self._key(index, step)}#usage:{number}", self.context.scope,
                             amounts, self._limits_entry("limits.recorded", handle, index))

    def _key(self, index: int, step: PlanStep) -> str:
        """What makes a consumption a replay: the step's own key, else execution and index."""
        observer = self.observer
        assert observer is not None
        return step.idempotency_key or f"{observer.execution_id}:{index}"
