"""The guarded executor: plans run safe by default.

DRY_RUN unless LIVE is asked for and acknowledged; every guard runs and any deny blocks before a
single side effect; in DRY_RUN a step that declares a side effect is simulated, never performed;
in LIVE the guards are checked again and the step's limits consumed, atomically with its ledger
entry, just before it acts. Every step's outcome is recorded in the ledger and as spans, and each
ends with exactly one terminal event::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit.executor.adapters import AdapterRegistry
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

import os
import random
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_execaudit.executor import terminal
from otel_execaudit.executor.function_run import FunctionRun
from otel_execaudit.executor.adapters import AdapterRegistry, default_registry
from otel_execaudit.errors import ConfigurationError, PlanError
from otel_execaudit.executor.evaluation import guard_name
from otel_execaudit.executor.guards import DEFAULT_GUARD_TIMEOUT, AcknowledgementGuard, Guard
from otel_execaudit.executor.guards import default_guards as seed_guards
from otel_execaudit.recording.instrument import current_execution, execution
from otel_execaudit.executor.run import PlanRun
from otel_execaudit.executor.plans import ACTION_TYPE, Plan, load_plan
from otel_execaudit.recording.records import ExecutionMode
from otel_execaudit.executor.results import ExecutionResult, ResultStatus
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
    hash of their dry run (default: whether ``$EXECAUDIT_REQUIRE_PLAN_HASH`` is ``1``, so that
    a deployment can require it of every run). ``security`` is the recorder's security provider.
    """

    def __init__(self, *, guards: Iterable[Guard] = (), default_guards: bool = True,
                 adapters: AdapterRegistry | None = None,
                 guard_timeout: float = DEFAULT_GUARD_TIMEOUT,
                 require_plan_hash: bool | None = None, product: str = terminal.PRODUCT,
                 security: Any = None) -> None:
        chosen = [*(seed_guards() if default_guards else []), *guards]
        for guard in chosen:
            if not callable(getattr(guard, "check", None)):
                raise ConfigurationError(
                    f"guard {guard_name(guard)} has no check(context) method; a guard has a "
                    "name, a severity and check(context) returning an ExecutionGuard.")
        # The package's own acknowledgement, exactly: a subclass could soften it to a warning.
        if not any(type(guard) is AcknowledgementGuard for guard in chosen):
            chosen.append(AcknowledgementGuard())  # LIVE is always acknowledged
        self.guards: list[Guard] = chosen
        self.adapters = adapters if adapters is not None else default_registry
        if isinstance(guard_timeout, bool) or not isinstance(guard_timeout, (int, float)) \
                or not 0 < guard_timeout < float("inf"):
            raise ConfigurationError(f"guard_timeout must be a positive number of seconds, "
                                     f"not {guard_timeout!r}.")
        self.guard_timeout = guard_timeout
        if require_plan_hash is None:
            require_plan_hash = _required_by_environment()
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
        enclosing = current_execution()  # a run started by an adapter, a simulator, a plan
        if enclosing is not None and enclosing.mode is ExecutionMode.DRY_RUN:
            mode = ExecutionMode.DRY_RUN  # nothing nested is more LIVE than its execution
        options = (mode, client_id, None if strategy_id is None else str(strategy_id),
                   validated, validation_passed, acknowledge_risk, expected_hash, execution_id)
        if callable(plan) and not isinstance(plan, (Plan, Mapping)):
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
        for ``run``. A request without a valid trace id or action type, or malformed (an
        unknown field, params that are not JSON values), fails with the reason in ``error``:
        one terminal event, one recorded execution, and nothing runs.

        Example: ``executor.run_action({"trace_id": "4bf9…", "action_type": "send_email",
        "params": {"to": "ops"}}, client_id=7)``
        """
        if not isinstance(request, Mapping):
            return self._refuse_request(None, None, terminal.INVALID_REQUEST, options, (
                f"an action request is a mapping with trace_id, action_type and params, not "
                f"a {type(request).__name__}"))
        trace_id, action_type = request.get("trace_id"), request.get("action_type")
        if not isinstance(trace_id, str) or not _TRACE_ID.fullmatch(trace_id.lower()) \
                or not int(trace_id, 16):
            return self._refuse_request(
                action_type if isinstance(action_type, str) else None, None,
                terminal.MISSING_TRACE_ID, options, "the request has no valid trace_id (32 "
                "hex characters, not all zero); pass the caller's trace id")
        parent = trace.NonRecordingSpan(trace.SpanContext(
            trace_id=int(trace_id.lower(), 16), span_id=random.getrandbits(64) or 1,
            is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
        token = otel_context.attach(trace.set_span_in_context(parent))  # the caller's trace
        try:
            if not isinstance(action_type, str) or not action_type.strip():
                return self._refuse_request(None, trace_id, terminal.MISSING_ACTION_TYPE,
                                            options, "the request has no action_type; name "
                                            "the adapter action to run")
            if not ACTION_TYPE.fullmatch(action_type):
                return self._refuse_request(action_type, trace_id,
                                            terminal.UNSUPPORTED_ACTION_TYPE, options, (
                    f"action_type is not an identifier ({len(action_type)} characters); use "
                    "letters, digits and _ . : / - only, as the adapter was registered"))
            if terminal.withheld(action_type):
                # It would name the plan and its step: refused before it is recorded anywhere.
                return self._refuse_request(action_type, trace_id,
                                            terminal.UNSUPPORTED_ACTION_TYPE, options,
                                            "action_type holds what looks like a secret; "
                                            "name the adapter action to run")
            step = {key: value for key, value in request.items()
                    if key not in ("trace_id", "plan_id")}
            step.setdefault("name", action_type)
            try:
                plan = load_plan({"plan_id": str(request.get("plan_id")
                                                 or f"action:{action_type}"), "steps": [step]})
            except PlanError as error:
                return self._refuse_request(action_type, trace_id, terminal.INVALID_REQUEST,
                                            options, str(error))
            return self.run(plan, **options)
        finally:
            otel_context.detach(token)

    def _refuse_request(self, action_type: str | None, trace_id: str | None, code: str,
                        options: Mapping[str, Any], reason: str) -> ExecutionResult:
        mode = _mode(options.get("mode", ExecutionMode.DRY_RUN))
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


def _required_by_environment() -> bool:
    value = os.environ.get("EXECAUDIT_REQUIRE_PLAN_HASH", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigurationError(f"EXECAUDIT_REQUIRE_PLAN_HASH={value!r}: set it to 1 to require "
                             "a plan hash of every LIVE run, or 0 (or unset it) not to.")


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
