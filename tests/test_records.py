import dataclasses
from datetime import datetime, timezone

import pytest

from otel_execaudit.recording.records import (
    GENESIS,
    ExecutionMode,
    ExecutionRecord,
    ExecutionStatus,
    SecuritySnapshot,
    SecurityState,
    SideEffect,
    SideEffectCategory,
    SideEffectReport,
    StepEvent,
    StepEventType,
    format_timestamp,
)

MOMENT = datetime(2026, 11, 22, 3, 4, 5, 123456, tzinfo=timezone.utc)


def _event(index: int, previous: str, own: str, kind=StepEventType.COMPLETED) -> StepEvent:
    return StepEvent(MOMENT, index, f"step-{index}", kind, {"n": index}, None, previous, own)


def _record(**changes) -> ExecutionRecord:
    events = (_event(0, GENESIS, "a" * 64), _event(1, "a" * 64, "b" * 64))
    record = ExecutionRecord(
        execution_id="exec-1", plan_id="plan-1", live_mode_state="LIVE",
        status=ExecutionStatus.COMPLETED,
        security_snapshot_pre=SecuritySnapshot(taken_at=MOMENT),
        security_snapshot_post=SecuritySnapshot(SecurityState.DEGRADED, MOMENT, {"why": "x"}),
        timestamp_start=MOMENT, timestamp_end=MOMENT, step_events=events,
        side_effects_report=SideEffectReport(
            declared=(SideEffect(SideEffectCategory.NETWORK, "call", True, 0),),
            observed=(SideEffect(SideEffectCategory.NETWORK, "call", True, 0, {}, MOMENT, 3),
                      SideEffect(SideEffectCategory.DATA_MUTATION, "drop", False, 1))),
        reason="done")
    return dataclasses.replace(record, **changes)


def test_json_round_trip_keeps_every_field():
    record = _record()
    again = ExecutionRecord.from_json(record.to_json())
    assert again == record
    assert again.execution_hash == record.execution_hash
    assert record.to_dict()["execution_hash"] == record.execution_hash


def test_execution_hash_changes_with_any_content():
    assert _record().execution_hash != _record(status=ExecutionStatus.FAILED).execution_hash
    assert _record().execution_hash != _record(reason="other").execution_hash


def test_records_are_immutable():
    record = _record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = ExecutionStatus.FAILED  # type: ignore[misc]
    assert isinstance(record.step_events, tuple)


def test_hash_chain_detects_a_broken_link():
    assert _record().hash_chain_intact()
    broken = (_event(0, GENESIS, "a" * 64), _event(1, "c" * 64, "b" * 64))
    assert not _record(step_events=broken).hash_chain_intact()


def test_side_effect_report_names_irreversible_and_undeclared():
    report = _record().side_effects_report
    assert [effect.description for effect in report.irreversible] == ["drop"]
    assert [effect.description for effect in report.undeclared] == ["drop"]


def test_timestamps_are_rfc3339_utc():
    assert format_timestamp(MOMENT) == "2026-11-22T03:04:05.123456Z"


def test_mode_parsing_is_forgiving_but_strict_about_unknowns():
    assert ExecutionMode.parse("live") is ExecutionMode.LIVE
    assert ExecutionMode.parse("dry-run") is ExecutionMode.DRY_RUN
    with pytest.raises(ValueError, match="use 'DRY_RUN' or 'LIVE'"):
        ExecutionMode.parse("yolo")


def test_details_cannot_be_changed_through_a_record():
    original = {"amount": 5, "lines": [{"sku": "a"}]}
    event = StepEvent(MOMENT, 0, "s", StepEventType.COMPLETED, original, None, GENESIS, "a" * 64)
    original["amount"] = 1_000_000  # the caller's dict is not the record's
    assert event.details["amount"] == 5
    with pytest.raises(TypeError):
        event.details["amount"] = 7  # type: ignore[index]
    with pytest.raises(TypeError):
        event.details["lines"][0]["sku"] = "b"  # type: ignore[index]
    assert event.to_dict()["details"] == {"amount": 5, "lines": [{"sku": "a"}]}
