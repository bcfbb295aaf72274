"""The guarded executor: safe by default, every guard run and reported, limits consumed once,
stale plans refused, every step audited, and exactly one terminal event per action path."""

from __future__ import annotations

import threading

import pytest

from otel_execaudit.executor.adapters import ActionOutcome, AdapterRegistry
from otel_execaudit.executor.executor import Executor
from otel_execaudit.executor.guards import ExecutionGuard, ExecutionLimitsGuard, Severity, default_guards
from otel_execaudit.executor.limits import LimitCounters
from otel_execaudit.executor.results import ResultStatus
from tests.executor_options import LIVE, TRACE_ID


class Exchange:
    """Adapters for a pretend exchange, recording every call they really make."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.registry = AdapterRegistry()
        registry = self.registry

        @registry.adapter("fetch_quote", read_only=True)
        def fetch_quote(context):
            self.calls.append(("fetch_quote", context.mode.value))
            return {"price": 50000}

        @registry.adapter("place_order",
                          simulate=lambda context: f"buy {context.params['quantity']} "
                                                   f"{context.params['symbol']}")
        def place_order(context):
            self.calls.append(("place_order", context.mode.value))
            context.side_effect("network", "limit order placed", reversible=False,
                                order_id="o-1")
            return ActionOutcome.success("Order placed", order_id="o-1")


def order_plan(**changes) -> dict:
    buy = {"name": "buy", "action_type": "place_order",
           "params": {"symbol": "BTCUSDT", "quantity": 0.001, "price": 50000},
           "side_effects": [{"category": "network", "reversible": False,
                             "description": "place a limit buy order"}],
           "consumes": {"orders": 1, "notional": 50},
           "rollback": {"description": "cancel the order", "actions": ["cancel_order"]}}
    buy.update(changes)
    return {"plan_id": "buy-btc", "limits": {"orders": 2, "notional": 1000},
            "steps": [{"name": "quote", "action_type": "fetch_quote",
                       "params": {"symbol": "BTCUSDT"}}, buy]}


@pytest.fixture
def exchange() -> Exchange:
    return Exchange()


@pytest.fixture
def executor(exchange, execaudit_capture) -> Executor:
    return Executor(adapters=exchange.registry)


def kinds(capture, result) -> list[str]:
    return [entry["kind"] for entry in capture.fields(result.metadata["execution_id"])]


def terminal_events(capture, result) -> list[dict]:
    return [entry["data"] for entry in capture.fields(result.metadata["execution_id"])
            if entry["kind"] == "action.terminal"]


# -- the seed's list -------------------------------------------------------------------------

def test_dry_run_is_the_default_and_always_allowed(executor, exchange, execaudit_capture):
    result = executor.run(order_plan(), client_id=1)
    assert result.status is ResultStatus.SUCCESS and result.mode.value == "DRY_RUN"
    assert [verdict.passed for verdict in result.guards] == [True] * 4
    # The read step ran (and saw the mode); the acting step was simulated, never performed.
    assert exchange.calls == [("fetch_quote", "DRY_RUN")]
    assert [(action.type, action.status) for action in result.actions] == [
        ("READ", "success"), ("SIMULATED", "success")]
    assert result.actions[1].description == "would buy 0.001 BTCUSDT"
    assert result.changes_pending
    observed = [entry for entry in execaudit_capture.fields() if entry["kind"] == "side_effect"]
    assert observed == []  # nothing happened to the world
    declared = [entry for entry in execaudit_capture.fields()
                if entry["kind"] == "side_effect.declared"]
    assert [entry["data"]["description"] for entry in declared] == ["place a limit buy order"]


def test_live_requires_validation_and_acknowledgement(executor, exchange):
    result = executor.run(order_plan(), client_id=1, mode="LIVE")
    assert result.status is ResultStatus.BLOCKED
    denied = {verdict.name for verdict in result.guards if verdict.decision == "deny"}
    assert denied == {"ValidationRequired", "Acknowledgement"}
    assert exchange.calls == []
    assert [(action.type, action.status) for action in result.actions] == [
        ("NOT_RUN", "blocked"), ("NOT_RUN", "blocked")]

    acknowledged_only = executor.run(order_plan(), client_id=1, mode="LIVE",
                                     acknowledge_risk=True)
    assert acknowledged_only.is_blocked() and exchange.calls == []

    result = executor.run(order_plan(), client_id=1, **LIVE)
    assert result.status is ResultStatus.SUCCESS
    assert exchange.calls == [("fetch_quote", "LIVE"), ("place_order", "LIVE")]
    assert result.actions[1].type == "LIVE" and result.actions[1].details["order_id"] == "o-1"


def test_live_enforces_limits_across_runs(executor, exchange, execaudit_capture):
    for _ in range(2):
        assert executor.run(order_plan(), client_id=1, **LIVE).is_success()
    third = executor.run(order_plan(), client_id=1, **LIVE)
    assert third.is_blocked()
    limits = next(verdict for verdict in third.guards if verdict.name == "ExecutionLimits")
    assert not limits.passed and "Max orders limit reached" in limits.message
    assert [call for call in exchange.calls if call[0] == "place_order"] == [
        ("place_order", "LIVE")] * 2
    # Another tenant has limits of its own; the counters live in the ledger's database.
    assert executor.run(order_plan(), client_id=2, **LIVE).is_success()
    counters = LimitCounters(execaudit_capture.runtime.ledger)
    assert counters.usage("client:1") == {"actions": 2.0, "orders": 2.0, "notional": 100.0}
    # A dry run is never blocked by limits, but says what LIVE would do.
    dry = executor.run(order_plan(), client_id=1)
    assert dry.is_success()
    message = next(v.message for v in dry.guards if v.name == "ExecutionLimits")
    assert "would consume 1 of 2 orders (2 used today)" in message
    assert "LIVE would be blocked" in message


@pytest.mark.parametrize("client_id", [None, 0, -3, "7", True])
def test_missing_or_invalid_tenant_blocks_even_a_dry_run(executor, exchange, client_id):
    result = executor.run(order_plan(), client_id=client_id)
    assert result.is_blocked()
    tenant = result.guards[0]
    assert tenant.name == "TenantContext" and not tenant.passed
    assert exchange.calls == []


def test_all_guards_run_and_each_is_a_span_and_a_ledger_entry(executor, execaudit_capture):
    result = executor.run(order_plan(), client_id=None, mode="LIVE")
    # Four guards deny or allow; every one ran and is reported, not just the first denial.
    assert [verdict.name for verdict in result.guards] == [
        "TenantContext", "ValidationRequired", "Acknowledgement", "ExecutionLimits"]
    entries = [entry for entry in execaudit_capture.fields(result.metadata["execution_id"])
               if entry["kind"] == "guard.evaluated"]
    assert [(entry["data"]["guard"], entry["data"]["decision"]) for entry in entries] == [
        ("TenantContext", "deny"), ("ValidationRequired", "deny"), ("Acknowledgement", "deny"),
        ("ExecutionLimits", "allow")]
    spans = {span.context.span_id: span for span in execaudit_capture.spans()}
    guard_spans = [span for span in spans.values() if span.name.startswith("apply_guardrail")]
    assert sorted(span.name for span in guard_spans) == sorted(
        f"apply_guardrail {name}" for name in
        ("TenantContext", "ValidationRequired", "Acknowledgement", "ExecutionLimits"))
    root = next(span for span in spans.values() if span.name == "invoke_workflow buy-btc")
    assert all(span.parent.span_id == root.context.span_id for span in guard_spans)
    for span, entry in zip(sorted(guard_spans, key=lambda s: s.attributes["execaudit.ledger.seq"]),
                           entries):
        assert format(span.context.span_id, "016x") == entry["span_id"]
    assert root.attributes["execaudit.status"] == "blocked"


def test_audit_trail_of_a_live_run(executor, execaudit_capture):
    result = executor.run(order_plan(), client_id=1, **LIVE)
    assert kinds(execaudit_capture, result) == [
        "execution.started",
        *["guard.evaluated"] * 4,                      # preflight
        "step.started", "step.completed", "action.terminal",  # quote: reads, not rechecked
        "step.started", "side_effect.declared",
        *["guard.evaluated"] * 4, "limits.consumed",  # recheck just before acting
        "side_effect", "step.completed", "action.terminal",
        "execution.ended"]
    assert execaudit_capture.verify().ok
    ended = execaudit_capture.fields(result.metadata["execution_id"])[-1]
    assert ended["data"]["status"] == "completed"


# -- pinning, failing guards, replays ---------------------------------------------------------

def test_a_plan_changed_since_its_dry_run_is_refused_as_stale(executor, exchange):
    dry = executor.run(order_plan(), client_id=1)
    pinned = dry.plan_hash
    assert pinned == executor.plan_hash(order_plan(), client_id=1)
    assert pinned != executor.plan_hash(order_plan(), client_id=2)  # reviewed for client 1
    changed = order_plan(params={"symbol": "BTCUSDT", "quantity": 0.5, "price": 50000})
    result = executor.run(changed, client_id=1, plan_hash=pinned, **LIVE)
    assert result.is_blocked()
    pin = next(verdict for verdict in result.guards if verdict.name == "PlanPinned")
    assert "stale" in pin.message and pinned in pin.message
    assert exchange.calls == [("fetch_quote", "DRY_RUN")]  # the dry run's read only
    assert executor.run(order_plan(), client_id=1, plan_hash=pinned, **LIVE).is_success()


def test_guard_configuration_is_part_of_the_plan_hash(exchange):
    loose = Executor(adapters=exchange.registry,
                     guards=[*default_guards()[:3], ExecutionLimitsGuard(max_orders_per_day=5)],
                     default_guards=False)
    tight = Executor(adapters=exchange.registry,
                     guards=[*default_guards()[:3], ExecutionLimitsGuard(max_orders_per_day=1)],
                     default_guards=False)
    assert loose.plan_hash(order_plan()) != tight.plan_hash(order_plan())


def test_require_plan_hash_makes_live_present_it(exchange, execaudit_capture):
    executor = Executor(adapters=exchange.registry, require_plan_hash=True)
    assert executor.run(order_plan(), client_id=1).is_success()  # dry runs need no pin
    result = executor.run(order_plan(), client_id=1, **LIVE)
    assert result.is_blocked() and exchange.calls == [("fetch_quote", "DRY_RUN")]


class Raising:
    name, severity = "Flaky", Severity.WARN  # even a warn-only guard fails closed

    def check(self, context):
        raise ConnectionError("risk service unreachable")


def test_a_guard_that_raises_blocks(exchange, execaudit_capture):
    executor = Executor(adapters=exchange.registry, guards=[Raising()])
    result = executor.run(order_plan(), client_id=1)
    assert result.is_blocked() and exchange.calls == []
    flaky = result.guards[-1]
    assert flaky.decision == "deny" and "ConnectionError" in flaky.message
    entry = next(entry for entry in execaudit_capture.fields()
                 if entry["kind"] == "guard.evaluated" and entry["data"]["guard"] == "Flaky")
    assert entry["data"]["decision"] == "deny"
    span = next(span for span in execaudit_capture.spans()
                if span.name == "apply_guardrail Flaky")
    assert [event.name for event in span.events] == ["exception"]


def test_a_guard_that_hangs_blocks(exchange, execaudit_capture):
    release = threading.Event()

    class Hanging:
        name, severity = "Hanging", Severity.DENY

        def check(self, context):
            release.wait()

    executor = Executor(adapters=exchange.registry, guards=[Hanging()], guard_timeout=0.2)
    try:
        result = executor.run(order_plan(), client_id=1)
    finally:
        release.set()
    assert result.is_blocked() and "did not answer within 0.2 s" in result.guards[-1].message


def test_a_warn_guard_is_reported_and_does_not_block(exchange, execaudit_capture):
    class Weekend:
        name, severity = "Weekend", Severity.WARN

        def check(self, context):
            return ExecutionGuard(self.name, False, "markets are closed at the weekend")

    executor = Executor(adapters=exchange.registry, guards=[Weekend()])
    result = executor.run(order_plan(), client_id=1, **LIVE)
    assert result.is_success()
    assert result.guards[4].decision == "warn" and result.summary["warnings"] >= 1
    assert "! Weekend: markets are closed" in result.to_human_readable()


def test_guards_are_checked_again_just_before_a_live_action(exchange, execaudit_capture):
    class KillSwitch:
        name, severity = "KillSwitch", Severity.DENY

        def check(self, context):  # flips while the plan runs: after the quote was fetched
            engaged = ("fetch_quote", "LIVE") in exchange.calls
            return ExecutionGuard(self.name, not engaged, "kill switch engaged" if engaged
                                  else "kill switch off")

    executor = Executor(adapters=exchange.registry, guards=[KillSwitch()])
    result = executor.run(order_plan(), client_id=1, **LIVE)
    assert result.is_blocked()
    assert exchange.calls == [("fetch_quote", "LIVE")]
    assert [(action.step, action.status) for action in result.actions] == [
        ("quote", "success"), ("buy", "blocked")]
    assert any(v.stage == "recheck" and v.name == "KillSwitch" for v in result.guards)


def test_a_replayed_step_does_not_double_count_limits(executor, exchange, execaudit_capture):
    first = executor.run(order_plan(), client_id=1, execution_id="run-42", **LIVE)
    replay = executor.run(order_plan(), client_id=1, execution_id="run-42", **LIVE)
    assert first.is_success() and replay.is_success()
    counters = LimitCounters(execaudit_capture.runtime.ledger)
    assert counters.usage("client:1")["orders"] == 1.0
    consumed = [entry["data"] for entry in execaudit_capture.fields()
                if entry["kind"] == "limits.consumed"]
    assert [(item["allowed"], item["replayed"]) for item in consumed] == [
        (True, False), (True, True)]
    # A step's own idempotency key (a client order id) holds across different executions.
    keyed = order_plan(idempotency_key="client-order-7")
    executor.run(keyed, client_id=1, **LIVE)
    executor.run(keyed, client_id=1, **LIVE)
    assert counters.usage("client:1")["orders"] == 2.0


# -- adapters' outcomes and terminal events --------------------------------------------------

def single(action_type: str, **step) -> dict:
    return {"plan_id": "one", "steps": [{"name": "act", "action_type": action_type, **step}]}


def outcome_registry() -> AdapterRegistry:
    """Adapters that run in a dry run too (they say they only read), one per way a step ends."""
    registry = AdapterRegistry()
    registry.adapter("ok", read_only=True)(lambda context: {"done": True})
    registry.adapter("explicit", read_only=True)(
        lambda context: ActionOutcome.failure("insufficient_funds", "balance too low"))
    registry.adapter("invalid", read_only=True)(lambda context: ["not", "an", "outcome"])

    @registry.adapter("boom", read_only=True)
    def boom(context):
        raise RuntimeError("exchange returned 500")

    @registry.adapter("sneaky", read_only=True)
    def sneaky(context):
        context.side_effect("file_system", "wrote /etc/hosts")
        return None

    return registry


@pytest.mark.parametrize("action_type, status, error_code, adapter", [
    ("ok", "success", None, True),
    ("explicit", "failed", "insufficient_funds", True),
    ("invalid", "failed", "invalid_output", True),
    ("boom", "failed", "adapter_exception", True),
    ("sneaky", "failed", "undeclared_side_effect", True),
    ("nowhere", "failed", "unsupported_action_type", False),
])
def test_exactly_one_terminal_event_per_path(execaudit_capture, action_type, status,
                                             error_code, adapter):
    executor = Executor(adapters=outcome_registry())
    result = executor.run(single(action_type), client_id=1)
    events = terminal_events(execaudit_capture, result)
    assert len(events) == 1
    event = events[0]
    assert sorted(event) == ["action_type", "adapter", "error_code", "product", "status",
                             "timestamp", "trace_id"]
    assert (event["status"], event["error_code"]) == (status, error_code)
    assert (event["adapter"] is not None) == adapter
    assert event["trace_id"] == result.metadata["trace_id"]
    assert result.status is (ResultStatus.SUCCESS if status == "success"
                             else ResultStatus.FAILED)
    # The same event went out once as an OpenTelemetry log record, None fields left out.
    emitted = [{key: value for key, value in attributes.items() if key != "event.name"}
               for name, attributes in execaudit_capture.events()
               if name == "execaudit.action.terminal"]
    assert emitted == [{key: value for key, value in event.items() if value is not None}]


def test_a_failed_step_stops_the_plan_and_every_later_step_still_ends_in_one_event(
        execaudit_capture):
    executor = Executor(adapters=outcome_registry())
    plan = {"plan_id": "three", "steps": [
        {"name": "a", "action_type": "ok"}, {"name": "b", "action_type": "boom"},
        {"name": "c", "action_type": "ok"}]}
    result = executor.run(plan, client_id=1)
    assert result.status is ResultStatus.FAILED
    assert "RuntimeError: exchange returned 500" in result.error
    codes = [event["error_code"] for event in terminal_events(execaudit_capture, result)]
    assert codes == [None, "adapter_exception", "skipped_after_earlier_stop"]
    failed = next(entry for entry in execaudit_capture.fields(result.metadata["execution_id"])
                  if entry["kind"] == "step.failed")
    assert "Traceback" in failed["data"]["traceback"]
    assert execaudit_capture.fields(result.metadata["execution_id"])[-1]["data"]["status"] == \
        "failed"  # it stopped at the failure: step a completed before it, but that is FAILED


def test_a_blocked_run_ends_every_planned_action_in_one_guard_denied_event(executor,
                                                                            execaudit_capture):
    result = executor.run(order_plan(), client_id=None)
    events = terminal_events(execaudit_capture, result)
    assert [(event["action_type"], event["error_code"]) for event in events] == [
        ("fetch_quote", "guard_denied"), ("place_order", "guard_denied")]


def test_undeclared_side_effects_are_violations(execaudit_capture):
    registry = outcome_registry()

    @registry.adapter("overreach")
    def overreach(context):
        context.side_effect("network", "DELETE /accounts/7", reversible=False)
        return None

    plan = single("overreach", side_effects=[{"category": "network", "reversible": True}])
    result = Executor(adapters=registry).run(plan, client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED
    assert result.violations == [
        "irreversible network side effect declared reversible: DELETE /accounts/7"]
    assert "VIOLATION: irreversible network" in result.to_human_readable()


@pytest.mark.parametrize("request_fields, error_code", [
    ({"action_type": "ok"}, "missing_trace_id"),
    ({"trace_id": "0" * 32, "action_type": "ok"}, "missing_trace_id"),
    ({"trace_id": TRACE_ID}, "missing_action_type"),
    ({"trace_id": TRACE_ID, "action_type": "nowhere"}, "unsupported_action_type"),
    ({"trace_id": TRACE_ID, "action_type": "ok"}, None),
])
def test_single_action_requests_follow_the_seed_paths(execaudit_capture, request_fields,
                                                       error_code):
    executor = Executor(adapters=outcome_registry())
    result = executor.run_action(request_fields, client_id=1)
    events = terminal_events(execaudit_capture, result)
    assert len(events) == 1 and events[0]["error_code"] == error_code
    assert result.is_success() == (error_code is None)
    if error_code is None:  # the execution joined the caller's trace
        assert events[0]["trace_id"] == TRACE_ID == result.metadata["trace_id"]
    assert execaudit_capture.verify().ok


def test_secrets_in_params_never_reach_ledger_or_report(execaudit_capture):
    registry = AdapterRegistry()
    registry.adapter("login")(lambda context: {"token": "sk-live-abcdefghijklmnop"})
    plan = single("login", params={"user": "ops", "password": "hunter2"})
    result = Executor(adapters=registry).run(plan, client_id=1)
    text = result.to_json() + execaudit_capture.ledger_path.read_bytes().decode("latin-1")
    assert "hunter2" not in text and "sk-live-abcdefghijklmnop" not in text


def test_results_serialise_in_a_versioned_format(executor):
    result = executor.run(order_plan(), client_id=1)
    data = result.to_dict()
    assert data["format"] == "otel-execaudit.result/1"
    assert data["summary"] == {"total_guards": 4, "passed_guards": 4, "failed_guards": 0,
                               "warnings": 0, "total_actions": 2, "not_run": 0,
                               "violations": 0}
    assert data["actions"][1]["rollback"]["actions"] == ["cancel_order"]
    report = result.to_human_readable()
    for line in ("MODE: DRY-RUN", "STATUS: ✓ SUCCESS", "SAFETY CHECKS:",
                 "✓ TenantContext: Tenant context valid (client_id=1)", "ACTIONS TAKEN (2):",
                 "Rollback (not executed): cancel the order", "Safety checks: 4 (4 passed)"):
        assert line in report


# -- code-first plans ----------------------------------------------------------------------------

class CallLog:
    """What the test's steps really did. A list the plan appends to would be part of the plan
    (its hash covers what the plan reads), so its dry run would make it stale; an object of
    slots has no exact form, and counts by its type only, as a client would."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def append(self, call: str) -> None:
        self.calls.append(call)

    def clear(self) -> None:
        self.calls.clear()

    def __eq__(self, other: object) -> bool:
        return self.calls == other


