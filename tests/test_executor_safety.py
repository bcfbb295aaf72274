"""Ways around the executor's safety that a review found, each closed and kept closed."""

from __future__ import annotations

import pytest

from otel_execaudit import (
    AcknowledgementGuard,
    ActionOutcome,
    AdapterRegistry,
    ConfigurationError,
    ExecutionGuard,
    ExecutionLimitsGuard,
    Executor,
    GuardDeniedError,
    LedgerWriteError,
    PlanError,
    Severity,
    execution,
    plan,
    step,
)
from otel_execaudit.executor.limits import LimitCounters
from otel_execaudit.executor.results import ResultStatus
from tests.executor_options import LIVE, TRACE_ID


def recording_registry(calls: list) -> AdapterRegistry:
    registry = AdapterRegistry()

    @registry.adapter("pay")
    def pay(context):
        calls.append((context.params.get("amount"), context.idempotency_key))
        context.side_effect("network", "paid", reversible=False)
        return ActionOutcome.success("paid")

    return registry


def pay_plan(**step) -> dict:
    return {"plan_id": "payout", "limits": {"orders": 1},
            "steps": [{"name": "pay", "action_type": "pay", "params": {"amount": 10},
                       "side_effects": [{"category": "network", "reversible": False}],
                       "consumes": {"orders": 1}, **step}]}


def fields(capture, result) -> list[dict]:
    return capture.fields(result.metadata["execution_id"])


# -- code-first plans cannot escape the run's mode -----------------------------------------------

def test_a_nested_live_plan_inside_a_dry_run_is_simulated(execaudit_capture):
    placed: list = []

    @step("place", side_effects=[{"category": "network", "reversible": False}])
    def place(amount):
        placed.append(amount)

    @plan("helper", mode="LIVE")
    def helper(amount):
        place(amount)

    def outer():
        helper(42)

    result = Executor().run(outer, client_id=1)
    assert result.is_success() and placed == []
    assert [action.type for action in result.actions] == ["SIMULATED"]


def test_an_acting_step_in_a_live_execution_outside_the_executor_is_refused(execaudit_capture):
    placed: list = []

    @step("place", side_effects=["network"])
    def place():
        placed.append(1)

    with pytest.raises(GuardDeniedError, match="Executor"):
        with execution("unguarded", mode="LIVE"):
            place()
    assert placed == []


