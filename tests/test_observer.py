"""The seed's recording API (ExecutionObserver) and its guarantees."""

import pytest

from otel_execaudit import (
    ExecutionEndedError,
    ExecutionObserver,
    ExecutionStatus,
    LedgerWriteError,
    SecurityEscalationError,
    SecuritySnapshot,
    SecurityState,
    SideEffectCategory,
    execution,
)


def test_successful_execution(execaudit_capture):
    observer = ExecutionObserver(execution_id="exec-001", plan_id="plan-001")
    observer.record_step_started(0, "Step", {})
    observer.record_step_completed(0, "Step", {})
    observer.mark_completed()
    record = observer.get_execution_record("LIVE")
    assert record.status is ExecutionStatus.COMPLETED
    assert record.live_mode_state == "LIVE"
    assert len(record.execution_hash) == 64 and record.hash_chain_intact()


def test_failed_execution_after_a_completed_step_is_failed(execaudit_capture):
    observer = ExecutionObserver(execution_id="exec-002", plan_id="plan-001")
    observer.record_step_started(0, "Step 1", {})
    observer.record_step_completed(0, "Step 1", {})
    observer.record_step_started(1, "Step 2", {})
    observer.record_step_failed(1, "Step 2", "Error message")
    observer.mark_failed("Step 2 failed")
    record = observer.get_execution_record("LIVE")  # the seed's pattern, as written
    assert record.status is ExecutionStatus.FAILED  # mark_failed is FAILED
    assert record.step_events[-1].error_message == "Error message"
    assert record.reason == "Step 2 failed"


def test_failed_execution_without_completed_steps(execaudit_capture):
    observer = ExecutionObserver(plan_id="plan-001")
    observer.record_step_started(0, "Step 1", {})
    observer.record_step_failed(0, "Step 1", RuntimeError("no"))
    observer.mark_failed("Step 1 failed")
    assert observer.get_execution_record().status is ExecutionStatus.FAILED


def test_explicit_security_escalation(execaudit_capture):
    observer = ExecutionObserver(plan_id="plan-001")
    observer.record_step_completed(0, "Safe step", {})
    observer.mark_incomplete_security_escalation()
    assert observer.get_execution_record().status is ExecutionStatus.INCOMPLETE


def test_degraded_security_between_steps_stops_fail_closed(execaudit_capture):
    state = {"value": SecurityState.NORMAL}
    ran = []

    def security():
        return SecuritySnapshot(state["value"])

    with pytest.raises(SecurityEscalationError, match="restore the security state"):
        with execution("guarded", security=security) as ex:
            with ex.step("first"):
                ran.append("first")
            state["value"] = SecurityState.COMPROMISED
            with ex.step("second"):
                ran.append("second")
    assert ran == ["first"]
    record = ex.record
    assert record.status is ExecutionStatus.INCOMPLETE
    assert record.security_snapshot_pre.state is SecurityState.NORMAL
    assert record.security_snapshot_post.state is SecurityState.COMPROMISED
    assert execaudit_capture.fields()[-1]["data"]["status"] == "incomplete"


def test_a_security_provider_that_raises_counts_as_compromised(execaudit_capture):
    def broken():
        raise OSError("kernel unreachable")

    with pytest.raises(SecurityEscalationError):
        with execution("guarded", security=broken) as ex:
            with ex.step("never"):
                pass
    assert ex.status is ExecutionStatus.INCOMPLETE


def test_side_effects_are_tracked_with_step_and_reversibility(execaudit_capture):
    observer = ExecutionObserver(plan_id="plan-001")
    observer.record_step_started(0, "Write", {})
    observer.declare_side_effect(SideEffectCategory.FILE_SYSTEM, "Create output", step_index=0)
    observer.record_side_effect(SideEffectCategory.FILE_SYSTEM, "Created /tmp/output.txt",
                                reversible=True, step_index=0)
    observer.record_side_effect(SideEffectCategory.NETWORK, "Sent e-mail", reversible=False,
                                step_index=0)
    observer.record_step_completed(0, "Write", {})
    observer.mark_completed()
    report = observer.get_execution_record().side_effects_report
    assert [effect.description for effect in report.observed] == [
        "Created /tmp/output.txt", "Sent e-mail"]
    assert [effect.description for effect in report.irreversible] == ["Sent e-mail"]
    assert [effect.category for effect in report.undeclared] == [SideEffectCategory.NETWORK]


