"""One run of one plan: the state its steps share, and each step's life cycle.

Preflight (every guard; any deny blocks before a single side effect), then for each step:
start it, declare its effects, simulate it (DRY_RUN) or check the guards again, consume its
limits atomically and call its adapter (LIVE), record what it did and end its path with exactly
one terminal event. ``Executor`` builds a ``PlanRun`` per run; ``function_run.FunctionRun`` is the
same life cycle for a code-first plan. Its limit keeping is ``usage.UsageKeeping``, and how its
paths end (their records and terminal events) ``endings.PathEndings``.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from opentelemetry import context as otel_context

from otel_execaudit.executor import terminal
from otel_execaudit.executor.adapters import (
    ActionContext,
    ActionOutcome,
    Adapter,
    error_code,
)
from otel_execaudit.errors import PlanError, SecurityEscalationError
from otel_execaudit.executor.endings import PathEndings
from otel_execaudit.executor.evaluation import evaluate
from otel_execaudit.executor.guards import (
    ExecutionGuard,
    Guard,
    GuardContext,
    PlanPinGuard,
)
from otel_execaudit.recording.instrument import execution
from otel_execaudit.executor.limits import LimitCounters
from otel_execaudit.recording import (
    ExecutionObserver,
    StepHandle,
    is_cancellation,
    printable,
)
from otel_execaudit.executor.pinning import plan_hash
from otel_execaudit.executor.plans import Plan, PlanStep
from otel_execaudit.recording.records import ExecutionMode, SideEffect
from otel_execaudit.executor.results import ActionRecord, ExecutionResult, ResultStatus
from otel_execaudit.executor.usage import UsageKeeping
from otel_execaudit.runtime import get_runtime

if TYPE_CHECKING:
    from otel_execaudit.executor.executor import Executor

__all__ = ["PlanRun"]


class PlanRun(UsageKeeping, PathEndings):
    """One run of one plan: the state its steps share, and the steps' life cycle."""

    def __init__(self, executor: Executor, plan: Plan, mode: ExecutionMode, client_id: Any,
                 strategy_id: str | None, validated: bool, validation_passed: bool,
                 acknowledge_risk: bool, expected_hash: str | None,
                 execution_id: str | None) -> None:
        self.executor, self.mode = executor, mode
        self.adapters = executor.adapters
        self.plan = plan = self._with_adapters(plan)
        self.redactor = get_runtime().redactor
        pinning = expected_hash is not None or executor.require_plan_hash
        self.guards = executor.guards + ([PlanPinGuard(required=executor.require_plan_hash)]
                                         if pinning else [])
        self.counters = LimitCounters(get_runtime().ledger)
        self.context = GuardContext(
            plan=plan, mode=mode, client_id=client_id, strategy_id=strategy_id,
            validated=validated, validation_passed=validation_passed,
            acknowledge_risk=acknowledge_risk, expected_plan_hash=expected_hash,
            usage=lambda: self.counters.usage(self.context.scope))
        try:
            self.hash: str | None = self._hash()
        except PlanError:  # something the plan depends on has no exact form
            if pinning:
                raise
            self.hash = None
        self.context = replace(self.context, plan_hash=self.hash)
        self.execution_id = execution_id
        self.cause: BaseException | None = None  # the exception that failed the run, if any
        self.value: Any = None  # what a code-first plan function returned
        self.verdicts: list[ExecutionGuard] = []
        self.actions: list[ActionRecord] = []
        self.error: str | None = None
        self.status = ResultStatus.SUCCESS
        self.observer: ExecutionObserver | None = None
        self._emitted = False  # whether the current action path has its terminal event

    @property
    def subject(self) -> dict[str, Any]:
        """Whose run, and under which executor settings: part of the plan hash."""
        return {"client_id": self.context.client_id, "strategy_id": self.context.strategy_id,
                "guard_timeout": self.executor.guard_timeout,
                "require_plan_hash": self.executor.require_plan_hash}

    def _hash(self) -> str:
        return plan_hash(self.plan, guards=self.executor.guards, adapters=self.adapters,
                         subject=self.subject)

    def _with_adapters(self, plan: Plan) -> Plan:
        """The plan as its adapters declare it too: a step only reads if its adapter says so
        (``read_only``, whatever the plan says), an adapter's side effects are added to its
        steps' (the adapter knows what it changes, whatever a plan or request says), and each
        counter a step consumes is the larger of the plan's and the adapter's reckoning."""
        steps = []
        for step in plan.steps:
            adapter = self.adapters.get(step.action_type)
            read_only = adapter is not None and adapter.read_only
            if adapter is None or not (adapter.side_effects or adapter.consumes is not None):
                steps.append(replace(step, read_only=read_only))
                continue
            effects = step.side_effects + tuple(effect for effect in adapter.side_effects
                                                if effect not in step.side_effects)
            consumes = dict(step.consumes)
            for name, amount in adapter.consumption(step.params).items():
                consumes[name] = max(amount, consumes.get(name, 0))
            steps.append(replace(step, side_effects=effects, consumes=consumes,
                                 read_only=read_only))
        return replace(plan, steps=tuple(steps))

    def paths(self) -> tuple[PlanStep, ...]:
        """The action paths this run plans, each to end in one terminal event."""
        return self.plan.steps

    # -- the run -----------------------------------------------------------------------------

    def execute(self) -> ExecutionResult:
        executed_at = datetime.now(timezone.utc)
        metadata = {"plan_id": self.plan.plan_id, "client_id": self.context.client_id,
                    "strategy_id": self.context.strategy_id, "mode": self.mode.value,
                    "plan_hash": self.hash}
        try:
            with execution(self.plan.plan_id, execution_id=self.execution_id, mode=self.mode,
                           details=metadata, security=self.executor.security) as run:
                self.observer = observer = run.observer
                assert observer is not None
                self._steps()
                if not observer.ended:
                    if self.status is ResultStatus.BLOCKED:
                        observer.mark_blocked(self.error)
                    elif self.status is ResultStatus.FAILED:
                        observer.mark_failed(self.cause or self.error)
        except BaseException as error:
            if self.observer is None:  # it never started (a ledger that cannot be written):
                self._end_paths(self.paths(), terminal.CANCELLED if is_cancellation(error)
                                else terminal.INTERNAL_ERROR)  # the events go out unmirrored
            raise
        metadata.update(execution_id=observer.execution_id, trace_id=observer.trace_id,
                        ledger=str(observer.ledger.path))
        return ExecutionResult(self.status, self.mode, tuple(self.verdicts), tuple(self.actions),
                               metadata, executed_at, self.error, self.value)

    def _guarded_preflight(self, planned: Iterable[PlanStep]) -> bool:
        """The preflight; when it denies, or is interrupted (a cancellation, a ledger that
        cannot be written), each planned action's path ends here with its terminal event."""
        try:
            allowed = self._preflight()
        except BaseException as error:
            self._end_paths(planned, terminal.CANCELLED if is_cancellation(error)
                            else terminal.INTERNAL_ERROR)
            raise
        if not allowed:
            self._end_paths(planned, terminal.GUARD_DENIED)
        return allowed

    def _preflight(self) -> bool:
        """Every guard, before anything runs; False (and BLOCKED) if any denies."""
        self.context = replace(self.context, replayed=self._replayed(self.plan.steps))
        self.verdicts = self._check_guards(self.context, "preflight", None)
        denied = [verdict for verdict in self.verdicts if verdict.decision == "deny"]
        if denied:
            self.status = ResultStatus.BLOCKED
            self.error = "blocked by " + ", ".join(verdict.name for verdict in denied)
        return not denied

    def _steps(self) -> None:
        if not self._guarded_preflight(self.paths()):
            for index, step in enumerate(self.plan.steps):
                self.actions.append(self._not_run(index, step, "blocked",
                                                  f"{self.error} before any step ran"))
            return
        for index, step in enumerate(self.plan.steps):
            self._emitted = False
            try:
                if self.status is not ResultStatus.SUCCESS:
                    self.actions.append(self._not_run(index, step, "skipped",
                                                      f"an earlier step stopped the run "
                                                      f"({self.error})"))
                    self._emit(step, self._adapter_name(step), terminal.SKIPPED)
                    continue
                self._step(index, step)
            except SecurityEscalationError as error:  # the recorder ended it INCOMPLETE
                self.status, self.error = ResultStatus.FAILED, str(error)
                self.actions.append(self._not_run(index, step, "skipped",
                                                  f"the security state stopped the run ({error})"))
                self._emit(step, self._adapter_name(step), terminal.SECURITY_ESCALATION)
            except BaseException as error:  # the run stops; every path still gets its event
                if not self._emitted:
                    self._emit(step, self._adapter_name(step), terminal.CANCELLED
                               if is_cancellation(error) else terminal.INTERNAL_ERROR)
                self._end_paths(self.plan.steps[index + 1:], terminal.SKIPPED)
                raise

    def _step(self, index: int, step: PlanStep) -> None:
        observer = self.observer
        assert observer is not None
        adapter = self.adapters.get(step.action_type)
        simulated = step.acts and self.mode is ExecutionMode.DRY_RUN
        kind = "READ" if not step.acts else ("SIMULATED" if simulated else "LIVE")
        details = {"action_type": step.action_type, "params": dict(step.params), "type": kind,
                   "adapter": adapter.name if adapter else None}
        if step.rollback:  # the plan's hint, verbatim, for rollback guidance read later
            details["rollback"] = step.rollback.to_dict()
        handle = observer.start_step(step.name, details, index=index)
        for effect in step.side_effects:
            observer.declare_side_effect(effect.category, effect.description or step.name,
                                         effect.reversible, step_index=index)
        if adapter is None:
            self._fail(handle, index, step, None, kind, terminal.UNSUPPORTED_ACTION_TYPE,
                       f"no adapter for action_type {step.action_type!r}; register one with "
                       f"@adapter({step.action_type!r}) or pass --adapters MODULE")
            return
        observed: list[SideEffect] = []
        context = self._action_context(handle, index, step, observed)
        if simulated:
            self._simulate(handle, index, step, adapter, context)
            return
        # LIVE: an action, or a read that counts against limits, passes the guards again.
        if self.mode is ExecutionMode.LIVE and (step.acts or step.consumes) \
                and not self._recheck(handle, index, step, adapter.name):
            return
        self._perform(handle, index, step, adapter, context, kind, observed)

    def _simulate(self, handle: StepHandle, index: int, step: PlanStep, adapter: Adapter,
                  context: ActionContext) -> None:
        description = self.simulation(step, adapter.simulator, (context,), {})
        handle.event("simulated", {"would": description})
        handle.complete({"simulated": True, "would": description})
        self.record_simulated(index, step, adapter.name, description)

    def simulation(self, step: PlanStep, simulator: Callable[..., Any] | None,
                   arguments: tuple[Any, ...], keywords: Mapping[str, Any]) -> str:
        """What a simulated step would do: its simulator's words, else its declaration."""
        description = step.describe()
        if simulator is not None:
            try:
                description = printable(simulator(*arguments, **keywords))
            except Exception as error:  # noqa: BLE001 - a simulator's bug is not the plan's
                description = f"{description} (simulator raised {type(error).__name__})"
        return description

    def _recheck(self, handle: StepHandle, index: int, step: PlanStep, adapter: str,
                 key: str | None = None, content: str | None = None) -> bool:
        """Just before a LIVE action: every guard again, then the limits consumed atomically
        under ``key`` (the step's idempotency key by default) for the action ``content``
        digests (the step's own by default)."""
        key = key or self._key(index, step)
        context = self._replaying(replace(self.context, step=step), step, key)
        verdicts = self._check_guards(context, "recheck", handle)
        self.verdicts.extend(verdict for verdict in verdicts if verdict.decision != "allow")
        denied = [verdict.name for verdict in verdicts if verdict.decision == "deny"]
        consumption = None if denied else self._consume(
            handle, index, step, context, key, content or self._content(step))
        if consumption is not None and not consumption.allowed:
            refusal = ExecutionGuard("ExecutionLimits", False, consumption.reason,
                                     stage="recheck")
            self.verdicts.append(refusal)
            denied.append(refusal.name)
        if not denied:
            return True
        reason = "blocked by " + ", ".join(denied)
        handle.cancel(reason, {"blocked_by": denied})  # before its action: nothing was done
        self.actions.append(self._not_run(index, step, "blocked", reason, adapter))
        self.status, self.error = ResultStatus.BLOCKED, reason
        self._emit(step, adapter, terminal.GUARD_DENIED)
        return False

    def _perform(self, handle: StepHandle, index: int, step: PlanStep, adapter: Adapter,
                 context: ActionContext, kind: str, observed: list[SideEffect]) -> None:
        if self.mode is ExecutionMode.LIVE:  # no action runs ahead of its committed record
            handle.observer.ledger.sync()
        token = otel_context.attach(handle.context)  # the adapter's own spans nest here
        try:
            outcome = self._outcome(adapter(context))
        except Exception as error:  # noqa: BLE001 - recorded with its traceback; the run stops
            self._fail(handle, index, step, adapter.name, kind, terminal.ADAPTER_EXCEPTION,
                       error, violations=step.violations(observed))
            return
        except BaseException as error:  # cancelled: recorded, then it goes on up
            handle.cancel(error)
            self.actions.append(self._action(index, step, adapter.name, kind, "failed",
                                             step.describe(), "cancelled"))
            self._emit(step, adapter.name, terminal.CANCELLED)
            raise
        finally:
            otel_context.detach(token)
        if outcome is None:
            self._fail(handle, index, step, adapter.name, kind, terminal.INVALID_OUTPUT,
                       "adapter returned something other than an ActionOutcome, a mapping of "
                       "result details, or None", violations=step.violations(observed))
            return
        violations = step.violations(observed)
        if not outcome.ok:
            code = error_code(outcome.error_code, terminal.ADAPTER_FAILURE)
            self._fail(handle, index, step, adapter.name, kind, code, outcome.result,
                       dict(outcome.details), violations)
            return
        if violations:
            for text in violations:
                handle.event("side_effect.violation", {"violation": text})
            self._fail(handle, index, step, adapter.name, kind,
                       terminal.UNDECLARED_SIDE_EFFECT, "; ".join(violations),
                       dict(outcome.details), violations)
            return
        handle.complete(dict(outcome.details))
        self.actions.append(self._action(index, step, adapter.name, kind, "success",
                                         step.describe(), outcome.result or "Performed",
                                         dict(outcome.details)))
        self._emit(step, adapter.name, None)

    def _outcome(self, output: Any) -> ActionOutcome | None:
        if isinstance(output, ActionOutcome):  # ok must say True or False, nothing truthy
            return output if type(output.ok) is bool else None
        if output is None:
            return ActionOutcome.success()
        if isinstance(output, Mapping):  # cleaned first: cyclic or hostile values are bounded
            return ActionOutcome(True, "", self.redactor.clean(dict(output)))
        return None

    # -- pieces ------------------------------------------------------------------------------

    def _check_guards(self, context: GuardContext, stage: str, handle: StepHandle | None,
                      guards: Iterable[Guard] | None = None) -> list[ExecutionGuard]:
        observer = self.observer
        assert observer is not None

        def record(guard: Guard, verdict: ExecutionGuard, error: BaseException | None) -> None:
            data = verdict.to_dict()
            del data["name"], data["decision"], data["stage"]
            observer.record_guard(verdict.name, verdict.decision, data, stage=stage,
                                  parent=handle, error=error)

        verdicts = evaluate(self.guards if guards is None else guards, context,
                            timeout=self.executor.guard_timeout,
                            stage=stage, on_verdict=record)
        # What reaches reports and --json is redacted like the ledger's copy.
        return [replace(verdict, message=self.redactor.clean_text(verdict.message),
                        details=self.redactor.clean(dict(verdict.details)))
                for verdict in verdicts]

    def _action_context(self, handle: StepHandle, index: int, step: PlanStep,
                        observed: list[SideEffect]) -> ActionContext:
        observer = self.observer
        assert observer is not None
        reports = itertools.count()
        return ActionContext(
            step=step, mode=self.mode, execution_id=observer.execution_id,
            trace_id=observer.trace_id, client_id=self.context.client_id,
            strategy_id=self.context.strategy_id, idempotency_key=self._key(index, step),
            record_effect=lambda category, description, reversible, details: observed.append(
                handle.side_effect(category, description, reversible, details)),
            record_event=lambda name, details: handle.event(name, details),
            record_usage=lambda amounts: self._record_usage(handle, index, step,
                                                            next(reports), amounts))
