"""``execaudit verify``: check a ledger offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from otel_execaudit.cli import _verbose, main
from otel_execaudit.errors import LedgerError, LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger import VerifyReport, default_ledger_path, verify
from otel_execaudit.recording.records import escaped_text

EXIT_INTACT, EXIT_TAMPERED, EXIT_UNREADABLE = 0, 1, 2


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
