"""The ``execaudit`` command.

::

    $ execaudit demo                 # run the bundled example, print what happened
    $ execaudit verify               # check the default ledger; exit 0 intact, 1 tampered, 2 missing
    $ execaudit verify ledger.db --json
    $ execaudit plan plan.yaml --adapters my_adapters      # the dry run and its plan hash
    $ execaudit execute plan.yaml --client-id 1            # DRY_RUN unless --live is given
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otel_execaudit.errors import (
    ExecAuditError,
    LedgerError,
    LedgerNotFoundError,
    NotALedgerError,
)
from otel_execaudit.ledger.store import default_ledger_path
from otel_execaudit.telemetry.logs import LEVELS, set_level
from otel_execaudit.recording.records import ExecutionRecord, ExecutionStatus, StepEventType, escaped_text
from otel_execaudit.ledger.verify import VerifyReport, verify

EXIT_INTACT, EXIT_TAMPERED, EXIT_UNREADABLE = 0, 1, 2

_STATUS_STYLE = {
    ExecutionStatus.COMPLETED: "green", ExecutionStatus.COMPLETED_PARTIAL: "yellow",
    ExecutionStatus.FAILED: "red", ExecutionStatus.INCOMPLETE: "red",
    ExecutionStatus.CANCELLED: "yellow", ExecutionStatus.BLOCKED: "red", ExecutionStatus.STARTED: "cyan",
}
_EVENT_MARK = {StepEventType.COMPLETED: "[green]✓[/]", StepEventType.FAILED: "[red]✗[/]",
               StepEventType.CANCELLED: "[yellow]○[/]", StepEventType.STARTED: "·"}


EXIT_USAGE = 64  # sysexits' EX_USAGE: apart from every status a command reports


@contextmanager
def _usage_errors(as_json: bool) -> Iterator[None]:
    """A usage error (an unknown option, a missing argument, a bad choice) exits 64 from every
    command: click's own 2 would read as "not a ledger" from verify and as "changes pending"
    from execute. With --json, stdout carries it as a JSON document too."""
    try:
        yield
    except click.UsageError as error:
        error.exit_code = EXIT_USAGE
        if as_json:
            click.echo(json.dumps(error_document("UsageError", error.format_message()),
                                  indent=2))
        raise


def error_document(error_type: str, message: str) -> dict[str, Any]:
    """What ``--json`` prints when a command could not run: bad input, a usage error.
    Its format is ``otel-execaudit.error/1`` (docs/result-format.md)."""
    return {"format": "otel-execaudit.error/1", "ok": False,
            "error": {"type": error_type, "message": escaped_text(message)}}


class Commands(click.Group):
    """The ``execaudit`` group: one convention for usage errors across its commands."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        """Parse ``args`` as click does; a usage error exits 64 (see :func:`_usage_errors`)."""
        as_json = "--json" in args
        with _usage_errors(as_json):
            context = super().make_context(info_name, args, parent, **extra)
        context.meta["execaudit.json"] = as_json
        return context

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command as click does; a usage error exits 64 (see :func:`_usage_errors`)."""
        previous = set_level(None)  # the command's -v applies to this invocation alone
        try:
            with _usage_errors(ctx.meta.get("execaudit.json", False)):
                return super().invoke(ctx)
        finally:
            set_level(previous)


def _set_verbosity(context: click.Context, parameter: click.Parameter, count: int) -> None:
    # Log lines around a report are noise unless asked for; $EXECAUDIT_LOG_LEVEL still rules.
    setting = os.environ.get("EXECAUDIT_LOG_LEVEL", "").strip().lower()
    if setting and setting not in LEVELS:
        raise click.UsageError(f"EXECAUDIT_LOG_LEVEL={setting!r} is not a log level; set it to "
                               f"one of {', '.join(LEVELS)}, or unset it.")
    if count:
        set_level("debug" if count > 1 else "info")
    elif not setting:
        set_level("off")


_verbose = click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                        callback=_set_verbosity,
                        help="Write the package's log lines (export trouble, failed steps) to "
                             "stderr; -vv for debug lines too. Default: none, unless "
                             "$EXECAUDIT_LOG_LEVEL says otherwise.")


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """otel-execaudit: a flight recorder for plan execution.

    Exit statuses are each command's own (see its --help); a usage error exits 64.
    """


