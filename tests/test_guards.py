"""The safety checks, as the seed's tables have them, and ``evaluate`` failing closed."""

import os
import threading

import pytest

from otel_execaudit.executor.guards import (
    AcknowledgementGuard,
    ExecutionGuard,
    ExecutionLimitsGuard,
    GuardContext,
    PlanPinGuard,
    Severity,
    TenantContextGuard,
    ValidationRequiredGuard,
    default_guards,
)
from otel_execaudit.executor.evaluation import evaluate
from otel_execaudit.executor.plans import load_plan
from otel_execaudit.recording.records import ExecutionMode

DRY, LIVE = ExecutionMode.DRY_RUN, ExecutionMode.LIVE

PLAN = load_plan({"plan_id": "p", "limits": {"orders": 5},
                  "strategies": {"scalper": {"orders": 1}},
                  "steps": [
                      {"name": "quote", "action_type": "fetch_quote"},
                      {"name": "buy", "action_type": "place_order", "side_effects": ["network"],
                       "consumes": {"orders": 2, "notional": 100}}]})
UNLIMITED = load_plan({"plan_id": "free", "steps": [
    {"name": "buy", "action_type": "place_order", "side_effects": ["network"],
     "consumes": {"orders": 2}}]})


def context(**fields):
    return GuardContext(**{"plan": PLAN, "mode": DRY, "client_id": 1, **fields})


def used(**amounts):
    return lambda: dict(amounts)


# -- TenantContext --------------------------------------------------------------------------------

@pytest.mark.parametrize("client_id, says", [
    (None, "client_id is required"),
    ("", "client_id is required"),
    ("abc", "must be an integer"),
    ("1", "must be an integer"),
    (1.0, "must be an integer"),
    (True, "must be an integer"),
    (False, "must be an integer"),
    (0, "must be positive"),
    (-1, "must be positive"),
])
@pytest.mark.parametrize("mode", [DRY, LIVE])
def test_tenant_context_blocks_a_missing_or_invalid_client_id(client_id, says, mode):
    verdict = TenantContextGuard().check(context(client_id=client_id, mode=mode))
    assert verdict.passed is False and verdict.decision == "deny"
    assert verdict.name == "TenantContext"
    assert says in verdict.message


def test_tenant_context_tells_the_cli_user_what_to_pass():
    assert "--client-id" in TenantContextGuard().check(context(client_id=None)).message


@pytest.mark.parametrize("client_id", [1, 42, 10 ** 12])
def test_tenant_context_passes_a_positive_integer(client_id):
    verdict = TenantContextGuard().check(context(client_id=client_id, mode=LIVE))
    assert verdict.passed and verdict.decision == "allow"
    assert verdict.message == f"Tenant context valid (client_id={client_id})"


# -- ValidationRequired and Acknowledgement -------------------------------------------------------

@pytest.mark.parametrize("validated, passed", [(False, False), (True, False), (False, True),
                                               (True, True)])
def test_validation_is_not_required_for_a_dry_run(validated, passed):
    verdict = ValidationRequiredGuard().check(
        context(validated=validated, validation_passed=passed))
    assert verdict.passed and verdict.message == "Validation not required for DRY-RUN"


@pytest.mark.parametrize("validated, passed, allowed, says", [
    (False, False, False, "LIVE execution requires a prior validation that passed (--validated --validation-passed)"),
    (False, True, False, "LIVE execution requires a prior validation that passed (--validated --validation-passed)"),
    (True, False, False, "Validation did not pass (--validation-passed)"),
    (True, True, True, "Plan validated successfully"),
])
def test_live_requires_a_validation_that_passed(validated, passed, allowed, says):
    verdict = ValidationRequiredGuard().check(
        context(mode=LIVE, validated=validated, validation_passed=passed))
    assert verdict.passed is allowed and verdict.message == says
    assert verdict.decision == ("allow" if allowed else "deny")


@pytest.mark.parametrize("mode, acknowledged, allowed, says", [
    (DRY, False, True, "Acknowledgement not required for DRY-RUN"),
    (DRY, True, True, "Acknowledgement not required for DRY-RUN"),
    (LIVE, False, False,
     "LIVE execution requires explicit risk acknowledgement (--acknowledge-risk)"),
    (LIVE, True, True, "Risk acknowledged for LIVE execution"),
])
def test_live_requires_acknowledging_the_risk(mode, acknowledged, allowed, says):
    verdict = AcknowledgementGuard().check(context(mode=mode, acknowledge_risk=acknowledged))
    assert verdict.passed is allowed and verdict.message == says
    assert verdict.decision == ("allow" if allowed else "deny")


