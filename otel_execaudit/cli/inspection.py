"""``execaudit executions``, ``show``, ``rollback``, ``confirm-rollback``, ``last-error`` and
``report``: what happened, read from the ledger. The ledger is checked before anything is shown,
and a failed check is said first. Nothing here executes a rollback.

Exit statuses, for every command here: 0 shown, 1 the ledger failed verification (shown after
the warning; nothing shown when what was asked cannot be rebuilt or the file broke under the
read), 2 no ledger there (missing, not a ledger, a newer format, unreadable), 3 no such execution
(an unknown id, an ambiguous prefix, an empty ledger), 4 rollback not possible or not
confirmed (``rollback``, ``confirm-rollback``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from otel_execaudit.cli import _verbose, error_document, main
from otel_execaudit.errors import LedgerError, UnknownExecutionError, UnreadableExecutionError
from otel_execaudit.inspection import (
    ExecutionDisplay,
    ExecutionLog,
    Integrity,
    RollbackPlanner,
    RollbackScaffold,
    get_last_error,
)
from otel_execaudit.inspection.queries import STATUSES
from otel_execaudit.inspection.visible import visible, visible_json
from otel_execaudit.ledger import default_ledger_path
from otel_execaudit.recording.records import escaped_text

EXIT_SHOWN, EXIT_TAMPERED, EXIT_NO_LEDGER, EXIT_NO_EXECUTION, EXIT_NOT_POSSIBLE = 0, 1, 2, 3, 4

_ledger_option = click.option(
    "--ledger", "ledger_path", type=click.Path(path_type=Path),
    help="Ledger file (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@contextmanager
def _reading(ledger_path: Path | None, as_json: bool) -> Iterator[ExecutionLog]:
    """Open the ledger; a ledger that is not there (2) or an execution that is not (3) is a
    clear message, as text or as an ``otel-execaudit.error/1`` document, never a traceback.
    An entry that cannot be read as the recorder writes it (a tampered one, or one appended by
    other code) is said so: 1 with the warning first when the ledger failed its check, else 2."""
    target = ledger_path or default_ledger_path()
    try:
        log = ExecutionLog(target)
    except LedgerError as error:
        _fail(error, as_json, EXIT_NO_LEDGER)
    try:
        yield log
    except UnknownExecutionError as error:
        _fail(error, as_json, EXIT_NO_EXECUTION, log.integrity)
    except UnreadableExecutionError as error:
        _fail(error, as_json, EXIT_TAMPERED if error.tampered else EXIT_NO_LEDGER, log.integrity)
    except sqlite3.DatabaseError as error:  # the file broke under the read: damaged
        _fail(LedgerError(f"{target} could not be read to the end ({error}): the file is "
                          "damaged. Run `execaudit verify` on it, and restore it from a copy."),
              as_json, EXIT_TAMPERED)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as error:
        integrity = log.integrity
        why = ("it was changed: the ledger failed verification" if not integrity.ok
               else "the ledger verifies, but the entry is not one the recorder writes")
        problem = LedgerError(f"an entry in {target} cannot be read as an execution "
                              f"({type(error).__name__}: {error}): {why}.")
        _fail(problem, as_json, EXIT_NO_LEDGER if integrity.ok else EXIT_TAMPERED, integrity)
    finally:
        log.close()


def _fail(error: Exception, as_json: bool, status: int, integrity: Integrity | None = None
          ) -> None:
    """Say why nothing is shown; a failed check of the ledger is said first, even so."""
    if as_json:
        document = error_document(type(error).__name__, str(error))
        if integrity is not None:
            document = {"integrity": integrity.to_dict(), **document}
        click.echo(json.dumps(document, indent=2))
    else:
        if integrity is not None and integrity.warning:
            click.echo(visible(integrity.warning), err=True)
        click.echo(f"execaudit: {visible(str(error))}", err=True)
    sys.exit(status)


def _show(log: ExecutionLog, as_json: bool, document: Callable[[], dict[str, Any]],
          text: Callable[[], str], status: int = EXIT_SHOWN) -> None:
    """Print one result: the integrity warning first, then the data; exit 1 if the ledger
    failed its check, else ``status``."""
    body = document()  # read first: the check covers what was read
    shown = None if as_json else text()
    integrity = log.integrity
    if as_json:
        click.echo(visible_json(json.dumps({"integrity": integrity.to_dict(), **body}, indent=2,
                                           ensure_ascii=False, default=str)))
    else:
        if integrity.warning:
            click.echo(visible(integrity.warning))
        click.echo(shown)
    sys.exit(EXIT_TAMPERED if not integrity.ok else status)


def _moment(context: click.Context, parameter: click.Parameter, value: str | None
            ) -> datetime | None:
    """--since/--until as a time: a typo is a usage error, not an empty listing."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time such as 2026-12-01 or "
                                 "2026-12-01T08:00 (UTC) or 2026-12-01T09:00+01:00.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@main.command("executions")
