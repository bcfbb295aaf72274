"""What the plan hash covers beyond steps and params: each guard's severity, settings and code,
each adapter's code, and the module-level values a code-first plan reads. A LIVE run pinned to
a dry run is refused when any of them changed since."""

from __future__ import annotations

import textwrap

import pytest

from otel_execaudit import (
    AdapterRegistry,
    ConfigurationError,
    ExecutionGuard,
    Executor,
    Severity,
    step,
)
from otel_execaudit.executor.adapters import load_adapters
from tests.executor_options import LIVE


class MaxQuantity:
    """A user guard keeping its setting in a private attribute."""

    name, severity = "MaxQuantity", Severity.DENY

    def __init__(self, limit: float) -> None:
        self._limit = limit

    def check(self, context):
        quantity = max((item.params.get("quantity", 0) for item in context.plan.steps), default=0)
        return ExecutionGuard(self.name, quantity <= self._limit, f"quantity {quantity}")


class Slotted:
    """A guard of slots: no ``__dict__`` for the hash to read."""

    __slots__ = ("limit",)
    name, severity = "Slotted", Severity.DENY

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, context):
        return ExecutionGuard(self.name, True, f"limit {self.limit}")


def order_plan(quantity: float = 1) -> dict:
    return {"plan_id": "buy", "steps": [{"name": "buy", "action_type": "noop",
                                         "params": {"quantity": quantity},
                                         "side_effects": ["network"]}]}


def noop_registry() -> AdapterRegistry:
    registry = AdapterRegistry()
    registry.adapter("noop")(lambda context: None)
    return registry


def stale(result) -> bool:
    return result.is_blocked() and any(verdict.name == "PlanPinned" and not verdict.passed
                                       for verdict in result.guards)


def test_softening_a_guard_to_a_warning_makes_a_pinned_plan_stale(execaudit_capture):
    class Softenable(MaxQuantity):
        pass

    guard = Softenable(5)
    executor = Executor(adapters=noop_registry(), guards=[guard])
    pinned = executor.run(order_plan(), client_id=1).plan_hash
    Softenable.severity = Severity.WARN  # on the class: the instance's attributes are unchanged
    assert stale(executor.run(order_plan(), client_id=1, plan_hash=pinned, **LIVE))


@pytest.mark.parametrize("guard, setting, changed", [
    (MaxQuantity(5), "_limit", 1_000_000),  # a private attribute
    (Slotted(3), "limit", 4),  # a slot: no __dict__ for the hash to read
])
def test_changing_a_guards_setting_makes_a_pinned_plan_stale(execaudit_capture, guard, setting,
                                                            changed):
    executor = Executor(adapters=noop_registry(), guards=[guard])
    pinned = executor.run(order_plan(), client_id=1).plan_hash
    original = getattr(guard, setting)
    setattr(guard, setting, changed)
    assert stale(executor.run(order_plan(), client_id=1, plan_hash=pinned, **LIVE))
    setattr(guard, setting, original)
    assert executor.run(order_plan(), client_id=1, plan_hash=pinned, **LIVE).is_success()


def test_an_adapter_whose_code_changed_makes_a_pinned_plan_stale(execaudit_capture, tmp_path):
    module = tmp_path / "pinned_venue.py"
    source = textwrap.dedent('''
        from otel_execaudit import adapter

        @adapter("pinned_venue_order", side_effects=["network"])
        def order(context):
            return {"venue": "%s"}
    ''')
    module.write_text(source % "a")
    load_adapters(str(module))
    plan = {"plan_id": "venue", "steps": [{"name": "o", "action_type": "pinned_venue_order"}]}
    executor = Executor()
    try:
        pinned = executor.run(plan, client_id=1).plan_hash
        assert executor.plan_hash(plan, client_id=1) == pinned
        module.write_text(source % "b" + "\n# changed\n")
        load_adapters(str(module))  # the same function, re-imported with other code
        assert stale(executor.run(plan, client_id=1, plan_hash=pinned, **LIVE))
    finally:
        executor.adapters.unregister("pinned_venue_order")


SETTINGS = {"quantity": 1}


@step("order", side_effects=["network"])
def _order(quantity):
    return quantity


def _trade():
    return _order(SETTINGS["quantity"])


def test_a_module_level_setting_a_code_first_plan_reads_is_pinned(execaudit_capture):
    executor = Executor()
    pinned = executor.run(_trade, client_id=1).plan_hash
    SETTINGS["quantity"] = 1_000_000
    try:
        assert stale(executor.run(_trade, client_id=1, plan_hash=pinned, **LIVE))
    finally:
        SETTINGS["quantity"] = 1
    assert executor.run(_trade, client_id=1, plan_hash=pinned, **LIVE).value == 1


@pytest.mark.parametrize("given", ["sha256:…", "sha256:00", "deadbeef", "sha256:" + "g" * 64])
def test_something_that_is_not_a_plan_hash_is_refused_as_such(execaudit_capture, given):
    result = Executor(adapters=noop_registry()).run(order_plan(), client_id=1,
                                                    plan_hash=given, **LIVE)
    (pin,) = [verdict for verdict in result.guards if verdict.name == "PlanPinned"]
    assert result.is_blocked() and pin.message.startswith("Not a plan hash")


def test_a_deployment_can_require_every_live_run_to_be_pinned(execaudit_capture, monkeypatch):
    monkeypatch.setenv("EXECAUDIT_REQUIRE_PLAN_HASH", "1")
    executor = Executor(adapters=noop_registry())
    unpinned = executor.run(order_plan(), client_id=1, **LIVE)
    assert unpinned.is_blocked() and "requires the plan hash" in unpinned.error + " ".join(
        verdict.message for verdict in unpinned.guards)
    pinned = executor.run(order_plan(), client_id=1).plan_hash
    assert executor.run(order_plan(), client_id=1, plan_hash=pinned, **LIVE).is_success()
    monkeypatch.setenv("EXECAUDIT_REQUIRE_PLAN_HASH", "sometimes")
    with pytest.raises(ConfigurationError, match="EXECAUDIT_REQUIRE_PLAN_HASH"):
        Executor()


def test_a_guard_without_a_check_is_refused_when_the_executor_is_built():
    class Nameless:
        name, severity = "Nameless", Severity.DENY

    with pytest.raises(ConfigurationError, match="no check"):
        Executor(guards=[Nameless()])
