"""``execaudit verify``: check a ledger offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from otel_execaudit.cli import _verbose, main
from otel_execaudit.errors import ConfigurationError, LedgerError, LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger import VerifyReport, default_ledger_path, verify
from otel_execaudit.ledger.anchor import read_checkpoint_argument
from otel_execaudit.ledger.keys import read_verifier_key
from otel_execaudit.recording.records import escaped_text

EXIT_INTACT, EXIT_TAMPERED, EXIT_UNREADABLE, EXIT_UNANCHORED = 0, 1, 2, 3


@main.command("verify")
@_verbose
# A directory is no usage error but "not a ledger" (exit 2): verify itself says so.
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--strict", is_flag=True,
              help="Also check that every entry is stored in exactly its canonical form.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="FILE|TEXT",
              help="A checkpoint held elsewhere (a file, or its text): the ledger must have its "
                   "root at its size. Repeatable.")
@click.option("--key", "keys", multiple=True, metavar="VKEY",
              help="A verifier key (text or file): given checkpoints must be signed by one. Repeatable.")
@click.option("--state", type=click.Path(path_type=Path), default=None,
              help="The witness state file (default $EXECAUDIT_STATE, else the user's state directory).")
@click.option("--no-state", is_flag=True, help="Do not consult the witness state file.")
@click.option("--require-anchor", is_flag=True,
              help="Exit 3 unless a checkpoint held outside the ledger agrees with it.")
def verify_command(path: Path | None, as_json: bool, strict: bool, checkpoints: tuple[str, ...],
                   keys: tuple[str, ...], state: Path | None, no_state: bool,
                   require_anchor: bool) -> None:
    """Verify the hash chain of a ledger (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db)
    and hold it against its checkpoints: its own latest, the witness state file's, and any given.

    Exit 0 when intact (anchored, or internally consistent but UNANCHORED), 1 when any entry
    was modified, deleted, inserted or reordered, the tail was cut, the chain was rewritten or
    replaced, or the file itself was changed or damaged, 2 when the file is missing or is not a
    ledger (or a given checkpoint or key is unusable), 3 with --require-anchor when nothing
    outside the ledger vouches for it.
    """
    target = path or default_ledger_path()
    try:
        verifiers = [read_verifier_key(key) for key in keys]
        texts = [read_checkpoint_argument(value) for value in checkpoints]
        report = verify(target, strict=strict, checkpoints=texts, keys=verifiers,
                        state=False if no_state else state)
    except (LedgerNotFoundError, NotALedgerError, LedgerError, ConfigurationError) as error:
        _fail_unreadable(target, error, as_json)
        return
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(describe_report(report))
    if not report.ok:
        sys.exit(EXIT_TAMPERED)
    anchored = (report.anchor or {}).get("status") == "anchored"
    sys.exit(EXIT_UNANCHORED if require_anchor and not anchored else EXIT_INTACT)


def _fail_unreadable(target: Path, error: Exception, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"path": escaped_text(str(target)), "ok": False,
                               "error": escaped_text(str(error))}, indent=2))
    else:
        click.echo(f"execaudit: {error}", err=True)
    sys.exit(EXIT_UNREADABLE)


def describe_report(report: VerifyReport) -> str:
    """One line for a report: ``l.db: intact, 3 entries, head 5f3c…, anchored by …``,
    ``l.db: internally consistent but UNANCHORED, …`` or ``l.db: TAMPERED …``."""
    if report.ok:
        head = report.head_hash[:16] + "…" if report.head_hash else "(empty)"
        counted = f"{report.entries} entries, head {head}"
        if report.root:
            counted += f", root {report.root[:16]}…"
        anchor = report.anchor or {}
        if anchor.get("status") == "anchored":
            sources = [f"{item['source']} at size {item['size']}"
                       for item in anchor["checkpoints"] if item["agrees"]
                       and item["source"] != "the ledger's own latest checkpoint"]
            return f"{escaped_text(report.path)}: intact, {counted}; anchored by {', '.join(sources)}"
        return (f"{escaped_text(report.path)}: internally consistent but UNANCHORED, {counted}: no "
                "checkpoint held outside the ledger vouches for it (keep the witness state file, "
                "EXECAUDIT_STATE, or pass --checkpoint)")
    # No bad seq: the problem is the file around the chain (meta, schema, index, damage).
    where = "" if report.first_bad_seq is None else f" at seq {report.first_bad_seq}"
    return (f"{escaped_text(report.path)}: TAMPERED{where}: {report.reason} "
            f"({report.entries} entries read)")
