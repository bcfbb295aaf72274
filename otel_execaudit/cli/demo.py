"""``execaudit demo``: run the bundled example and show what was recorded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otel_execaudit.cli import _verbose, main
from otel_execaudit.cli.verify import EXIT_INTACT, EXIT_TAMPERED, describe_report
from otel_execaudit.ledger import verify
from otel_execaudit.recording.records import (
    ExecutionRecord,
    ExecutionStatus,
    StepEventType,
    escaped_text,
)

_STATUS_STYLE = {
    ExecutionStatus.COMPLETED: "green", ExecutionStatus.COMPLETED_PARTIAL: "yellow",
    ExecutionStatus.FAILED: "red", ExecutionStatus.INCOMPLETE: "red",
    ExecutionStatus.CANCELLED: "yellow", ExecutionStatus.BLOCKED: "red", ExecutionStatus.STARTED: "cyan",
}
_EVENT_MARK = {StepEventType.COMPLETED: "[green]✓[/]", StepEventType.FAILED: "[red]✗[/]",
               StepEventType.CANCELLED: "[yellow]○[/]", StepEventType.STARTED: "·"}


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
    failed = records[-1].execution_id
    option = "" if ledger_path is None else f" --ledger {shown}"
    console.print(f"Inspect it: [bold]execaudit executions{option}[/], "
                  f"[bold]execaudit last-error{option}[/], "
                  f"[bold]execaudit show {failed[:8]}{option}[/], "
                  f"[bold]execaudit report {failed[:8]} --html report.html{option}[/]",
                  soft_wrap=True)
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
