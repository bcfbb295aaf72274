"""``execaudit plan`` and ``execaudit execute``: a plan through the guarded executor, a dry run
unless LIVE is asked for and acknowledged."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from otel_execaudit.cli import _verbose, error_document, main
from otel_execaudit.errors import ExecAuditError
from otel_execaudit.recording.records import escaped_text

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
