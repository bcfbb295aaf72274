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
from typing import Any, Callable, Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.text import Text

from otel_execaudit.inspection.queries import ExecutionLog
from otel_execaudit.inspection.rebuild import ExecutionView
from otel_execaudit.inspection.rollback import RollbackScaffold
from otel_execaudit.inspection.visible import visible
from otel_execaudit.ledger import Ledger, canonical_bytes
from otel_execaudit.recording import ExecutionRecord, StepEventType
from otel_execaudit.recording.records import timestamp_now

__all__ = ["ExecutionDisplay", "HestiaAgent"]

_STATUS_STYLE = {"completed": "green", "completed_partial": "yellow", "failed": "red",
                 "blocked": "red", "incomplete": "red", "cancelled": "yellow",
                 "started": "yellow"}
_GUARD_SYMBOL = {"allow": "✓", "warn": "!", "deny": "✗"}
# Characters shown of one recorded field, and rows shown of one section: a terminal is for
# reading (``--json`` has everything); each cut says so where it was made.
NAME_CAP, TEXT_CAP, ROW_CAP = 200, 500, 1_000


class ExecutionDisplay:
    """Shows executions to a person. ``ledger`` is where confirmations are recorded;
    ``color`` defaults to whether stdout is a terminal; ``ask`` reads the typed confirmation
    (default: ``input`` when stdin is a terminal, else no confirmation is possible).
    ``kernel`` is accepted for the seed's ``HestiaAgent(kernel=kernel)``; nothing is read from
    it (the security snapshots are in the record).

    Every recorded value is shown as text, never as markup, with its control characters
    written out (``inspection.visible``), and cut to a bound that says so."""

    def __init__(self, *, ledger: str | os.PathLike[str] | None = None,
                 color: bool | None = None, width: int = 100,
                 ask: Callable[[str], str] | None = None, kernel: Any = None) -> None:
        self.ledger = None if ledger is None else pathlib.Path(ledger)
        self.color = sys.stdout.isatty() if color is None else color
        self.width = width
        self.kernel = kernel
        self._ask = ask

    # ----- the seed's four methods -----------------------------------------------------------

    def display_execution_summary(self, record: ExecutionRecord | ExecutionView) -> str:
        """The header (plan, id, status, mode, duration, trace), the steps, the side effects
        (irreversible first) and, for a view read from the ledger, guards and actions."""
        view = record if isinstance(record, ExecutionView) else None
        record = view.record if view else record  # type: ignore[union-attr]
        parts: list[RenderableType] = [self._header(record, view)]
        if record.step_events:
            rows = []
            for index, name, outcome, duration, error in step_rows(record):
                style = "red" if outcome == "failed" else "yellow" if outcome != "completed" else ""
                rows.append((str(index), _shown(name, NAME_CAP), Text(outcome, style=style),
                             "" if duration is None else f"{duration:.1f}",
                             _shown(error or "", TEXT_CAP)))
            kept = _kept(rows, lambda row: row[2].plain != "completed")
            parts += _table("Steps", ("#", "step", "outcome", "ms", "error"), kept, "steps",
                            len(rows))
        else:
            parts.append(Text("Steps: none recorded"))
        parts += self._effects(record)
        if view is not None and view.guards:
            parts.append(Text("Guards", style="bold"))
            for guard in view.guards[:ROW_CAP]:
                decision = _shown(guard.get("decision"), NAME_CAP)
                stage = guard.get("stage")
                where = f" [{_shown(stage, NAME_CAP)}]" if stage != "preflight" else ""
                parts.append(Text(f"  {_GUARD_SYMBOL.get(decision, '?')} {decision:<5} "
                                  f"{_shown(guard.get('guard'), NAME_CAP)}{where}: "
                                  f"{_shown(guard.get('message') or '', TEXT_CAP)}"))
            parts += _more(len(view.guards) - ROW_CAP, "guard decisions")
        if view is not None and view.actions:
            parts.append(Text("Actions", style="bold"))
            for action in view.actions[:ROW_CAP]:
                code = f" ({_shown(action.get('error_code'), NAME_CAP)})" \
                    if action.get("error_code") else ""
                parts.append(Text(f"  {_shown(action.get('action_type'), NAME_CAP)} via "
                                  f"{_shown(action.get('adapter'), NAME_CAP)}: "
                                  f"{_shown(action.get('status'), NAME_CAP)}{code}"))
            parts += _more(len(view.actions) - ROW_CAP, "actions")
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
        lines = [Text(f"Irreversible actions of {_shown(record.execution_id, NAME_CAP)} "
                      f"({len(effects)}{more})", style="bold")]
        if not effects and not possible:
            lines.append(Text("  none recorded"))
        for effect in effects[:ROW_CAP]:
            where = "outside any step" if effect.step_index is None else \
                f"step {effect.step_index} ({_shown(names.get(effect.step_index, '?'), NAME_CAP)})"
            line = Text("  ")
            line.append("✗ IRREVERSIBLE", style="bold red")
            line.append(f"  {where}: {effect.category.value}: "
                        f"{_shown(effect.description, TEXT_CAP)}")
            lines.append(line)
        lines += _more(len(effects) - ROW_CAP, "irreversible actions")
        for effect in possible[:ROW_CAP]:
            line = Text("  ")
            line.append("✗ IRREVERSIBLE?", style="bold red")
            line.append(f" step {effect.step_index} "
                        f"({_shown(names.get(effect.step_index, '?'), NAME_CAP)}): "
                        f"{effect.category.value}: {_shown(effect.description, TEXT_CAP)} "
                        "(declared; the step failed, so it may have happened)")
            lines.append(line)
        lines += _more(len(possible) - ROW_CAP, "possible irreversible actions")
        return self._render(Group(*lines))

    def show_rollback_guidance(self, scaffold: RollbackScaffold) -> str:
        """The scaffold as a checklist: possible or not and why, hints in the order to follow
        (the reverse of execution), risks, warnings. Nothing is executed. Hints are shown
        whole (they are what a person will do), with their control characters written out."""
        verdict = "possible (by hand)" if scaffold.is_rollback_possible else "NOT possible"
        lines = [Text(f"Rollback guidance for {visible(scaffold.execution_id)}: {verdict}",
                      style="bold " + ("green" if scaffold.is_rollback_possible else "red")),
                 Text(f"  {visible(scaffold.reason)}"),
                 Text("  Nothing here is executed: each step is yours to perform by hand.")]
        if scaffold.irreversible_steps:
            lines.append(Text("  ✗ irreversible steps: "
                              + ", ".join(map(str, scaffold.irreversible_steps)), style="red"))
        for hint in scaffold.rollback_hints:
            lines.append(Text(f"  Step {hint.step_index}: {visible(hint.description)}",
                              style="bold"))
            lines += [Text(f"    [ ] {visible(action)}") for action in hint.actions]
            lines += [Text(f"    risk: {visible(risk)}", style="yellow") for risk in hint.risks]
        lines += [Text(f"  ! {visible(warning)}", style="yellow")
                  for warning in scaffold.warnings]
        return self._render(Group(*lines))

    def confirm_manual_rollback(self, scaffold: RollbackScaffold) -> tuple[bool, str]:
        """Ask the person to type the execution id; record the confirmation (who, when, which
        scaffold) in the ledger. Returns ``(confirmed, reason)``; executes nothing. Refused
        when rollback is not possible, and when the ledger fails its check (nothing is asked
        then, nor recorded)."""
        if not scaffold.is_rollback_possible:
            return False, (f"refused: rollback of {scaffold.execution_id} is not possible "
                           f"({scaffold.reason}); there is nothing to confirm")
        if self.ledger is None:
            return False, "not confirmed: no ledger to record the confirmation in"
        problem = ledger_problem(self.ledger, scaffold.execution_id)
        if problem is not None:
            return False, problem
        ask = self._ask
        if ask is None:
            if not sys.stdin.isatty():
                return False, ("not confirmed: no terminal to ask on; a person must type the "
                               "execution id at `execaudit confirm-rollback ID`")
            ask = input
        try:
            typed = ask(f"Type the execution id ({visible(scaffold.execution_id)}) to confirm "
                        "that you will perform the rollback steps by hand: ")
        except (EOFError, KeyboardInterrupt):
            return False, "not confirmed: no answer was typed"
        if typed.strip() != scaffold.execution_id:
            return False, "not confirmed: the id typed does not match the execution id"
        entry = record_confirmation(self.ledger, scaffold)
        if "refused" in entry:
            return False, entry["refused"]
        return True, (f"confirmed by {entry['confirmed_by']} at {entry['ts']}, recorded at "
                      f"ledger seq {entry['seq']}; nothing was executed: perform the steps "
                      "by hand")

    # ----- plumbing --------------------------------------------------------------------------

    def _header(self, record: ExecutionRecord, view: ExecutionView | None) -> RenderableType:
        status = record.status.value
        text = Text()
        text.append(_shown(record.plan_id, NAME_CAP), style="bold")
        text.append(f"  execution {_shown(record.execution_id, NAME_CAP)}\n")
        text.append("status ")
        text.append(status.upper(), style="bold " + _STATUS_STYLE.get(status, ""))
        text.append(f"  mode {_shown(record.live_mode_state, NAME_CAP)}")
        duration = view.duration_ms if view else (
            None if record.timestamp_end is None
            else (record.timestamp_end - record.timestamp_start).total_seconds() * 1e3)
        text.append(f"  duration {'-' if duration is None else f'{duration:.1f} ms'}\n")
        text.append(f"started {record.timestamp_start:%Y-%m-%d %H:%M:%S} UTC"
                    f"  trace {_shown(record.trace_id or '-', NAME_CAP)}")
        if view is not None and view.tenant:
            text.append(f"  tenant {_shown(view.tenant, NAME_CAP)}")
        if view is not None and view.runs > 1:
            text.append(f"\nrun {view.run} of {view.runs} under this id")
        if record.reason:
            text.append(f"\nreason: {_shown(record.reason, TEXT_CAP)}")
        return text

    def _effects(self, record: ExecutionRecord) -> list[RenderableType]:
        observed = sorted(record.side_effects_report.observed, key=lambda e: e.reversible)
        if not observed:
            return [Text("Side effects: none observed")]
        names = step_names(record)
        rows = []
        for effect in observed[:ROW_CAP]:
            mark = Text("✗ IRREVERSIBLE", style="bold red") if not effect.reversible \
                else Text("↺ reversible")
            where = "-" if effect.step_index is None else \
                f"{effect.step_index} {_shown(names.get(effect.step_index, ''), NAME_CAP)}".strip()
            rows.append((mark, where, effect.category.value,
                         _shown(effect.description, TEXT_CAP)))
        return _table("Side effects (irreversible first)", ("", "step", "category",
                                                             "description"),
                      rows, "side effects", len(observed))

    def _render(self, renderable: RenderableType) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, width=self.width, force_terminal=self.color,
                          no_color=not self.color, highlight=False, emoji=False, markup=False)
        console.print(renderable, soft_wrap=True)  # a long line stays one line: greppable
        return buffer.getvalue().rstrip("\n")


