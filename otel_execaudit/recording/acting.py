"""Code-first steps that act: ``@step(side_effects=[...])``, and the gate they pass through.

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
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol

from otel_execaudit.errors import ConfigurationError, GuardDeniedError
from otel_execaudit.recording.declarations import DeclaredEffect, amounts, declared_effects
from otel_execaudit.recording.records import ExecutionMode

__all__ = ["ActionGate", "ActionSpec", "acting", "gate"]


@dataclass(frozen=True)
class ActionSpec:
    """What an acting step declares: its name, the function that acts (``action_type``, its
    qualified name), the side effects it may have and what it consumes of the daily limits."""

    name: str
    action_type: str
    side_effects: tuple[DeclaredEffect, ...]
    consumes: Mapping[str, float]

    def describe(self) -> str:
        """What the step does, in words: its declared effects, else its function's name."""
        declared = "; ".join(effect.description for effect in self.side_effects
                             if effect.description)
        return declared or self.action_type


class ActionGate(Protocol):
    """What the executor does around each acting step of a code-first plan: recording defines
    it, the executor's run installs itself as the ``gate`` (so recording never imports the
    executor)."""

    mode: ExecutionMode

    def simulated(self, spec: ActionSpec, step: Any, simulate: Callable[..., Any] | None,
                  arguments: tuple[Any, ...], keywords: Mapping[str, Any]) -> None:
        """Declare the step's effects and record what it would do."""

    def before(self, spec: ActionSpec, step: Any, arguments: tuple[Any, ...],
               keywords: Mapping[str, Any]) -> None:
        """Declare the step's effects; raise ``GuardDeniedError`` to stop it before it acts."""

    def after(self, spec: ActionSpec, step: Any, error: BaseException | None) -> None: ...

    def interrupted(self, spec: ActionSpec, error: BaseException) -> None:
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
    spec = ActionSpec(name=name, action_type=function.__qualname__,
                      side_effects=declared_effects(side_effects, f"step {name!r}"),
                      consumes=amounts(consumes, f"@step({name!r}): consumes"))
    if not spec.side_effects:
        raise ConfigurationError(f"@step({name!r}, side_effects=[]) declares nothing; declare "
                                 "what the step may change, or leave side_effects out for a "
                                 "step that only reads (a plain @step runs in a dry run too).")

    def prepare(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> tuple[Any, bool]:
        from otel_execaudit.recording.instrument import current_execution, current_step  # cycle

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