@main.command("verify")
@_verbose
# A directory is no usage error but "not a ledger" (exit 2): verify itself says so.
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--strict", is_flag=True,
              help="Also check that every entry is stored in exactly its canonical form.")
def verify_command(path: Path | None, as_json: bool, strict: bool) -> None:
    """Verify the hash chain of a ledger (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db).

    Exit 0 when intact, 1 when any entry was modified, deleted, inserted or reordered (the first
    bad seq is named) or the file itself was changed or damaged, 2 when the file is missing or
    is not a ledger.
    """
    target = path or default_ledger_path()
    try:
        report = verify(target, strict=strict)
    except (LedgerNotFoundError, NotALedgerError, LedgerError) as error:
        _fail_unreadable(target, error, as_json)
        return
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(describe_report(report))
    sys.exit(EXIT_INTACT if report.ok else EXIT_TAMPERED)


def _fail_unreadable(target: Path, error: Exception, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"path": escaped_text(str(target)), "ok": False,
                               "error": escaped_text(str(error))}, indent=2))
    else:
        click.echo(f"execaudit: {error}", err=True)
    sys.exit(EXIT_UNREADABLE)


def describe_report(report: VerifyReport) -> str:
    """One line for a report: ``l.db: intact, 3 entries, head 5f3c…`` or ``l.db: TAMPERED …``."""
    if report.ok:
        head = report.head_hash[:16] + "…" if report.head_hash else "(empty)"
        return f"{escaped_text(report.path)}: intact, {report.entries} entries, head {head}"
    # No bad seq: the problem is the file around the chain (meta, schema, index, damage).
    where = "" if report.first_bad_seq is None else f" at seq {report.first_bad_seq}"
    return (f"{escaped_text(report.path)}: TAMPERED{where}: {report.reason} "
            f"({report.entries} entries read)")


@main.command("demo")
@_verbose
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Ledger file (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db).")
@click.option("--exporter", type=click.Choice(["console", "otlp", "none"]), default=None,
              help="Where spans go. Default: otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, "
                   "else console.")
def demo_command(ledger_path: Path | None, exporter: str | None) -> None:
    """Run the bundled release plan twice (once failing) and show what was recorded."""
    from otel_execaudit.demo import run_demo, run_guarded_demo
    from otel_execaudit.runtime import configure, shutdown

    if exporter is None:
        exporter = "otlp" if (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                              or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) else "console"
    console = Console()
    span_exporter = compact_console_exporter() if exporter == "console" else exporter
    runtime = configure(ledger=ledger_path, exporter=span_exporter,
                        service_name=os.environ.get("OTEL_SERVICE_NAME", "execaudit-demo"))
    try:
        records = run_demo()
        guarded = run_guarded_demo()
    finally:
        shutdown()
    console.print()
    for record in records:
        render_record(console, record)
    dry, blocked, live = guarded
    console.print("[bold]Guarded executor[/]: plan scale-checkout, dry run first")
    console.print(escape(dry.to_human_readable()), highlight=False, soft_wrap=True)
    for label, result in (("LIVE, not acknowledged", blocked),
                          ("LIVE, acknowledged and pinned", live)):
        style = "green" if result.is_success() else "red"
        why = result.error or ", ".join(f"{action.type} {action.step}: {action.result}"
                                        for action in result.actions)
        console.print(f"  {label}: [{style}]{result.status.value}[/] ({escape(why)})",
                      soft_wrap=True)
    console.print()
    report = verify(runtime.ledger.path)
    shown = escape(escaped_text(str(runtime.ledger.path)))  # a name that is not UTF-8, escaped
    console.print(f"[bold]Ledger[/]: {shown}")
    style = "green" if report.ok else "red"
    console.print(f"[bold]Verify[/]: [{style}]{describe_report(report)}[/]")
    console.print(f"Check it yourself: [bold]execaudit verify {shown}[/]")
    sys.exit(EXIT_INTACT if report.ok else EXIT_TAMPERED)


