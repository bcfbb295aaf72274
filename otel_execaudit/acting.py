"""Code-first steps that act: ``@step(side_effects=[...])``.

A step function that declares side effects behaves like a plan step that acts: its effects are
declared in the ledger each time it runs; in a DRY_RUN execution it is simulated (recorded as
what it would do, not called, and returns None); in a LIVE execution run by the ``Executor``
the guards are checked again, and its limits consumed, just before it is called. Outside the
``Executor`` an acting step never acts: in a LIVE execution it is refused (nothing checked the
guards or the acknowledgement), and inside a run, the run's mode wins over any nested
execution's, so that nothing nested can be more LIVE than the run it belongs to::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit import execution, step
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> @step("place order", side_effects=[{"category": "network", "reversible": False}])
    ... def place_order(symbol):
    ...     raise AssertionError("never called in a dry run")
    >>> with execution("buy", mode="DRY_RUN") as ex:
    ...     place_order("BTCUSDT") is None
    True
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol

from otel_execaudit import terminal
from otel_execaudit.errors import ConfigurationError, GuardDeniedError, PlanError
from otel_execaudit.guards import ExecutionLimitsGuard
from otel_execaudit.observer import describe_failure, is_cancellation
from otel_execaudit.pinning import exact, function_plan_hash, qualified_name
from otel_execaudit.plan_run import PlanRun
from otel_execaudit.plans import Plan, PlanStep, amounts, declared_effects
from otel_execaudit.records import ExecutionMode
from otel_execaudit.results import ResultStatus

if TYPE_CHECKING:
    from otel_execaudit.executor import Executor

__all__ = ["ActionGate", "FunctionRun", "acting", "gate"]


class ActionGate(Protocol):
    """What the executor does around each acting step of a code-first plan."""

    mode: ExecutionMode

    def simulated(self, spec: PlanStep, step: Any, simulate: Callable[..., Any] | None,
                  arguments: tuple[Any, ...], keywords: Mapping[str, Any]) -> None:
        """Declare the step's effects and record what it would do."""

    def before(self, spec: PlanStep, step: Any, arguments: tuple[Any, ...],
               keywords: Mapping[str, Any]) -> None:
        """Declare the step's effects; raise ``GuardDeniedError`` to stop it before it acts."""

    def after(self, spec: PlanStep, step: Any, error: BaseException | None) -> None: ...

    def interrupted(self, spec: PlanStep, error: BaseException) -> None:
        """The gate itself could not finish (a cancellation, a ledger that cannot be written):
        the action's path still ends, and the run fails even if the plan catches ``error``."""


gate: contextvars.ContextVar[ActionGate | None] = contextvars.ContextVar(
    "otel_execaudit_action_gate", default=None)


def acting(function: Callable[..., Any], name: str, side_effects: Iterable[Any],
           consumes: Mapping[str, float] | None,
           simulate: Callable[..., str] | None) -> Callable[..., Any]:
    """Wrap ``function`` (plain or async) so that it acts only when the mode allows it."""
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        raise ConfigurationError(
            f"@step({name!r}, side_effects=...) cannot decorate a generator: an action runs "
            "once. Declare the effects on a plain or async function it calls.")
    spec = PlanStep(name=name, action_type=function.__qualname__,
                    side_effects=declared_effects(side_effects, f"step {name!r}"),
                    consumes=amounts(consumes, f"@step({name!r}): consumes"))
    if not spec.side_effects:
        raise ConfigurationError(f"@step({name!r}, side_effects=[]) declares nothing; declare "
                                 "what the step may change, or leave side_effects out for a "
                                 "step that only reads (a plain @step runs in a dry run too).")

    def prepare(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> tuple[Any, bool]:
        from otel_execaudit.instrument import current_execution, current_step

        step, execution = current_step(), current_execution()
        active = gate.get()
        live = execution.mode is ExecutionMode.LIVE and (
            active is None or active.mode is ExecutionMode.LIVE)
        if active is None:
            for effect in spec.side_effects:
                step.declare(effect.category, effect.description or name, effect.reversible)
            if live:
                raise GuardDeniedError(
                    f"step {name!r} declares side effects and its execution is LIVE, but no "
                    "Executor checked the guards or the acknowledgement; run the plan with "
                    "Executor().run(...).")
            description = spec.describe()
            if simulate is not None:
                description = str(simulate(*arguments, **keywords))
            step.event("simulated", would=description)
            return step, False
        try:  # the gate declares the effects, then simulates or checks
            if not live:
                active.simulated(spec, step, simulate, arguments, keywords)
                return step, False
            active.before(spec, step, arguments, keywords)
        except GuardDeniedError:
            raise
        except BaseException as error:
            active.interrupted(spec, error)
            raise
        return step, True

    def finish(step: Any, error: BaseException | None) -> None:
        active = gate.get()
        if active is None:
            return
        try:
            active.after(spec, step, error)
        except BaseException as failure:
            active.interrupted(spec, failure)
            raise

    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def act_async(*arguments: Any, **keywords: Any) -> Any:
            step, perform = prepare(arguments, keywords)
            if not perform:
                return None
            try:
                result = await function(*arguments, **keywords)
            except BaseException as error:
                finish(step, error)
                raise
            finish(step, None)
            return result
        return act_async

    @functools.wraps(function)
    def act(*arguments: Any, **keywords: Any) -> Any:
        step, perform = prepare(arguments, keywords)
        if not perform:
            return None
        try:
            result = function(*arguments, **keywords)
        except BaseException as error:
            finish(step, error)
            raise
        finish(step, None)
        return result
    return act


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

    def simulated(self, spec: PlanStep, step: Any, simulate: Callable[..., Any] | None,
                  arguments: tuple[Any, ...], keywords: Mapping[str, Any]) -> None:
        self._declare(spec, step)
        self._simulated.append(spec)
        description = self.simulation(spec, simulate, arguments, keywords)
        step.event("simulated", would=description)
        self.record_simulated(step.index, spec, spec.action_type, description)

    def before(self, spec: PlanStep, step: Any, arguments: tuple[Any, ...],
               keywords: Mapping[str, Any]) -> None:
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

    def interrupted(self, spec: PlanStep, error: BaseException) -> None:
        if self.status is ResultStatus.SUCCESS:
            failure = describe_failure(self.redactor, error)
            self._stop(f"step {spec.name!r} interrupted: {failure.error_type}: "
                       f"{failure.message}")
            self.cause = error
        if not self._emitted:
            self._emit(spec, spec.action_type, terminal.CANCELLED if is_cancellation(error)
                       else terminal.INTERNAL_ERROR)

    def after(self, spec: PlanStep, step: Any, error: BaseException | None) -> None:
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
