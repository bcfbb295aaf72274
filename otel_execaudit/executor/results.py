"""What an executor run returns: every guard verdict, every action, and a report for people.

``to_dict()`` is a versioned JSON format (``"format": "otel-execaudit.result/1"``);
``to_human_readable()`` is the report ``execaudit execute`` prints::

    >>> from datetime import datetime, timezone
    >>> result = ExecutionResult(status=ResultStatus.SUCCESS, mode=ExecutionMode.DRY_RUN,
    ...     guards=(), actions=(), metadata={"plan_id": "p"},
    ...     executed_at=datetime(2026, 11, 22, tzinfo=timezone.utc))
    >>> result.to_dict()["summary"]
    {'total_guards': 0, 'passed_guards': 0, 'failed_guards': 0, 'warnings': 0, 'total_actions': 0, 'not_run': 0, 'violations': 0}
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from otel_execaudit.executor.guards import ExecutionGuard
from otel_execaudit.recording.records import ExecutionMode, escaped_text, format_timestamp, frozen, thawed

__all__ = ["ActionRecord", "ExecutionResult", "ResultStatus", "RESULT_FORMAT"]

RESULT_FORMAT = "otel-execaudit.result/1"
_RULE = "=" * 60


class ResultStatus(str, enum.Enum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    BLOCKED = "BLOCKED"  # prevented by a guard


@dataclass(frozen=True)
class ActionRecord:
    """One step as the executor ran it (or simulated it, or refused to run it).

    ``type`` is SIMULATED (DRY_RUN, not performed), LIVE (performed), READ (its adapter
    declares read-only and the step no effect, so it runs in both modes) or NOT_RUN (never
    ran); ``status`` is success, failed, blocked (a guard stopped it) or skipped (an earlier
    step stopped the run); ``reason`` says why it was simulated, performed or not run.
    """

    step_index: int
    step: str
    action_type: str
    adapter: str | None
    type: str
    status: str
    description: str
    result: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    violations: tuple[str, ...] = ()
    rollback: Mapping[str, Any] | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", frozen(self.details))
        object.__setattr__(self, "rollback", frozen(self.rollback))

    def to_dict(self) -> dict[str, Any]:
        return {"step_index": self.step_index, "step": self.step,
                "action_type": self.action_type, "adapter": self.adapter, "type": self.type,
                "status": self.status, "description": self.description, "result": self.result,
                "details": thawed(self.details), "error_code": self.error_code,
                "violations": list(self.violations), "rollback": thawed(self.rollback),
                "reason": self.reason}


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one executor run (see the module docstring for its JSON form)."""

    status: ResultStatus
    mode: ExecutionMode
    guards: tuple[ExecutionGuard, ...]
    actions: tuple[ActionRecord, ...]
    metadata: Mapping[str, Any]
    executed_at: datetime
    error: str | None = None
    value: Any = field(default=None, compare=False, repr=False)  # a plan function's return;
    # kept in memory only, never serialised: it may hold anything

    def __post_init__(self) -> None:
        object.__setattr__(self, "guards", tuple(self.guards))
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "metadata", frozen(self.metadata))

    def is_success(self) -> bool:
        return self.status is ResultStatus.SUCCESS

    def is_blocked(self) -> bool:
        return self.status is ResultStatus.BLOCKED

    @property
    def plan_hash(self) -> str | None:
        return self.metadata.get("plan_hash")

    @property
    def changes_pending(self) -> bool:
        """A successful dry run with actions it would perform in LIVE."""
        return (self.is_success() and self.mode is ExecutionMode.DRY_RUN
                and any(action.type == "SIMULATED" for action in self.actions))

    @property
    def violations(self) -> list[str]:
        return [text for action in self.actions for text in action.violations]

    @property
    def summary(self) -> dict[str, int]:
        return {
            "total_guards": len(self.guards),
            "passed_guards": sum(verdict.passed for verdict in self.guards),
            "failed_guards": sum(verdict.decision == "deny" for verdict in self.guards),
            "warnings": sum(verdict.decision == "warn" for verdict in self.guards),
            "total_actions": len(self.actions),
            "not_run": sum(action.type == "NOT_RUN" for action in self.actions),
            "violations": len(self.violations),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "status": self.status.value, "mode": self.mode.value,
                "guards": [verdict.to_dict() for verdict in self.guards],
                "actions": [action.to_dict() for action in self.actions],
                "metadata": {key: escaped_text(value)  # a client id or path as given
                             for key, value in thawed(self.metadata).items()},
                "executed_at": format_timestamp(self.executed_at), "error": self.error,
                "summary": self.summary}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_human_readable(self) -> str:
        """The report, shaped like the seed's: banner, status, context, SAFETY CHECKS,
        ACTIONS TAKEN, Summary."""
        live = self.mode is ExecutionMode.LIVE
        lines = [_RULE, "EXECUTION REPORT", _RULE, ""]
        if live:
            performed = any(action.type in ("LIVE", "READ") for action in self.actions)
            lines += ["MODE: LIVE (real actions)",
                      "!  Actions below were performed for real" if performed
                      else "No action was performed"]
        else:
            lines += ["MODE: DRY-RUN (simulation)", "!  No real action was performed"]
        mark = "✓" if self.is_success() else "✗"
        lines += ["", f"STATUS: {mark} {self.status.value}"]
        if self.is_blocked():
            lines.append("Execution prevented by safety checks")
        if self.error and not self.is_blocked():
            lines.append(f"Error: {self.error}")
        lines += ["", "Context:"]
        lines += [f"  {key}: {escaped_text(value)}" for key, value in self.metadata.items()
                  if value is not None]
        lines += ["", "SAFETY CHECKS:"]
        for verdict in self.guards:
            symbol = {"allow": "✓", "warn": "!", "deny": "✗"}[verdict.decision]
            where = "" if verdict.stage == "preflight" else f" [{verdict.stage}]"
            lines.append(f"  {symbol} {verdict.name}{where}: {verdict.message}")
        if self.actions:
            lines += ["", f"ACTIONS TAKEN ({len(self.actions)}):"]
            for number, action in enumerate(self.actions, 1):
                lines.append(f"  {number}. [{action.type}] {action.step}: {action.description}")
                lines.append(f"     Result: {action.status}"
                             + (f" - {action.result}" if action.result else "")
                             + (f" (error_code={action.error_code})" if action.error_code else ""))
                if action.reason:
                    lines.append(f"     Why: {action.reason}")
                lines += [f"     VIOLATION: {text}" for text in action.violations]
                if action.rollback and action.status in ("success", "failed"):
                    # The whole hint, as the plan gave it: a reviewer needs the undo actions
                    # and their risks, not only the summary line.
                    hint = action.rollback.get("description") or ""
                    lines.append(f"     Rollback (not executed): {hint}".rstrip())
                    lines += [f"       - action: {text}"
                              for text in action.rollback.get("actions") or ()]
                    lines += [f"       - risk: {text}"
                              for text in action.rollback.get("risks") or ()]
        summary = self.summary
        lines += ["", "Summary:",
                  f"  Executed at: {self.executed_at:%Y-%m-%d %H:%M:%S} UTC",
                  f"  Safety checks: {summary['total_guards']} "
                  f"({summary['passed_guards']} passed)",
                  f"  Actions: {summary['total_actions']}"
                  + (f" ({summary['not_run']} not run)" if summary["not_run"] else "")]
        if summary["violations"]:
            lines.append(f"  Violations: {summary['violations']}")
        if self.plan_hash:
            lines.append(f"  Plan hash: {self.plan_hash}")
        lines += ["", _RULE]
        return "\n".join(lines)