def compact_console_exporter() -> object:
    """Spans on the console as one dim line each, instead of the SDK's JSON."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    def line(span: object) -> str:
        context = span.get_span_context()  # type: ignore[attr-defined]
        parent = span.parent  # type: ignore[attr-defined]
        status = span.status.status_code.name  # type: ignore[attr-defined]
        return (f"span {span.name!r} trace={context.trace_id:032x} "  # type: ignore[attr-defined]
                f"span={context.span_id:016x} "
                f"parent={'-' if parent is None else format(parent.span_id, '016x')} "
                f"events={len(span.events)} status={status}\n")  # type: ignore[attr-defined]

    return ConsoleSpanExporter(out=sys.stderr, formatter=line)


def render_record(console: Console, record: ExecutionRecord) -> None:
    """A terminal summary of one execution: steps, side effects, and the error if any."""
    style = _STATUS_STYLE.get(record.status, "white")
    # Everything recorded is user data: escaped, so that "[red]" in a description is shown as
    # written and a stray "[/]" cannot break the report.
    console.rule(f"[bold]{escape(record.plan_id)}[/]  [{style}]{record.status.value.upper()}[/]")
    console.print(f"execution {escape(record.execution_id)}  mode {record.live_mode_state}  "
                  f"trace {record.trace_id or '-'}", highlight=False)
    table = Table(show_edge=False, header_style="bold")
    for column in ("#", "step", "event", "ledger seq", "event hash"):
        table.add_column(column)
    for event in record.step_events:
        table.add_row(str(event.step_index), escape(event.step_name),
                      f"{_EVENT_MARK[event.event_type]} {event.event_type.value}",
                      str(event.ledger_seq), event.event_hash[:16] + "…")
    console.print(table)
    effects = record.side_effects_report.observed
    if effects:
        console.print("[bold]Side effects[/]")
        for effect in effects:
            mark = "[green]reversible[/]" if effect.reversible else "[red]IRREVERSIBLE[/]"
            console.print(f"  step {effect.step_index}  {effect.category.value:<14} {mark}  "
                          f"{escape(effect.description)}", highlight=False)
    failed = [event for event in record.step_events if event.event_type is StepEventType.FAILED]
    for event in failed:
        console.print(f"[bold red]Step {event.step_index} ({escape(event.step_name)}) failed:[/] "
                      f"{escape(str(event.error_type))}: {escape(event.error_message or '')}",
                      highlight=False)
        for line in (event.traceback or "").rstrip().splitlines():  # whole, as redacted
            console.print(f"  [dim]{escape(line)}[/]", highlight=False, soft_wrap=True)
    console.print(f"execution hash {record.execution_hash[:16]}…  "
                  f"hash chain {'intact' if record.hash_chain_intact() else 'BROKEN'}\n")




# -- the executor ------------------------------------------------------------------------------

EXIT_SUCCESS, EXIT_FAILED, EXIT_CHANGES_PENDING, EXIT_BLOCKED = 0, 1, 2, 3
_EXPORTER_HELP = ("Where spans and events go. Default: otlp when OTEL_EXPORTER_OTLP_ENDPOINT or "
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else none. console writes them "
                  "to stderr, so that stdout stays the report (or the JSON).")
_ASCII_INTEGER = re.compile(r"-?[0-9]+")


def _executor_options(function: Any) -> Any:
    options = [
        click.argument("plan_path", metavar="PLAN",
                       type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--adapters", "adapter_modules", multiple=True, metavar="MODULE",
                     help="Import this module (dotted name, importable from the current "
                          "directory, or .py path) for its @adapter functions. Repeatable."),
        click.option("--client-id", metavar="N",
                     help="Tenant id: a positive integer (required by the TenantContext "
                          "guard)."),
        click.option("--strategy-id", help="Strategy whose limits apply (the plan's "
                                           "strategies section)."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the result as JSON (format otel-execaudit.result/1)."),
        click.option("--detailed-exitcode", is_flag=True,
                     help="Exit 0 success, 1 failed or bad input, 2 dry run with changes "
                          "pending, 3 blocked by a guard."),
        click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Ledger file (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db)."),
        click.option("--exporter", type=click.Choice(["console", "otlp", "none"]), default=None,
                     help=_EXPORTER_HELP),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command("plan")
@_verbose
@_executor_options
def plan_command(plan_path: Path, adapter_modules: tuple[str, ...], client_id: str | None,
                 strategy_id: str | None, as_json: bool, detailed_exitcode: bool,
                 ledger_path: Path | None, exporter: str | None) -> None:
    """Dry-run PLAN: run every guard, simulate every step that would act, print the report
    and the plan hash a pinned LIVE run must present (--plan-hash).

    When LIVE would act and the dry run foresees nothing blocking it, also prints the
    `execaudit execute` command that runs it LIVE, pinned. Exit 0 on success, 1 when blocked,
    failed or given bad input; with --detailed-exitcode, 2 when changes are pending and 3
    when blocked by a guard.
    """
    _run_executor(plan_path, adapter_modules, as_json, detailed_exitcode, ledger_path,
                  exporter, client_id=client_id, strategy_id=strategy_id, mode="DRY_RUN",
                  hint=True)


@main.command("execute")
@_verbose
@_executor_options
@click.option("--live", is_flag=True, help="Perform the actions for real (default: DRY_RUN).")
@click.option("--acknowledge-risk", is_flag=True, help="Acknowledge the risk of a LIVE run.")
@click.option("--validated", is_flag=True,
              help="Your own assertion that the plan was validated (nothing here validates "
                   "it).")
@click.option("--validation-passed", is_flag=True,
              help="Your own assertion that the plan's validation passed (nothing here "
                   "checks it).")
@click.option("--plan-hash", help="Refuse to run unless the plan still has this hash "
                                  "(printed by `execaudit plan`).")
@click.option("--execution-id", help="Id of this execution. Reusing it replays the run: its "
                                     "limits are not counted twice, and adapters get the same "
                                     "idempotency keys.")
def execute_command(plan_path: Path, adapter_modules: tuple[str, ...], client_id: str | None,
                    strategy_id: str | None, as_json: bool, detailed_exitcode: bool,
                    ledger_path: Path | None, exporter: str | None, live: bool,
                    acknowledge_risk: bool, validated: bool, validation_passed: bool,
                    plan_hash: str | None, execution_id: str | None) -> None:
    """Execute PLAN, safe by default: DRY_RUN unless --live, and LIVE only with
    --acknowledge-risk, --validated and --validation-passed and every other guard passing.

    Exit 0 on success, 1 when blocked, failed or given bad input. With --detailed-exitcode:
    0 success with nothing left to do, 1 failed or bad input, 2 dry run with changes pending,
    3 blocked by a guard.
    """
    _run_executor(plan_path, adapter_modules, as_json, detailed_exitcode, ledger_path,
                  exporter, client_id=client_id, strategy_id=strategy_id,
                  mode="LIVE" if live else "DRY_RUN", acknowledge_risk=acknowledge_risk,
                  validated=validated, validation_passed=validation_passed,
                  plan_hash=plan_hash, execution_id=execution_id, hint=False)


def _run_executor(plan_path: Path, adapter_modules: tuple[str, ...], as_json: bool,
                  detailed_exitcode: bool, ledger_path: Path | None, exporter: str | None, *,
                  client_id: str | None, hint: bool, **options: Any) -> None:
    from otel_execaudit.executor.adapters import load_adapters
    from otel_execaudit.executor.executor import Executor
    from otel_execaudit.executor.plans import load_plan
    from otel_execaudit.runtime import configure, shutdown

    try:
        if any(not module.endswith(".py") for module in adapter_modules):
            _put_working_directory_on_path()
        for module in adapter_modules:
            load_adapters(module)
        plan = load_plan(plan_path)
        chosen = exporter
        if chosen is None:
            chosen = "otlp" if (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                                os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) else "none"
        service_name = os.environ.get("OTEL_SERVICE_NAME", "execaudit")
        configure(ledger=ledger_path, service_name=service_name,
                  **_telemetry_exporters(chosen, service_name))
        try:
            result = Executor().run(plan, client_id=_client_id(client_id), **options)
        finally:
            shutdown()
    except ExecAuditError as error:
        if as_json:
            click.echo(json.dumps(error_document(type(error).__name__, str(error)), indent=2,
                                  ensure_ascii=False))
        else:
            click.echo(f"execaudit: {error}", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(result.to_json())
    else:
        click.echo(result.to_human_readable())
        if hint:
            click.echo("\n" + _live_hint(result, plan_path, adapter_modules, client_id,
                                         ledger_path, exporter, options.get("strategy_id")))
    sys.exit(_exit_code(result, detailed_exitcode))


def _put_working_directory_on_path() -> None:
    """Dotted --adapters names import from the current directory, as under ``python -m``:
    the console script puts only its own directory on sys.path."""
    here = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == here for entry in sys.path):
        sys.path.insert(0, here)


def _telemetry_exporters(name: str, service_name: str) -> dict[str, Any]:
    """configure()'s exporter arguments for an --exporter name.

    The SDK's console exporters write to stdout, where the report or the JSON goes; ours write
    to stderr instead, the spans and the events alike.
    """
    if name != "console":
        return {"exporter": name}
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from otel_execaudit.telemetry.exporters import ConsoleLogRecordExporter

    return {"exporter": ConsoleSpanExporter(service_name=service_name, out=sys.stderr),
            "log_exporter": ConsoleLogRecordExporter(out=sys.stderr)}


def _live_hint(result: Any, plan_path: Path, adapter_modules: tuple[str, ...],
               client_id: str | None, ledger_path: Path | None, exporter: str | None,
               strategy_id: str | None) -> str:
    """After a dry run: the command that runs it LIVE, pinned to its hash, with the options
    that change what LIVE does; or one line saying why there is no such command."""
    if not result.is_success():
        return "No LIVE command: the dry run did not succeed."
    if not result.changes_pending:
        return "No LIVE command: nothing would be performed LIVE (no step acts)."
    blocker = _predicted_live_blocker(result)
    if blocker is not None:
        return f"No LIVE command: the dry run predicts LIVE would be blocked ({blocker})."
    words = ["execaudit", "execute", str(plan_path), "--client-id", str(client_id)]
    for module in adapter_modules:
        words += ["--adapters", module]
    if strategy_id is not None:
        words += ["--strategy-id", strategy_id]
    # The ledger holds the limit counters a LIVE run is checked against, so the LIVE run must
    # use the one this dry run read.
    if ledger_path is not None:
        words += ["--ledger", str(ledger_path)]
    if exporter is not None:
        words += ["--exporter", exporter]
    words += ["--live", "--acknowledge-risk", "--validated", "--validation-passed",
              "--plan-hash", str(result.plan_hash)]
    if not all(_printable(word) for word in words):
        return ("No LIVE command: a path or id in it is not valid UTF-8, so it cannot be printed "
                "to run as shown; rename it, or type the command yourself.")
    return "To run it LIVE, pinned to what you just reviewed:\n  " + shlex.join(words)


def _predicted_live_blocker(result: Any) -> str | None:
    """What a dry run's guard verdicts say would block LIVE (a limit it would exceed), if any."""
    for verdict in result.guards:
        over = verdict.details.get("would_exceed") if verdict.details else None
        if over:
            return f"{verdict.name}: {', '.join(map(str, over))} over the daily limit"
        if "LIVE would be blocked" in verdict.message:
            return f"{verdict.name}: {verdict.message}"
    return None


def _printable(text: str) -> bool:
    return escaped_text(text) is text


def _client_id(text: str | None) -> int | str | None:
    """An integer if it is ASCII digits only (with a minus sign, so that -1 is refused as not
    positive); otherwise as given, for the TenantContext guard to refuse. (int() would also
    take " 1", "1_000" and other scripts' digits.)"""
    if text is None:
        return None
    return int(text) if _ASCII_INTEGER.fullmatch(text) else escaped_text(text)


def _exit_code(result: Any, detailed: bool) -> int:
    if result.is_success():
        return EXIT_CHANGES_PENDING if detailed and result.changes_pending else EXIT_SUCCESS
    if detailed and result.is_blocked():
        return EXIT_BLOCKED
    return EXIT_FAILED
