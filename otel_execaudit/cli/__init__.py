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
from contextlib import contextmanager
from typing import Any, Iterator

import click

from otel_execaudit.recording.records import escaped_text
from otel_execaudit.telemetry.logs import LEVELS, set_level

__all__ = ["EXIT_USAGE", "error_document", "main"]

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

# Each command group registers itself on main.
from otel_execaudit.cli import demo, execute, inspection, mcp, proofs, verify  # noqa: E402,F401
