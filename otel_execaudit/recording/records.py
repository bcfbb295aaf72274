"""The immutable record of one plan execution.

Everything here is a frozen dataclass of tuples and plain values, so a record handed out can never
change under its reader. ``to_dict()`` gives JSON-safe data; ``from_dict()`` reads it back::

    >>> snapshot = SecuritySnapshot()
    >>> record = ExecutionRecord(execution_id="exec-1", plan_id="plan-1",
    ...     live_mode_state="DRY_RUN", status=ExecutionStatus.COMPLETED,
    ...     security_snapshot_pre=snapshot, security_snapshot_post=snapshot,
    ...     timestamp_start=snapshot.taken_at, timestamp_end=snapshot.taken_at)
    >>> ExecutionRecord.from_json(record.to_json()) == record
    True
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Mapping

from otel_execaudit.ledger.canonical import canonical_bytes


class ExecutionStatus(str, enum.Enum):
    """Where an execution stands. Every status but STARTED is final."""

    STARTED = "started"
    COMPLETED = "completed"
    COMPLETED_PARTIAL = "completed_partial"  # carried on to its end after a handled failure
    FAILED = "failed"
    INCOMPLETE = "incomplete"  # stopped because the security state degraded
    CANCELLED = "cancelled"  # CancelledError, KeyboardInterrupt or GeneratorExit
    BLOCKED = "blocked"  # a guard denied it before any step ran


class StepEventType(str, enum.Enum):
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SideEffectCategory(str, enum.Enum):
    FILE_SYSTEM = "file_system"
    NETWORK = "network"
    DATA_MUTATION = "data_mutation"
    CONFIGURATION = "configuration"
    SYSTEM = "system"
    OTHER = "other"


class ExecutionMode(str, enum.Enum):
    """What an execution does: simulates (DRY_RUN) or acts for real (LIVE). The executor runs
    DRY_RUN unless LIVE is asked for and acknowledged; an execution recorded around code that
    runs anyway (``execution()``, ``@plan``, ``ExecutionObserver``) is LIVE unless told."""

    DRY_RUN = "DRY_RUN"
    LIVE = "LIVE"

    @classmethod
    def parse(cls, value: str | ExecutionMode) -> ExecutionMode:
        """Accept ``"LIVE"``, ``"live"``, ``"dry-run"``, ``"DRY_RUN"`` or a member.

        >>> ExecutionMode.parse("dry-run")
        <ExecutionMode.DRY_RUN: 'DRY_RUN'>
        """
        if isinstance(value, ExecutionMode):
            return value
        normalised = str(value).strip().upper().replace("-", "_")
        try:
            return cls(normalised)
        except ValueError:
            raise ValueError(f"unknown mode {value!r}: use 'DRY_RUN' or 'LIVE'") from None


class SecurityState(str, enum.Enum):
    NORMAL = "normal"
    DEGRADED = "degraded"
    COMPROMISED = "compromised"


def escaped_text(value: Any) -> Any:
    """``value`` if it is valid text (or not text at all); else with what UTF-8 cannot hold
    escaped, as Python writes it: for a path or an argument given, which must stay readable
    as the bytes it was, where the redactor's U+FFFD would hide them.

    >>> print(escaped_text(b"l\\xff.db".decode("utf-8", "surrogateescape")), escaped_text(7))
    l\\xff.db 7
    """
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:  # bytes os.fsdecode could not decode: shown as those bytes
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate of another origin
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def frozen(value: Any) -> Any:
    """A read-only copy: mappings become ``MappingProxyType``, lists become tuples, all the way
    down, so a record handed out can never be changed through its details.

    >>> frozen({"a": [1, {"b": 2}]})["a"]
    (1, mappingproxy({'b': 2}))
    """
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(item) for item in value)
    return value


def thawed(value: Any) -> Any:
    """Plain JSON-ready data from a ``frozen`` value."""
    if isinstance(value, Mapping):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thawed(item) for item in value]
    return value


def _freeze_details(record: Any) -> None:
    object.__setattr__(record, "details", frozen(record.details))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_second_prefix: tuple[int, str] = (-1, "")


def timestamp_now() -> str:
    """The current time as stored in the ledger: RFC 3339 UTC with microseconds.

    Five times cheaper than formatting a datetime: only the sub-second part changes between most
    calls, so the rest is cached per second.

    >>> len(timestamp_now()), timestamp_now().endswith("Z")
    (27, True)
    """
    global _second_prefix
    seconds, microseconds = divmod(time.time_ns() // 1000, 1_000_000)
    cached_second, prefix = _second_prefix
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_prefix = (seconds, prefix)  # one assignment: threads see old or new, both valid
    return f"{prefix}.{microseconds:06d}Z"


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, as stored in the ledger.

    >>> format_timestamp(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc))
    '2026-01-02T03:04:05.000006Z'
    """
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _optional_timestamp(text: str | None) -> datetime | None:
    return None if text is None else parse_timestamp(text)


