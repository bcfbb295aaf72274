"""The seed's "Hestia" displays: an execution's summary, its irreversible actions, its rollback
guidance, and the confirmation that a person will roll back by hand.

Each display returns text: styled for a terminal, plain otherwise (``color=False``). Nothing
here executes anything; ``confirm_manual_rollback`` only records that a person confirmed::

    >>> import otel_execaudit, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
    >>> _ = otel_execaudit.configure(ledger=path, exporter="none")
    >>> with otel_execaudit.execution("cleanup", execution_id="run-9") as ex:
    ...     with ex.step("delete_files") as st:
    ...         _ = st.side_effect("file_system", "deleted /tmp/cache")
    >>> otel_execaudit.shutdown()
    >>> display = ExecutionDisplay(ledger=path, color=False)
    >>> print(display.show_irreversible_actions(ex.record))
    Irreversible actions of run-9 (1)
      ✗ IRREVERSIBLE  step 0 (delete_files): file_system: deleted /tmp/cache
"""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import pathlib
import sys
from typing import Any, Callable

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from otel_execaudit.inspection.queries import ExecutionLog
from otel_execaudit.inspection.rebuild import ExecutionView
from otel_execaudit.inspection.rollback import RollbackScaffold
from otel_execaudit.ledger import Ledger, canonical_bytes
from otel_execaudit.recording import ExecutionRecord, StepEventType
from otel_execaudit.recording.records import timestamp_now

__all__ = ["ExecutionDisplay", "HestiaAgent"]

_STATUS_STYLE = {"completed": "green", "completed_partial": "yellow", "failed": "red",
                 "blocked": "red", "incomplete": "red", "cancelled": "yellow",
                 "started": "yellow"}
_GUARD_SYMBOL = {"allow": "✓", "warn": "!", "deny": "✗"}


