"""Code-first steps that act: ``@step(side_effects=[...])``.

A step function that declares side effects behaves like a plan step that acts: its effects are
declared in the ledger each time it runs; in a DRY_RUN execution it is simulated (recorded as
what it would do, not called, and returns None); in a LIVE execution run by the ``Executor``
the guards are checked again, and its limits consumed, just before it is called::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit import execution, step
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> @step("place order", side_effects=[{"category": "network", "reversible": False}])
    ... def place_order(symbol):
    ...     raise AssertionError("never called in a dry run")
    >>> with execution("buy") as ex:       # DRY_RUN unless asked otherwise
    ...     place_order("BTCUSDT") is None
    True
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Protocol

from otel_execaudit import terminal
from otel_execaudit.canonical import canonical_bytes
from otel_execaudit.errors import ConfigurationError, GuardDeniedError
from otel_execaudit.executor import (
    PLAN_HASH_FORMAT,
    Executor,
    ResultStatus,
    _describe,
    _guard_configuration,
    _Run,
    _violations,
)
from otel_execaudit.guards import Guard
from otel_execaudit.observer import describe_failure
from otel_execaudit.plans import Plan, PlanStep, declared_effects
from otel_execaudit.records import ExecutionMode
from otel_execaudit.runtime import get_runtime

__all__ = ["ActionGate", "FunctionRun", "acting", "function_plan_hash", "gate"]


class ActionGate(Protocol):
    """What the executor does around each acting step of a code-first plan."""

    def simulated(self, spec: PlanStep, step: Any, description: str) -> None: ...

    def before(self, spec: PlanStep, step: Any) -> None:
        """Raise ``GuardDeniedError`` to stop the step before it acts."""

    def after(self, spec: PlanStep, step: Any, error: BaseException | None) -> None: ...


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
                    consumes=dict(consumes or {}))

    def prepare(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> tuple[Any, bool]:
        from otel_execaudit.instrument import current_execution, current_step

        step, execution = current_step(), current_execution()
        for effect in spec.side_effects:
            step.declare(effect.category, effect.description or name, effect.reversible)
        if execution.mode is ExecutionMode.DRY_RUN:
            description = spec.side_effects[0].description or name
            if simulate is not None:
                description = str(simulate(*arguments, **keywords))
            step.event("simulated", would=description)
            active = gate.get()
            if active is not None:
                active.simulated(spec, step, description)
            return step, False
        active = gate.get()
        if active is not None:
            active.before(spec, step)
        return step, True

    def finish(step: Any, error: BaseException | None) -> None:
        active = gate.get()
        if active is not None:
            active.after(spec, step, error)

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


class FunctionRun(_Run):
    """A code-first plan: the function runs inside the execution; each of its ``@step`` functions
    that declare side effects passes through this run as its gate (see ``acting``)."""

    def __init__(self, executor: Executor, function: Callable[..., Any],
                 arguments: tuple[Any, ...], keywords: dict[str, Any], *options: Any) -> None:
        plan_id, self.body = getattr(function, "__execaudit_plan__", (None, function))
        self.plan_id = plan_id or getattr(function, "__name__", "plan")
        self.arguments, self.keywords = arguments, keywords
        super().__init__(executor, Plan(self.plan_id, ()), *options)
        self.hash = function_plan_hash(self.body, executor.guards)
        self.context = replace(self.context, plan_hash=self.hash)

    def _steps(self) -> None:
        if not self._preflight():
            self._emit(PlanStep(self.plan_id, _qualified(self.body)), None,
                       terminal.GUARD_DENIED)
            return
        token = gate.set(self)
        try:
            self.value = self.body(*self.arguments, **self.keywords)
        except GuardDeniedError:
            pass  # recorded (BLOCKED) by before()
        except Exception as error:  # noqa: BLE001 - recorded with its traceback
            if self.status is ResultStatus.SUCCESS:
                self.status = ResultStatus.FAILED
                self.error = f"{type(error).__name__}: {error}"
            self.cause = error
        finally:
            gate.reset(token)

    # -- the gate ------------------------------------------------------------------------------

    def simulated(self, spec: PlanStep, step: Any, description: str) -> None:
        self.actions.append(self._action(spec, spec.action_type, "SIMULATED", "success",
                                         f"would {description}",
                                         "Simulated successfully (nothing was performed)"))
        self._emit(spec, spec.action_type, None)

    def before(self, spec: PlanStep, step: Any) -> None:
        if self.status is not ResultStatus.SUCCESS or not self._recheck(
                step._handle, spec, spec.action_type):
            raise GuardDeniedError(f"step {spec.name!r} not run: {self.error}")

    def after(self, spec: PlanStep, step: Any, error: BaseException | None) -> None:
        observer = self.observer
        assert observer is not None
        observed = [effect for effect in observer.get_execution_record().side_effects_report
                    .observed if effect.step_index == step.index]
        violations = _violations(spec, observed)
        if error is not None:
            failure = describe_failure(get_runtime().redactor, error)
            self.actions.append(self._action(
                spec, spec.action_type, "LIVE", "failed", _describe(spec),
                f"{failure.error_type}: {failure.message}", None, terminal.ADAPTER_EXCEPTION,
                violations))
            self._emit(spec, spec.action_type, terminal.ADAPTER_EXCEPTION)
            return
        for text in violations:
            step.event("side_effect.violation", violation=text)
        status = "failed" if violations else "success"
        self.actions.append(self._action(spec, spec.action_type, "LIVE", status,
                                         _describe(spec), "Performed", None,
                                         terminal.UNDECLARED_SIDE_EFFECT if violations else None,
                                         violations))
        self._emit(spec, spec.action_type,
                   terminal.UNDECLARED_SIDE_EFFECT if violations else None)
        if violations and self.status is ResultStatus.SUCCESS:
            self.status = ResultStatus.FAILED
            self.error = f"step {spec.name!r}: " + "; ".join(violations)


def function_plan_hash(function: Callable[..., Any], guards: Iterable[Guard]) -> str:
    """The plan hash of a code-first plan: its function's name and its module's source (where
    its steps usually live), and the guard configuration."""
    module = inspect.getmodule(function)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # no source (interactive, frozen): the function's code
        code = getattr(function, "__code__", None)
        source = code.co_code.hex() if code is not None else ""
    document = {"format": PLAN_HASH_FORMAT, "function": _qualified(function),
                "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
                "guards": _guard_configuration(guards)}
    return "sha256:" + hashlib.sha256(canonical_bytes(document)).hexdigest()


def _qualified(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"