CALLS = CallLog()


def code_first_plan(calls: CallLog, effect: str = "network"):
    from otel_execaudit import plan, step

    assert calls is CALLS
    CALLS.clear()

    @step("quote")
    def quote(symbol):
        CALLS.append("quote")
        return 50000

    @step("buy", side_effects=[{"category": "network", "reversible": False,
                                "description": "place a limit order"}],
          consumes={"orders": 1}, simulate=lambda symbol, quantity: f"buy {quantity} {symbol}")
    def buy(symbol, quantity):
        CALLS.append("buy")
        current_step().side_effect(effect, "order placed", reversible=False)
        return "o-1"

    @plan("rebalance")
    def rebalance(symbol):
        quote(symbol)
        return buy(symbol, 0.001)

    return rebalance


def current_step():
    from otel_execaudit import current_step as current

    return current()


def test_code_first_plans_run_through_the_same_executor(execaudit_capture):
    calls = CALLS
    rebalance = code_first_plan(calls)
    executor = Executor(guards=[*default_guards()[:3], ExecutionLimitsGuard(max_orders_per_day=1)],
                        default_guards=False)
    dry = executor.run(rebalance, client_id=1, arguments=("BTCUSDT",))
    assert dry.is_success() and calls == ["quote"] and dry.value is None
    assert [(action.type, action.description) for action in dry.actions] == [
        ("SIMULATED", "would buy 0.001 BTCUSDT")]

    blocked = executor.run(rebalance, client_id=1, arguments=("BTCUSDT",), mode="LIVE")
    assert blocked.is_blocked() and calls == ["quote"]  # nothing ran, not even the read

    live = executor.run(rebalance, client_id=1, arguments=("BTCUSDT",), plan_hash=dry.plan_hash,
                        **LIVE)
    assert live.is_success() and live.value == "o-1"
    assert calls == ["quote", "quote", "buy"]
    events = terminal_events(execaudit_capture, live)
    assert [(event["status"], event["error_code"]) for event in events] == [("success", None)]

    # The limit of one order a day is consumed atomically just before the step acts.
    again = executor.run(rebalance, client_id=1, arguments=("BTCUSDT",), **LIVE)
    assert again.is_blocked() and calls == ["quote", "quote", "buy", "quote"]
    assert [action.status for action in again.actions] == ["blocked"]
    assert execaudit_capture.verify().ok