class ExecutionDisplay:
    """Shows executions to a person. ``ledger`` is where confirmations are recorded;
    ``color`` defaults to whether stdout is a terminal; ``ask`` reads the typed confirmation
    (default: ``input`` when stdin is a terminal, else no confirmation is possible)."""

    def __init__(self, *, ledger: str | os.PathLike[str] | None = None,
                 color: bool | None = None, width: int = 100,
                 ask: Callable[[str], str] | None = None) -> None:
        self.ledger = None if ledger is None else pathlib.Path(ledger)
        self.color = sys.stdout.isatty() if color is None else color
        self.width = width
        self._ask = ask

    # ----- the seed's four methods -----------------------------------------------------------

    def display_execution_summary(self, record: ExecutionRecord | ExecutionView) -> str:
        """The header (plan, id, status, mode, duration, trace), the steps, the side effects
        (irreversible first) and, for a view read from the ledger, guards and actions."""
        view = record if isinstance(record, ExecutionView) else None
        record = view.record if view else record  # type: ignore[union-attr]
        parts: list[RenderableType] = [self._header(record, view)]
        steps = Table("#", "step", "outcome", "ms", "error", box=None, pad_edge=False,
                      title_justify="left", title="Steps")
        for index, name, outcome, duration, error in step_rows(record):
            style = "red" if outcome == "failed" else "yellow" if outcome != "completed" else ""
            steps.add_row(str(index), name, Text(outcome, style=style),
                          "" if duration is None else f"{duration:.1f}", error or "")
        parts.append(steps if record.step_events else Text("Steps: none recorded"))
        parts.append(self._effects(record))
        if view is not None and view.guards:
            parts.append(Text("Guards", style="bold"))
            for guard in view.guards:
                decision = str(guard.get("decision"))
                where = f" [{guard.get('stage')}]" if guard.get("stage") != "preflight" else ""
                parts.append(Text(f"  {_GUARD_SYMBOL.get(decision, '?')} {decision:<5} "
                                  f"{guard.get('guard')}{where}: {guard.get('message') or ''}"))
        if view is not None and view.actions:
            parts.append(Text("Actions", style="bold"))
            for action in view.actions:
                code = f" ({action.get('error_code')})" if action.get("error_code") else ""
                parts.append(Text(f"  {action.get('action_type')} via {action.get('adapter')}:"
                                  f" {action.get('status')}{code}"))
        return self._render(Group(*parts))

    def show_irreversible_actions(self, record: ExecutionRecord | ExecutionView) -> str:
        """The side effects that cannot be undone, marked by text, not by colour alone."""
        record = record.record if isinstance(record, ExecutionView) else record
        names = step_names(record)
        effects = record.side_effects_report.irreversible
        # A step that failed may have made the irreversible change it declared (the rollback
        # guidance counts it so): shown too, as possible, not as observed.
        failed = {event.step_index for event in record.step_events
                  if event.event_type is StepEventType.FAILED}
        seen = {(effect.step_index, effect.category, effect.description) for effect in effects}
        possible = [effect for effect in record.side_effects_report.declared
                    if not effect.reversible and effect.step_index in failed
                    and (effect.step_index, effect.category, effect.description) not in seen]
        more = f", {len(possible)} more possible" if possible else ""
        lines = [Text(f"Irreversible actions of {record.execution_id} ({len(effects)}{more})",
                      style="bold")]
        if not effects and not possible:
            lines.append(Text("  none recorded"))
        for effect in effects:
            where = "outside any step" if effect.step_index is None else \
                f"step {effect.step_index} ({names.get(effect.step_index, '?')})"
            line = Text("  ")
            line.append("✗ IRREVERSIBLE", style="bold red")
            line.append(f"  {where}: {effect.category.value}: {effect.description}")
            lines.append(line)
        for effect in possible:
            line = Text("  ")
            line.append("✗ IRREVERSIBLE?", style="bold red")
            line.append(f" step {effect.step_index} ({names.get(effect.step_index, '?')}): "
                        f"{effect.category.value}: {effect.description} (declared; the step "
                        "failed, so it may have happened)")
            lines.append(line)
        return self._render(Group(*lines))

    def show_rollback_guidance(self, scaffold: RollbackScaffold) -> str:
        """The scaffold as a checklist: possible or not and why, hints in the order to follow
        (the reverse of execution), risks, warnings. Nothing is executed."""
        verdict = "possible (by hand)" if scaffold.is_rollback_possible else "NOT possible"
        lines = [Text(f"Rollback guidance for {scaffold.execution_id}: {verdict}",
                      style="bold " + ("green" if scaffold.is_rollback_possible else "red")),
                 Text(f"  {scaffold.reason}"),
                 Text("  Nothing here is executed: each step is yours to perform by hand.")]
        if scaffold.irreversible_steps:
            lines.append(Text("  ✗ irreversible steps: "
                              + ", ".join(map(str, scaffold.irreversible_steps)), style="red"))
        for hint in scaffold.rollback_hints:
            lines.append(Text(f"  Step {hint.step_index}: {hint.description}", style="bold"))
            lines += [Text(f"    [ ] {action}") for action in hint.actions]
            lines += [Text(f"    risk: {risk}", style="yellow") for risk in hint.risks]
        lines += [Text(f"  ! {warning}", style="yellow") for warning in scaffold.warnings]
        return self._render(Group(*lines))

    def confirm_manual_rollback(self, scaffold: RollbackScaffold) -> tuple[bool, str]:
        """Ask the person to type the execution id; record the confirmation (who, when, which
        scaffold) in the ledger. Returns ``(confirmed, reason)``; executes nothing."""
        if not scaffold.is_rollback_possible:
            return False, (f"refused: rollback of {scaffold.execution_id} is not possible "
                           f"({scaffold.reason}); there is nothing to confirm")
        ask = self._ask
        if ask is None:
            if not sys.stdin.isatty():
                return False, ("not confirmed: no terminal to ask on; a person must type the "
                               "execution id at `execaudit confirm-rollback ID`")
            ask = input
        try:
            typed = ask(f"Type the execution id ({scaffold.execution_id}) to confirm that you "
                        "will perform the rollback steps by hand: ")
        except (EOFError, KeyboardInterrupt):
            return False, "not confirmed: no answer was typed"
        if typed.strip() != scaffold.execution_id:
            return False, "not confirmed: the id typed does not match the execution id"
        if self.ledger is None:
            return False, "not confirmed: no ledger to record the confirmation in"
        entry = record_confirmation(self.ledger, scaffold)
        return True, (f"confirmed by {entry['confirmed_by']} at {entry['ts']}, recorded at "
                      f"ledger seq {entry['seq']}; nothing was executed: perform the steps "
                      "by hand")

    # ----- plumbing --------------------------------------------------------------------------

    def _header(self, record: ExecutionRecord, view: ExecutionView | None) -> RenderableType:
        status = record.status.value
        text = Text()
        text.append(f"{record.plan_id}", style="bold")
        text.append(f"  execution {record.execution_id}\n")
        text.append("status ")
        text.append(status.upper(), style="bold " + _STATUS_STYLE.get(status, ""))
        text.append(f"  mode {record.live_mode_state}")
        duration = view.duration_ms if view else (
            None if record.timestamp_end is None
            else (record.timestamp_end - record.timestamp_start).total_seconds() * 1e3)
        text.append(f"  duration {'-' if duration is None else f'{duration:.1f} ms'}\n")
        text.append(f"started {record.timestamp_start:%Y-%m-%d %H:%M:%S} UTC"
                    f"  trace {record.trace_id or '-'}")
        if view is not None and view.tenant:
            text.append(f"  tenant {view.tenant}")
        if view is not None and view.runs > 1:
            text.append(f"\nrun {view.run} of {view.runs} under this id")
        if record.reason:
            text.append(f"\nreason: {record.reason}")
        return text

    def _effects(self, record: ExecutionRecord) -> RenderableType:
        observed = sorted(record.side_effects_report.observed, key=lambda e: e.reversible)
        if not observed:
            return Text("Side effects: none observed")
        names = step_names(record)
        table = Table("", "step", "category", "description", box=None, pad_edge=False,
                      title="Side effects (irreversible first)", title_justify="left")
        for effect in observed:
            mark = Text("✗ IRREVERSIBLE", style="bold red") if not effect.reversible \
                else Text("↺ reversible")
            where = "-" if effect.step_index is None else \
                f"{effect.step_index} {names.get(effect.step_index, '')}".strip()
            table.add_row(mark, where, effect.category.value, effect.description)
        return table

    def _render(self, renderable: RenderableType) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, width=self.width, force_terminal=self.color,
                          no_color=not self.color, highlight=False, emoji=False)
        console.print(renderable, soft_wrap=True)  # a long line stays one line: greppable
        return buffer.getvalue().rstrip("\n")