@dataclass(frozen=True, slots=True)
class SecuritySnapshot:
    """The security state seen at one moment, as reported by the security provider."""

    state: SecurityState = SecurityState.NORMAL
    taken_at: datetime = field(default_factory=utc_now)
    details: Mapping[str, Any] = field(default_factory=dict)

    __post_init__ = _freeze_details

    @property
    def is_normal(self) -> bool:
        return self.state is SecurityState.NORMAL

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "taken_at": format_timestamp(self.taken_at),
                "details": thawed(self.details)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SecuritySnapshot:
        return cls(SecurityState(data["state"]), parse_timestamp(data["taken_at"]),
                   dict(data.get("details") or {}))


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One step event. ``previous_event_hash`` links it to the step event before it in the same
    execution; ``event_hash`` is the ledger entry hash under which it was recorded."""

    timestamp: datetime
    step_index: int
    step_name: str
    event_type: StepEventType
    details: Mapping[str, Any]
    error_message: str | None
    previous_event_hash: str
    event_hash: str
    error_type: str | None = None
    traceback: str | None = None
    ledger_seq: int | None = None

    __post_init__ = _freeze_details

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": format_timestamp(self.timestamp), "step_index": self.step_index,
            "step_name": self.step_name, "event_type": self.event_type.value,
            "details": thawed(self.details), "error_message": self.error_message,
            "error_type": self.error_type, "traceback": self.traceback,
            "previous_event_hash": self.previous_event_hash, "event_hash": self.event_hash,
            "ledger_seq": self.ledger_seq,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepEvent:
        return cls(
            timestamp=parse_timestamp(data["timestamp"]), step_index=data["step_index"],
            step_name=data["step_name"], event_type=StepEventType(data["event_type"]),
            details=dict(data.get("details") or {}), error_message=data.get("error_message"),
            previous_event_hash=data["previous_event_hash"], event_hash=data["event_hash"],
            error_type=data.get("error_type"), traceback=data.get("traceback"),
            ledger_seq=data.get("ledger_seq"),
        )


@dataclass(frozen=True, slots=True)
class SideEffect:
    """A change to the world, declared before or observed during an execution."""

    category: SideEffectCategory
    description: str
    reversible: bool
    step_index: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    ledger_seq: int | None = None

    __post_init__ = _freeze_details

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category.value, "description": self.description,
            "reversible": self.reversible, "step_index": self.step_index,
            "details": thawed(self.details),
            "timestamp": None if self.timestamp is None else format_timestamp(self.timestamp),
            "ledger_seq": self.ledger_seq,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SideEffect:
        return cls(SideEffectCategory(data["category"]), data["description"],
                   bool(data["reversible"]), data.get("step_index"),
                   dict(data.get("details") or {}), _optional_timestamp(data.get("timestamp")),
                   data.get("ledger_seq"))


@dataclass(frozen=True, slots=True)
class SideEffectReport:
    """Declared against observed side effects (best effort: only what was reported)."""

    declared: tuple[SideEffect, ...] = ()
    observed: tuple[SideEffect, ...] = ()

    @property
    def irreversible(self) -> tuple[SideEffect, ...]:
        return tuple(effect for effect in self.observed if not effect.reversible)

    @property
    def undeclared(self) -> tuple[SideEffect, ...]:
        """Observed effects whose (step, category) no declaration covers."""
        covered = {(effect.step_index, effect.category) for effect in self.declared}
        return tuple(effect for effect in self.observed
                     if (effect.step_index, effect.category) not in covered
                     and (None, effect.category) not in covered)

    def to_dict(self) -> dict[str, Any]:
        return {"declared": [effect.to_dict() for effect in self.declared],
                "observed": [effect.to_dict() for effect in self.observed]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SideEffectReport:
        return cls(tuple(SideEffect.from_dict(item) for item in data.get("declared", ())),
                   tuple(SideEffect.from_dict(item) for item in data.get("observed", ())))


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """Everything that happened in one execution, hash-linked and immutable."""

    execution_id: str
    plan_id: str
    live_mode_state: str
    status: ExecutionStatus
    security_snapshot_pre: SecuritySnapshot
    security_snapshot_post: SecuritySnapshot | None
    timestamp_start: datetime
    timestamp_end: datetime | None
    step_events: tuple[StepEvent, ...] = ()
    side_effects_report: SideEffectReport = field(default_factory=SideEffectReport)
    reason: str | None = None
    parent_execution_id: str | None = None
    trace_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data, including ``execution_hash``."""
        data = self._content()
        data["execution_hash"] = self.execution_hash
        return data

    def _content(self) -> dict[str, Any]:
        post = self.security_snapshot_post
        return {
            "execution_id": self.execution_id, "plan_id": self.plan_id,
            "live_mode_state": self.live_mode_state, "status": self.status.value,
            "reason": self.reason, "parent_execution_id": self.parent_execution_id,
            "trace_id": self.trace_id,
            "security_snapshot_pre": self.security_snapshot_pre.to_dict(),
            "security_snapshot_post": None if post is None else post.to_dict(),
            "timestamp_start": format_timestamp(self.timestamp_start),
            "timestamp_end": None if self.timestamp_end is None
            else format_timestamp(self.timestamp_end),
            "step_events": [event.to_dict() for event in self.step_events],
            "side_effects_report": self.side_effects_report.to_dict(),
        }

    @property
    def execution_hash(self) -> str:
        """SHA-256 (hex) over the canonical JSON of the record without this field."""
        return hashlib.sha256(canonical_bytes(self._content())).hexdigest()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        post = data.get("security_snapshot_post")
        return cls(
            execution_id=data["execution_id"], plan_id=data["plan_id"],
            live_mode_state=data["live_mode_state"], status=ExecutionStatus(data["status"]),
            security_snapshot_pre=SecuritySnapshot.from_dict(data["security_snapshot_pre"]),
            security_snapshot_post=None if post is None else SecuritySnapshot.from_dict(post),
            timestamp_start=parse_timestamp(data["timestamp_start"]),
            timestamp_end=_optional_timestamp(data.get("timestamp_end")),
            step_events=tuple(StepEvent.from_dict(item) for item in data.get("step_events", ())),
            side_effects_report=SideEffectReport.from_dict(data.get("side_effects_report", {})),
            reason=data.get("reason"), parent_execution_id=data.get("parent_execution_id"),
            trace_id=data.get("trace_id"),
        )

    @classmethod
    def from_json(cls, text: str) -> ExecutionRecord:
        return cls.from_dict(json.loads(text))

    def hash_chain_intact(self) -> bool:
        """True when each step event points at the hash of the one before it."""
        previous = GENESIS
        for event in self.step_events:
            if event.previous_event_hash != previous:
                return False
            previous = event.event_hash
        return True


GENESIS = "0" * 64
