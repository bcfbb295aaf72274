"""The ``execaudit`` command.

::

    $ execaudit demo                 # run the bundled example, print what happened
    $ execaudit verify               # check the default ledger; exit 0 intact, 1 tampered, 2 missing
    $ execaudit verify ledger.db --json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otel_execaudit.errors import LedgerError, LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger import default_ledger_path
from otel_execaudit.records import ExecutionRecord, ExecutionStatus, StepEventType
from otel_execaudit.verify import VerifyReport, verify

EXIT_INTACT, EXIT_TAMPERED, EXIT_UNREADABLE = 0, 1, 2

_STATUS_STYLE = {
    ExecutionStatus.COMPLETED: "green", ExecutionStatus.COMPLETED_PARTIAL: "yellow",
    ExecutionStatus.FAILED: "red", ExecutionStatus.INCOMPLETE: "red",
    ExecutionStatus.CANCELLED: "yellow", ExecutionStatus.STARTED: "cyan",
}
_EVENT_MARK = {StepEventType.COMPLETED: "[green]✓[/]", StepEventType.FAILED: "[red]✗[/]",
               StepEventType.CANCELLED: "[yellow]○[/]", StepEventType.STARTED: "·"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """otel-execaudit: a flight recorder for plan execution."""


@main.command("verify")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--strict", is_flag=True,
              help="Also check that every entry is stored in exactly its canonical form.")
def verify_command(path: Path | None, as_json: bool, strict: bool) -> None:
    """Verify the hash chain of a ledger (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db).

    Exit 0 when intact, 1 when any entry was modified, deleted, inserted or reordered (the first
    bad seq is named), 2 when the file is missing or is not a ledger.
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
        click.echo(json.dumps({"path": str(target), "ok": False, "error": str(error)}, indent=2))
    else:
        click.echo(f"execaudit: {error}", err=True)
    sys.exit(EXIT_UNREADABLE)


def describe_report(report: VerifyReport) -> str:
    if report.ok:
        head = report.head_hash[:16] + "…" if report.head_hash else "(empty)"
        return f"{report.path}: intact, {report.entries} entries, head {head}"
    return (f"{report.path}: TAMPERED at seq {report.first_bad_seq}: {report.reason} "
            f"({report.entries} entries read)")


@main.command("demo")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Ledger file (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db).")
@click.option("--exporter", type=click.Choice(["console", "otlp", "none"]), default=None,
              help="Where spans go. Default: otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, "
                   "else console.")
def demo_command(ledger_path: Path | None, exporter: str | None) -> None:
    """Run the bundled release plan twice (once failing) and show what was recorded."""
    from otel_execaudit.demo import run_demo
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
    finally:
        shutdown()
    console.print()
    for record in records:
        render_record(console, record)
    report = verify(runtime.ledger.path)
    console.print(f"[bold]Ledger[/]: {runtime.ledger.path}")
    style = "green" if report.ok else "red"
    console.print(f"[bold]Verify[/]: [{style}]{describe_report(report)}[/]")
    console.print(f"Check it yourself: [bold]execaudit verify {runtime.ledger.path}[/]")
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
        tail = (event.traceback or "").rstrip().splitlines()[-4:]
        for line in tail:
            console.print(f"  [dim]{escape(line)}[/]", highlight=False)
    console.print(f"execution hash {record.execution_hash[:16]}…  "
                  f"hash chain {'intact' if record.hash_chain_intact() else 'BROKEN'}\n")


if __name__ == "__main__":  # pragma: no cover
    main()