def test_a_failed_action_stops_a_code_first_plan_even_if_the_plan_catches_it(execaudit_capture):
    calls: list = []

    @step("first", side_effects=["network"])
    def first():
        calls.append("first")
        raise RuntimeError("exchange down")

    @step("second", side_effects=["network"])
    def second():
        calls.append("second")

    def careless():
        try:
            first()
        except RuntimeError:
            pass
        second()

    result = Executor().run(careless, client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED and calls == ["first"]
    codes = [entry["data"]["error_code"] for entry in fields(execaudit_capture, result)
             if entry["kind"] == "action.terminal"]
    assert codes == ["adapter_exception", "skipped_after_earlier_stop"]


def test_code_first_arguments_are_part_of_the_plan_hash(execaudit_capture):
    @step("pay", side_effects=["network"])
    def pay(amount):
        return amount

    def payout(amount):
        return pay(amount)

    executor = Executor()
    reviewed = executor.run(payout, client_id=1, arguments=(1,))
    result = executor.run(payout, client_id=1, arguments=(1_000_000,),
                          plan_hash=reviewed.plan_hash, **LIVE)
    assert result.is_blocked() and result.value is None


def test_bad_code_first_declarations_are_refused_when_decorated():
    with pytest.raises(ConfigurationError, match="declares nothing"):
        step("x", side_effects=[])(lambda: None)

    async def asynchronous():
        return None

    with pytest.raises(ConfigurationError, match="plain plan function"):
        Executor().run(asynchronous, client_id=1)


# -- limits and replays ----------------------------------------------------------------------------

def test_a_replay_gives_the_adapter_the_same_idempotency_key(execaudit_capture):
    calls: list = []
    executor = Executor(adapters=recording_registry(calls))
    executor.run(pay_plan(), client_id=1, execution_id="run-1", **LIVE)
    executor.run(pay_plan(), client_id=1, execution_id="run-1", **LIVE)
    assert calls == [(10, "run-1:0"), (10, "run-1:0")]  # the venue can tell it is the same


def test_an_idempotency_key_is_not_a_free_pass_for_another_tenant_or_amount(execaudit_capture):
    calls: list = []
    executor = Executor(adapters=recording_registry(calls))
    keyed = pay_plan(idempotency_key="order-7")
    assert executor.run(keyed, client_id=1, **LIVE).is_success()
    other_tenant = executor.run(keyed, client_id=2, **LIVE)
    bigger = executor.run(pay_plan(idempotency_key="order-7", consumes={"orders": 5}),
                          client_id=1, **LIVE)
    assert other_tenant.is_blocked() and bigger.is_blocked()
    assert "already consumed" in other_tenant.error or "already consumed" in " ".join(
        verdict.message for verdict in other_tenant.guards)
    assert len(calls) == 1


def test_switching_strategies_does_not_reset_the_tenants_day(execaudit_capture):
    calls: list = []
    executor = Executor(adapters=recording_registry(calls))
    strategies = {**pay_plan(), "strategies": {"a": {"orders": 1}, "b": {"orders": 1}}}
    assert executor.run(strategies, client_id=4, strategy_id="a", **LIVE).is_success()
    assert executor.run(strategies, client_id=4, strategy_id="b", **LIVE).is_blocked()
    assert executor.run(strategies, client_id=4, strategy_id="nope", **LIVE).is_blocked()
    assert len(calls) == 1
    assert LimitCounters(execaudit_capture.runtime.ledger).usage("client:4")["orders"] == 1.0


def test_two_steps_cannot_share_an_idempotency_key():
    from otel_execaudit import load_plan

    with pytest.raises(PlanError, match="idempotency keys must be unique"):
        load_plan({"plan_id": "p", "steps": [
            {"name": "a", "action_type": "pay", "idempotency_key": "k"},
            {"name": "b", "action_type": "pay", "idempotency_key": "k"}]})


# -- guards ----------------------------------------------------------------------------------------

def test_added_guards_extend_the_seed_guards_and_live_is_always_acknowledged(execaudit_capture):
    calls: list = []

    class Mine:
        name, severity = "Mine", Severity.DENY

        def check(self, context):
            return ExecutionGuard(self.name, True, "fine")

    executor = Executor(adapters=recording_registry(calls), guards=[Mine()])
    assert [guard.name for guard in executor.guards] == [
        "TenantContext", "ValidationRequired", "Acknowledgement", "ExecutionLimits", "Mine"]
    bare = Executor(adapters=recording_registry(calls), guards=[Mine()], default_guards=False)
    assert bare.run(pay_plan(), client_id=1, mode="LIVE").is_blocked()
    assert calls == []


@pytest.mark.parametrize("flag", ["acknowledge_risk", "validated", "validation_passed"])
def test_only_true_is_a_yes(execaudit_capture, flag):
    calls: list = []
    result = Executor(adapters=recording_registry(calls)).run(
        pay_plan(), client_id=1, **{**LIVE, flag: "false"})
    assert result.is_blocked() and calls == []


def test_a_verdict_cannot_override_its_own_decision(execaudit_capture):
    class Sneaky(ExecutionGuard):
        @property
        def decision(self):
            return "allow"

    class Liar:
        name, severity = "Liar", Severity.DENY

        def check(self, context):
            return Sneaky("Liar", False, "no")

    calls: list = []
    result = Executor(adapters=recording_registry(calls), guards=[Liar()]).run(
        pay_plan(), client_id=1, **LIVE)
    assert result.is_blocked() and calls == []


def test_a_guard_whose_error_cannot_be_printed_still_blocks(execaudit_capture):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    class Broken:
        name, severity = "Broken", Severity.DENY

        def check(self, context):
            raise Unprintable()

    result = Executor(guards=[Broken()]).run(pay_plan(), client_id=1)
    assert result.is_blocked() and "Unprintable" in result.guards[-1].message


def test_guard_messages_and_simulations_are_redacted_in_results(execaudit_capture):
    class Leaky:
        name, severity = "Leaky", Severity.WARN

        def check(self, context):
            raise ValueError("login failed with password=hunter2")

    registry = AdapterRegistry()
    registry.adapter("pay", simulate=lambda context: "POST https://ops:s3cr3t@pay.example/x")(
        lambda context: None)
    result = Executor(adapters=registry, guards=[Leaky()]).run(pay_plan(), client_id=1)
    text = result.to_json() + result.to_human_readable()
    assert "hunter2" not in text and "s3cr3t" not in text


def test_a_recheck_warning_is_reported(execaudit_capture):
    class Spread:
        name, severity = "Spread", Severity.WARN

        def check(self, context):
            return ExecutionGuard(self.name, context.step is None, "spread is wide")

    calls: list = []
    result = Executor(adapters=recording_registry(calls), guards=[Spread()]).run(
        pay_plan(), client_id=1, **LIVE)
    assert result.is_success()
    assert [(verdict.stage, verdict.decision) for verdict in result.guards
            if verdict.name == "Spread"] == [("preflight", "allow"), ("recheck", "warn")]


# -- terminal events and hostile outputs -----------------------------------------------------------

def test_an_adapter_interrupted_still_ends_its_path_in_one_event(execaudit_capture):
    registry = AdapterRegistry()

    @registry.adapter("pay")
    def pay(context):
        raise KeyboardInterrupt

    executor = Executor(adapters=registry)
    with pytest.raises(KeyboardInterrupt):
        executor.run(pay_plan(), client_id=1, **LIVE)
    events = [entry["data"] for entry in execaudit_capture.fields()
              if entry["kind"] == "action.terminal"]
    assert [event["error_code"] for event in events] == ["cancelled"]


def test_a_cyclic_output_is_recorded_not_crashed_on(execaudit_capture):
    registry = AdapterRegistry()
    cyclic: dict = {}
    cyclic["self"] = cyclic
    registry.adapter("pay")(lambda context: cyclic)
    result = Executor(adapters=registry).run(pay_plan(), client_id=1, **LIVE)
    assert result.is_success() and result.actions[0].status == "success"


def test_free_text_never_reaches_a_terminal_event(execaudit_capture):
    with pytest.raises(PlanError, match="not an identifier"):
        Executor().run({"plan_id": "p", "steps": [
            {"name": "s", "action_type": "email bob password=hunter2"}]}, client_id=1)
    registry = AdapterRegistry()
    registry.adapter("pay")(lambda context: ActionOutcome.failure("sk-live-4eC39HqLyjWDarjt"))
    result = Executor(adapters=registry).run(pay_plan(), client_id=1, **LIVE)
    (event,) = [entry["data"] for entry in execaudit_capture.fields()
                if entry["kind"] == "action.terminal"]
    assert event["error_code"] == "adapter_exception"  # the outcome itself refused the text
    assert "sk-live" not in str(execaudit_capture.events())
    failure, = [entry["data"] for entry in execaudit_capture.fields()
                if entry["kind"] == "step.failed"]
    assert "sk-live" not in failure["error_message"]  # the refusal does not echo it
    assert result.status is ResultStatus.FAILED


def terminal_events(capture) -> list[tuple[str | None, str | None]]:
    return [(entry["data"]["action_type"], entry["data"]["error_code"])
            for entry in capture.fields() if entry["kind"] == "action.terminal"]


def test_an_action_request_with_a_typo_is_refused_not_run_as_a_read(execaudit_capture):
    calls: list = []
    result = Executor(adapters=recording_registry(calls)).run_action(
        {"trace_id": TRACE_ID, "action_type": "pay", "side_effect": ["network"]}, client_id=1)
    assert result.status is ResultStatus.FAILED and "side_effect" in result.error
    assert calls == []
    assert terminal_events(execaudit_capture) == [("pay", "invalid_request")]


@pytest.mark.parametrize("request_, code", [
    (["pay"], "invalid_request"),
    ({"trace_id": TRACE_ID, "action_type": "pay now"}, "unsupported_action_type"),
    ({"trace_id": TRACE_ID, "action_type": "pay", "params": [1]}, "invalid_request"),
    ({"trace_id": TRACE_ID, "action_type": "pay", "params": {"when": object()}},
     "invalid_request"),
])
def test_a_malformed_action_request_fails_with_one_terminal_event(execaudit_capture, request_,
                                                                   code):
    calls: list = []
    result = Executor(adapters=recording_registry(calls)).run_action(request_, client_id=1)
    assert result.status is ResultStatus.FAILED and result.error
    assert calls == []
    assert [error_code for _, error_code in terminal_events(execaudit_capture)] == [code]
    names = [name for name, _ in execaudit_capture.events()]
    # one terminal event as an OpenTelemetry log record, and the ledger's checkpoint after it
    assert names == ["execaudit.action.terminal", "execaudit.ledger.checkpoint"]
    assert execaudit_capture.verify().ok


def test_a_replay_must_repeat_the_same_action(execaudit_capture):
    calls: list = []
    executor = Executor(adapters=recording_registry(calls))
    assert executor.run(pay_plan(), client_id=1, execution_id="run-9", **LIVE).is_success()
    bigger = pay_plan(params={"amount": 1_000_000})
    assert executor.run(bigger, client_id=1, execution_id="run-9", **LIVE).is_blocked()
    assert calls == [(10, "run-9:0")]


def test_code_first_consumption_is_validated():
    with pytest.raises(PlanError, match="consumes"):
        step("refund", side_effects=["network"], consumes={"orders": -5})(lambda: None)


def test_a_live_run_nested_in_a_dry_run_is_a_dry_run(execaudit_capture):
    calls: list = []
    inner = Executor(adapters=recording_registry(calls))

    def outer():
        return inner.run(pay_plan(), client_id=1, **LIVE)

    result = Executor().run(outer, client_id=1)
    assert result.is_success() and result.value.mode.value == "DRY_RUN" and calls == []


def test_a_code_first_failure_is_redacted_in_the_result(execaudit_capture):
    def leaky():
        raise RuntimeError("login failed: password=hunter2")

    result = Executor().run(leaky, client_id=1)
    assert result.status is ResultStatus.FAILED and "hunter2" not in result.to_json()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), None, "5"])