HestiaAgent = ExecutionDisplay  # the seed's name


def _shown(value: Any, cap: int) -> str:
    """A recorded value as one visible line, cut to ``cap`` characters with a marker."""
    text = visible(value)
    if len(text) <= cap:
        return text
    return f"{text[:cap]}… [{len(text) - cap:,} more characters; --json has them]"


def _kept(rows: list[tuple[Any, ...]], important: Callable[[tuple[Any, ...]], bool]
          ) -> list[tuple[Any, ...]]:
    """At most ``ROW_CAP`` rows, in order: the important ones (failed, unfinished) first kept."""
    if len(rows) <= ROW_CAP:
        return rows
    keep = {id(row) for row in sorted(rows, key=lambda row: not important(row))[:ROW_CAP]}
    return [row for row in rows if id(row) in keep]


def _more(count: int, noun: str) -> list[Text]:
    return [Text(f"  … {count:,} more {noun} not shown (--json has them)", style="italic")] \
        if count > 0 else []


def _table(title: str, headings: Sequence[str], rows: Sequence[Sequence[Any]], noun: str,
           total: int) -> list[Text]:
    """A table as lines of text, columns two spaces apart (what Rich's Table gave, without
    its cost: 5,000 rows render in a tenth of a second, not two)."""
    cells = [[cell if isinstance(cell, Text) else Text(cell) for cell in row] for row in rows]
    widths = [max([cell_len(heading)] + [cell_len(row[number].plain) for row in cells])
              for number, heading in enumerate(headings)]

    def line(row: Iterable[Text]) -> Text:
        out = Text()
        row = list(row)
        for number, cell in enumerate(row):
            out.append_text(cell)
            if number < len(row) - 1:
                out.append(" " * (widths[number] - cell_len(cell.plain) + 2))
        out.rstrip()
        return out

    return [Text(title), line(Text(heading) for heading in headings),
            *(line(row) for row in cells), *_more(total - len(rows), noun)]


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