@_verbose
@_ledger_option
@_json_option
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False),
              help="Only executions whose latest run is so.")
@click.option("--plan", "plan_id", help="Only this plan id.")
@click.option("--mode", type=click.Choice(["DRY_RUN", "LIVE"], case_sensitive=False))
@click.option("--since", callback=_moment,
              help="Started at or after this time, UTC unless it names an offset (2026-12-01, "
                   "2026-12-01T08:00, 2026-12-01T09:00+01:00).")
@click.option("--until", callback=_moment, help="Started before this time (as --since).")
@click.option("--tenant", help="Only this tenant (the executor's client id).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def executions_command(ledger_path: Path | None, as_json: bool, status: str | None,
                       plan_id: str | None, mode: str | None, since: datetime | None,
                       until: datetime | None, tenant: str | None, limit: int) -> None:
    """List the newest executions first."""
    with _reading(ledger_path, as_json) as log:
        found = log.list_executions(status=status, plan_id=plan_id, mode=mode, since=since,
                                    until=until, tenant=tenant, limit=limit)

        def text() -> str:
            if not found:
                return "no executions recorded" + (" that match" if log.last_seq >= 0 else "")
            lines = [f"{'started (UTC)':<19}  {'status':<17} {'mode':<7} {'ms':>9}  "
                     "execution id / plan"]
            for item in found:
                duration = "-" if item.duration_ms is None else f"{item.duration_ms:.1f}"
                failed = f"  failed at {visible(item.failed_step)}" if item.failed_step else ""
                lines.append(f"{visible(item.started_at[:19]):<19}  {visible(item.status):<17} "
                             f"{visible(item.mode):<7} {duration:>9}  "
                             f"{visible(item.execution_id)}  {visible(item.plan_id)}{failed}")
            if log.unreadable:
                lines.append(f"({len(log.unreadable)} execution(s) left out: their entries "
                             "cannot be rebuilt; `execaudit show ID` says why)")
            return "\n".join(lines)

        _show(log, as_json, lambda: {"format": "otel-execaudit.executions/1",
                                     "executions": [item.to_dict() for item in found],
                                     "unreadable": sorted(log.unreadable)}, text)


@main.command("show")
@_verbose
@click.argument("reference", metavar="ID|last")
@_ledger_option
@_json_option
@click.option("--run", type=click.IntRange(min=1),
              help="Which run of an id that holds several (a replay reuses its id).")
def show_command(reference: str, ledger_path: Path | None, as_json: bool,
                 run: int | None) -> None:
    """Show one execution (an id, a unique prefix of one, or `last`)."""
    with _reading(ledger_path, as_json) as log:
        view = log.get_execution(reference, run=run)
        display = ExecutionDisplay(color=None)
        _show(log, as_json, lambda: {"format": "otel-execaudit.execution/1", **view.to_dict()},
              lambda: "\n\n".join((display.display_execution_summary(view),
                                   display.show_irreversible_actions(view))))


