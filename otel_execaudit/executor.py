"""The guarded executor: plans run safe by default.

DRY_RUN unless LIVE is asked for; every guard runs and any deny blocks before a single side
effect; in DRY_RUN a step that declares a side effect is simulated, never performed; in LIVE the
guards are checked again and the step's limits consumed, atomically with its ledger entry, just
before it acts. Every step's outcome is recorded in the ledger and as spans, and each ends with
exactly one terminal event::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit.adapters import AdapterRegistry
    >>> runtime = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                                    exporter="none")
    >>> adapters = AdapterRegistry()
    >>> @adapters.adapter("place_order")
    ... def place_order(context):
    ...     return {"order_id": "o-1"}
    >>> plan = {"plan_id": "buy-btc", "steps": [{"name": "buy", "action_type": "place_order",
    ...     "params": {"symbol": "BTCUSDT"}, "side_effects": ["network"]}]}
    >>> result = Executor(adapters=adapters).run(plan, client_id=1)
    >>> result.status.value, result.mode.value, [action.type for action in result.actions]
    ('SUCCESS', 'DRY_RUN', ['SIMULATED'])
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_execaudit import terminal
from otel_execaudit.adapters import (
    ActionContext,
    ActionOutcome,
    Adapter,
    AdapterRegistry,
    default_registry,
    error_code,
)
from otel_execaudit.canonical import canonical_bytes
from otel_execaudit.errors import SecurityEscalationError
from otel_execaudit.guards import (
    DEFAULT_GUARD_TIMEOUT,
    ExecutionGuard,
    ExecutionLimitsGuard,
    Guard,
    GuardContext,
    PlanPinGuard,
    default_guards,
    evaluate,
    guard_name,
)
from otel_execaudit.instrument import execution
from otel_execaudit.limits import LimitCounters
from otel_execaudit.observer import ExecutionObserver, StepHandle, describe_failure, printable
from otel_execaudit.plans import Plan, PlanStep, load_plan
from otel_execaudit.records import ExecutionMode, SideEffect, timestamp_now
from otel_execaudit.results import ActionRecord, ExecutionResult, ResultStatus
from otel_execaudit.runtime import get_runtime

__all__ = ["Executor", "execute_plan", "plan_hash"]

PLAN_HASH_FORMAT = 1
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def plan_hash(plan: Plan, guards: Iterable[Guard], adapters: AdapterRegistry) -> str:
    """``sha256:<hex>`` over the plan's steps and parameters, the guard configuration, and the
    adapter serving each action type: change any of them and a pinned LIVE run refuses it."""
    document = {
        "format": PLAN_HASH_FORMAT,
        "plan": plan.to_dict(),
        "guards": _guard_configuration(guards),
        "adapters": {step.action_type: _adapter_name(adapters.get(step.action_type))
                     for step in plan.steps},
    }
    return "sha256:" + hashlib.sha256(canonical_bytes(document)).hexdigest()


class Executor:
    """Runs plans through guards and adapters, recording everything.

    ``guards`` defaults to the four seed guards; ``adapters`` to the default registry (``@adapter``
    and entry points). ``require_plan_hash`` makes LIVE runs present the hash of their dry run.
    ``security`` is the recorder's security provider (see ``ExecutionObserver``).
    """

    def __init__(self, *, guards: Iterable[Guard] | None = None,
                 adapters: AdapterRegistry | None = None,
                 guard_timeout: float = DEFAULT_GUARD_TIMEOUT,
                 require_plan_hash: bool = False, product: str = terminal.PRODUCT,
                 security: Any = None) -> None:
        self.guards: list[Guard] = list(default_guards() if guards is None else guards)
        self.adapters = adapters if adapters is not None else default_registry
        self.guard_timeout = guard_timeout
        self.require_plan_hash = require_plan_hash
        self.product = product
        self.security = security

    def plan_hash(self, plan: Plan | Mapping[str, Any] | str | Callable[..., Any]) -> str:
        """The hash a dry run reports and a pinned LIVE run must present."""
        if callable(plan) and not isinstance(plan, (Plan, Mapping)):
            from otel_execaudit.acting import function_plan_hash

            body = getattr(plan, "__execaudit_plan__", (None, plan))[1]
            return function_plan_hash(body, self.guards)
        return plan_hash(load_plan(plan), self.guards, self.adapters)

    def run(self, plan: Plan | Mapping[str, Any] | str | Callable[..., Any], *,
            mode: ExecutionMode | str = ExecutionMode.DRY_RUN, client_id: Any = None,
            strategy_id: str | int | None = None, validated: bool = False,
            validation_passed: bool = False, acknowledge_risk: bool = False,
            plan_hash: str | None = None, execution_id: str | None = None,
            arguments: tuple[Any, ...] = (),
            keywords: Mapping[str, Any] | None = None) -> ExecutionResult:
        """Run ``plan``: a Plan, a mapping, a JSON/YAML path, or a code-first plan function
        (``@plan`` or plain, called with ``arguments`` and ``keywords``; its ``@step``
        functions with ``side_effects`` are the actions). DRY_RUN unless ``mode`` is LIVE, and LIVE only when
        every guard allows it. Raises PlanError for a malformed plan (nothing is recorded) and
        LedgerWriteError if the ledger cannot be written."""
        options = (ExecutionMode.parse(mode), client_id,
                   None if strategy_id is None else str(strategy_id), validated,
                   validation_passed, acknowledge_risk, plan_hash, execution_id)
        if callable(plan) and not isinstance(plan, (Plan, Mapping)):
            from otel_execaudit.acting import FunctionRun

            return FunctionRun(self, plan, tuple(arguments), dict(keywords or {}),
                               *options).execute()
        return _Run(self, load_plan(plan), *options).execute()

    def run_action(self, request: Mapping[str, Any], **options: Any) -> ExecutionResult:
        """Run one action request, as an agent's tool call does: ``trace_id`` (the caller's,
        32 hex characters; the execution joins that trace), ``action_type``, ``params``, and
        optionally ``name``, ``side_effects``, ``consumes`` and ``rollback`` as in a plan step.
        ``options`` as for ``run``. A request without a valid trace id or action type fails
        (one terminal event, one recorded execution) and nothing runs.

        Example: ``executor.run_action({"trace_id": "4bf9…", "action_type": "send_email",
        "params": {"to": "ops"}}, client_id=7)``
        """
        trace_id, action_type = request.get("trace_id"), request.get("action_type")
        code = None
        if not isinstance(trace_id, str) or not _TRACE_ID.fullmatch(trace_id.lower()) \
                or not int(trace_id, 16):
            code, trace_id = terminal.MISSING_TRACE_ID, None
        elif not isinstance(action_type, str) or not action_type.strip():
            code = terminal.MISSING_ACTION_TYPE
        if code is not None:
            return self._refuse_request(action_type if isinstance(action_type, str) else None,
                                        trace_id, code, options)
        step = {key: request[key] for key in ("params", "side_effects", "consumes",
                                               "rollback", "idempotency_key", "description")
                if key in request}
        plan = load_plan({"plan_id": str(request.get("plan_id") or f"action:{action_type}"),
                          "steps": [{"name": str(request.get("name") or action_type),
                                     "action_type": action_type, **step}]})
        parent = trace.NonRecordingSpan(trace.SpanContext(
            trace_id=int(trace_id.lower(), 16), span_id=random.getrandbits(64) or 1,
            is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
        token = otel_context.attach(trace.set_span_in_context(parent))
        try:
            return self.run(plan, **options)
        finally:
            otel_context.detach(token)

    def _refuse_request(self, action_type: str | None, trace_id: str | None, code: str,
                        options: Mapping[str, Any]) -> ExecutionResult:
        mode = ExecutionMode.parse(options.get("mode", ExecutionMode.DRY_RUN))
        reason = {terminal.MISSING_TRACE_ID: "the request has no valid trace_id (32 hex "
                  "characters, not all zero); pass the caller's trace id",
                  terminal.MISSING_ACTION_TYPE: "the request has no action_type; name the "
                  "adapter action to run"}[code]
        metadata = {"plan_id": f"action:{action_type or 'unknown'}",
                    "client_id": options.get("client_id"), "mode": mode.value}
        with execution(metadata["plan_id"], mode=mode, details=metadata) as run:
            observer = run.observer
            assert observer is not None
            terminal.emit(terminal.TerminalEvent.failed(trace_id, action_type, None, code,
                                                        product=self.product),
                          record=lambda kind, data: observer.record(
                              kind, data, event=terminal.EVENT_NAME),
                          telemetry=get_runtime().telemetry)
            observer.mark_failed(reason)
        metadata.update(execution_id=observer.execution_id, ledger=str(observer.ledger.path))
        return ExecutionResult(ResultStatus.FAILED, mode, (), (), metadata,
                               datetime.now(timezone.utc), reason)


def execute_plan(plan: Plan | Mapping[str, Any] | str, **options: Any) -> ExecutionResult:
    """Run ``plan`` with the default executor; ``options`` as for ``Executor.run``.

    Example: ``execute_plan("plan.yaml", client_id=1)`` is a dry run.
    """
    return Executor().run(plan, **options)


class _Run:
    """One run of one plan: the state the steps share."""

    def __init__(self, executor: Executor, plan: Plan, mode: ExecutionMode, client_id: Any,
                 strategy_id: str | None, validated: bool, validation_passed: bool,
                 acknowledge_risk: bool, expected_hash: str | None,
                 execution_id: str | None) -> None:
        self.executor, self.plan, self.mode = executor, plan, mode
        self.adapters = executor.adapters
        self.hash = plan_hash(plan, executor.guards, executor.adapters)
        pinning = expected_hash is not None or executor.require_plan_hash
        self.guards = executor.guards + ([PlanPinGuard(required=executor.require_plan_hash)]
                                         if pinning else [])
        self.counters = LimitCounters(get_runtime().ledger)
        self.context = GuardContext(
            plan=plan, mode=mode, client_id=client_id, strategy_id=strategy_id,
            validated=validated, validation_passed=validation_passed,
            acknowledge_risk=acknowledge_risk, plan_hash=self.hash,
            expected_plan_hash=expected_hash, usage=self._usage)
        self.execution_id = execution_id
        self.cause: BaseException | None = None  # the exception that failed the run, if any
        self.value: Any = None  # what a code-first plan function returned
        self.verdicts: list[ExecutionGuard] = []
        self.actions: list[ActionRecord] = []
        self.error: str | None = None
        self.status = ResultStatus.SUCCESS
        self.observer: ExecutionObserver | None = None

    def _usage(self) -> Mapping[str, float]:
        return self.counters.usage(self.context.scope)

    # -- the run -----------------------------------------------------------------------------

    def execute(self) -> ExecutionResult:
        executed_at = datetime.now(timezone.utc)
        metadata = {"plan_id": self.plan.plan_id, "client_id": self.context.client_id,
                    "strategy_id": self.context.strategy_id, "mode": self.mode.value,
                    "plan_hash": self.hash}
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
        metadata.update(execution_id=observer.execution_id, trace_id=observer.trace_id,
                        ledger=str(observer.ledger.path))
        return ExecutionResult(self.status, self.mode, tuple(self.verdicts), tuple(self.actions),
                               metadata, executed_at, self.error, self.value)

    def _preflight(self) -> bool:
        """Every guard, before anything runs; False (and BLOCKED) if any denies."""
        self.verdicts = self._check_guards(self.context, "preflight", None)
        denied = [verdict for verdict in self.verdicts if verdict.decision == "deny"]
        if denied:
            self.status = ResultStatus.BLOCKED
            self.error = "blocked by " + ", ".join(verdict.name for verdict in denied)
        return not denied

    def _steps(self) -> None:
        keys = {step.name: self._key(index, step) for index, step in enumerate(self.plan.steps)
                if step.consumption}
        consumed = self.counters.consumed(keys.values())
        self.context = replace(self.context, replayed=frozenset(
            name for name, key in keys.items() if key in consumed))
        if not self._preflight():
            for step in self.plan.steps:  # each planned action's path ends here
                self._emit(step, self._adapter_name(step), terminal.GUARD_DENIED)
            return
        for index, step in enumerate(self.plan.steps):
            if self.status is not ResultStatus.SUCCESS:
                self._emit(step, self._adapter_name(step), terminal.SKIPPED)
                continue
            try:
                self._step(index, step)
            except SecurityEscalationError as error:  # the recorder ended it INCOMPLETE
                self.status, self.error = ResultStatus.FAILED, str(error)
                self._emit(step, self._adapter_name(step), terminal.SECURITY_ESCALATION)

    def _step(self, index: int, step: PlanStep) -> None:
        observer = self.observer
        assert observer is not None
        adapter = self.adapters.get(step.action_type)
        simulated = step.acts and self.mode is ExecutionMode.DRY_RUN
        kind = "READ" if not step.acts else ("SIMULATED" if simulated else "LIVE")
        handle = observer.start_step(step.name, {
            "action_type": step.action_type, "params": dict(step.params), "type": kind,
            "adapter": _adapter_name(adapter)}, index=index)
        for effect in step.side_effects:
            observer.declare_side_effect(effect.category, effect.description or step.name,
                                         effect.reversible, step_index=index)
        if adapter is None:
            self._fail(handle, step, None, kind, terminal.UNSUPPORTED_ACTION_TYPE,
                       f"no adapter for action_type {step.action_type!r}; register one with "
                       f"@adapter({step.action_type!r}) or pass --adapters MODULE")
            return
        observed: list[SideEffect] = []
        context = self._action_context(handle, step, observed)
        if simulated:
            self._simulate(handle, step, adapter, context)
            return
        # LIVE: an action, or a read that counts against limits, passes the guards again.
        if self.mode is ExecutionMode.LIVE and (step.acts or step.consumes) \
                and not self._recheck(handle, step, adapter.name):
            return
        self._perform(handle, step, adapter, context, kind, observed)

    def _simulate(self, handle: StepHandle, step: PlanStep, adapter: Adapter,
                  context: ActionContext) -> None:
        description = _describe(step)
        if adapter.simulator is not None:
            try:
                description = printable(adapter.simulator(context))
            except Exception as error:  # noqa: BLE001 - a simulator's bug is not the plan's
                description = f"{description} (simulator raised {type(error).__name__})"
        handle.event("simulated", {"would": description})
        handle.complete({"simulated": True, "would": description})
        self.actions.append(self._action(step, adapter.name, "SIMULATED", "success",
                                         f"would {description}",
                                         "Simulated successfully (nothing was performed)"))
        self._emit(step, adapter.name, None)

    def _recheck(self, handle: StepHandle, step: PlanStep, adapter: str) -> bool:
        """Just before a LIVE action: every guard again, then the limits consumed atomically."""
        context = replace(self.context, step=step)
        verdicts = self._check_guards(context, "recheck", handle)
        denied = [verdict for verdict in verdicts if verdict.decision == "deny"]
        consumption = None if denied else self._consume(handle, step, context)
        if consumption is not None and not consumption.allowed:
            denied.append(ExecutionGuard(
                "ExecutionLimits", False, f"Daily limit reached for {', '.join(consumption.over)}"
                " (consumed concurrently by another run)", stage="recheck"))
        if not denied:
            return True
        self.verdicts.extend(denied)
        reason = "blocked by " + ", ".join(verdict.name for verdict in denied)
        handle.cancel(reason)
        self.actions.append(self._action(step, adapter, "LIVE", "blocked",
                                         _describe(step), reason))
        self.status, self.error = ResultStatus.BLOCKED, reason
        self._emit(step, adapter, terminal.GUARD_DENIED)
        return False

    def _consume(self, handle: StepHandle, step: PlanStep, context: GuardContext) -> Any:
        maxima: dict[str, float] = {}
        for guard in self.guards:
            if isinstance(guard, ExecutionLimitsGuard):
                maxima.update(guard.maxima(context))
        amounts = step.consumption
        if not amounts:
            return None
        observer = self.observer
        assert observer is not None
        key = self._key(handle.index, step)
        return self.counters.consume(key, context.scope, amounts, maxima, lambda data: {
            "kind": "limits.consumed", "ts": timestamp_now(),
            "execution_id": observer.execution_id, "plan_id": observer.plan_id,
            "trace_id": handle.trace_id, "span_id": handle.span_id,
            "data": {"step_index": handle.index, **data}})

    def _key(self, index: int, step: PlanStep) -> str:
        """What makes a consumption a replay: the step's own key, else execution and index."""
        observer = self.observer
        assert observer is not None
        return step.idempotency_key or f"{observer.execution_id}:{index}"

    def _perform(self, handle: StepHandle, step: PlanStep, adapter: Adapter,
                 context: ActionContext, kind: str, observed: list[SideEffect]) -> None:
        token = otel_context.attach(handle.context)  # the adapter's own spans nest here
        try:
            output = adapter(context)
        except Exception as error:  # noqa: BLE001 - recorded with its traceback; the run stops
            otel_context.detach(token)
            self._fail(handle, step, adapter.name, kind, terminal.ADAPTER_EXCEPTION, error)
            return
        otel_context.detach(token)
        outcome = _outcome(output)
        if outcome is None:
            self._fail(handle, step, adapter.name, kind, terminal.INVALID_OUTPUT,
                       f"adapter returned {type(output).__name__}; return an ActionOutcome, "
                       "a mapping of result details, or None")
            return
        violations = _violations(step, observed)
        if not outcome.ok:
            code = error_code(outcome.error_code, terminal.ADAPTER_FAILURE)
            self._fail(handle, step, adapter.name, kind, code, outcome.result,
                       dict(outcome.details), violations)
            return
        if violations:
            for text in violations:
                handle.event("side_effect.violation", {"violation": text})
            self._fail(handle, step, adapter.name, kind, terminal.UNDECLARED_SIDE_EFFECT,
                       "; ".join(violations), dict(outcome.details), violations)
            return
        handle.complete(dict(outcome.details))
        self.actions.append(self._action(step, adapter.name, kind, "success", _describe(step),
                                         outcome.result or "Performed", dict(outcome.details)))
        self._emit(step, adapter.name, None)

    # -- pieces ------------------------------------------------------------------------------

    def _check_guards(self, context: GuardContext, stage: str,
                      handle: StepHandle | None) -> list[ExecutionGuard]:
        observer = self.observer
        assert observer is not None

        def record(guard: Guard, verdict: ExecutionGuard, error: BaseException | None) -> None:
            data = verdict.to_dict()
            del data["name"], data["decision"], data["stage"]
            observer.record_guard(verdict.name, verdict.decision, data, stage=stage,
                                  parent=handle, error=error)

        return evaluate(self.guards, context, timeout=self.executor.guard_timeout, stage=stage,
                        on_verdict=record)

    def _action_context(self, handle: StepHandle, step: PlanStep,
                        observed: list[SideEffect]) -> ActionContext:
        observer = self.observer
        assert observer is not None
        return ActionContext(
            step=step, mode=self.mode, execution_id=observer.execution_id,
            trace_id=observer.trace_id, client_id=self.context.client_id,
            strategy_id=self.context.strategy_id,
            record_effect=lambda category, description, reversible, details: observed.append(
                handle.side_effect(category, description, reversible, details)),
            record_event=lambda name, details: handle.event(name, details))

    def _fail(self, handle: StepHandle, step: PlanStep, adapter: str | None, kind: str,
              code: str, error: BaseException | str, details: Mapping[str, Any] | None = None,
              violations: list[str] | None = None) -> None:
        handle.fail(error, {"error_code": code, **(details or {})})
        failure = describe_failure(get_runtime().redactor, error)  # as the ledger has it
        message = (failure.message if isinstance(error, str)
                   else f"{failure.error_type}: {failure.message}")
        self.actions.append(self._action(step, adapter, kind, "failed", _describe(step),
                                         message, details or {}, code, violations or []))
        self.status, self.error = ResultStatus.FAILED, f"step {step.name!r} failed: {message}"
        self._emit(step, adapter, code)

    def _action(self, step: PlanStep, adapter: str | None, kind: str, status: str,
                description: str, result: str, details: Mapping[str, Any] | None = None,
                code: str | None = None, violations: Iterable[str] = ()) -> ActionRecord:
        redactor = get_runtime().redactor
        return ActionRecord(
            step_index=len(self.actions), step=step.name,
            action_type=step.action_type, adapter=adapter, type=kind, status=status,
            description=description, result=result,
            details=redactor.clean(dict(details or {})), error_code=code,
            violations=tuple(violations),
            rollback=step.rollback.to_dict() if step.rollback else None)

    def _emit(self, step: PlanStep, adapter: str | None, code: str | None) -> None:
        observer = self.observer
        trace_id = observer.trace_id if observer else None
        if code is None:
            event = terminal.TerminalEvent.success(trace_id, step.action_type, adapter,
                                                   product=self.executor.product)
        else:
            event = terminal.TerminalEvent.failed(trace_id, step.action_type, adapter, code,
                                                  product=self.executor.product)
        record = None
        if observer is not None and not observer.ended:
            record = lambda kind, data: observer.record(kind, data, event=terminal.EVENT_NAME)
        terminal.emit(event, record=record, telemetry=get_runtime().telemetry)

    def _adapter_name(self, step: PlanStep) -> str | None:
        return _adapter_name(self.adapters.get(step.action_type))