def test_a_guard_timeout_must_be_a_positive_number(timeout):
    with pytest.raises(ConfigurationError, match="guard_timeout"):
        Executor(guard_timeout=timeout)


# -- a second review: nested code-first runs, exact pinning, interruptions -------------------------

def terminal_codes(capture) -> list[str | None]:
    return [attributes.get("error_code") for name, attributes in capture.events()
            if name == "execaudit.action.terminal"]


def test_nested_code_first_actions_are_counted_each(execaudit_capture):
    placed: list = []

    @step("order", side_effects=["network"], consumes={"orders": 1})
    def order(number):
        placed.append(number)

    @plan("leg", mode="LIVE")
    def leg(number):
        order(number)

    def two_legs():
        leg(1)
        leg(2)  # the same step index in its own execution: still a second order

    executor = Executor(guards=[ExecutionLimitsGuard(max_orders_per_day=2)])
    assert executor.run(two_legs, client_id=1, **LIVE).is_success() and placed == [1, 2]
    assert LimitCounters(execaudit_capture.runtime.ledger).usage("client:1")["orders"] == 2
    assert executor.run(two_legs, client_id=1, **LIVE).is_blocked() and placed == [1, 2]


def test_a_nested_code_first_step_beyond_its_declaration_is_a_violation(execaudit_capture):
    from otel_execaudit import current_step

    @step("read")
    def read():
        return 1

    @step("order", side_effects=["network"])
    def order():
        current_step().side_effect("file_system", "wrote a file")

    @plan("leg", mode="LIVE")
    def leg():
        read()  # the nested execution's own step 0 ...
        order()  # ... and step 1, recorded in that execution, not the run's

    result = Executor().run(lambda: (read(), leg()), client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED
    assert result.actions[-1].violations == ("undeclared file_system side effect: wrote a file",)


def test_a_code_first_replay_at_the_limit_is_a_replay_not_a_block(execaudit_capture):
    placed: list = []

    @step("order", side_effects=["network"], consumes={"orders": 1})
    def order():
        placed.append(1)

    executor = Executor(guards=[ExecutionLimitsGuard(max_orders_per_day=1)])
    assert executor.run(order, client_id=1, execution_id="retry-1", **LIVE).is_success()
    again = executor.run(order, client_id=1, execution_id="retry-1", **LIVE)
    assert again.is_success() and placed == [1, 1]  # the venue sees the same key twice
    assert LimitCounters(execaudit_capture.runtime.ledger).usage("client:1")["orders"] == 1


def pinned(function, *arguments, **keywords) -> str:
    return Executor().plan_hash(function, client_id=1, arguments=arguments, keywords=keywords)


@step("pay", side_effects=["network"])
def pay_step(amount, note=""):
    return amount


def test_code_first_arguments_are_hashed_exactly_not_as_recorded():
    def payout(amount, note=""):
        return pay_step(amount, note)

    long_note = "x" * 5000
    assert pinned(payout, 1, note=long_note) != pinned(payout, 1, note=long_note + "y")
    assert pinned(payout, 1, password="a") != pinned(payout, 1, password="b")
    assert pinned(payout, [0] * 100) != pinned(payout, [0] * 100 + [1])
    assert pinned(payout, 1) == pinned(payout, 1)


def test_what_a_code_first_plan_closes_over_is_pinned():
    import functools

    def make(amount):
        def payout():
            return pay_step(amount)
        return payout

    assert pinned(make(1)) != pinned(make(1_000_000))

    def payout(amount):
        return pay_step(amount)

    assert pinned(functools.partial(payout, 1)) != pinned(functools.partial(payout, 2))

    class Payout:
        def __init__(self, amount):
            self.amount = amount

        def __call__(self):
            return pay_step(self.amount)

        def run(self):
            return pay_step(self.amount)

    assert pinned(Payout(1)) != pinned(Payout(2))
    assert pinned(Payout(1).run) != pinned(Payout(2).run)

    def with_default(amount=1):
        return pay_step(amount)

    other = with_default.__code__
    assert pinned(with_default) == pinned(with_default)
    with_default.__defaults__ = (2,)
    assert with_default.__code__ is other and pinned(with_default) != pinned(make(1))


def test_a_code_first_plan_without_source_is_pinned_by_its_code():
    def compiled(amount: int):
        namespace: dict = {"pay_step": pay_step}
        exec(compile(f"def payout():\n    return pay_step({amount})\n", "<generated>", "exec"),
             namespace)
        return namespace["payout"]

    assert pinned(compiled(1)) != pinned(compiled(2))  # same bytecode, other constants


def test_steps_in_another_module_are_pinned(tmp_path, monkeypatch):
    import importlib
    import os
    import sys

    module = tmp_path / "venue_steps.py"
    module.write_text("def price():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    venue_steps = importlib.import_module("venue_steps")
    try:
        def quote():
            return venue_steps.price() + helper()

        def helper():
            return price()

        price = venue_steps.price
        before = pinned(quote)
        module.write_text("def price():\n    return 1_000_000\n")
        os.utime(module, ns=(1, 1))  # another stamp, whatever the clock's resolution
        assert pinned(quote) != before
    finally:
        sys.modules.pop("venue_steps", None)


def test_a_plan_that_cannot_be_pinned_says_so_and_runs_unpinned(execaudit_capture):
    import threading

    lock = threading.Lock()

    def guarded():
        with lock:
            return pay_step(1)

    with pytest.raises(PlanError, match="cannot cover .*_thread.lock"):
        Executor().plan_hash(guarded, client_id=1)
    dry = Executor().run(guarded, client_id=1)
    assert dry.is_success() and dry.plan_hash is None
    with pytest.raises(PlanError, match="cannot cover"):
        Executor(require_plan_hash=True).run(guarded, client_id=1, **LIVE)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(PlanError, match="contains itself"):
        pinned(guarded.__call__ and (lambda: pay_step(cyclic)))


def test_an_execution_id_that_would_be_cut_is_refused(execaudit_capture):
    with pytest.raises(ConfigurationError, match="execution_id"):
        Executor().run(pay_plan(), client_id=1, execution_id="r" * 300)
    with pytest.raises(ConfigurationError, match="execution_id"):
        Executor().run(pay_plan(), client_id=1, execution_id="run 1; drop")
    assert execaudit_capture.fields() == []  # refused before anything was recorded


def test_a_preflight_that_cannot_be_recorded_still_ends_every_path(execaudit_capture,
                                                                    monkeypatch):
    from otel_execaudit.recording.observer import ExecutionObserver

    def unwritable(*arguments, **keywords):
        raise LedgerWriteError("disk full")

    monkeypatch.setattr(ExecutionObserver, "record_guard", unwritable)
    two_steps = pay_plan()
    two_steps["steps"].append({**two_steps["steps"][0], "name": "pay again"})
    with pytest.raises(LedgerWriteError):
        Executor().run(two_steps, client_id=1, **LIVE)
    assert terminal_codes(execaudit_capture) == ["internal_error", "internal_error"]


def test_an_interrupted_code_first_gate_fails_the_run_even_if_the_plan_catches_it(
        execaudit_capture, monkeypatch):
    paid: list = []

    @step("pay", side_effects=["network"], consumes={"orders": 1})
    def pay():
        paid.append(1)

    def careless():
        try:
            pay()
        except LedgerWriteError:
            pass
        return "done"

    def unwritable(*arguments, **keywords):
        raise LedgerWriteError("disk full")

    monkeypatch.setattr(LimitCounters, "consume", unwritable)
    result = Executor().run(careless, client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED and "disk full" in result.error
    assert paid == [] and terminal_codes(execaudit_capture) == ["internal_error"]


def test_params_are_bounded_per_plan_not_per_step(tmp_path):
    from otel_execaudit.executor.plans import load_plan

    bomb = tmp_path / "bomb.yaml"
    lines = ["plan_id: bomb", "a: &a [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",
             "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]", "steps:"]
    lines += [f"  - {{name: s{number}, action_type: noop, params: {{v: *c}}}}"
              for number in range(150)]  # 1,111 values a step, 166,650 in the plan
    bomb.write_text("\n".join(lines))
    with pytest.raises(PlanError, match="unknown field|too large"):
        load_plan(bomb)
    with pytest.raises(PlanError, match="at most"):
        load_plan({"plan_id": "long", "steps": [{"name": f"s{number}", "action_type": "noop"}
                                                for number in range(10_001)]})


def test_hostile_inputs_get_the_package_errors(execaudit_capture):
    executor = Executor()
    with pytest.raises(ConfigurationError, match="DRY_RUN"):
        executor.run(pay_plan(), client_id=1, mode="bogus")
    with pytest.raises(PlanError, match="cannot run a int"):
        executor.run(123, client_id=1)
    with pytest.raises(ConfigurationError, match="arguments"):
        executor.run(lambda amount: amount, client_id=1, arguments=5)
    with pytest.raises(ConfigurationError, match="keywords"):
        executor.run(lambda amount: amount, client_id=1, keywords=[("amount", 1)])
    with pytest.raises(PlanError, match="not an identifier") as refused:
        executor.run({"plan_id": "p", "steps": [{"name": "s", "action_type": "tok=9f8a7b"}]})
    assert "9f8a7b" not in str(refused.value)
    assert execaudit_capture.fields() == []


def test_an_outcome_must_say_true_or_false_and_codes_are_not_tokens(execaudit_capture):
    registry = AdapterRegistry()
    registry.adapter("pay")(lambda context: ActionOutcome("yes"))
    result = Executor(adapters=registry).run(pay_plan(), client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED
    assert result.actions[0].error_code == "adapter_exception"
    assert "ok must be True or False" in result.actions[0].result
    registry = AdapterRegistry()
    registry.adapter("pay")(lambda context: ActionOutcome.failure("tok_9f8a7b6c5d4e3f2a"))
    result = Executor(adapters=registry).run(pay_plan(), client_id=2, **LIVE)
    assert result.actions[0].error_code == "adapter_exception"
    assert "9f8a7b6c5d4e3f2a" not in str(execaudit_capture.events())


def test_a_guard_with_a_broken_name_still_runs_and_denies(execaudit_capture):
    class Broken:
        severity = Severity.DENY

        @property
        def name(self):
            raise RuntimeError("no name")

        def check(self, context):
            return ExecutionGuard("Broken", False, "never today")

    result = Executor(guards=[Broken()]).run(pay_plan(), client_id=1, **LIVE)
    assert result.is_blocked() and "Broken" in result.error


# -- found by the second review of the executor ---------------------------------------------

def test_nothing_a_data_plans_dry_run_calls_can_act_live(execaudit_capture):
    calls: list = []
    inner_registry = recording_registry(calls)
    inner = Executor(adapters=inner_registry)
    outer_registry = AdapterRegistry()
    modes: list = []

    def run_inner(context):
        modes.append(inner.run(pay_plan(), client_id=1, **LIVE).mode.value)
        return "ran the inner plan"

    outer_registry.adapter("subplan", simulate=run_inner)(run_inner)
    outer_registry.adapter("lookup", read_only=True)(
        lambda context: {"said": run_inner(context)})  # a read
    outer = {"plan_id": "outer", "steps": [
        {"name": "read", "action_type": "lookup"},
        {"name": "act", "action_type": "subplan", "side_effects": ["network"]}]}
    assert Executor(adapters=outer_registry).run(outer, client_id=1).is_success()
    assert modes == ["DRY_RUN", "DRY_RUN"] and calls == []


def test_a_softened_acknowledgement_subclass_does_not_replace_the_real_one(execaudit_capture):
    class QuietAcknowledgement(AcknowledgementGuard):
        severity = Severity.WARN

    calls: list = []
    executor = Executor(adapters=recording_registry(calls), default_guards=False,
                        guards=[QuietAcknowledgement()])
    result = executor.run(pay_plan(), client_id=1, mode="LIVE")
    assert result.is_blocked() and calls == []


def test_a_guard_cannot_change_what_the_next_guard_sees(execaudit_capture):
    class Meddler:
        name, severity = "Meddler", Severity.WARN

        def check(self, context):
            object.__setattr__(context, "acknowledge_risk", True)
            return ExecutionGuard(self.name, True, "nothing to see")

    calls: list = []
    executor = Executor(adapters=recording_registry(calls), default_guards=False,
                        guards=[Meddler()])
    assert executor.run(pay_plan(), client_id=1, mode="LIVE").is_blocked() and calls == []


def test_rollback_hints_are_redacted_like_everything_recorded(execaudit_capture):
    calls: list = []
    result = Executor(adapters=recording_registry(calls)).run(
        pay_plan(rollback="revert with password=SECRETKEY1"), client_id=1, **LIVE)
    assert "SECRETKEY1" not in result.to_json() + result.to_human_readable()
    assert "revert with password=[REDACTED]" in result.to_human_readable()


def test_a_strategy_id_for_a_plan_without_strategies_is_refused(execaudit_capture):
    calls: list = []
    result = Executor(adapters=recording_registry(calls)).run(
        pay_plan(), client_id=1, strategy_id="aggressive", **LIVE)
    assert result.is_blocked() and calls == []
    assert any("the plan defines no strategies" in verdict.message for verdict in result.guards)
