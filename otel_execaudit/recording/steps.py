"""The recorder's steps: opening and finishing them, their events in the ledger (hash-chained,
each mirrored on the step's span), the security check before each one, and what their outcomes
make of the execution's status. ``ExecutionObserver`` inherits this part of the recorder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from otel_execaudit.recording import semantic
from otel_execaudit.errors import RecordingError, SecurityEscalationError
from otel_execaudit.ledger.store import LedgerEntry
from otel_execaudit.telemetry.logs import get_logger
from otel_execaudit.recording.records import (
    GENESIS,
    ExecutionStatus,
    StepEvent,
    StepEventType,
    parse_timestamp,
)
from otel_execaudit.recording.failure import Failure, describe_failure, printable
from otel_execaudit.recording.security import read_security
from otel_execaudit.recording.spans import SpanChannel, json_text, record_error, safe, start_span
from otel_execaudit.recording.step_handle import StepHandle

if TYPE_CHECKING:
    import threading

    from opentelemetry import context as otel_context
    from opentelemetry import trace

    from otel_execaudit.recording.security import SecurityProvider
    from otel_execaudit.redaction import Redactor

_log = get_logger()

_STEP_KINDS = {kind: f"step.{kind.value}" for kind in StepEventType}
_STEP_EVENT_NAMES = {kind: semantic.EVENT_STEP.format(kind.value) for kind in StepEventType}


class _StepRecording:
    """The steps part of ``ExecutionObserver``, which provides the names declared below and
    calls ``_init_steps`` in its ``__init__``."""

    if TYPE_CHECKING:  # provided by ExecutionObserver
        execution_id: str
        plan_id: str
        redactor: Redactor
        tracer: trace.Tracer
        root: SpanChannel
        context: otel_context.Context
        _lock: threading.RLock
        _security: SecurityProvider | None
        _last_time: str | None

        def _ensure_open(self) -> None: ...
        def _append(self, kind: str, trace_id: str | None, span_id: str | None,
                    data: dict[str, Any]) -> LedgerEntry: ...
        def _end(self, requested: ExecutionStatus, reason: str | BaseException) -> None: ...
        def _close_span_with_error(self, channel: SpanChannel, error: BaseException) -> None: ...

    def _init_steps(self) -> None:
        self._events: list[tuple[Any, ...]] = []
        self._open_steps: dict[int, StepHandle] = {}
        self._finished_steps: set[int] = set()
        self._next_index = 0
        self._previous_event_hash = GENESIS

    def start_step(self, name: str, details: Mapping[str, Any] | None = None, *,
                   index: int | None = None, parent: StepHandle | None = None) -> StepHandle:
        """Open a step span and record its STARTED event (in the ledger before this returns;
        committed as the ledger's durability says: the executor commits it before it acts)."""
        with self._lock:
            self._ensure_open()
            self._check_security()
            return self._open_step(name, details, index, parent, record_start=True)

    def _open_step(self, name: str, details: Mapping[str, Any] | None, index: int | None,
                   parent: StepHandle | None, record_start: bool) -> StepHandle:
        if index is None:
            index = self._next_index
        if index in self._open_steps:
            raise RecordingError(f"step {index} of execution {self.execution_id} is already "
                                 "open; finish it before starting it again")
        self._refuse_finished(index)
        self._next_index = max(self._next_index, index + 1)
        name = self.redactor.bound_name(printable(name))  # a name is bounded like any value
        span_name = semantic.tool_span_name(name)
        span = start_span(self.tracer, span_name, (parent or self).context, {
            semantic.OPERATION_NAME: "execute_tool",
            semantic.OPENINFERENCE_KIND: "TOOL",
            semantic.TOOL_NAME: name,
            semantic.EXECUTION_ID: self.execution_id,
            semantic.STEP_INDEX: index,
        })
        handle = StepHandle(self, index, name, SpanChannel(self.tracer, span, span_name,
                                                            self.root.limit))
        if record_start:
            try:
                entry, clean_details = self._step_event(handle, StepEventType.STARTED, details,
                                                        None)
            except BaseException as error:
                self._close_span_with_error(handle.channel, error)
                raise
            attributes: dict[str, Any] = {semantic.LEDGER_SEQ: entry.seq,
                                          semantic.LEDGER_ENTRY_HASH: entry.hash}
            if clean_details:
                attributes[semantic.INPUT_VALUE] = json_text(clean_details)
            safe(span.set_attributes, attributes)
        self._open_steps[index] = handle
        return handle

    def _handle_for(self, index: int, name: str) -> StepHandle:
        with self._lock:
            handle = self._open_steps.get(index)
            if handle is None:  # the seed allows finishing a step whose start was not recorded
                self._ensure_open()
                handle = self._open_step(name, None, index, None, record_start=False)
            return handle

    def _refuse_finished(self, index: int) -> None:
        if index in self._finished_steps:
            raise RecordingError(
                f"step {index} of execution {self.execution_id} has already finished; each step "
                "records one outcome (use a new step index for a new attempt)")

    def _finish_step(self, handle: StepHandle, event_type: StepEventType,
                     details: Mapping[str, Any] | None,
                     error: BaseException | str | None) -> None:
        with self._lock:
            if not handle.open:
                raise RecordingError(f"step {handle.index} ({handle.name}) has already finished")
            self._ensure_open()
            handle.open = False
            del self._open_steps[handle.index]
            self._finished_steps.add(handle.index)
            failure = None if error is None else describe_failure(self.redactor, error)
            try:
                entry, clean_details = self._step_event(handle, event_type, details, failure)
                if event_type is StepEventType.FAILED and failure is not None:
                    _log.warning("step failed", execution_id=self.execution_id,
                                 plan_id=self.plan_id, step=handle.name, step_index=handle.index,
                                 error_type=failure.error_type, error=failure.message,
                                 ledger_seq=entry.seq)
                if clean_details and event_type is StepEventType.COMPLETED:
                    safe(handle.span.set_attribute, semantic.OUTPUT_VALUE,
                         json_text(clean_details))
            finally:
                self._close_step_span(handle, event_type, failure)

    def _step_event(self, handle: StepHandle, event_type: StepEventType,
                    details: Mapping[str, Any] | None,
                    failure: Failure | None) -> tuple[LedgerEntry, dict[str, Any]]:
        clean_details = self.redactor.clean(dict(details)) if details else {}
        previous = self._previous_event_hash
        data: dict[str, Any] = {
            "step_index": handle.index, "step_name": handle.name,
            "event_type": event_type.value, "details": clean_details,
            "previous_event_hash": previous,
        }
        error_type = message = stack = None
        if failure is not None:
            error_type, message, stack = failure
            data.update(error_type=error_type, error_message=message, traceback=stack)
        entry = self._append(_STEP_KINDS[event_type], handle.trace_id, handle.span_id, data)
        # Kept as a plain tuple (StepEvent's fields, in order): the frozen record is built only
        # when someone asks for it, which keeps the per-step cost low.
        self._events.append((self._last_time, handle.index, handle.name, event_type,
                             clean_details, message, previous, entry.hash, error_type, stack,
                             entry.seq))
        self._previous_event_hash = entry.hash
        handle.channel.add_event(_STEP_EVENT_NAMES[event_type], {
            semantic.LEDGER_SEQ: entry.seq, semantic.LEDGER_ENTRY_HASH: entry.hash},
            reserved=event_type is not StepEventType.STARTED)
        return entry, clean_details

    def _record_step_note(self, handle: StepHandle, name: str,
                          details: Mapping[str, Any] | None) -> LedgerEntry:
        name = self.redactor.bound_name(printable(name))
        with self._lock:
            self._ensure_open()
            clean_details = self.redactor.clean(dict(details)) if details else {}
            entry = self._append("step.note", handle.trace_id, handle.span_id, {
                "step_index": handle.index, "name": name, "details": clean_details})
            attributes: dict[str, Any] = {semantic.LEDGER_SEQ: entry.seq,
                                          semantic.LEDGER_ENTRY_HASH: entry.hash}
            if clean_details:
                attributes[semantic.DETAILS] = json_text(clean_details)
            handle.channel.add_event(name, attributes)
            return entry

    def _check_security(self) -> None:
        if self._security is None:
            return
        snapshot = read_security(self._security, self.redactor)
        if not snapshot.is_normal:
            reason = f"security state is {snapshot.state.value} before step {self._next_index}"
            self._end(ExecutionStatus.INCOMPLETE, reason)
            raise SecurityEscalationError(
                f"execution {self.execution_id} stopped: {reason}. Nothing further was run; "
                "restore the security state and start a new execution.")

    def _close_step_span(self, handle: StepHandle, event_type: StepEventType,
                         failure: Failure | None) -> None:
        if event_type is not StepEventType.COMPLETED:
            safe(handle.span.set_attribute, semantic.STATUS, event_type.value)
        if event_type is StepEventType.FAILED and failure is not None:
            record_error(handle.channel, failure)
        handle.channel.end()

    def _step_events(self) -> tuple[StepEvent, ...]:
        """The step events so far, as the frozen records an ``ExecutionRecord`` holds."""
        return tuple(StepEvent(parse_timestamp(row[0]), *row[1:]) for row in self._events)

    def _final_status(self, requested: ExecutionStatus) -> ExecutionStatus:
        """The one rule for partial outcomes: an execution marked failed is FAILED, whatever
        completed before; one carried on to its end after a step failed (the failure handled)
        is COMPLETED_PARTIAL when some step completed, FAILED when none did."""
        if requested is not ExecutionStatus.COMPLETED:
            return requested
        if not any(row[3] is StepEventType.FAILED for row in self._events):
            return requested
        completed = any(row[3] is StepEventType.COMPLETED for row in self._events)
        return ExecutionStatus.COMPLETED_PARTIAL if completed else ExecutionStatus.FAILED