# -- ExecutionLimits ------------------------------------------------------------------------------

def test_without_limits_the_limits_guard_passes():
    for mode in (DRY, LIVE):
        verdict = ExecutionLimitsGuard().check(
            context(plan=UNLIMITED, mode=mode, usage=used(orders=10 ** 6)))
        assert verdict.passed and verdict.message == "No execution limits configured"


def test_dry_run_within_limits_says_what_it_would_consume():
    verdict = ExecutionLimitsGuard().check(context(usage=used(orders=1)))
    assert verdict.passed
    assert "would consume 2 of 5 orders (1 used today)" in verdict.message
    assert "LIVE would be blocked" not in verdict.message


def test_dry_run_over_a_limit_passes_but_says_live_would_be_blocked():
    verdict = ExecutionLimitsGuard().check(context(usage=used(orders=4)))
    assert verdict.passed and verdict.decision == "allow"
    assert "Limits not enforced for DRY-RUN" in verdict.message
    assert "would consume 2 of 5 orders (4 used today)" in verdict.message
    assert "LIVE would be blocked: orders over the daily limit" in verdict.message
    assert verdict.details["would_exceed"] == ("orders",)


def test_live_over_a_limit_is_denied():
    verdict = ExecutionLimitsGuard().check(context(mode=LIVE, usage=used(orders=4)))
    assert verdict.passed is False and verdict.decision == "deny"
    assert verdict.message.startswith("Max orders limit reached: 4 used + 2 planned > 5. Counters restart at 00:00 UTC")
    assert verdict.details["scope"] == "client:1"


def test_live_exactly_at_a_limit_is_allowed():
    verdict = ExecutionLimitsGuard().check(context(mode=LIVE, usage=used(orders=3)))
    assert verdict.passed
    assert verdict.message.startswith("All execution limits within bounds")
    assert "would consume 2 of 5 orders (3 used today)" in verdict.message


def test_the_default_one_action_per_acting_step_counts_against_an_actions_limit():
    plan = load_plan({"plan_id": "p", "limits": {"actions": 1}, "steps": [
        {"name": "a", "action_type": "x", "side_effects": ["network"]},
        {"name": "b", "action_type": "x", "side_effects": ["network"]}]})
    verdict = ExecutionLimitsGuard().check(context(plan=plan, mode=LIVE))
    assert verdict.decision == "deny"
    assert verdict.message.startswith("Max actions limit reached: 0 used + 2 planned > 1. Counters restart at 00:00 UTC")


def test_explicit_maxima_override_the_plan_limits():
    stricter = ExecutionLimitsGuard(max_orders_per_day=1)
    verdict = stricter.check(context(mode=LIVE))
    assert verdict.decision == "deny" and "> 1" in verdict.message
    looser = ExecutionLimitsGuard(max_orders_per_day=100)
    assert looser.check(context(mode=LIVE, usage=used(orders=4))).passed
    by_name = ExecutionLimitsGuard(limits={"notional": 50})
    verdict = by_name.check(context(mode=LIVE))
    assert verdict.decision == "deny"
    assert verdict.message.startswith("Max notional limit reached: 0 used + 100 planned > 50. Counters restart at 00:00 UTC")
    notional = ExecutionLimitsGuard(max_notional_per_day=99, max_loss_per_day=1)
    assert notional.check(context(mode=LIVE, plan=UNLIMITED)).passed  # plan declares none
    assert notional.check(context(mode=LIVE)).decision == "deny"


def test_explicit_maxima_apply_to_a_plan_without_limits():
    verdict = ExecutionLimitsGuard(max_orders_per_day=1).check(
        context(plan=UNLIMITED, mode=LIVE))
    assert verdict.decision == "deny" and "Max orders limit reached" in verdict.message


def test_a_strategy_selects_limits_but_counts_against_the_tenants_day():
    verdict = ExecutionLimitsGuard().check(context(mode=LIVE, strategy_id="scalper"))
    assert verdict.decision == "deny"
    assert verdict.message.startswith("Max orders limit reached: 0 used + 2 planned > 1. Counters restart at 00:00 UTC")
    # Switching strategies must not reset a tenant's day: one scope per client.
    assert verdict.details["scope"] == "client:1"


def test_a_strategy_the_plan_does_not_define_is_refused():
    verdict = ExecutionLimitsGuard().check(context(mode=LIVE, strategy_id="yolo"))
    assert verdict.decision == "deny" and "Unknown strategy 'yolo'" in verdict.message