def ledger_problem(path: pathlib.Path, execution_id: str) -> str | None:
    """Why a confirmation for ``execution_id`` cannot be recorded in the ledger at ``path``
    (not there, no such execution, the ledger failed its check), or None."""
    from otel_execaudit.errors import LedgerError, UnknownExecutionError

    try:
        with ExecutionLog(path) as log:
            log.get_execution(execution_id)
            integrity = log.integrity
    except (LedgerError, UnknownExecutionError) as error:
        return f"not confirmed: {visible(str(error))}"
    if not integrity.ok:
        return ("refused: the ledger failed verification"
                + ("" if integrity.first_bad_seq is None else f" at seq {integrity.first_bad_seq}")
                + f" ({visible(integrity.reason or '')}); nothing recorded: run `execaudit "
                "verify` on it")
    return None


def record_confirmation(path: pathlib.Path, scaffold: RollbackScaffold) -> dict[str, Any]:
    """Append ``rollback.confirmed`` (who, when, the scaffold and its digest) to the ledger;
    ``{"refused": reason}`` instead when the ledger fails its check (or the execution is not in
    it): nothing is recorded in a ledger that cannot be trusted."""
    problem = ledger_problem(path, scaffold.execution_id)
    if problem is not None:
        return {"refused": problem}
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
