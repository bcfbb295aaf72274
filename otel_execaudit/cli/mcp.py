"""``execaudit mcp``: the read-only MCP server over stdio (otel_execaudit.inspection.mcp_server).

::

    $ execaudit mcp --ledger .execaudit/ledger.db   # started by an MCP client; stdout: the protocol
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from otel_execaudit.cli import _verbose, main
from otel_execaudit.ledger import default_ledger_path
from otel_execaudit.recording.records import escaped_text

EXIT_MISSING = 2


@main.command("mcp")
@_verbose
@click.option("--ledger", "ledger", type=click.Path(path_type=Path), default=None,
              help="The ledger to read (default: $EXECAUDIT_LEDGER or ./.execaudit/ledger.db). "
                   "It need not exist yet.")
def mcp_command(ledger: Path | None) -> None:
    """Serve the ledger to an agent over MCP (stdio), read-only: the last error, executions,
    one execution, rollback guidance, verification. Nothing is written or executed.

    Started by an MCP client, not by hand: stdout carries the protocol, log lines (-v) go to
    stderr. Exit 2 when the mcp package is not installed.
    """
    try:  # here, not at the top: `execaudit --help` does not pay for the SDK
        from otel_execaudit.inspection.mcp_server import serve
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("mcp", "mcp_types", "pydantic"):
            raise
        click.echo("execaudit mcp needs the mcp package: pip install 'otel-execaudit[mcp]'",
                   err=True)
        sys.exit(EXIT_MISSING)
    target = (ledger or default_ledger_path()).absolute()
    if not target.exists():
        click.echo(f"execaudit mcp: no ledger at {escaped_text(str(target))} yet; the tools "
                   "will say so until one is recorded there.", err=True)
    try:
        serve(target)
    except KeyboardInterrupt:  # the person who started it by hand stops it: no traceback
        pass