def test_a_recheck_counts_only_the_step_about_to_act():
    plan = load_plan({"plan_id": "p", "limits": {"orders": 3}, "steps": [
        {"name": "a", "action_type": "x", "side_effects": ["network"], "consumes": {"orders": 2}},
        {"name": "b", "action_type": "x", "side_effects": ["network"],
         "consumes": {"orders": 2}}]})
    guard = ExecutionLimitsGuard()
    assert guard.check(context(plan=plan, mode=LIVE)).decision == "deny"  # 4 > 3 in total
    assert guard.check(context(plan=plan, mode=LIVE, step=plan.steps[0])).passed


# -- PlanPinned -----------------------------------------------------------------------------------

HASH = "sha256:" + "ab" * 32


@pytest.mark.parametrize("expected", [HASH, HASH.upper().replace("SHA256", "sha256"),
                                      f"  {HASH}\n"])
def test_a_matching_plan_hash_passes(expected):
    verdict = PlanPinGuard().check(context(mode=LIVE, plan_hash=HASH,
                                           expected_plan_hash=expected))
    assert verdict.passed and verdict.message == "Plan matches its dry run"


def test_a_mismatching_plan_hash_is_stale():
    other = "sha256:" + "cd" * 32
    for mode in (DRY, LIVE):
        verdict = PlanPinGuard().check(context(mode=mode, plan_hash=HASH,
                                               expected_plan_hash=other))
        assert verdict.decision == "deny"
        assert "stale" in verdict.message and other in verdict.message and HASH in verdict.message
        assert "execaudit plan" in verdict.message


def test_a_required_pin_blocks_live_without_a_hash():
    verdict = PlanPinGuard(required=True).check(context(mode=LIVE, plan_hash=HASH))
    assert verdict.decision == "deny" and "--plan-hash" in verdict.message
    assert PlanPinGuard(required=True).check(context(mode=DRY, plan_hash=HASH)).passed
    assert PlanPinGuard().check(context(mode=LIVE, plan_hash=HASH)).passed


# -- evaluate -------------------------------------------------------------------------------------

class Fixed:
    def __init__(self, name, passed, severity=Severity.DENY, calls=None):
        self.name, self.passed, self.severity, self.calls = name, passed, severity, calls

    def check(self, context):
        if self.calls is not None:
            self.calls.append(self.name)
        return ExecutionGuard(self.name, self.passed, "ok" if self.passed else "no")


class Raising:
    def __init__(self, error, severity=Severity.DENY):
        self.name, self.severity, self.error = "Raising", severity, error

    def check(self, context):
        raise self.error


class Returning:
    name, severity = "Returning", Severity.DENY

    def __init__(self, value):
        self.value = value

    def check(self, context):
        return self.value


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()  # let hung guard threads finish


class Hanging:
    def __init__(self, release, severity=Severity.DENY):
        self.name, self.severity, self.release = "Hanging", severity, release

    def check(self, context):
        self.release.wait()
        return ExecutionGuard(self.name, True, "finally")


def test_the_default_guards_for_an_unacknowledged_live_run():
    verdicts = evaluate(default_guards(), context(mode=LIVE))
    assert [(v.name, v.decision) for v in verdicts] == [
        ("TenantContext", "allow"), ("ValidationRequired", "deny"),
        ("Acknowledgement", "deny"), ("ExecutionLimits", "allow")]


def test_every_guard_runs_and_is_reported_in_order_even_after_a_deny():
    calls, seen = [], []
    guards = [Fixed("first", False, calls=calls), Fixed("second", True, calls=calls),
              Fixed("third", False, calls=calls), Fixed("fourth", True, calls=calls)]
    verdicts = evaluate(guards, context(), stage="recheck",
                        on_verdict=lambda guard, verdict, error: seen.append(
                            (guard, verdict.name, error)))
    assert calls == ["first", "second", "third", "fourth"]
    assert [v.name for v in verdicts] == ["first", "second", "third", "fourth"]
    assert [v.decision for v in verdicts] == ["deny", "allow", "deny", "allow"]
    assert all(v.stage == "recheck" for v in verdicts)
    assert seen == [(guard, guard.name, None) for guard in guards]


@pytest.mark.parametrize("error", [RuntimeError("database down"), KeyError("client"),
                                   SystemExit(0)])
def test_a_guard_that_raises_denies_and_reports_the_error(error):
    seen = []
    verdicts = evaluate([Raising(error), Fixed("after", True)], context(),
                        on_verdict=lambda guard, verdict, caught: seen.append((verdict, caught)))
    verdict = verdicts[0]
    assert verdict.name == "Raising" and verdict.decision == "deny"
    assert type(error).__name__ in verdict.message and "fail closed" in verdict.message
    assert seen[0] == (verdict, error)
    assert verdicts[1].decision == "allow" and seen[1][1] is None


