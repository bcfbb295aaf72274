"""One execution rebuilt from its ledger entries: the entries split into runs, and each run
rebuilt into the very ``ExecutionRecord`` the recorder returned at the time, with what the record
does not carry (guard decisions, action terminal events, notes, rollback hints) beside it in an
``ExecutionView``. Pure functions over rows already read; ``queries`` does the reading.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from otel_execaudit.recording import (
    ExecutionRecord,
    ExecutionStatus,
    SecuritySnapshot,
    SideEffect,
    SideEffectCategory,
    SideEffectReport,
    StepEvent,
    StepEventType,
)
from otel_execaudit.inspection.rollback import recorded_hints
from otel_execaudit.recording.records import GENESIS, parse_timestamp, thawed

__all__ = ["ExecutionView", "Row", "as_bytes", "build_view", "rebuild_record", "run_end_ts",
           "split_runs", "tenant_of"]

_STEP_EVENT_KINDS = {f"step.{kind.value}": kind for kind in StepEventType}


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One ledger entry as read: its position, hash and parsed body."""

    seq: int
    hash: str
    entry: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return self.entry["kind"]

    @property
    def data(self) -> Mapping[str, Any]:
        return self.entry.get("data") or {}


@dataclasses.dataclass(frozen=True)
class ExecutionView:
    """One execution as the ledger holds it: its record (rebuilt) and what the record does not
    carry: guard decisions, action terminal events, step notes, the run's details (for an
    executor run the plan hash and tenant), the rollback hints its steps carry."""

    record: ExecutionRecord
    details: Mapping[str, Any]
    guards: tuple[Mapping[str, Any], ...]
    actions: tuple[Mapping[str, Any], ...]
    notes: tuple[Mapping[str, Any], ...]
    rollback_hints: tuple[Mapping[str, Any], ...]
    run: int
    runs: int
    first_seq: int
    last_seq: int

    @property
    def tenant(self) -> str | None:
        return tenant_of(self.details)

    @property
    def duration_ms(self) -> float | None:
        end = self.record.timestamp_end
        return None if end is None else (end - self.record.timestamp_start).total_seconds() * 1e3

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record.to_dict(), "details": thawed(self.details),
                "tenant": self.tenant, "duration_ms": self.duration_ms,
                "guards": thawed(self.guards), "actions": thawed(self.actions),
                "notes": thawed(self.notes), "rollback_hints": thawed(self.rollback_hints),
                "run": self.run, "runs": self.runs, "first_seq": self.first_seq,
                "last_seq": self.last_seq}


def as_bytes(body: bytes | str | Any) -> bytes:
    """A row's body as bytes; a tampered row may hold text (or a number) instead of a BLOB."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return str(body).encode("utf-8", "surrogateescape")


def tenant_of(details: Mapping[str, Any]) -> str | None:
    """The tenant an execution ran for: its ``client_id`` (the executor's), else a ``tenant``
    or ``persona`` detail (recorded executions)."""
    for key in ("client_id", "tenant", "persona"):
        value = details.get(key)
        if value is not None:
            return str(value)
    return None


def split_runs(rows: list[Row]) -> list[list[Row]]:
    """An execution id's entries split into runs: each ``execution.started`` opens one, and an
    entry belongs to the latest open run of its trace (docs/ledger-format.md#runs)."""
    runs: list[list[Row]] = []
    by_trace: dict[Any, list[Row]] = {}
    for row in rows:
        if row.kind == "execution.started" or not runs:
            runs.append([row])
            by_trace[row.entry.get("trace_id")] = runs[-1]
        else:
            by_trace.get(row.entry.get("trace_id"), runs[-1]).append(row)
    return runs


def run_end_ts(run: list[Row]) -> str | None:
    return next((row.entry["ts"] for row in run if row.kind == "execution.ended"), None)


def rebuild_record(run: list[Row]) -> ExecutionRecord:
    """The ``ExecutionRecord`` of one run, field for field as the recorder returned it."""
    started = next((row for row in run if row.kind == "execution.started"), run[0])
    ended = next((row for row in run if row.kind == "execution.ended"), None)
    events, declared, observed = [], [], []
    for row in run:
        data = row.data
        kind = _STEP_EVENT_KINDS.get(row.kind)
        if kind is not None:
            events.append(StepEvent(
                parse_timestamp(row.entry["ts"]), data["step_index"], data["step_name"], kind,
                dict(data.get("details") or {}), data.get("error_message"),
                data.get("previous_event_hash", GENESIS), row.hash, data.get("error_type"),
                data.get("traceback"), row.seq))
        elif row.kind in ("side_effect", "side_effect.declared"):
            effect = SideEffect(SideEffectCategory(data["category"]), data["description"],
                                data.get("reversible") is True, data.get("step_index"),
                                dict(data.get("details") or {}),
                                parse_timestamp(row.entry["ts"]), row.seq)
            (observed if row.kind == "side_effect" else declared).append(effect)
    start_data, end_data = started.data, ended.data if ended else {}
    return ExecutionRecord(
        execution_id=started.entry["execution_id"], plan_id=started.entry["plan_id"],
        live_mode_state=start_data.get("mode", "LIVE"),
        status=ExecutionStatus(end_data["status"]) if ended else ExecutionStatus.STARTED,
        security_snapshot_pre=_snapshot(start_data.get("security")),
        security_snapshot_post=_snapshot(end_data["security"]) if end_data.get("security") else None,
        timestamp_start=parse_timestamp(started.entry["ts"]),
        timestamp_end=parse_timestamp(ended.entry["ts"]) if ended else None,
        step_events=tuple(events),
        side_effects_report=SideEffectReport(tuple(declared), tuple(observed)),
        reason=end_data.get("reason") if ended else None,
        parent_execution_id=start_data.get("parent_execution_id"),
        trace_id=started.entry.get("trace_id"))


def build_view(run: list[Row], number: int, runs: int) -> ExecutionView:
    record = rebuild_record(run)
    started = run[0].data if run[0].kind == "execution.started" else {}
    return ExecutionView(
        record=record, details=dict(started.get("details") or {}),
        guards=tuple(dict(row.data) for row in run if row.kind == "guard.evaluated"),
        actions=tuple(dict(row.data) for row in run if row.kind == "action.terminal"),
        notes=tuple(dict(row.data) for row in run if row.kind == "step.note"),
        rollback_hints=tuple(hint.to_dict() for hint in recorded_hints(record)), run=number, runs=runs, first_seq=run[0].seq,
        last_seq=run[-1].seq)


def _snapshot(data: Any) -> SecuritySnapshot:
    if not isinstance(data, Mapping):
        return SecuritySnapshot()
    return SecuritySnapshot.from_dict(data)
