"""Daily limits through the executor: what adapters spend, what they report afterwards, replays
that must repeat the very same action, and what a code-first dry run would consume."""

from __future__ import annotations

import pytest

from otel_execaudit import (
    ActionOutcome,
    AdapterError,
    AdapterRegistry,
    ExecutionLimitsGuard,
    Executor,
    PlanError,
    plan,
    step,
)
from otel_execaudit.executor.limits import LimitCounters
from tests.executor_options import LIVE, TRACE_ID


def usage(capture, client_id: int = 1) -> dict[str, float]:
    return LimitCounters(capture.runtime.ledger).usage(f"client:{client_id}")


def exchange(calls: list) -> AdapterRegistry:
    """A pretend exchange whose adapters know what an order spends and what it lost."""
    registry = AdapterRegistry()

    @registry.adapter("place_order",
                      side_effects=[{"category": "network", "reversible": False}],
                      consumes=lambda params: {"orders": 1,
                                               "notional": params["quantity"] * params["price"]})
    def place_order(context):
        calls.append(("place_order", context.params["quantity"]))
        return ActionOutcome.success("placed")

    @registry.adapter("close_position", side_effects=["network"])
    def close_position(context):
        calls.append(("close_position", context.mode.value))
        context.add_usage(loss=context.params["loss"])
        return ActionOutcome.success("closed")

    return registry


def order(quantity: float, **step) -> dict:
    return {"name": step.pop("name", "buy"), "action_type": "place_order",
            "params": {"symbol": "BTCUSDT", "quantity": quantity, "price": 50000}, **step}


def plan_of(*steps, **limits) -> dict:
    return {"plan_id": "desk", "limits": limits or {"orders": 10, "notional": 1000, "loss": 100},
            "steps": list(steps)}


# -- what an adapter spends, whatever the plan declares -------------------------------------

def test_an_adapter_counts_what_its_params_spend_when_the_plan_under_declares(
        execaudit_capture):
    calls: list = []
    executor = Executor(adapters=exchange(calls))
    under_declared = plan_of(order(0.5, consumes={"notional": 50}))  # 25,000 really
    dry = executor.run(under_declared, client_id=1)
    (limits,) = [verdict for verdict in dry.guards if verdict.name == "ExecutionLimits"]
    assert "would consume 25000 of 1000 notional" in limits.message
    assert "LIVE would be blocked: notional" in limits.message
    live = executor.run(under_declared, client_id=1, **LIVE)
    assert live.is_blocked() and calls == []
    assert executor.run(plan_of(order(0.01)), client_id=1, **LIVE).is_success()
    assert usage(execaudit_capture) == {"orders": 1.0, "notional": 500.0, "actions": 1.0}


def test_an_adapter_that_declares_side_effects_is_simulated_whatever_the_request_says(
        execaudit_capture):
    calls: list = []
    executor = Executor(adapters=exchange(calls))
    request = {"trace_id": TRACE_ID, "action_type": "place_order",
               "params": {"symbol": "BTCUSDT", "quantity": 0.001, "price": 50000}}
    dry = executor.run_action(request, client_id=1)  # no side_effects in the request
    assert dry.is_success() and dry.actions[0].type == "SIMULATED" and calls == []
    live = executor.run_action(request, client_id=1, **LIVE)
    assert live.actions[0].type == "LIVE" and calls == [("place_order", 0.001)]
    assert usage(execaudit_capture)["orders"] == 1.0  # and it counted


def test_an_adapter_whose_reckoning_fails_stops_the_run_before_anything_is_recorded(
        execaudit_capture):
    registry = AdapterRegistry()
    registry.adapter("pay", consumes=lambda params: {"notional": params["amount"]})(
        lambda context: None)
    with pytest.raises(AdapterError, match="consumes raised KeyError"):
        Executor(adapters=registry).run(
            {"plan_id": "p", "steps": [{"name": "pay", "action_type": "pay"}]}, client_id=1)
    with pytest.raises(AdapterError, match="finite number"):
        registry.adapter("refund", consumes={"notional": -1})(lambda context: None)
    assert execaudit_capture.fields() == []


# -- what an action reports afterwards: a daily loss limit is a breaker ---------------------

def test_a_daily_loss_reported_by_an_action_blocks_every_later_action_that_day(
        execaudit_capture):
    calls: list = []
    executor = Executor(adapters=exchange(calls))
    close = {"name": "close", "action_type": "close_position", "params": {"loss": 100}}
    assert executor.run(plan_of(close), client_id=1, **LIVE).is_success()
    assert usage(execaudit_capture)["loss"] == 100.0

    blocked = executor.run(plan_of(order(0.001)), client_id=1, **LIVE)
    assert blocked.is_blocked() and calls == [("close_position", "LIVE")]
    assert any("Daily loss limit reached: 100 used of 100" in verdict.message
               for verdict in blocked.guards)
    dry = executor.run(plan_of(order(0.001)), client_id=1)
    assert any("LIVE would be blocked: loss" in verdict.message for verdict in dry.guards)
    # Another tenant's day is its own.
    assert executor.run(plan_of(order(0.001)), client_id=2, **LIVE).is_success()


