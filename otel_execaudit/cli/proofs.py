"""``execaudit keygen``, ``checkpoint``, ``prove`` and ``verify-proof``: the keys that sign
checkpoints, and proofs of one entry that a third party checks without the ledger.

Exit statuses: 0 done (``verify-proof``: the entry is in the tree of a checkpoint signed by a
key given), 1 the proof or the ledger does not verify, 2 no ledger there or unusable input (a
key, a file), 3 ``verify-proof`` without a key that signed the checkpoint (the math holds, but
nothing says the log vouched for it), 4 ``prove``: no checkpoint covers the entry yet.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import click

from otel_execaudit.cli import _verbose, main
from otel_execaudit.errors import ConfigurationError, LedgerError, ProofError
from otel_execaudit.ledger import default_ledger_path
from otel_execaudit.ledger.keys import read_verifier_key, write_key_file
from otel_execaudit.ledger.proofs import prove, verify_bundle
from otel_execaudit.ledger.readonly import open_read_only
from otel_execaudit.recording.records import escaped_text

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE, EXIT_UNSIGNED, EXIT_NOT_COVERED = 0, 1, 2, 3, 4

_ledger_option = click.option(
    "--ledger", "ledger_path", type=click.Path(path_type=Path),
    help="Ledger file (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db).")


def _fail(message: str, status: int) -> None:
    click.echo(f"execaudit: {escaped_text(message)}", err=True)
    sys.exit(status)


@main.command("keygen")
@_verbose
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", default="otel-execaudit", show_default=True,
              help="The key's name, shown on each signature line (no spaces, no '+').")
def keygen_command(path: Path, name: str) -> None:
    """Write a new Ed25519 signing key to PATH (mode 0600, never over an existing file) and
    print its verifier key, which anyone may have: give it to whoever checks your checkpoints.

    Then sign checkpoints with `configure(signing_key=PATH)` or EXECAUDIT_SIGNING_KEY=PATH.
    """
    try:
        key = write_key_file(path, name)
    except (ConfigurationError, ProofError) as error:
        _fail(str(error), EXIT_UNUSABLE)
    click.echo(key.verifier().text)


@main.command("checkpoint")
@_verbose
@_ledger_option
def checkpoint_command(ledger_path: Path | None) -> None:
    """Take a checkpoint of the ledger now (signed with $EXECAUDIT_SIGNING_KEY when set, and
    sent to the witness state file) and print it."""
    from otel_execaudit.runtime import configure, shutdown

    target = ledger_path or default_ledger_path()
    if not target.exists():
        _fail(f"{target} does not exist; pass --ledger or set EXECAUDIT_LEDGER", EXIT_UNUSABLE)
    try:
        runtime = configure(ledger=target, exporter="none")
        taken = runtime.ledger.checkpoint()
        problem = runtime.ledger.checkpoint_problem
        shutdown()
    except (LedgerError, ConfigurationError) as error:
        _fail(str(error), EXIT_UNUSABLE)
    if taken is None:
        _fail(str(problem) if problem else f"{target} holds no entries yet", EXIT_INVALID)
    click.echo(taken.note, nl=False)


@main.command("prove")
@_verbose
@click.argument("seq", type=int)
@_ledger_option
def prove_command(seq: int, ledger_path: Path | None) -> None:
    """Print a proof bundle for entry SEQ (C2SP tlog-proof: the entry, its index, the audit path,
    the ledger's latest checkpoint verbatim), which `execaudit verify-proof` checks without
    the ledger."""
    target = ledger_path or default_ledger_path()
    try:
        connection = open_read_only(target)
    except LedgerError as error:
        _fail(str(error), EXIT_UNUSABLE)
    try:
        bundle = prove(connection, seq)
    except LookupError as error:
        _fail(str(error), EXIT_NOT_COVERED)
    except (LedgerError, sqlite3.DatabaseError) as error:
        _fail(f"{target}: {error}", EXIT_INVALID)
    finally:
        connection.close()
    click.echo(bundle, nl=False)


@main.command("verify-proof")
@_verbose
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--key", "keys", multiple=True, metavar="VKEY",
              help="The log's verifier key (text or file). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_proof_command(bundle: Path, keys: tuple[str, ...], as_json: bool) -> None:
    """Check a proof bundle (a file, or - for stdin) without the ledger: the entry is in the
    tree of the checkpoint, and the checkpoint is signed by one of the keys given."""
    try:
        text = sys.stdin.buffer.read() if str(bundle) == "-" else bundle.read_bytes()
        verifiers = [read_verifier_key(key) for key in keys]
    except OSError as error:
        _fail(f"cannot read {bundle}: {error.strerror}", EXIT_UNUSABLE)
    except ConfigurationError as error:
        _fail(str(error), EXIT_UNUSABLE)
    try:
        verified = verify_bundle(text, verifiers)
    except ProofError as error:
        if as_json:
            click.echo(json.dumps({"ok": False, "reason": str(error)}, indent=2))
        else:
            click.echo(f"INVALID: {escaped_text(str(error))}")
        sys.exit(EXIT_INVALID)
    checkpoint = verified.checkpoint
    if as_json:
        click.echo(json.dumps({"ok": verified.signed, "signed": verified.signed,
                               "index": verified.index, "origin": checkpoint.origin,
                               "size": checkpoint.size, "entry": verified.entry}, indent=2))
    else:
        where = f"entry {verified.index} is in {escaped_text(checkpoint.origin)} at size {checkpoint.size}"
        if verified.signed:
            click.echo(f"verified: {where}, and the checkpoint is signed by the key given")
        else:
            click.echo(f"UNAUTHENTICATED: {where}, but no key given signed the checkpoint "
                       "(pass the log's verifier key with --key)")
    sys.exit(EXIT_OK if verified.signed else EXIT_UNSIGNED)