@main.command("rollback")
@_verbose
@click.argument("reference", metavar="ID|last")
@_ledger_option
@_json_option
def rollback_command(reference: str, ledger_path: Path | None, as_json: bool) -> None:
    """Show the rollback guidance of an execution: the hints of the steps that ran, in the
    order to follow. Nothing is executed. Exit 4 when rollback is not possible."""
    with _reading(ledger_path, as_json) as log:
        view = log.get_execution(reference)
        scaffold = RollbackPlanner.plan_rollback(view.record)
        _show(log, as_json,
              lambda: {"format": "otel-execaudit.rollback/1", **scaffold.to_dict()},
              lambda: ExecutionDisplay().show_rollback_guidance(scaffold),
              EXIT_SHOWN if scaffold.is_rollback_possible else EXIT_NOT_POSSIBLE)


@main.command("confirm-rollback")
@_verbose
@click.argument("reference", metavar="ID|last")
@_ledger_option
@_json_option
def confirm_rollback_command(reference: str, ledger_path: Path | None, as_json: bool) -> None:
    """Confirm that you will roll an execution back by hand: type its id when asked. The
    confirmation (who, when, which guidance) is recorded in the ledger; nothing is executed.
    Exit 4 when not confirmed (no terminal, another id typed) or not possible."""
    target = ledger_path or default_ledger_path()
    with _reading(target, as_json) as log:
        view = log.get_execution(reference)
        scaffold = RollbackPlanner.plan_rollback(view.record)
        ask = _ask_on_stderr if sys.stdin.isatty() else None
        display = ExecutionDisplay(ledger=target, ask=ask)
        guidance = display.show_rollback_guidance(scaffold)
        if not log.integrity.ok:  # the warning first, then the guidance: nothing is asked
            _show(log, as_json, lambda: _confirmation(scaffold, False, "refused: the ledger "
                                                      "failed verification"),
                  lambda: f"{guidance}\nnot confirmed: the ledger failed verification; "
                          "nothing recorded")
        if not as_json:
            click.echo(guidance)
        confirmed, reason = display.confirm_manual_rollback(scaffold)
        _show(log, as_json, lambda: _confirmation(scaffold, confirmed, reason),
              lambda: visible(reason), EXIT_SHOWN if confirmed else EXIT_NOT_POSSIBLE)


def _ask_on_stderr(prompt: str) -> str:
    """Ask on stderr, so that stdout holds only the result (JSON with --json)."""
    click.echo(prompt, err=True, nl=False)
    return input()


def _confirmation(scaffold: RollbackScaffold, confirmed: bool, reason: str) -> dict[str, Any]:
    """``confirmation/1``: the scaffold's fields, with ``reason`` the confirmation's and the
    scaffold's own reason as ``rollback_reason``."""
    return {"format": "otel-execaudit.confirmation/1", **scaffold.to_dict(),
            "confirmed": confirmed, "reason": reason, "rollback_reason": scaffold.reason}


@main.command("last-error")
@_verbose
@_ledger_option
@_json_option
@click.option("--tool", "tool_name", help="Only failures of this step (tool) name.")
@click.option("--plan", "plan_id", help="Only failures of this plan id.")
@click.option("--tenant", help="Only failures of this tenant.")
def last_error_command(ledger_path: Path | None, as_json: bool, tool_name: str | None,
                       plan_id: str | None, tenant: str | None) -> None:
    """Show the most recent failure: the relevant frame of your code, the exception chain and
    the full traceback. No failure recorded is an answer too (exit 0)."""
    with _reading(ledger_path, as_json) as log:
        error = get_last_error(tool_name, plan_id=plan_id, tenant=tenant, log=log)
        _show(log, as_json,
              lambda: {"format": "otel-execaudit.last-error/1", "found": error is not None,
                       "error": None if error is None else error.to_dict()},
              lambda: str(error) if error else "no failure recorded"
              + (f" for tool {visible(repr(tool_name))}" if tool_name else ""))