HestiaAgent = ExecutionDisplay  # the seed's name


def step_names(record: ExecutionRecord) -> dict[int, str]:
    names: dict[int, str] = {}
    for event in record.step_events:
        names.setdefault(event.step_index, event.step_name)
    return names


def step_rows(record: ExecutionRecord) -> list[tuple[int, str, str, float | None, str | None]]:
    """One row per step: index, name, last outcome, duration in ms, error message."""
    rows: dict[int, list[Any]] = {}
    for event in record.step_events:
        row = rows.setdefault(event.step_index, [event.step_index, event.step_name, "started",
                                                 event.timestamp, None, None])
        if event.event_type is not StepEventType.STARTED:
            row[2] = event.event_type.value
            row[4] = (event.timestamp - row[3]).total_seconds() * 1e3
            row[5] = event.error_message
    return [(index, name, outcome, duration, error)
            for index, name, outcome, _, duration, error in rows.values()]


def record_confirmation(path: pathlib.Path, scaffold: RollbackScaffold) -> dict[str, Any]:
    """Append ``rollback.confirmed`` (who, when, the scaffold and its digest) to the ledger."""
    with ExecutionLog(path) as log:
        view = log.get_execution(scaffold.execution_id)
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name: the uid is still an answer
        who = f"uid {os.getuid()}"
    document = scaffold.to_dict()
    ledger = Ledger(path)
    try:
        now = timestamp_now()
        entry = ledger.append({
            "kind": "rollback.confirmed", "ts": now, "execution_id": scaffold.execution_id,
            "plan_id": view.record.plan_id, "trace_id": view.record.trace_id, "span_id": None,
            "data": {"confirmed_by": who, "scaffold": document, "executed": False,
                     "scaffold_sha256": hashlib.sha256(canonical_bytes(document)).hexdigest()}})
        ledger.sync()
    finally:
        ledger.close()
    return {"confirmed_by": who, "ts": now, "seq": entry.seq}
