"""Rollback guidance: what a person would have to undo, by hand, after an execution.

Hints are surfaced verbatim, from the plan or the caller, never inferred; nothing here (nothing
in this package) ever executes one. A step that changed something irreversible, or changed
something and has no hint, cannot be rolled back, and the scaffold says which::

    >>> import otel_execaudit, tempfile, os
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> with otel_execaudit.execution("migrate") as ex:
    ...     with ex.step("create_db") as st:
    ...         _ = st.side_effect("data_mutation", "created test_db", reversible=True)
    >>> otel_execaudit.shutdown()
    >>> scaffold = RollbackPlanner.plan_rollback(ex.record, [
    ...     {"step_index": 0, "description": "Drop database",
    ...      "actions": ["DROP DATABASE test_db;"], "risks": ["all data lost"]}])
    >>> scaffold.is_rollback_possible, scaffold.manual_steps
    (True, ('step 0 (create_db): DROP DATABASE test_db;',))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from otel_execaudit.recording import ExecutionRecord, ExecutionStatus, SideEffect, StepEventType
from otel_execaudit.recording.declarations import RollbackHint

__all__ = ["RollbackPlanner", "RollbackScaffold"]


@dataclasses.dataclass(frozen=True)
class RollbackScaffold:
    """The seed's scaffold: whether a manual rollback is possible, why, and its hints (in the
    reverse order of execution), warnings, irreversible steps and the manual checklist."""

    execution_id: str
    is_rollback_possible: bool
    reason: str
    rollback_hints: tuple[RollbackHint, ...] = ()
    warnings: tuple[str, ...] = ()
    irreversible_steps: tuple[int, ...] = ()
    manual_steps: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id,
                "is_rollback_possible": self.is_rollback_possible, "reason": self.reason,
                "rollback_hints": [hint.to_dict() for hint in self.rollback_hints],
                "warnings": list(self.warnings),
                "irreversible_steps": list(self.irreversible_steps),
                "manual_steps": list(self.manual_steps), "executed": False}


class RollbackPlanner:
    """Builds a ``RollbackScaffold`` from a record and hints; it plans, it never acts."""

    @staticmethod
    def plan_rollback(record: ExecutionRecord,
                      hints: Iterable[RollbackHint | Mapping[str, Any]] | None = None
                      ) -> RollbackScaffold:
        """The scaffold for ``record``. ``hints`` are the seed's mappings (``step_index``,
        ``description``, ``actions``, ``risks``) or ``RollbackHint``s; without them, the hints
        the steps carry (a plan step's ``rollback``, or ``details={"rollback": {...}}`` on a
        recorded step).

        Example: ``RollbackPlanner.plan_rollback(record, [{"step_index": 0, "description":
        "drop the table", "actions": ["DROP TABLE t;"]}])``
        """
        given = recorded_hints(record) if hints is None else [_hint(item) for item in hints]
        by_step: dict[int, list[RollbackHint]] = {}
        for hint in given:
            by_step.setdefault(hint.step_index, []).append(hint)  # type: ignore[arg-type]

        names, order = _steps(record)
        effects = _effects_by_step(record, names)
        ran = [index for index in order if index in effects or _ran(record, index)]
        irreversible, warnings = [], []
        for index in ran:
            changed = effects.get(index, [])
            if any(not effect.reversible for effect in changed):
                irreversible.append(index)
            elif changed and index not in by_step:
                irreversible.append(index)
        loose = effects.get(None, [])  # effects not tied to a step
        if record.status is ExecutionStatus.STARTED:
            warnings.append("the execution has not ended (still running, or its process "
                            "died): more may have changed than the ledger shows")
        if any(event.event_type is StepEventType.FAILED for event in record.step_events):
            warnings.append("a step failed: it may have changed part of what it was to change; "
                            "check before undoing it")
        if record.side_effects_report.undeclared:
            warnings.append(f"{len(record.side_effects_report.undeclared)} side effect(s) were "
                            "observed that no step declared")
        for effect in loose:
            warnings.append(f"a side effect outside any step: {effect.description}"
                            f" ({'reversible' if effect.reversible else 'irreversible'})")

        hints_out = tuple(hint for index in reversed(ran) for hint in by_step.get(index, ()))
        manual = tuple(line for hint in hints_out for line in _checklist(hint, names))
        blocking_loose = [effect for effect in loose if not effect.reversible]
        if irreversible or blocking_loose:
            parts = []
            for index in irreversible:
                changed = effects.get(index, [])
                why = ("an irreversible side effect" if any(not e.reversible for e in changed)
                       else "side effects and no rollback hint")
                parts.append(f"step {index} ({names.get(index, '?')}) has {why}")
            parts += [f"an irreversible side effect outside any step ({effect.description})"
                      for effect in blocking_loose]
            reason = "rollback is not possible: " + "; ".join(parts)
            possible = False
        elif not ran or not any(effects.get(index) for index in ran) and not loose:
            reason = "nothing was changed (no step that ran had a side effect): nothing to undo"
            possible = True
        else:
            reason = (f"every change has a rollback hint and is reversible: {len(manual)} "
                      "manual step(s), in the order given (the reverse of execution)")
            possible = True
        return RollbackScaffold(record.execution_id, possible, reason, hints_out,
                                tuple(warnings), tuple(irreversible), manual)


def recorded_hints(record: ExecutionRecord) -> list[RollbackHint]:
    """The hints a record's steps carry in their started event's ``details["rollback"]`` (a
    mapping, or a text that is its description), each for the step that carries it: the one
    source of the hints the CLI, the report and the MCP server show."""
    found = []
    for event in record.step_events:
        hint = event.details.get("rollback") if event.event_type is StepEventType.STARTED else None
        if isinstance(hint, Mapping):
            found.append(_hint({**hint, "step_index": event.step_index}))
        elif isinstance(hint, str) and hint:
            found.append(RollbackHint(hint, step_index=event.step_index))
    return found


def _hint(item: RollbackHint | Mapping[str, Any]) -> RollbackHint:
    if isinstance(item, RollbackHint):
        if item.step_index is None:
            raise ValueError(f"rollback hint {item.description!r} names no step_index; give "
                             "the index of the step it undoes")
        return item
    if not isinstance(item, Mapping) or not isinstance(item.get("step_index"), int) \
            or isinstance(item.get("step_index"), bool):
        raise ValueError("a rollback hint is a mapping with an integer step_index, and "
                         f"description, actions and risks; got {item!r}")
    return RollbackHint(str(item.get("description") or ""), _texts(item.get("actions")),
                        _texts(item.get("risks")), step_index=item["step_index"])


def _texts(value: Any) -> tuple[str, ...]:
    """A hint's actions or risks as given: a list of texts, or one text."""
    if value is None or value == "":
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or \
            isinstance(value, Mapping):
        return (str(value),)
    return tuple(str(text) for text in value)


