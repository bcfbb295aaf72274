"""A code-first plan run by the executor: the plan function runs inside the execution, and each
of its ``@step(side_effects=...)`` functions passes through the run as its gate
(``recording.acting.ActionGate``): simulated in DRY_RUN; in LIVE checked by every guard, its
limits consumed and its STARTED entry committed just before it acts.
"""

from __future__ import annotations

import inspect
import itertools
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

from otel_execaudit.executor import terminal
from otel_execaudit.errors import ConfigurationError, GuardDeniedError, PlanError
from otel_execaudit.executor.guards import ExecutionLimitsGuard
from otel_execaudit.recording import describe_failure, is_cancellation
from otel_execaudit.executor.exact import exact, qualified_name
from otel_execaudit.executor.pinning import function_plan_hash
from otel_execaudit.executor.run import PlanRun
from otel_execaudit.executor.plans import Plan, PlanStep
from otel_execaudit.recording.acting import ActionSpec, gate
from otel_execaudit.executor.results import ResultStatus

if TYPE_CHECKING:
    from otel_execaudit.executor.executor import Executor

__all__ = ["FunctionRun"]


class FunctionRun(PlanRun):
    """A code-first plan: the function runs inside the execution; each of its ``@step``
    functions that declare side effects passes through this run as its gate."""

    def __init__(self, executor: Executor, function: Callable[..., Any],
                 arguments: tuple[Any, ...], keywords: dict[str, Any], *options: Any) -> None:
        plan_id, self.body = getattr(function, "__execaudit_plan__", (None, function))
        if inspect.iscoroutinefunction(self.body) or inspect.isasyncgenfunction(self.body) \
                or inspect.isgeneratorfunction(self.body):
            raise ConfigurationError(
                "Executor.run takes a plain plan function; for an async or generator plan, "
                "run its acting steps from a plain function.")
        self.arguments, self.keywords = arguments, keywords
        # Actions are numbered across the whole run, nested executions included: the number
        # keys each action's limit consumption, so no two actions of a run share a key.
        self._numbers = itertools.count()
        self._simulated: list[PlanStep] = []  # in DRY_RUN: the actions it would have taken
        self._plan_steps: dict[int, PlanStep] = {}
        super().__init__(executor, Plan(plan_id or getattr(function, "__name__", "plan"), ()),
                         *options)

    def _hash(self) -> str:
        return function_plan_hash(self.body, arguments=self.arguments, keywords=self.keywords,
                                  guards=self.executor.guards, subject=self.subject)

    def paths(self) -> tuple[PlanStep, ...]:
        # The plan's steps are not known before it runs: its one path is the plan function.
        return (PlanStep(self.plan.plan_id, qualified_name(self.body)),)

    def _steps(self) -> None:
        if not self._guarded_preflight(self.paths()):
            return
        token = gate.set(self)
        try:
            self.value = self.body(*self.arguments, **self.keywords)
        except Exception as error:  # noqa: BLE001 - recorded with its traceback
            if isinstance(error, GuardDeniedError) and self.status is not ResultStatus.SUCCESS:
                return  # the gate's own: recorded (BLOCKED, or skipped after a failure)
            if self.status is ResultStatus.SUCCESS:  # the plan's own code failed, no action:
                failure = describe_failure(self.redactor, error)  # redacted, never raises
                self.status = ResultStatus.FAILED
                self.error = f"{failure.error_type}: {failure.message}"
                self._emit(self.paths()[0], None, terminal.PLAN_EXCEPTION)
            self.cause = error
        finally:
            gate.reset(token)
        if self._simulated:
            self._dry_run_total()

    def _dry_run_total(self) -> None:
        """What the dry run's actions would consume, now that they are known: the limit
        guards again over them (a code-first plan's preflight could not count them)."""
        simulated = replace(self.plan, steps=tuple(self._simulated))
        limits = [guard for guard in self.guards if isinstance(guard, ExecutionLimitsGuard)]
        self.verdicts.extend(self._check_guards(replace(self.context, plan=simulated), "total",
                                                None, limits))

    # -- the gate ------------------------------------------------------------------------------

    def _plan_step(self, action: ActionSpec) -> PlanStep:
        """The acting step as a plan step, the form the run's life cycle takes (one per spec:
        a step function called again is the same step)."""
        step = self._plan_steps.get(id(action))
        if step is None:
            step = self._plan_steps[id(action)] = PlanStep(
                name=action.name, action_type=action.action_type,
                side_effects=action.side_effects, consumes=action.consumes)
        return step

    def simulated(self, action: ActionSpec, step: Any, simulate: Callable[..., Any] | None,
                  arguments: tuple[Any, ...], keywords: Mapping[str, Any]) -> None:
        spec = self._plan_step(action)
        self._declare(spec, step)
        self._simulated.append(spec)
        description = self.simulation(spec, simulate, arguments, keywords)
        step.event("simulated", would=description)
        self.record_simulated(step.index, spec, spec.action_type, description)

    def before(self, action: ActionSpec, step: Any, arguments: tuple[Any, ...],
               keywords: Mapping[str, Any]) -> None:
        spec = self._plan_step(action)
        self._declare(spec, step)
        if self.status is not ResultStatus.SUCCESS:  # an earlier action failed: stop here
            self.actions.append(self._not_run(step.index, spec, "skipped",
                                              f"an earlier step stopped the run ({self.error})",
                                              spec.action_type))
            self._emit(spec, spec.action_type, terminal.SKIPPED)
            raise GuardDeniedError(f"step {spec.name!r} not run: {self.error}")
        observer = self.observer
        assert observer is not None
        key = f"{observer.execution_id}:{next(self._numbers)}"
        if not self._recheck(step._handle, step.index, spec, spec.action_type, key,
                             self._call_content(spec, arguments, keywords)):
            raise GuardDeniedError(f"step {spec.name!r} not run: {self.error}")
        step._handle.observer.ledger.sync()  # no action runs ahead of its committed record

    def _call_content(self, spec: PlanStep, arguments: tuple[Any, ...],
                      keywords: Mapping[str, Any]) -> str:
        """A replay repeats the same call: the digest covers its exact arguments. A call
        whose arguments have no exact form can never be shown to be the same, so it never
        counts as a replay (its key, reused, is refused)."""
        try:
            call = exact([list(arguments), dict(keywords)], f"the arguments of {spec.name!r}")
        except PlanError:
            call = {"$unrepeatable": uuid.uuid4().hex}
        return self._content(spec, call=call)

    def _declare(self, spec: PlanStep, step: Any) -> None:
        self._emitted = False  # a new action path
        for effect in spec.side_effects:
            step.declare(effect.category, effect.description or spec.name, effect.reversible)

    def interrupted(self, action: ActionSpec, error: BaseException) -> None:
        spec = self._plan_step(action)
        if self.status is ResultStatus.SUCCESS:
            failure = describe_failure(self.redactor, error)
            self._stop(f"step {spec.name!r} interrupted: {failure.error_type}: "
                       f"{failure.message}")
            self.cause = error
        if not self._emitted:
            self._emit(spec, spec.action_type, terminal.CANCELLED if is_cancellation(error)
                       else terminal.INTERNAL_ERROR)

    def after(self, action: ActionSpec, step: Any, error: BaseException | None) -> None:
        spec = self._plan_step(action)
        handle = step._handle  # its own execution's step, nested or not
        violations = spec.violations(handle.observer.observed_effects(handle.index))
        if error is not None:
            code = terminal.CANCELLED if is_cancellation(error) else terminal.ADAPTER_EXCEPTION
            failure = describe_failure(self.redactor, error)
            self.actions.append(self._action(
                step.index, spec, spec.action_type, "LIVE", "failed", spec.describe(),
                f"{failure.error_type}: {failure.message}", None, code, violations))
            self._stop(f"step {spec.name!r} failed: {failure.error_type}: {failure.message}")
            self._emit(spec, spec.action_type, code)
            return
        for text in violations:
            step.event("side_effect.violation", violation=text)
        code = terminal.UNDECLARED_SIDE_EFFECT if violations else None
        self.actions.append(self._action(step.index, spec, spec.action_type, "LIVE",
                                         "failed" if violations else "success",
                                         spec.describe(), "Performed", None, code, violations))
        if violations:
            self._stop(f"step {spec.name!r}: " + "; ".join(violations))
        self._emit(spec, spec.action_type, code)

    def _stop(self, reason: str) -> None:
        """A failed action fails the run, even if the plan function catches the error: later
        actions are skipped, as in a data plan."""
        if self.status is ResultStatus.SUCCESS:
            self.status, self.error = ResultStatus.FAILED, reason
