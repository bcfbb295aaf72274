"""Exactly one terminal event per action path, also on the paths a run does not finish: an
interrupt, a ledger that cannot be written, a security escalation, a plan's own exception; and
the event's identifiers say the same in the ledger and in the log record."""

from __future__ import annotations

import pytest

from otel_execaudit import (
    ActionOutcome,
    AdapterRegistry,
    ExecutionGuard,
    Executor,
    GuardDeniedError,
    LedgerWriteError,
    SecuritySnapshot,
    SecurityState,
    Severity,
    step,
)
from otel_execaudit.executor.results import ResultStatus
from tests.executor_options import LIVE, TRACE_ID


def ledger_events(capture) -> list[tuple[str | None, str | None]]:
    return [(entry["data"]["action_type"], entry["data"]["error_code"])
            for entry in capture.fields() if entry["kind"] == "action.terminal"]


def log_events(capture) -> list[tuple[str | None, str | None]]:
    return [(attributes.get("action_type"), attributes.get("error_code"))
            for name, attributes in capture.events() if name == "execaudit.action.terminal"]


def three_steps(middle: str = "interrupt") -> dict:
    return {"plan_id": "three", "steps": [
        {"name": "first", "action_type": "ok"}, {"name": "second", "action_type": middle},
        {"name": "third", "action_type": "ok"}]}


def registry() -> AdapterRegistry:
    adapters = AdapterRegistry()
    adapters.adapter("ok")(lambda context: ActionOutcome.success())

    @adapters.adapter("interrupt")
    def interrupt(context):
        raise KeyboardInterrupt

    return adapters


def test_an_interrupt_ends_the_step_cancelled_and_every_later_one_skipped(execaudit_capture):
    with pytest.raises(KeyboardInterrupt):
        Executor(adapters=registry()).run(three_steps(), client_id=1, **LIVE)
    expected = [("ok", None), ("interrupt", "cancelled"), ("ok", "skipped_after_earlier_stop")]
    assert ledger_events(execaudit_capture) == expected
    assert log_events(execaudit_capture) == expected
    assert execaudit_capture.verify().ok


def test_a_run_whose_ledger_cannot_be_written_still_sends_every_event(execaudit_capture,
                                                                      monkeypatch):
    ledger = execaudit_capture.runtime.ledger

    def refuse(fields):
        raise LedgerWriteError("ledger is read-only")

    monkeypatch.setattr(ledger, "append", refuse)
    with pytest.raises(LedgerWriteError):
        Executor(adapters=registry()).run(three_steps("ok"), client_id=1, **LIVE)
    assert log_events(execaudit_capture) == [("ok", "internal_error")] * 3
    monkeypatch.undo()
    assert ledger_events(execaudit_capture) == []  # nothing was recorded, nothing ran


def test_a_security_escalation_mirrors_every_event_in_the_ledger(execaudit_capture):
    state = {"now": SecurityState.NORMAL}
    adapters = registry()

    @adapters.adapter("compromise")
    def compromise(context):
        state["now"] = SecurityState.COMPROMISED
        return ActionOutcome.success()

    plan = {"plan_id": "p", "steps": [{"name": "a", "action_type": "compromise"},
                                      {"name": "b", "action_type": "ok"},
                                      {"name": "c", "action_type": "ok"}]}
    result = Executor(adapters=adapters, security=lambda: SecuritySnapshot(state["now"])).run(
        plan, client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED
    expected = [("compromise", None), ("ok", "security_escalation"),
                ("ok", "skipped_after_earlier_stop")]
    assert ledger_events(execaudit_capture) == expected == log_events(execaudit_capture)
    kinds = [entry["kind"] for entry in execaudit_capture.fields()]
    assert kinds.index("execution.ended") < len(kinds) - 2  # the last two follow the end
    assert execaudit_capture.verify().ok


def test_a_code_first_plan_that_raises_outside_any_action_ends_its_path(execaudit_capture):
    def broken():
        raise ValueError("bad input file")

    result = Executor().run(broken, client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED and "bad input file" in result.error
    (event,) = ledger_events(execaudit_capture)
    assert event[1] == "plan_exception" and event[0].endswith("broken")


def test_a_guard_denial_raised_by_the_plan_itself_is_a_failure_not_a_success(
        execaudit_capture):
    def compliance():
        raise GuardDeniedError("compliance check failed")

    result = Executor().run(compliance, client_id=1, **LIVE)
    assert result.status is ResultStatus.FAILED
    assert "compliance check failed" in result.error
    ended = [entry["data"]["status"] for entry in execaudit_capture.fields()
             if entry["kind"] == "execution.ended"]
    assert ended == ["failed"]


def test_a_code_first_action_denied_by_the_gate_is_blocked_not_failed(execaudit_capture):
    class ClosedMarket:  # allows the plan, denies each action just before it acts
        name, severity = "ClosedMarket", Severity.DENY

        def check(self, context):
            return ExecutionGuard(self.name, context.step is None, "market closed")

    placed: list = []

    @step("order", side_effects=["network"])
    def order():
        placed.append("order")

    def trade():
        order()

    result = Executor(guards=[ClosedMarket()]).run(trade, client_id=1, **LIVE)
    assert result.is_blocked() and placed == []
    assert [event[1] for event in ledger_events(execaudit_capture)] == ["guard_denied"]


@pytest.mark.parametrize("action_type, shown", [
    ("AKIAIOSFODNN7EXAMPLE", "[REDACTED]"),
    ("password:hunter2", "[REDACTED]"),
    ("place order", "<not an identifier>"),
])
def test_an_action_type_holding_a_secret_is_withheld_alike_in_ledger_and_log(
        execaudit_capture, action_type, shown):
    result = Executor(adapters=AdapterRegistry()).run_action(
        {"trace_id": TRACE_ID, "action_type": action_type}, client_id=1)
    assert result.status is ResultStatus.FAILED
    assert [event[0] for event in ledger_events(execaudit_capture)] == [shown]
    assert [event[0] for event in log_events(execaudit_capture)] == [shown]
    assert "hunter2" not in str(execaudit_capture.fields())


def test_an_emitter_that_raises_changes_nothing_of_the_result(execaudit_capture, monkeypatch):
    import otel_execaudit.executor.terminal as terminal

    plan = three_steps("ok")
    before = Executor(adapters=registry()).run(plan, client_id=1, **LIVE)

    def broken(*arguments, **keywords):
        raise RuntimeError("collector exploded")

    monkeypatch.setattr(terminal, "emit_event", broken)
    after = Executor(adapters=registry()).run(plan, client_id=1, **LIVE)
    assert (after.status, after.error, [action.to_dict() for action in after.actions]) == (
        before.status, before.error, [action.to_dict() for action in before.actions])
    assert len(ledger_events(execaudit_capture)) == 6  # still mirrored in the ledger
