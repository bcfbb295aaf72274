"""``python -m otel_execaudit.cli``: the ``execaudit`` command."""

from otel_execaudit.cli import main

main()