@main.command("report")
@_verbose
@click.argument("reference", metavar="ID|last")
@_ledger_option
@click.option("--html", "html_path", required=True, type=click.Path(path_type=Path),
              help="Where to write the report (one self-contained HTML file); it must not "
                   "exist yet, unless --force.")
@click.option("--force", is_flag=True,
              help="Write over an existing file (never over the ledger, nor its -wal/-shm).")
@_json_option
def report_command(reference: str, ledger_path: Path | None, html_path: Path, force: bool,
                   as_json: bool) -> None:
    """Write an execution's report as one self-contained HTML file (no network, no script).
    An existing file is refused (exit 64) unless --force; the ledger itself always is."""
    from otel_execaudit.inspection.report import render_report

    target = ledger_path or default_ledger_path()
    _refuse_output(html_path, target, force)  # before anything is read
    with _reading(target, as_json) as log:
        view = log.get_execution(reference)
        scaffold = RollbackPlanner.plan_rollback(view.record)
        page = render_report(view, scaffold, log.integrity)
        try:
            _write_report(html_path, target, force, page)
        except OSError as error:
            _fail(error, as_json, EXIT_NO_LEDGER)
        _show(log, as_json, lambda: {"format": "otel-execaudit.report/1",
                                     "execution_id": view.record.execution_id,
                                     "html": escaped_text(str(html_path)), "bytes": len(page)},
              lambda: f"wrote {visible(str(html_path))} ({len(page):,} bytes)")


def _ledger_files(ledger: Path) -> list[Path]:
    """The ledger and the files SQLite keeps beside it: none may become a report."""
    return [ledger, *(Path(f"{ledger}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]


def _is_ledger_file(status: os.stat_result, ledger: Path) -> bool:
    """Whether ``status`` (of the output) is the ledger's or one of its files': the same file
    by device and inode, so a symlink or a hard link to it is seen through."""
    for path in _ledger_files(ledger):
        try:
            other = os.stat(path)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (status.st_dev, status.st_ino):
            return True
    return False


def _refuse_output(html_path: Path, ledger: Path, force: bool) -> None:
    """A usage error (64) for an output that is the ledger (even with --force) or that exists
    (without it)."""
    try:
        status = os.stat(html_path)
    except OSError:
        status = None
    if status is not None and stat.S_ISDIR(status.st_mode):
        return  # not a file to write over: writing says it cannot (exit 2)
    if status is not None and _is_ledger_file(status, ledger):
        raise click.BadParameter(f"{visible(str(html_path))} is the ledger ({visible(str(ledger))}) "
                                 "or one of its files: a report never writes over it, even with "
                                 "--force; name another file.", param_hint="--html")
    if not force and (status is not None or os.path.lexists(html_path)):
        raise click.BadParameter(f"{visible(str(html_path))} exists; give --force to write over "
                                 "it, or name another file.", param_hint="--html")


def _write_report(html_path: Path, ledger: Path, force: bool, page: str) -> None:
    """Write ``page`` to ``html_path``: a new file (O_EXCL, so a file that appeared meanwhile
    is not written over), or with --force the file opened first and checked to be no ledger
    file before it is truncated."""
    flags = os.O_WRONLY | os.O_CREAT | (0 if force else os.O_EXCL)
    try:
        descriptor = os.open(html_path, flags, 0o644)
    except FileExistsError:
        if os.path.isdir(html_path):
            raise IsADirectoryError(f"{html_path} is a directory: name a file in it") from None
        raise click.BadParameter(f"{visible(str(html_path))} exists; give --force to write over "
                                 "it, or name another file.", param_hint="--html") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        if _is_ledger_file(os.fstat(descriptor), ledger):
            raise click.BadParameter(f"{visible(str(html_path))} is the ledger: a report never "
                                     "writes over it, even with --force.", param_hint="--html")
        file.truncate(0)
        file.write(page)