def _outcome(output: Any) -> ActionOutcome | None:
    if isinstance(output, ActionOutcome):
        return output
    if output is None:
        return ActionOutcome.success()
    if isinstance(output, Mapping):
        return ActionOutcome(True, "", {str(key): value for key, value in output.items()})
    return None


def _violations(step: PlanStep, observed: Iterable[SideEffect]) -> list[str]:
    """Observed effects beyond what the step declared: another category, or irreversible
    where every declared effect of that category is reversible."""
    problems = []
    for effect in observed:
        declared = [item for item in step.side_effects if item.category is effect.category]
        if not declared:
            problems.append(f"undeclared {effect.category.value} side effect: "
                            f"{effect.description}")
        elif not effect.reversible and all(item.reversible for item in declared):
            problems.append(f"irreversible {effect.category.value} side effect declared "
                            f"reversible: {effect.description}")
    return problems


def _describe(step: PlanStep) -> str:
    if step.description:
        return step.description
    declared = "; ".join(effect.description for effect in step.side_effects
                         if effect.description)
    return declared or step.action_type


def _adapter_name(adapter: Adapter | None) -> str | None:
    return adapter.name if adapter is not None else None


def _guard_configuration(guards: Iterable[Guard]) -> list[dict[str, Any]]:
    return [{"name": guard_name(guard), "type": _type_name(guard),
             "config": dict(getattr(guard, "config", dict)())} for guard in guards]


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"