def test_a_code_first_step_beyond_its_declaration_is_a_violation(execaudit_capture):
    calls = CALLS
    rebalance = code_first_plan(calls, effect="file_system")
    result = Executor().run(rebalance, client_id=1, arguments=("BTCUSDT",), **LIVE)
    assert result.status is ResultStatus.FAILED
    assert result.violations == ["undeclared file_system side effect: order placed"]


def test_an_acting_step_outside_the_executor_is_simulated_unless_live(execaudit_capture):
    from otel_execaudit import GuardDeniedError, execution

    calls = CALLS
    rebalance = code_first_plan(calls)
    with pytest.raises(GuardDeniedError, match="no Executor checked the guards"):
        rebalance("BTCUSDT")  # @plan's execution really runs: LIVE, and nothing guarded it
    assert calls == ["quote"]
    with execution("rehearsal", mode="DRY_RUN"):
        assert rebalance("BTCUSDT") is None  # nested in a dry run: simulated
    assert calls == ["quote", "quote"]


def test_a_code_first_plan_that_raises_fails_with_its_traceback(execaudit_capture):
    from otel_execaudit import plan

    @plan("broken")
    def broken():
        raise KeyError("missing account")

    result = Executor().run(broken, client_id=1)
    assert result.status is ResultStatus.FAILED and "KeyError" in result.error
    ended = execaudit_capture.fields(result.metadata["execution_id"])[-1]
    assert ended["data"]["status"] == "failed" and "Traceback" in ended["data"]["traceback"]


def test_a_read_that_counts_against_limits_is_counted_in_live_only(execaudit_capture):
    registry = AdapterRegistry()
    registry.adapter("search", read_only=True)(lambda context: {"hits": 3})
    plan = {"plan_id": "lookup", "limits": {"api_calls": 1},
            "steps": [{"name": "search", "action_type": "search", "consumes": {"api_calls": 1}}]}
    executor = Executor(adapters=registry)
    counters = LimitCounters(execaudit_capture.runtime.ledger)
    assert executor.run(plan, client_id=1).is_success()
    assert counters.usage("client:1") == {}  # a dry run consumes nothing
    assert executor.run(plan, client_id=1, **LIVE).is_success()
    assert counters.usage("client:1") == {"api_calls": 1.0}
    assert executor.run(plan, client_id=1, **LIVE).is_blocked()
