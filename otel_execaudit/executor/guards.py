"""Guards: the safety checks every execution passes before it may act.

A guard looks at a :class:`GuardContext` and returns an :class:`ExecutionGuard` verdict. A
failing guard of severity ``deny`` blocks the execution; one of severity ``warn`` is recorded
and reported but does not block. All guards always run, so a report shows every reason at once.
A guard that raises, times out or returns something else counts as deny: guards fail closed
(``evaluation.evaluate`` runs them)::

    >>> from otel_execaudit.executor.evaluation import evaluate
    >>> from otel_execaudit.executor.plans import load_plan
    >>> plan = load_plan({"plan_id": "p", "steps": [{"name": "s", "action_type": "noop"}]})
    >>> context = GuardContext(plan=plan, mode=ExecutionMode.LIVE, client_id=1)
    >>> [verdict.decision for verdict in evaluate(default_guards(), context)]
    ['allow', 'deny', 'deny', 'allow']
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from otel_execaudit.errors import ConfigurationError
from otel_execaudit.executor.limits import exceeded
from otel_execaudit.recording import printable
from otel_execaudit.executor.plans import Plan, PlanStep
from otel_execaudit.recording.records import ExecutionMode, escaped_text, frozen, thawed

__all__ = ["AcknowledgementGuard", "ExecutionGuard", "ExecutionLimitsGuard", "Guard",
           "GuardContext", "PlanPinGuard", "Severity", "TenantContextGuard",
           "ValidationRequiredGuard", "default_guards"]

DEFAULT_GUARD_TIMEOUT = 5.0


class Severity(str, enum.Enum):
    """What a failing guard does. Example: ``Severity("warn") is Severity.WARN``."""

    DENY = "deny"  # a failure blocks the execution
    WARN = "warn"  # a failure is recorded and reported, and the execution goes on


@dataclass(frozen=True)
class ExecutionGuard:
    """One guard's verdict (the seed's name): passed or not, why, and with what severity."""

    name: str
    passed: bool
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.DENY
    stage: str = "preflight"  # or "recheck", just before a LIVE action

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", frozen(self.details))

    @property
    def decision(self) -> str:
        """``allow``, ``warn`` (failed, but only warns) or ``deny``."""
        if self.passed:
            return "allow"
        return "warn" if self.severity is Severity.WARN else "deny"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message,
                "details": thawed(self.details), "severity": self.severity.value,
                "decision": self.decision, "stage": self.stage}


@dataclass(frozen=True)
class GuardContext:
    """Everything a guard may look at. ``step`` is set when guards are checked again just
    before a LIVE action; ``usage`` returns today's limit usage for the tenant; ``replayed``
    names the steps of a replayed execution whose limits were already consumed."""

    plan: Plan
    mode: ExecutionMode = ExecutionMode.DRY_RUN
    client_id: Any = None
    strategy_id: str | None = None
    validated: bool = False
    validation_passed: bool = False
    acknowledge_risk: bool = False
    plan_hash: str | None = None
    expected_plan_hash: str | None = None
    step: PlanStep | None = None
    usage: Callable[[], Mapping[str, float]] = field(default=lambda: {}, repr=False)
    replayed: frozenset[str] = frozenset()  # names of steps whose limits are already consumed

    @property
    def live(self) -> bool:
        return self.mode is ExecutionMode.LIVE

    @property
    def scope(self) -> str:
        """Whose counters: the tenant's (a strategy selects the maxima, not the counters, so
        that switching strategies cannot reset a tenant's day). Always valid text, whatever
        the client id holds (TenantContext refuses what is not a positive integer)."""
        return "client:" + escaped_text(str(self.client_id))

    def acting(self) -> bool:
        """Whether the step about to act (or, before the first, any step of the plan) acts
        anew: a replay finishes an action already counted, and is not a new one."""
        return any(step.acts and step.name not in self.replayed
                   for step in ((self.step,) if self.step is not None else self.plan.steps))

    def planned(self) -> dict[str, float]:
        """What the step about to act (or, before the first, the whole plan) will consume."""
        steps = (self.step,) if self.step is not None else self.plan.steps
        totals: dict[str, float] = {}
        for step in steps:
            if step.name in self.replayed:  # a replay: counted once, the first time
                continue
            for name, amount in step.consumption.items():
                totals[name] = totals.get(name, 0) + amount
        return totals


@runtime_checkable
class Guard(Protocol):
    """What a guard is: a ``name``, a ``severity`` and a ``check``. ``config()`` (optional)
    returns the settings that go into the plan hash, so changing them makes a pinned plan stale.

    >>> class BusinessHours:
    ...     name, severity = "BusinessHours", Severity.WARN
    ...     def check(self, context):
    ...         return ExecutionGuard(self.name, True, "inside business hours")
    >>> isinstance(BusinessHours(), Guard)
    True
    """

    name: str
    severity: Severity

    def check(self, context: GuardContext) -> ExecutionGuard: ...


class TenantContextGuard:
    """Every execution names its tenant: ``client_id`` present and a positive integer."""

    name, severity = "TenantContext", Severity.DENY

    def check(self, context: GuardContext) -> ExecutionGuard:
        client_id = context.client_id
        if client_id is None or client_id == "":
            return self._verdict(False, "client_id is required (pass --client-id N, a "
                                        "positive integer)")
        if isinstance(client_id, bool) or not isinstance(client_id, int):
            return self._verdict(False, f"client_id must be an integer, not {client_id!r} "
                                        "(pass --client-id N, a positive integer)")
        if client_id <= 0:
            return self._verdict(False, f"client_id must be positive, not {client_id} "
                                        "(pass --client-id N, a positive integer)")
        return self._verdict(True, f"Tenant context valid (client_id={client_id})")

    def _verdict(self, passed: bool, message: str) -> ExecutionGuard:
        return ExecutionGuard(self.name, passed, message, severity=self.severity)


class ValidationRequiredGuard:
    """LIVE needs a prior validation that passed; DRY_RUN does not."""

    name, severity = "ValidationRequired", Severity.DENY

    def check(self, context: GuardContext) -> ExecutionGuard:
        if not context.live:
            return ExecutionGuard(self.name, True, "Validation not required for DRY-RUN")
        if context.validated is not True:  # only True itself: "no" or "false" are not a yes
            return ExecutionGuard(self.name, False, "LIVE execution requires a prior validation "
                                  "that passed (--validated --validation-passed)")
        if context.validation_passed is not True:
            return ExecutionGuard(self.name, False,
                                  "Validation did not pass (--validation-passed)")
        return ExecutionGuard(self.name, True, "Plan validated successfully")


class AcknowledgementGuard:
    """LIVE needs an explicit acknowledgement of risk; DRY_RUN does not."""

    name, severity = "Acknowledgement", Severity.DENY

    def check(self, context: GuardContext) -> ExecutionGuard:
        if not context.live:
            return ExecutionGuard(self.name, True, "Acknowledgement not required for DRY-RUN")
        if context.acknowledge_risk is not True:
            return ExecutionGuard(self.name, False, "LIVE execution requires explicit risk "
                                                    "acknowledgement (--acknowledge-risk)")
        return ExecutionGuard(self.name, True, "Risk acknowledged for LIVE execution")


class ExecutionLimitsGuard:
    """Daily maxima per tenant (and strategy): orders, notional, loss, or counters of your own.

    Maxima given here win; otherwise the plan's ``limits`` (and its strategy's) apply. In DRY_RUN
    limits are not enforced, but the verdict says what the run would consume of what remains.

    >>> ExecutionLimitsGuard(max_orders_per_day=10).config()
    {'limits': {'orders': 10}}
    """

    name, severity = "ExecutionLimits", Severity.DENY

    def __init__(self, *, max_orders_per_day: float | None = None,
                 max_notional_per_day: float | None = None,
                 max_loss_per_day: float | None = None,
                 limits: Mapping[str, float] | None = None) -> None:
        given = {"orders": max_orders_per_day, "notional": max_notional_per_day,
                 "loss": max_loss_per_day, **(limits or {})}
        self.limits = {name: value for name, value in given.items() if value is not None}
        for name, value in self.limits.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"ExecutionLimitsGuard: the maximum for {name!r} "
                                         f"must be a finite number >= 0, not {value!r}.")

    def config(self) -> Mapping[str, Any]:
        return {"limits": dict(self.limits)}

    def maxima(self, context: GuardContext) -> dict[str, float]:
        return {**context.plan.limits_for(context.strategy_id), **self.limits}

    def check(self, context: GuardContext) -> ExecutionGuard:
        strategies, strategy = context.plan.strategies, context.strategy_id
        if strategy is not None and strategy not in strategies:  # a typo must not go unseen
            known = (f"the plan defines {sorted(strategies)}; pass one of these"
                     if strategies else "the plan defines no strategies")
            return ExecutionGuard(self.name, False, (
                f"Unknown strategy {strategy!r}: {known} or leave --strategy-id out"),
                {"strategy_id": strategy})
        maxima = self.maxima(context)
        if not maxima:
            return ExecutionGuard(self.name, True, "No execution limits configured")
        used = dict(context.usage())
        wanted = context.planned()
        over = exceeded(used, wanted, maxima, acting=context.acting())
        details = {"scope": context.scope, "used": used, "planned": wanted, "maxima": maxima,
                   "would_exceed": over}
        if context.step is None and not context.plan.steps:  # code: actions not known yet
            consumption = "; ".join(
                f"{_number(used.get(name, 0))} of {_number(maximum)} {name} used today"
                for name, maximum in maxima.items()) + (
                "; a code-first plan's actions are counted as each one runs")
        else:
            consumption = "; ".join(
                f"would consume {_number(wanted.get(name, 0))} of {_number(maximum)} {name} "
                f"({_number(used.get(name, 0))} used today)" for name, maximum in maxima.items())
        if not context.live:
            message = f"Limits not enforced for DRY-RUN; {consumption}"
            if over:
                message += f". LIVE would be blocked: {', '.join(over)} over the daily limit"
            return ExecutionGuard(self.name, True, message, details)
        if over:
            return ExecutionGuard(self.name, False, _limit_reached(over[0], used, wanted, maxima),
                                  details)
        return ExecutionGuard(self.name, True,
                              f"All execution limits within bounds; {consumption}", details)


def _limit_reached(name: str, used: Mapping[str, float], wanted: Mapping[str, float],
                   maxima: Mapping[str, float]) -> str:
    spent, extra, maximum = used.get(name, 0), wanted.get(name, 0), maxima[name]
    if extra > 0:
        reached = (f"Max {name} limit reached: {_number(spent)} used + {_number(extra)} planned "
                   f"> {_number(maximum)}")
    else:
        reached = (f"Daily {name} limit reached: {_number(spent)} used of {_number(maximum)}, "
                   "so no action runs")
    return f"{reached}. Counters restart at 00:00 UTC; or raise the plan's limits."


_PLAN_HASH = re.compile(r"sha256:[0-9a-f]{64}")


class PlanPinGuard:
    """A LIVE run may be pinned to the hash of the plan its dry run showed (as with a saved
    Terraform plan): a plan or guard configuration changed since then is refused as stale."""

    name, severity = "PlanPinned", Severity.DENY

    def __init__(self, *, required: bool = False) -> None:
        self.required = required

    def check(self, context: GuardContext) -> ExecutionGuard:
        expected, actual = context.expected_plan_hash, context.plan_hash
        details = {"expected": expected, "actual": actual}
        if expected is None:
            if self.required and context.live:
                return ExecutionGuard(self.name, False, "LIVE execution requires the plan hash "
                                      "from a dry run (--plan-hash)", details)
            return ExecutionGuard(self.name, True, f"Plan hash {actual}", details)
        if not isinstance(expected, str) or not _PLAN_HASH.fullmatch(expected.strip().lower()):
            return ExecutionGuard(self.name, False, (
                "Not a plan hash: pass the sha256:<64 hex digits> that `execaudit plan` (or "
                "the dry run's plan_hash) printed"), {"expected": printable(expected)[:80],
                                                       "actual": actual})
        if expected.strip().lower() != actual:
            return ExecutionGuard(self.name, False, (
                f"Plan is stale: the hash covers the plan, its client and strategy, the guards "
                f"and the adapters, and something among them changed since the dry run "
                f"(expected {expected}, now {actual}). Dry-run it again for this client "
                "(`execaudit plan PLAN --client-id N`) and review it."), details)
        return ExecutionGuard(self.name, True, "Plan matches its dry run", details)


def default_guards() -> list[Guard]:
    """The four seed guards, in the seed's order."""
    return [TenantContextGuard(), ValidationRequiredGuard(), AcknowledgementGuard(),
            ExecutionLimitsGuard()]


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