def test_usage_reported_in_a_dry_run_or_again_by_a_replay_counts_once(execaudit_capture):
    calls: list = []
    registry = exchange(calls)

    @registry.adapter("mark_to_market")  # a read: it runs in DRY_RUN too
    def mark_to_market(context):
        context.add_usage(loss=30)
        return {}

    executor = Executor(adapters=registry)
    read = plan_of({"name": "mark", "action_type": "mark_to_market"})
    assert executor.run(read, client_id=1).is_success()
    assert "loss" not in usage(execaudit_capture)  # a dry run counts nothing
    for _ in range(2):
        assert executor.run(read, client_id=1, execution_id="eod-1", **LIVE).is_success()
    assert usage(execaudit_capture)["loss"] == 30.0
    recorded = [entry["data"] for entry in execaudit_capture.fields()
                if entry["kind"] == "limits.recorded"]
    assert [(data["amounts"], data["replaced"]) for data in recorded] == [
        ({"loss": 30}, False), ({"loss": 30}, True)]
    assert execaudit_capture.verify().ok


def test_usage_must_be_finite_non_negative_numbers(execaudit_capture):
    registry = AdapterRegistry()

    @registry.adapter("bad_report")
    def bad_report(context):
        context.add_usage(loss=float("nan"))

    result = Executor(adapters=registry).run(
        {"plan_id": "p", "steps": [{"name": "s", "action_type": "bad_report"}]},
        client_id=1, **LIVE)
    assert result.status.value == "FAILED" and "finite number" in result.error


# -- a replay repeats the very same action --------------------------------------------------

@pytest.mark.parametrize("first, second", [
    ({"to_account_token": "acct-alice"}, {"to_account_token": "acct-mallory"}),  # redacted
    ({"note": "x" * 3000 + "qty=1"}, {"note": "x" * 3000 + "qty=9"}),  # cut in the record
])
def test_two_actions_that_differ_only_where_the_record_is_cut_are_not_one_replay(
        execaudit_capture, first, second):
    sent: list = []
    registry = AdapterRegistry()
    registry.adapter("transfer", side_effects=["network"])(
        lambda context: sent.append(dict(context.params)))
    executor = Executor(adapters=registry)

    def keyed(params: dict) -> dict:
        return {"plan_id": "payout", "limits": {"actions": 1}, "steps": [
            {"name": "send", "action_type": "transfer", "params": params,
             "idempotency_key": "transfer-7"}]}

    assert executor.run(keyed(first), client_id=1, **LIVE).is_success()
    assert executor.run(keyed(first), client_id=1, **LIVE).is_success()  # a true replay
    assert executor.run(keyed(second), client_id=1, **LIVE).is_blocked()
    assert len(sent) == 2 and all(params == first for params in sent)


def test_a_code_first_replay_must_call_with_the_same_arguments(execaudit_capture):
    performed: list = []

    @step("order", side_effects=["network"], consumes={"orders": 1})
    def place(symbol):
        performed.append(symbol)

    def trade(symbols):
        for symbol in symbols:
            place(symbol)

    executor = Executor(guards=[ExecutionLimitsGuard(max_orders_per_day=2)])
    first = executor.run(trade, arguments=(["A", "B"],), execution_id="run-1", client_id=1,
                         **LIVE)
    again = executor.run(trade, arguments=(["A", "B"],), execution_id="run-1", client_id=1,
                         **LIVE)
    other = executor.run(trade, arguments=(["C", "D"],), execution_id="run-1", client_id=1,
                         **LIVE)
    assert first.is_success() and again.is_success() and other.is_blocked()
    assert performed == ["A", "B", "A", "B"]  # the replay repeats, the other calls never run
    assert usage(execaudit_capture)["orders"] == 2.0


# -- a code-first dry run says what its actions would consume -------------------------------

def test_a_code_first_dry_run_reports_what_its_actions_would_consume(execaudit_capture):
    @step("order", side_effects=["network"], consumes={"orders": 1})
    def place(symbol):
        raise AssertionError("never called in a dry run")

    @plan("three-orders")
    def three():
        for symbol in "ABC":
            place(symbol)

    executor = Executor(guards=[ExecutionLimitsGuard(max_orders_per_day=2)])
    dry = executor.run(three, client_id=1)
    assert dry.is_success()
    limits = [verdict for verdict in dry.guards
              if verdict.name == "ExecutionLimits" and "orders" in verdict.message]
    preflight, total = limits  # the guard given here; the seed's own one sets no maxima
    assert "counted as each one runs" in preflight.message
    assert total.stage == "total" and "would consume 3 of 2 orders" in total.message
    assert "LIVE would be blocked: orders" in total.message
    evaluated = [entry["data"] for entry in execaudit_capture.fields()
                 if entry["kind"] == "guard.evaluated" and entry["data"]["stage"] == "total"]
    assert len(evaluated) == 2  # each limits guard, recorded like every guard evaluation


def test_an_amount_too_large_is_refused_when_the_plan_loads():
    with pytest.raises(PlanError, match="consumes"):
        Executor().run(plan_of(order(0.001, consumes={"orders": 10**400})), client_id=1)
