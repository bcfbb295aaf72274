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
import inspect
from typing import Any, Callable, Iterable, Mapping, Protocol

from otel_execaudit.errors import ConfigurationError
from otel_execaudit.plans import PlanStep, declared_effects
from otel_execaudit.records import ExecutionMode

__all__ = ["ActionGate", "acting", "gate"]


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
