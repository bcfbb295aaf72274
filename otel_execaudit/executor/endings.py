"""How each action path of a run ends: its ``ActionRecord``, redacted like the ledger's copy,
and exactly one terminal event (``terminal``), mirrored in the ledger while the run records.
``run.PlanRun`` takes this as its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from otel_execaudit.executor import terminal
from otel_execaudit.executor.adapters import AdapterRegistry
from otel_execaudit.executor.plans import PlanStep
from otel_execaudit.recording import ExecutionObserver, StepHandle, describe_failure
from otel_execaudit.executor.results import ActionRecord, ResultStatus
from otel_execaudit.redaction import Redactor
from otel_execaudit.runtime import get_runtime

if TYPE_CHECKING:
    from otel_execaudit.executor.executor import Executor

__all__ = ["PathEndings"]


class PathEndings:
    """The ends of a run's (``run.PlanRun``) action paths: each one recorded, and emitted."""

    executor: Executor
    adapters: AdapterRegistry
    redactor: Redactor
    observer: ExecutionObserver | None
    actions: list[ActionRecord]
    status: ResultStatus
    error: str | None
    cause: BaseException | None
    _emitted: bool

    def record_simulated(self, index: int, step: PlanStep, adapter: str | None,
                         description: str) -> None:
        self.actions.append(self._action(index, step, adapter, "SIMULATED", "success",
                                         f"would {description}",
                                         "Simulated successfully (nothing was performed)"))
        self._emit(step, adapter, None)

    def _end_paths(self, steps: Iterable[PlanStep], code: str) -> None:
        for step in steps:
            self._emit(step, self._adapter_name(step), code)

    def _fail(self, handle: StepHandle, index: int, step: PlanStep, adapter: str | None,
              kind: str, code: str, error: BaseException | str,
              details: Mapping[str, Any] | None = None,
              violations: list[str] | None = None) -> None:
        handle.fail(error, {"error_code": code, **(details or {})})
        failure = describe_failure(self.redactor, error)  # as the ledger has it
        message = (failure.message if isinstance(error, str)
                   else f"{failure.error_type}: {failure.message}")
        self.actions.append(self._action(index, step, adapter, kind, "failed", step.describe(),
                                         message, details or {}, code, violations or []))
        self.status, self.error = ResultStatus.FAILED, f"step {step.name!r} failed: {message}"
        if isinstance(error, BaseException):
            self.cause = error
        self._emit(step, adapter, code)

    def _action(self, index: int, step: PlanStep, adapter: str | None, kind: str, status: str,
                description: str, result: str, details: Mapping[str, Any] | None = None,
                code: str | None = None, violations: Iterable[str] = (),
                reason: str | None = None) -> ActionRecord:
        clean = self.redactor.clean_text
        if reason is None:  # why the step was simulated, or performed
            reason = step.why
        return ActionRecord(
            step_index=index, step=step.name, action_type=step.action_type, adapter=adapter,
            type=kind, status=status, description=clean(description), result=clean(result),
            details=self.redactor.clean(dict(details or {})), error_code=code,
            violations=tuple(clean(text) for text in violations),
            rollback=self.redactor.clean(step.rollback.to_dict()) if step.rollback else None,
            reason=clean(reason))

    def _not_run(self, index: int, step: PlanStep, status: str, why: str,
                 adapter: str | None = None) -> ActionRecord:
        """A step that never ran: ``status`` blocked (a guard stopped it) or skipped (an
        earlier step stopped the run), and ``why``."""
        return self._action(index, step, adapter or self._adapter_name(step), "NOT_RUN",
                            status, step.describe(), "not run", reason=why)

    def _emit(self, step: PlanStep, adapter: str | None, code: str | None) -> None:
        self._emitted = True
        observer = self.observer
        trace_id = observer.trace_id if observer else None
        if code is None:
            event = terminal.TerminalEvent.success(trace_id, step.action_type, adapter,
                                                   product=self.executor.product)
        else:
            event = terminal.TerminalEvent.failed(trace_id, step.action_type, adapter, code,
                                                  product=self.executor.product)
        record = None
        if observer is not None:  # after the recorder ended the run, in the ledger only
            record = (observer.record_after_end if observer.ended else
                      lambda kind, data: observer.record(kind, data, event=terminal.EVENT_NAME))
        terminal.emit(event, record=record, telemetry=get_runtime().telemetry)

    def _adapter_name(self, step: PlanStep) -> str | None:
        adapter = self.adapters.get(step.action_type)
        return adapter.name if adapter is not None else None