def test_recording_into_an_ended_execution_is_a_clear_error(execaudit_capture):
    observer = ExecutionObserver(plan_id="plan-001")
    observer.mark_completed()
    before = len(execaudit_capture.entries())
    with pytest.raises(ExecutionEndedError, match="start a new execution"):
        observer.record_step_started(0, "late", {})
    with pytest.raises(ExecutionEndedError):
        observer.record_side_effect(SideEffectCategory.OTHER, "late")
    with pytest.raises(ExecutionEndedError):
        observer.mark_failed("again")
    assert len(execaudit_capture.entries()) == before


class FailingLedger:
    """The real ledger until ``broken`` is set: then every write fails, as on a full disk."""

    def __init__(self, inner, broken=False):
        self.inner, self.broken = inner, broken

    def append(self, fields):
        if self.broken:
            raise LedgerWriteError("disk full: free space, then start a new execution")
        return self.inner.append(fields)

    def sync(self):
        if self.broken:
            raise LedgerWriteError("disk full")
        self.inner.sync()


def _observer(capture, ledger, mode="LIVE"):
    runtime = capture.runtime
    return ExecutionObserver(plan_id="p", live_mode_state=mode, ledger=ledger,
                             tracer=runtime.tracer, redactor=runtime.redactor)


def test_unwritable_ledger_stops_a_live_execution_before_it_starts(execaudit_capture):
    with pytest.raises(LedgerWriteError, match="free space"):
        _observer(execaudit_capture, FailingLedger(execaudit_capture.runtime.ledger, True))
    assert execaudit_capture.entries() == []
    root = [span for span in execaudit_capture.spans() if span.name == "invoke_workflow p"]
    assert root and root[0].status.status_code.name == "ERROR"  # the span still ends


def test_ledger_failure_mid_run_stops_a_live_execution_fail_closed(execaudit_capture):
    ran = []
    ledger = FailingLedger(execaudit_capture.runtime.ledger)
    observer = _observer(execaudit_capture, ledger)
    handle = observer.start_step("first")
    ran.append("first")
    handle.complete()
    ledger.broken = True
    with pytest.raises(LedgerWriteError):
        observer.start_step("second")
        ran.append("second")  # never reached: no audit, no action
    assert ran == ["first"]
    kinds = [entry["kind"] for entry in execaudit_capture.fields()]
    assert kinds == ["execution.started", "step.started", "step.completed"]  # nothing lost
    assert execaudit_capture.verify().ok


def test_security_details_are_redacted_bounded_and_never_block_a_start(execaudit_capture):
    from datetime import datetime

    def security():
        return SecuritySnapshot(details={"vault_token": "hvs.SECRET", "blob": "x" * 100_000,
                                         "checked": datetime(2026, 1, 1)})

    with execution("guarded", security=security) as ex:
        with ex.step("work"):
            pass
    assert ex.status is ExecutionStatus.COMPLETED
    raw = execaudit_capture.ledger_path.read_bytes()
    assert b"hvs.SECRET" not in raw
    assert max(len(entry.body) for entry in execaudit_capture.entries()) < 20_000
    assert ex.record.security_snapshot_pre.details["vault_token"] == "[REDACTED]"


def test_each_step_records_one_outcome(execaudit_capture):
    from otel_execaudit import RecordingError

    observer = ExecutionObserver(plan_id="p")
    observer.record_step_started(0, "once", {})
    observer.record_step_completed(0, "once", {})
    with pytest.raises(RecordingError, match="already finished"):
        observer.record_step_completed(0, "once", {})
    with pytest.raises(RecordingError, match="already finished"):
        observer.record_step_failed(0, "once", "late failure")
    observer.mark_completed()
    kinds = [event.event_type.value for event in observer.get_execution_record().step_events]
    assert kinds == ["started", "completed"]


def test_a_handled_failure_with_nothing_completed_is_failed(execaudit_capture):
    with execution("p") as ex:
        try:
            with ex.step("only"):
                raise ValueError("handled")
        except ValueError:
            pass
    assert ex.status is ExecutionStatus.FAILED
