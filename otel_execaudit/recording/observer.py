"""The recorder: the one place where events are born.

Every event goes to the ledger first (synchronously: it is there before the call returns, and a
failed write stops the execution), then to OpenTelemetry (best effort: telemetry can never raise
into the execution or change its result)::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit import ExecutionObserver, SideEffectCategory, ExecutionStatus
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> observer = ExecutionObserver(execution_id="exec-001", plan_id="plan-001")
    >>> observer.record_step_started(0, "Initialize", {"input": "data"})
    >>> observer.record_step_completed(0, "Initialize", {"output": "ready"})
    >>> _ = observer.record_side_effect(SideEffectCategory.FILE_SYSTEM, "Created /tmp/data.txt",
    ...                                 reversible=True)
    >>> observer.mark_completed("All steps finished")
    >>> observer.get_execution_record().status is ExecutionStatus.COMPLETED
    True
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_execaudit.recording import semantic
from otel_execaudit.errors import ExecutionEndedError, RecordingError
from otel_execaudit.ledger.store import Ledger, LedgerEntry
from otel_execaudit.telemetry.logs import get_logger
from otel_execaudit.recording.records import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionStatus,
    SecuritySnapshot,
    SideEffect,
    SideEffectCategory,
    SideEffectReport,
    parse_timestamp,
    timestamp_now,
    utc_now,
)
from otel_execaudit.redaction import Redactor
from otel_execaudit.runtime import CHECKPOINT_EVENT, checkpoint_attributes, get_runtime
from otel_execaudit.recording.failure import Failure, describe_failure, printable
from otel_execaudit.recording.security import SecurityProvider, read_security
from otel_execaudit.recording.spans import (
    SpanChannel,
    event_limit,
    hex_ids,
    json_text,
    record_error,
    root_span,
    safe,
    start_span,
)
from otel_execaudit.recording.step_handle import StepHandle
from otel_execaudit.recording.steps import _StepRecording

_log = get_logger()


class ExecutionObserver(_StepRecording):
    """Records one execution: step events, side effects and its end, into ledger and spans.

    ``live_mode_state`` is what the execution really does: LIVE by default, since code that
    records its own steps runs them for real; DRY_RUN when the caller only simulates (the
    ``Executor`` passes its run's mode). ``security`` is a callable returning the current ``SecuritySnapshot``; it is read when the
    execution starts, before every step, and when it ends. A state other than NORMAL before a
    step stops the execution fail-closed as INCOMPLETE.
    """

    def __init__(self, execution_id: str | None = None, plan_id: str = "plan", *,
                 live_mode_state: ExecutionMode | str = ExecutionMode.LIVE,
                 security: SecurityProvider | None = None,
                 details: Mapping[str, Any] | None = None,
                 parent_execution_id: str | None = None,
                 ledger: Ledger | None = None, tracer: trace.Tracer | None = None,
                 redactor: Redactor | None = None,
                 parent_context: otel_context.Context | None = None) -> None:
        runtime = None if ledger and tracer and redactor else get_runtime()
        self.ledger: Ledger = ledger or runtime.ledger  # type: ignore[union-attr]
        self.tracer: trace.Tracer = tracer or runtime.tracer  # type: ignore[union-attr]
        self.redactor: Redactor = redactor or runtime.redactor  # type: ignore[union-attr]
        self.execution_id = (self.redactor.bound_name(printable(execution_id)) if execution_id
                             else uuid.uuid4().hex)
        self.plan_id = plan_id = self.redactor.bound_name(printable(plan_id))
        self.mode = ExecutionMode.parse(live_mode_state)
        self.parent_execution_id = parent_execution_id
        self._security = security
        self._lock = threading.RLock()
        self._init_steps()
        self._declared: list[SideEffect] = []
        self._observed: list[SideEffect] = []
        self._status = ExecutionStatus.STARTED
        self._reason: str | None = None
        self._post: SecuritySnapshot | None = None
        self._ended_at = None
        self.started_at = utc_now()
        self._pre = read_security(security, self.redactor)

        name = semantic.workflow_span_name(plan_id)
        span = root_span(self.tracer, name, parent_context, {
            semantic.OPERATION_NAME: "invoke_workflow",
            semantic.OPENINFERENCE_KIND: "CHAIN",
            semantic.EXECUTION_ID: self.execution_id,
            semantic.PLAN_ID: plan_id,
            semantic.MODE: self.mode.value,
        })
        self.root = self.channel = SpanChannel(self.tracer, span, name, event_limit(span))
        self.context = trace.set_span_in_context(span, parent_context)
        self.trace_id, self.span_id = hex_ids(span)
        clean_details = self.redactor.clean(dict(details)) if details else {}
        if parent_execution_id:
            safe(span.set_attribute, semantic.PARENT_EXECUTION_ID, parent_execution_id)
        if clean_details:
            safe(span.set_attribute, semantic.INPUT_VALUE, json_text(clean_details))
        try:
            entry = self._append("execution.started", self.trace_id, self.span_id, {
                "mode": self.mode.value, "parent_execution_id": parent_execution_id,
                "details": clean_details, "security": self._pre.to_dict(),
            })
        except BaseException as error:
            self._close_span_with_error(self.root, error)
            raise
        self.started_at = parse_timestamp(self._last_time)  # the record agrees with its entry
        safe(span.set_attributes, {semantic.LEDGER_SEQ: entry.seq,
                                    semantic.LEDGER_ENTRY_HASH: entry.hash})
        self._sync_if_live()

    # ----- the seed's recording API --------------------------------------------------------

    def record_step_started(self, step_index: int, step_name: str,
                            details: Mapping[str, Any] | None = None) -> None:
        self.start_step(step_name, details, index=step_index)

    def record_step_completed(self, step_index: int, step_name: str,
                              details: Mapping[str, Any] | None = None) -> None:
        self._handle_for(step_index, step_name).complete(details)

    def record_step_failed(self, step_index: int, step_name: str, error: BaseException | str,
                           details: Mapping[str, Any] | None = None) -> None:
        self._handle_for(step_index, step_name).fail(error, details)

    def record_side_effect(self, category: SideEffectCategory | str, description: str,
                           reversible: bool = False, details: Mapping[str, Any] | None = None,
                           step_index: int | None = None) -> SideEffect:
        """Record an observed change to the world; irreversible ones (the default, unless
        ``reversible=True``) show up in reports."""
        return self._side_effect("side_effect", category, description, reversible, details,
                                 step_index, self._observed)

    def observed_effects(self, step_index: int) -> list[SideEffect]:
        """The side effects recorded so far on step ``step_index``."""
        with self._lock:
            return [effect for effect in self._observed if effect.step_index == step_index]

    def declare_side_effect(self, category: SideEffectCategory | str, description: str,
                            reversible: bool = False, details: Mapping[str, Any] | None = None,
                            step_index: int | None = None) -> SideEffect:
        """Declare an effect a step is expected to have, to compare with what it did."""
        return self._side_effect("side_effect.declared", category, description, reversible,
                                 details, step_index, self._declared)

    def mark_completed(self, reason: str | None = None) -> None:
        self._end(ExecutionStatus.COMPLETED, reason or "all steps finished")

    def mark_failed(self, reason: str | BaseException | None = None) -> None:
        self._end(ExecutionStatus.FAILED, reason or "execution failed")

    def mark_incomplete_security_escalation(self, reason: str | None = None) -> None:
        self._end(ExecutionStatus.INCOMPLETE, reason or "security state degraded")

    def mark_cancelled(self, reason: str | BaseException | None = None) -> None:
        self._end(ExecutionStatus.CANCELLED, reason or "cancelled")

    def mark_blocked(self, reason: str | None = None) -> None:
        self._end(ExecutionStatus.BLOCKED, reason or "blocked by a guard")

    # ----- guards and other audited facts ---------------------------------------------------

    def record_guard(self, guard: str, decision: str, data: Mapping[str, Any], *,
                     stage: str = "preflight", parent: StepHandle | None = None,
                     error: BaseException | None = None) -> LedgerEntry:
        """Record one guard evaluation as an ``apply_guardrail {guard}`` span and a
        ``guard.evaluated`` ledger entry; ``decision`` is allow, warn or deny."""
        guard = self.redactor.bound_name(printable(guard))
        with self._lock:
            self._ensure_open()
            clean = self.redactor.clean(dict(data))
            span_name = semantic.guard_span_name(guard)
            span = start_span(self.tracer, span_name, (parent or self).context, {
                semantic.OPERATION_NAME: "apply_guardrail",
                semantic.OPENINFERENCE_KIND: "GUARDRAIL",
                semantic.GUARD_NAME: guard,
                semantic.GUARD_DECISION: decision,
                semantic.GUARD_STAGE: stage,
                semantic.EXECUTION_ID: self.execution_id,
            })
            channel = SpanChannel(self.tracer, span, span_name, self.root.limit)
            trace_id, span_id = hex_ids(span)
            try:
                entry = self._append("guard.evaluated", trace_id or self.trace_id,
                                     span_id or self.span_id,
                                     {"guard": guard, "decision": decision, "stage": stage,
                                      "step_index": parent.index if parent else None, **clean})
                attributes = {semantic.LEDGER_SEQ: entry.seq,
                              semantic.LEDGER_ENTRY_HASH: entry.hash,
                              semantic.GUARD_MESSAGE: str(clean.get("message", ""))}
                safe(span.set_attributes, attributes)
                if error is not None:
                    record_error(channel, describe_failure(self.redactor, error))
            finally:
                channel.end()
            return entry

    def record(self, kind: str, data: Mapping[str, Any], *,
               step: StepHandle | None = None, event: str | None = None) -> LedgerEntry:
        """Append a ledger entry of ``kind`` on the execution (or on ``step``), mirrored as a
        span event named ``event`` (default: the kind)."""
        with self._lock:
            self._ensure_open()
            owner = step if step is not None else self
            clean = self.redactor.clean(dict(data))
            entry = self._append(kind, owner.trace_id, owner.span_id, clean)
            owner.channel.add_event(event or kind, {
                semantic.LEDGER_SEQ: entry.seq, semantic.LEDGER_ENTRY_HASH: entry.hash,
                semantic.DETAILS: json_text(clean)})
            return entry

    def record_after_end(self, kind: str, data: Mapping[str, Any]) -> LedgerEntry:
        """Append a ledger entry of ``kind`` for this execution once it has ended, with no span
        (its spans have ended). For facts decided after the recorder stopped the run, such as
        the terminal events of actions a security escalation cut short. Events of the run
        itself go through ``record``, which refuses an execution that has ended."""
        with self._lock:
            return self._append(kind, self.trace_id, self.span_id,
                                self.redactor.clean(dict(data)))

    def get_execution_record(self, live_mode_state: ExecutionMode | str | None = None
                             ) -> ExecutionRecord:
        """An immutable snapshot of everything recorded so far.

        ``live_mode_state`` (the seed's argument) must agree with the mode the ledger holds:
        a record never relabels its execution, so another mode raises ``RecordingError``.
        """
        if live_mode_state is not None:
            try:
                asked = ExecutionMode.parse(live_mode_state)
            except ValueError as error:
                raise RecordingError(f"get_execution_record: {error}") from None
            if asked is not self.mode:
                raise RecordingError(
                    f"execution {self.execution_id} was recorded as {self.mode.value} (its "
                    f"ledger entries say so); get_execution_record({asked.value!r}) cannot "
                    f"relabel it. Call get_execution_record() or pass {self.mode.value!r}; to "
                    f"record a {asked.value} execution, create the observer with "
                    f"live_mode_state={asked.value!r}.")
        with self._lock:
            return ExecutionRecord(
                execution_id=self.execution_id, plan_id=self.plan_id,
                live_mode_state=self.mode.value, status=self._status,
                security_snapshot_pre=self._pre, security_snapshot_post=self._post,
                timestamp_start=self.started_at, timestamp_end=self._ended_at,
                step_events=self._step_events(),
                side_effects_report=SideEffectReport(tuple(self._declared),
                                                     tuple(self._observed)),
                reason=self._reason, parent_execution_id=self.parent_execution_id,
                trace_id=self.trace_id)

    @property
    def status(self) -> ExecutionStatus:
        return self._status

    @property
    def ended(self) -> bool:
        return self._status is not ExecutionStatus.STARTED

    # ----- side effects and the end ----------------------------------------------------------

    def _side_effect(self, kind: str, category: SideEffectCategory | str, description: str,
                     reversible: bool, details: Mapping[str, Any] | None,
                     step_index: int | None, into: list[SideEffect]) -> SideEffect:
        category = SideEffectCategory(category.lower() if isinstance(category, str)
                                      and not isinstance(category, SideEffectCategory)
                                      else category)
        with self._lock:
            self._ensure_open()
            clean_description = self.redactor.clean_text(printable(description))
            clean_details = self.redactor.clean(dict(details)) if details else {}
            handle = self._open_steps.get(step_index) if step_index is not None else None
            owner = handle if handle is not None else self
            channel = owner.channel
            reversible = reversible is True  # only True is a yes: "no", 1 or None is the worst
            entry = self._append(kind, owner.trace_id, owner.span_id, {
                "category": category.value, "description": clean_description,
                "reversible": reversible, "step_index": step_index,
                "details": clean_details})
            effect = SideEffect(category, clean_description, reversible, step_index,
                                clean_details, parse_timestamp(self._last_time), entry.seq)
            into.append(effect)
            channel.add_event(semantic.EVENT_SIDE_EFFECT if kind == "side_effect" else kind, {
                semantic.SIDE_EFFECT_CATEGORY: category.value,
                semantic.SIDE_EFFECT_DESCRIPTION: clean_description,
                semantic.SIDE_EFFECT_REVERSIBLE: reversible,
                semantic.LEDGER_SEQ: entry.seq, semantic.LEDGER_ENTRY_HASH: entry.hash})
            return effect

    def _end(self, requested: ExecutionStatus, reason: str | BaseException) -> None:
        with self._lock:
            self._ensure_open()
            error = reason if isinstance(reason, BaseException) else None
            failure = None if error is None else describe_failure(self.redactor, error)
            text = failure.message if failure else self.redactor.clean_text(printable(reason))
            status = requested
            try:
                for handle in list(self._open_steps.values()):  # a step left open ends too
                    handle.cancel("execution ended before the step finished")
                status = self._final_status(requested)
                self._post = read_security(self._security, self.redactor)
                data: dict[str, Any] = {"status": status.value, "reason": text,
                                        "security": self._post.to_dict()}
                if failure is not None:
                    data.update(error_type=failure.error_type, traceback=failure.traceback)
                self._append("execution.ended", self.trace_id, self.span_id, data)
                self._checkpoint()
            finally:  # whatever failed above, the execution is over and its span ends
                self._status, self._reason = status, text
                self._ended_at = parse_timestamp(self._last_time) if self._last_time else None
                safe(self.root.span.set_attribute, semantic.STATUS, status.value)
                self._close_root(status, failure, text)
            if status is not ExecutionStatus.COMPLETED:
                _log.warning("execution ended", execution_id=self.execution_id,
                             plan_id=self.plan_id, status=status.value, reason=text)
            self._sync_if_live()

    # ----- plumbing --------------------------------------------------------------------------

    _last_time: str | None = None  # the ts of the latest entry

    def _append(self, kind: str, trace_id: str | None, span_id: str | None,
                data: dict[str, Any]) -> LedgerEntry:
        self._last_time = now = timestamp_now()
        return self.ledger.append({
            "kind": kind, "ts": now, "execution_id": self.execution_id,
            "plan_id": self.plan_id, "trace_id": trace_id, "span_id": span_id, "data": data})

    def _checkpoint(self) -> None:
        """Checkpoint the ledger with this execution's end in it, and put the checkpoint on the
        root span: the trace backend then holds a copy of it outside the ledger. This commits
        the execution's entries: a failure to do so raises, as a failed append would."""
        checkpoint = self.ledger.checkpoint()
        if checkpoint is None:
            if self.ledger.checkpoint_problem is not None:
                _log.error("no checkpoint at the end of the execution", execution_id=self.execution_id,
                           problem=str(self.ledger.checkpoint_problem))
            return
        self.root.add_event(CHECKPOINT_EVENT, checkpoint_attributes(checkpoint), reserved=True)

    def _ensure_open(self) -> None:
        if self._status is not ExecutionStatus.STARTED:
            raise ExecutionEndedError(
                f"execution {self.execution_id} already ended as {self._status.value}; "
                "start a new execution to record more events")

    def _sync_if_live(self) -> None:
        if self.mode is ExecutionMode.LIVE:
            self.ledger.sync()

    def _close_root(self, status: ExecutionStatus, failure: Failure | None, text: str) -> None:
        if status in (ExecutionStatus.FAILED, ExecutionStatus.COMPLETED_PARTIAL) and failure:
            record_error(self.root, failure)
        elif status in (ExecutionStatus.FAILED, ExecutionStatus.INCOMPLETE):
            safe(self.root.span.set_status, Status(StatusCode.ERROR, text))
        self.root.end()

    def _close_span_with_error(self, channel: SpanChannel, error: BaseException) -> None:
        record_error(channel, describe_failure(self.redactor, error))
        channel.end()