def _steps(record: ExecutionRecord) -> tuple[dict[int, str], list[int]]:
    names: dict[int, str] = {}
    for event in record.step_events:
        names.setdefault(event.step_index, event.step_name)
    return names, list(names)


def _ran(record: ExecutionRecord, index: int) -> bool:
    """Whether step ``index`` may have reached its action. The worst case unless the ledger
    says otherwise: a step that started ran, unless it completed as simulated or a guard
    blocked it before its action; one cancelled mid-way or never finished may have acted."""
    started = False
    for event in record.step_events:
        if event.step_index != index:
            continue
        started = True
        if event.event_type is StepEventType.COMPLETED and event.details.get("simulated"):
            return False
        if event.event_type is StepEventType.CANCELLED and event.details.get("blocked_by"):
            return False
    return started


def _effects_by_step(record: ExecutionRecord, names: Mapping[int, str]
                     ) -> dict[int | None, list[SideEffect]]:
    """What each step changed: what was observed, and what it declared unless it was only
    simulated (the worst case: a step that ran did what it declared, reported or not)."""
    found: dict[int | None, list[SideEffect]] = {}
    for effect in record.side_effects_report.observed:
        found.setdefault(effect.step_index, []).append(effect)
    for effect in record.side_effects_report.declared:
        if effect.step_index is not None and _ran(record, effect.step_index):
            found.setdefault(effect.step_index, []).append(effect)
    return found


def _checklist(hint: RollbackHint, names: Mapping[int, str]) -> list[str]:
    step = f"step {hint.step_index} ({names.get(hint.step_index, '?')})"  # type: ignore[arg-type]
    if not hint.actions:
        return [f"{step}: {hint.description}"]
    return [f"{step}: {action}" for action in hint.actions]