def test_a_guard_that_hangs_is_denied_after_the_timeout(release):
    seen = []
    verdicts = evaluate([Hanging(release), Fixed("after", True)], context(), timeout=0.2,
                        on_verdict=lambda guard, verdict, error: seen.append(verdict.name))
    assert verdicts[0].name == "Hanging" and verdicts[0].decision == "deny"
    assert "did not answer within 0.2 s" in verdicts[0].message
    assert verdicts[1].decision == "allow"  # the guards after it still ran
    assert seen == ["Hanging", "after"]


def test_hung_guards_never_cost_later_guards_their_answer(release):
    hung = evaluate([Hanging(release) for _ in range(12)], context(), timeout=0.05)
    assert [verdict.decision for verdict in hung] == ["deny"] * 12
    verdict, = evaluate([Fixed("after", True)], context(), timeout=5)
    assert verdict.decision == "allow"
    release.set()  # the abandoned checks return now: nobody is told their stale answer
    verdicts = evaluate([Fixed(f"guard-{index}", False) for index in range(20)], context())
    assert [verdict.name for verdict in verdicts] == [f"guard-{index}" for index in range(20)]
    assert {verdict.decision for verdict in verdicts} == {"deny"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_guards_run_in_a_forked_child():
    evaluate([Fixed("parent", True)], context())  # the parent has an idle worker now
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's verdict is its exit status
        verdict, = evaluate([Fixed("child", True)], context(), timeout=2)
        os._exit(0 if verdict.decision == "allow" else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_warn_guard_that_hangs_still_denies(release):
    verdict, = evaluate([Hanging(release, Severity.WARN)], context(), timeout=0.2)
    assert verdict.decision == "deny"


@pytest.mark.parametrize("value", [None, True, "ok", {"passed": True}, ExecutionGuard])
def test_a_guard_that_returns_something_else_denies(value):
    verdict, = evaluate([Returning(value)], context())
    assert verdict.decision == "deny" and "not an ExecutionGuard" in verdict.message


def test_a_failing_warn_guard_warns_and_does_not_deny():
    verdict, = evaluate([Fixed("BusinessHours", False, Severity.WARN)], context())
    assert verdict.passed is False and verdict.decision == "warn"
    assert verdict.severity is Severity.WARN


def test_a_warn_guard_that_raises_denies():
    verdict, = evaluate([Raising(RuntimeError("boom"), Severity.WARN)], context())
    assert verdict.decision == "deny"


def test_a_deny_guard_cannot_soften_its_verdict_to_a_warning():
    class Sneaky:
        name, severity = "Sneaky", Severity.DENY

        def check(self, context):
            return ExecutionGuard("Sneaky", False, "no", severity=Severity.WARN)

    verdict, = evaluate([Sneaky()], context())
    assert verdict.decision == "deny"


@pytest.mark.parametrize("severity", ["info", None, 3])
def test_a_guard_with_an_unknown_severity_counts_as_deny(severity):
    verdict, = evaluate([Fixed("Odd", False, severity)], context())
    assert verdict.decision == "deny"


def test_a_guard_with_a_warn_severity_given_as_text_warns():
    verdict, = evaluate([Fixed("Text", False, "warn")], context())
    assert verdict.decision == "warn"


def test_a_verdict_cannot_be_changed_after_it_is_given():
    verdict = ExecutionLimitsGuard().check(context(usage=used(orders=4)))
    with pytest.raises(TypeError):
        verdict.details["maxima"]["orders"] = 10 ** 9
    assert verdict.to_dict()["decision"] == "allow"


def test_the_packages_own_limits_guard_fails_closed_when_usage_cannot_be_read():
    def unreadable():
        raise OSError("disk I/O error")

    (verdict,) = evaluate([ExecutionLimitsGuard(max_orders_per_day=5)],
                          context(mode=LIVE, usage=unreadable))
    assert verdict.decision == "deny" and "OSError" in verdict.message


def test_an_interrupt_inside_the_packages_own_guard_is_not_swallowed():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate([ExecutionLimitsGuard(max_orders_per_day=5)], context(usage=interrupted))


def test_a_subclass_that_overrides_check_is_bounded_like_any_user_guard():
    release = threading.Event()

    class Stuck(TenantContextGuard):
        def check(self, context):
            release.wait(30)
            return super().check(context)

    try:
        (verdict,) = evaluate([Stuck()], context(client_id=1), timeout=0.2)
    finally:
        release.set()
    assert verdict.decision == "deny" and "did not answer within 0.2 s" in verdict.message
