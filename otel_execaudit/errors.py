"""One exception hierarchy for the package.

Every error says what happened and what to do next::

    >>> from otel_execaudit.errors import ExecAuditError, LedgerWriteError
    >>> issubclass(LedgerWriteError, ExecAuditError)
    True
"""

from __future__ import annotations


class ExecAuditError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(ExecAuditError, ValueError):
    """A setting passed to ``configure()`` or read from the environment is not usable."""


class LedgerError(ExecAuditError):
    """Something is wrong with a ledger file."""


class LedgerWriteError(LedgerError):
    """An entry could not be appended (read-only file, disk full, lock held too long).

    Nothing already in the ledger is lost; a LIVE execution stops here, fail-closed.
    """


class LedgerNotFoundError(LedgerError, FileNotFoundError):
    """The ledger path does not exist."""


class NotALedgerError(LedgerError):
    """The file exists but is not an otel-execaudit ledger."""


class RecordingError(ExecAuditError):
    """An event was recorded in a way the execution model does not allow."""


class ExecutionEndedError(RecordingError):
    """An event was recorded into an execution that has already ended."""


class SecurityEscalationError(ExecAuditError):
    """The security state degraded between steps; the execution stopped as INCOMPLETE."""


class PlanError(ConfigurationError):
    """A plan cannot be loaded or is not well formed; the message names the step and field."""


class AdapterError(ConfigurationError):
    """An adapter cannot be registered or a module of adapters cannot be imported."""


class GuardDeniedError(ExecAuditError):
    """A guard denied an action just before it would have run; nothing was performed."""


class UnknownExecutionError(ExecAuditError, LookupError):
    """No execution in the ledger has that id (or the ledger holds none yet)."""


class AmbiguousExecutionError(UnknownExecutionError):
    """An id prefix names several executions; ``candidates`` lists (some of) them."""

    def __init__(self, message: str, candidates: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.candidates = candidates


class UnreadableExecutionError(LedgerError):
    """An execution's entries cannot be rebuilt into its record: ``tampered`` when the ledger
    failed its check (an entry was changed), else entries the recorder does not write."""

    def __init__(self, message: str, execution_id: str | None = None,
                 tampered: bool = False) -> None:
        super().__init__(message)
        self.execution_id, self.tampered = execution_id, tampered


class ProofError(LedgerError, ValueError):
    """A Merkle proof, checkpoint, signed note or proof bundle does not verify or is malformed;
    the message says which part failed."""


class AnchorError(LedgerError):
    """The ledger disagrees with a checkpoint held outside it (truncated, rewritten or forked);
    the message carries the evidence."""
