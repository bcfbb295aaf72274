"""The guarded executor: plans run safe by default.

DRY_RUN unless LIVE is asked for and acknowledged; every guard runs and any deny blocks before a
single side effect; in DRY_RUN a step that declares a side effect is simulated, never performed;
in LIVE the guards are checked again and the step's limits consumed, atomically with its ledger
entry, just before it acts. Every step's outcome is recorded in the ledger and as spans, and each
ends with exactly one terminal event::

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
import os
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
from otel_execaudit.errors import ConfigurationError, PlanError, SecurityEscalationError
from otel_execaudit.guards import (
    DEFAULT_GUARD_TIMEOUT,
    AcknowledgementGuard,
    ExecutionGuard,
    ExecutionLimitsGuard,
    Guard,
    GuardContext,
    PlanPinGuard,
    evaluate,
)
from otel_execaudit.guards import default_guards as seed_guards
from otel_execaudit.instrument import execution
from otel_execaudit.limits import Consumption, LimitCounters
from otel_execaudit.observer import (
    ExecutionObserver,
    StepHandle,
    describe_failure,
    is_cancellation,
    printable,
)
from otel_execaudit.pinning import plan_hash
from otel_execaudit.plans import Plan, PlanStep, load_plan
from otel_execaudit.records import ExecutionMode, SideEffect, timestamp_now
from otel_execaudit.results import ActionRecord, ExecutionResult, ResultStatus
from otel_execaudit.runtime import get_runtime

__all__ = ["Executor", "execute_plan"]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_EXECUTION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
PlanSource = Plan | Mapping[str, Any] | str | Callable[..., Any]


class Executor:
    """Runs plans through guards and adapters, recording everything.

    ``guards`` are added to the four seed guards (``default_guards=False`` to replace them);
    whatever the list, a LIVE run needs an acknowledgement. ``adapters`` defaults to the default
    registry (``@adapter`` and entry points). ``require_plan_hash`` makes LIVE runs present the
    hash of their dry run. ``security`` is the recorder's security provider.
    """

    def __init__(self, *, guards: Iterable[Guard] = (), default_guards: bool = True,
                 adapters: AdapterRegistry | None = None,
                 guard_timeout: float = DEFAULT_GUARD_TIMEOUT,
                 require_plan_hash: bool = False, product: str = terminal.PRODUCT,
                 security: Any = None) -> None:
        chosen = [*(seed_guards() if default_guards else []), *guards]
        if not any(isinstance(guard, AcknowledgementGuard) for guard in chosen):
            chosen.append(AcknowledgementGuard())  # LIVE is always acknowledged
        self.guards: list[Guard] = chosen
        self.adapters = adapters if adapters is not None else default_registry
        if isinstance(guard_timeout, bool) or not isinstance(guard_timeout, (int, float)) \
                or not 0 < guard_timeout < float("inf"):
            raise ConfigurationError(f"guard_timeout must be a positive number of seconds, "
                                     f"not {guard_timeout!r}.")
        self.guard_timeout = guard_timeout
        self.require_plan_hash = require_plan_hash
        self.product = product
        self.security = security

    def plan_hash(self, plan: PlanSource, *, client_id: Any = None,
                  strategy_id: str | int | None = None, arguments: tuple[Any, ...] = (),
                  keywords: Mapping[str, Any] | None = None) -> str:
        """The hash a dry run of ``plan`` for this client reports, and a pinned LIVE run must
        present. Example: ``executor.plan_hash("plan.yaml", client_id=1)``."""
        prepared = self._prepare(plan, ExecutionMode.DRY_RUN, client_id, strategy_id, False,
                                 False, False, None, None, arguments, keywords)
        return prepared.hash or prepared._hash()  # no hash: say why (PlanError)

    def run(self, plan: PlanSource, *, mode: ExecutionMode | str = ExecutionMode.DRY_RUN,
            client_id: Any = None, strategy_id: str | int | None = None,
            validated: bool = False, validation_passed: bool = False,
            acknowledge_risk: bool = False, plan_hash: str | None = None,
            execution_id: str | None = None, arguments: tuple[Any, ...] = (),
            keywords: Mapping[str, Any] | None = None) -> ExecutionResult:
        """Run ``plan``: a Plan, a mapping, a JSON/YAML path, or a code-first plan function
        (``@plan`` or plain, called with ``arguments`` and ``keywords``; its ``@step``
        functions with ``side_effects`` are the actions). DRY_RUN unless ``mode`` is LIVE, and
        LIVE only when every guard allows it. Raises PlanError for a malformed plan (nothing
        is recorded) and LedgerWriteError if the ledger cannot be written.

        Example: ``executor.run("plan.yaml", client_id=1)`` is a dry run.
        """
        return self._prepare(plan, _mode(mode), client_id, strategy_id, validated,
                             validation_passed, acknowledge_risk, plan_hash, execution_id,
                             arguments, keywords).execute()

    def _prepare(self, plan: PlanSource, mode: ExecutionMode, client_id: Any,
                 strategy_id: str | int | None, validated: bool, validation_passed: bool,
                 acknowledge_risk: bool, expected_hash: str | None, execution_id: str | None,
                 arguments: tuple[Any, ...], keywords: Mapping[str, Any] | None) -> PlanRun:
        from otel_execaudit.acting import gate

        if execution_id is not None and (
                not isinstance(execution_id, str) or not _EXECUTION_ID.fullmatch(execution_id)):
            raise ConfigurationError(
                "execution_id must be 1 to 128 letters, digits or _ . : - (it keys the run's "
                "limit consumption, so a replay must present it unchanged); leave it out to "
                "get a fresh one.")
        if isinstance(arguments, (str, bytes)) or not isinstance(arguments, Iterable):
            raise ConfigurationError("arguments must be a tuple of positional arguments for "
                                     "the plan function, for example arguments=(0.1,).")
        if keywords is not None and not isinstance(keywords, Mapping):
            raise ConfigurationError("keywords must be a mapping of keyword arguments for "
                                     "the plan function, for example keywords={'dry': True}.")
        enclosing = gate.get()
        if enclosing is not None and enclosing.mode is ExecutionMode.DRY_RUN:
            mode = ExecutionMode.DRY_RUN  # nothing nested is more LIVE than its run
        options = (mode, client_id, None if strategy_id is None else str(strategy_id),
                   validated, validation_passed, acknowledge_risk, expected_hash, execution_id)
        if callable(plan) and not isinstance(plan, (Plan, Mapping)):
            from otel_execaudit.acting import FunctionRun

            return FunctionRun(self, plan, tuple(arguments), dict(keywords or {}), *options)
        if tuple(arguments) or keywords:
            raise ConfigurationError("arguments and keywords are for code-first plan "
                                     "functions; a data plan takes its values from params.")
        if not isinstance(plan, (Plan, Mapping, str, os.PathLike)):
            raise PlanError(f"cannot run a {type(plan).__name__} as a plan: pass a Plan, a "
                            "mapping, the path of a .json/.yaml plan, or a plan function.")
        return PlanRun(self, load_plan(plan), *options)

    def run_action(self, request: Mapping[str, Any], **options: Any) -> ExecutionResult:
        """Run one action request, as an agent's tool call does: ``trace_id`` (the caller's,
        32 hex characters; the execution joins that trace), ``action_type``, ``params``, and
        optionally ``plan_id``, ``name`` and the other fields of a plan step. ``options`` as
        for ``run``. A request without a valid trace id or action type fails (one terminal
        event, one recorded execution) and nothing runs; unknown fields raise PlanError.

        Example: ``executor.run_action({"trace_id": "4bf9…", "action_type": "send_email",
        "params": {"to": "ops"}}, client_id=7)``
        """
        if not isinstance(request, Mapping):
            raise PlanError(f"an action request is a mapping with trace_id, action_type and "
                            f"params, not a {type(request).__name__}.")
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
        step = {key: value for key, value in request.items() if key not in ("trace_id",
                                                                            "plan_id")}
        step.setdefault("name", action_type)
        plan = load_plan({"plan_id": str(request.get("plan_id") or f"action:{action_type}"),
                          "steps": [step]})
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
        mode = _mode(options.get("mode", ExecutionMode.DRY_RUN))
        reason = {terminal.MISSING_TRACE_ID: "the request has no valid trace_id (32 hex "
                  "characters, not all zero); pass the caller's trace id",
                  terminal.MISSING_ACTION_TYPE: "the request has no action_type; name the "
                  "adapter action to run"}[code]
        metadata = {"plan_id": "action", "client_id": options.get("client_id"),
                    "mode": mode.value}
        with execution("action", mode=mode, details=metadata) as run:
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


def _mode(value: Any) -> ExecutionMode:
    try:
        return ExecutionMode.parse(value)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None


def execute_plan(plan: PlanSource, **options: Any) -> ExecutionResult:
    """Run ``plan`` with the default executor; ``options`` as for ``Executor.run``.

    Example: ``execute_plan("plan.yaml", client_id=1)`` is a dry run.
    """
    return Executor().run(plan, **options)


class PlanRun:
    """One run of one plan: the state its steps share, and the steps' life cycle."""

    def __init__(self, executor: Executor, plan: Plan, mode: ExecutionMode, client_id: Any,
                 strategy_id: str | None, validated: bool, validation_passed: bool,
                 acknowledge_risk: bool, expected_hash: str | None,
                 execution_id: str | None) -> None:
        self.executor, self.plan, self.mode = executor, plan, mode
        self.adapters = executor.adapters
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

    def _end_paths(self, steps: Iterable[PlanStep], code: str) -> None:
        for step in steps:
            self._emit(step, self._adapter_name(step), code)

    def _preflight(self) -> bool:
        """Every guard, before anything runs; False (and BLOCKED) if any denies."""
        keys = {step.name: self._key(index, step) for index, step in enumerate(self.plan.steps)
                if step.consumption}
        consumed = self.counters.consumed(keys.values(), self.context.scope)
        self.context = replace(self.context, replayed=frozenset(
            name for name, key in keys.items() if key in consumed))
        self.verdicts = self._check_guards(self.context, "preflight", None)
        denied = [verdict for verdict in self.verdicts if verdict.decision == "deny"]
        if denied:
            self.status = ResultStatus.BLOCKED
            self.error = "blocked by " + ", ".join(verdict.name for verdict in denied)
        return not denied

    def _steps(self) -> None:
        if not self._guarded_preflight(self.plan.steps):
            return
        for index, step in enumerate(self.plan.steps):
            self._emitted = False
            try:
                if self.status is not ResultStatus.SUCCESS:
                    self._emit(step, self._adapter_name(step), terminal.SKIPPED)
                    continue
                self._step(index, step)
            except SecurityEscalationError as error:  # the recorder ended it INCOMPLETE
                self.status, self.error = ResultStatus.FAILED, str(error)
                self._emit(step, self._adapter_name(step), terminal.SECURITY_ESCALATION)
            except BaseException as error:  # the run stops; the path still gets its event
                if not self._emitted:
                    self._emit(step, self._adapter_name(step), terminal.CANCELLED
                               if is_cancellation(error) else terminal.INTERNAL_ERROR)
                raise

    def _step(self, index: int, step: PlanStep) -> None:
        observer = self.observer
        assert observer is not None
        adapter = self.adapters.get(step.action_type)
        simulated = step.acts and self.mode is ExecutionMode.DRY_RUN
        kind = "READ" if not step.acts else ("SIMULATED" if simulated else "LIVE")
        handle = observer.start_step(step.name, {
            "action_type": step.action_type, "params": dict(step.params), "type": kind,
            "adapter": adapter.name if adapter else None}, index=index)
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

    def record_simulated(self, index: int, step: PlanStep, adapter: str | None,
                         description: str) -> None:
        self.actions.append(self._action(index, step, adapter, "SIMULATED", "success",
                                         f"would {description}",
                                         "Simulated successfully (nothing was performed)"))
        self._emit(step, adapter, None)

    def _recheck(self, handle: StepHandle, index: int, step: PlanStep, adapter: str,
                 key: str | None = None) -> bool:
        """Just before a LIVE action: every guard again, then the limits consumed atomically
        under ``key`` (the step's idempotency key by default)."""
        key = key or self._key(index, step)
        context = replace(self.context, step=step)
        if step.consumption and step.name not in context.replayed \
                and key in self.counters.consumed([key], context.scope):
            context = replace(context, replayed=context.replayed | {step.name})
        verdicts = self._check_guards(context, "recheck", handle)
        self.verdicts.extend(verdict for verdict in verdicts if verdict.decision != "allow")
        denied = [verdict.name for verdict in verdicts if verdict.decision == "deny"]
        consumption = None if denied else self._consume(handle, index, step, context, key)
        if consumption is not None and not consumption.allowed:
            refusal = ExecutionGuard("ExecutionLimits", False, consumption.reason,
                                     stage="recheck")
            self.verdicts.append(refusal)
            denied.append(refusal.name)
        if not denied:
            return True
        reason = "blocked by " + ", ".join(denied)
        handle.cancel(reason)
        self.actions.append(self._action(index, step, adapter, "NOT_RUN", "blocked",
                                         step.describe(), reason))
        self.status, self.error = ResultStatus.BLOCKED, reason
        self._emit(step, adapter, terminal.GUARD_DENIED)
        return False

    def _consume(self, handle: StepHandle, index: int, step: PlanStep,
                 context: GuardContext, key: str) -> Consumption | None:
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
                                     lambda data: {
            "kind": "limits.consumed", "ts": timestamp_now(),
            "execution_id": observer.execution_id, "plan_id": observer.plan_id,
            "trace_id": handle.trace_id, "span_id": handle.span_id,
            "data": {"step_index": index, **data}}, content=self._content(step))

    def _content(self, step: PlanStep) -> str:
        """What a replay must repeat to be one: the plan, the action, its params and amounts."""
        return hashlib.sha256(canonical_bytes({
            "plan_id": self.plan.plan_id, "action_type": step.action_type,
            "params": self.redactor.clean(dict(step.params)),
            "amounts": dict(step.consumption)})).hexdigest()

    def _key(self, index: int, step: PlanStep) -> str:
        """What makes a consumption a replay: the step's own key, else execution and index."""
        observer = self.observer
        assert observer is not None
        return step.idempotency_key or f"{observer.execution_id}:{index}"

    def _perform(self, handle: StepHandle, index: int, step: PlanStep, adapter: Adapter,
                 context: ActionContext, kind: str, observed: list[SideEffect]) -> None:
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

    def _check_guards(self, context: GuardContext, stage: str,
                      handle: StepHandle | None) -> list[ExecutionGuard]:
        observer = self.observer
        assert observer is not None

        def record(guard: Guard, verdict: ExecutionGuard, error: BaseException | None) -> None:
            data = verdict.to_dict()
            del data["name"], data["decision"], data["stage"]
            observer.record_guard(verdict.name, verdict.decision, data, stage=stage,
                                  parent=handle, error=error)

        verdicts = evaluate(self.guards, context, timeout=self.executor.guard_timeout,
                            stage=stage, on_verdict=record)
        # What reaches reports and --json is redacted like the ledger's copy.
        return [replace(verdict, message=self.redactor.clean_text(verdict.message),
                        details=self.redactor.clean(dict(verdict.details)))
                for verdict in verdicts]

    def _action_context(self, handle: StepHandle, index: int, step: PlanStep,
                        observed: list[SideEffect]) -> ActionContext:
        observer = self.observer
        assert observer is not None
        return ActionContext(
            step=step, mode=self.mode, execution_id=observer.execution_id,
            trace_id=observer.trace_id, client_id=self.context.client_id,
            strategy_id=self.context.strategy_id, idempotency_key=self._key(index, step),
            record_effect=lambda category, description, reversible, details: observed.append(
                handle.side_effect(category, description, reversible, details)),
            record_event=lambda name, details: handle.event(name, details))

    def _fail(self, handle: StepHandle, index: int, step: PlanStep, adapter: str | None,
              kind: str, code: str, error: BaseException | str,
              details: Mapping[str, Any] | None = None,
              violations: list[str] | None = None) -> None:
        handle.fail(error, {"error_code": code, **(details or {})})
        failure = describe_failure(self.redactor, error)  # as the ledger has it
        message = (failure.message if isinstance(error, str)
                   else f"{failure.error_type}: {failure.message}")
        self.actions.append(self._action(index, step, adapter, kind, "failed", step.describe(),
                                         message, details or {}, code, violations or []))
        self.status, self.error = ResultStatus.FAILED, f"step {step.name!r} failed: {message}"
        if isinstance(error, BaseException):
            self.cause = error
        self._emit(step, adapter, code)

    def _action(self, index: int, step: PlanStep, adapter: str | None, kind: str, status: str,
                description: str, result: str, details: Mapping[str, Any] | None = None,
                code: str | None = None, violations: Iterable[str] = ()) -> ActionRecord:
        clean = self.redactor.clean_text
        return ActionRecord(
            step_index=index, step=step.name, action_type=step.action_type, adapter=adapter,
            type=kind, status=status, description=clean(description), result=clean(result),
            details=self.redactor.clean(dict(details or {})), error_code=code,
            violations=tuple(clean(text) for text in violations),
            rollback=step.rollback.to_dict() if step.rollback else None)

    def _emit(self, step: PlanStep, adapter: str | None, code: str | None) -> None:
        self._emitted = True
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
        adapter = self.adapters.get(step.action_type)
        return adapter.name if adapter is not None else None
