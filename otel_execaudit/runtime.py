"""What the package records into: one ledger, one tracer, one redactor per process.

``configure()`` sets all three in one call. Without it, the first execution opens the default
ledger (``$EXECAUDIT_LEDGER``, else ``./.execaudit/ledger.db``) and traces through whatever global
TracerProvider the application has (a no-op one if it has none)::

    >>> import otel_execaudit, tempfile, os
    >>> runtime = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                                    exporter="none")
    >>> runtime.ledger.durability.value
    'batch'
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from opentelemetry import trace

from otel_execaudit.errors import ExecAuditError
from otel_execaudit.ledger.checkpointing import Checkpointing, StoredCheckpoint
from otel_execaudit.ledger.keys import read_signing_key
from otel_execaudit.ledger.note import SignerKey
from otel_execaudit.ledger.store import Durability, Ledger, default_ledger_path
from otel_execaudit.ledger.witness import Witnessed, WitnessState
from otel_execaudit.redaction import Limits, Redactor
from otel_execaudit.telemetry.build import build_telemetry
from otel_execaudit.telemetry.logs import get_logger
from otel_execaudit.telemetry.pipeline import Telemetry, emit_event

TRACER_NAME = "otel_execaudit"
CHECKPOINT_EVENT = "execaudit.ledger.checkpoint"

_log = get_logger()


@dataclass(frozen=True)
class Runtime:
    """The ledger, tracer and redactor every execution of this process records into."""

    ledger: Ledger
    tracer: trace.Tracer
    redactor: Redactor
    telemetry: Telemetry | None = None
    owns_ledger: bool = True

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush telemetry (bounded by its deadline) and commit the ledger; close the ledger
        if this runtime opened it."""
        if self.telemetry is not None:
            self.telemetry.shutdown(timeout)
        if self.owns_ledger:
            self.ledger.close()
        else:
            self.ledger.sync()

    def retire(self) -> None:
        """Make way for a new runtime without pulling anything from under executions still
        running on this one: telemetry is flushed and stopped, the ledger committed and left
        open (it is closed at interpreter exit)."""
        if self.telemetry is not None:
            self.telemetry.shutdown()
        self.ledger.sync()


_lock = threading.Lock()
_runtime: Runtime | None = None


def configure(
    *,
    ledger: str | Path | Ledger | None = None,
    durability: Durability | str = Durability.BATCH,
    service_name: str | None = None,
    exporter: Any = None,
    protocol: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    tracer_provider: Any = None,
    set_global: bool = False,
    deadline: float = 2.0,
    redact: Iterable[str] = (),
    limits: Limits | None = None,
    max_span_events: int | None = None,
    log_exporter: Any = None,
    signing_key: SignerKey | str | Path | None = None,
    state: str | Path | bool | None = None,
    checkpoint_every: int = 10_000,
    checkpoint_interval: float = 60.0,
) -> Runtime:
    """Set up ledger, OpenTelemetry export and redaction in one call.

    ``exporter`` is ``"otlp"`` (the default, honouring ``OTEL_EXPORTER_OTLP_*``), ``"console"``,
    ``"none"`` or a ``SpanExporter``. Pass ``tracer_provider`` to trace through the application's
    own provider; the global provider is replaced only with ``set_global=True``. ``redact`` adds
    regular expressions for argument names whose values must never be recorded.

    Events (OpenTelemetry log records, such as one terminal event per action attempt) are
    exported where the spans go, unless ``OTEL_LOGS_EXPORTER`` says otherwise or ``log_exporter``
    (a ``LogRecordExporter``, such as the SDK's in-memory one in tests) is given; with a
    ``SpanExporter`` as ``exporter`` and neither of those, events are dropped. ``deadline``
    bounds both signals together. Without ``configure()`` the runtime has no ``telemetry``;
    ``otel_execaudit.telemetry.pipeline.emit_event(None, ...)`` then goes to the application's global
    LoggerProvider (a no-op if it has none), as spans go to its global TracerProvider.

    Calling it again replaces the runtime for executions that start afterwards; executions
    already running finish on the ledger they started with (their spans may be dropped, as
    the previous exporter is shut down).

    Checkpoints of the ledger (its Merkle tree head) are taken at the end of every execution,
    every ``checkpoint_every`` entries and every ``checkpoint_interval`` seconds; they are signed
    with ``signing_key`` (a key file from ``execaudit keygen``, its text, or a ``SignerKey``;
    default ``$EXECAUDIT_SIGNING_KEY``, else unsigned) and each is sent to the witness state file
    ``state`` (default ``$EXECAUDIT_STATE``, else the user's state directory; ``False``: none)
    and exported as an event. See docs/ledger-format.md#checkpoints.

    >>> import otel_execaudit, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.db")
    >>> otel_execaudit.configure(ledger=path, exporter="console").ledger.path.name
    'ledger.db'
    >>> otel_execaudit.shutdown()
    """
    global _runtime
    signer = read_signing_key(signing_key) if signing_key is not None else _signer_from_environment()
    telemetry = build_telemetry(
        service_name=service_name, exporter=exporter, protocol=protocol, endpoint=endpoint,
        headers=headers, tracer_provider=tracer_provider, set_global=set_global,
        deadline=deadline, max_span_events=max_span_events, log_exporter=log_exporter)
    if isinstance(ledger, Ledger):
        opened = ledger
    else:
        checkpointing = Checkpointing(signer, int(checkpoint_every), float(checkpoint_interval),
                                      _listeners(state, telemetry))
        try:
            opened = Ledger(ledger if ledger is not None else default_ledger_path(),
                            durability=durability, checkpointing=checkpointing)
        except BaseException:
            telemetry.shutdown()
            raise
    redactor = Redactor(limits=limits or Limits()).with_keys(redact)
    runtime = Runtime(ledger=opened, tracer=telemetry.tracer, redactor=redactor,
                      telemetry=telemetry, owns_ledger=not isinstance(ledger, Ledger))
    with _lock:
        previous, _runtime = _runtime, runtime
    if previous is not None:
        previous.retire()
    return runtime


def get_runtime() -> Runtime:
    """The configured runtime, or the default one opened on first use."""
    global _runtime
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is None:
            checkpointing = Checkpointing(_signer_from_environment(), listeners=_listeners(None, None))
            _runtime = Runtime(ledger=Ledger(default_ledger_path(), checkpointing=checkpointing),
                               tracer=trace.get_tracer(TRACER_NAME), redactor=Redactor())
        return _runtime


def configured_ledger_path() -> Path:
    """The ledger this process records into, committed so that a reader sees all of it: the
    configured runtime's, else the default path (nothing is opened for it)."""
    runtime = _runtime
    if runtime is None:
        return default_ledger_path()
    runtime.ledger.sync()
    return runtime.ledger.path


def shutdown(timeout: float | None = None) -> None:
    """Flush and close what ``configure()`` (or first use) opened. Safe to call twice."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.shutdown(timeout)


def _signer_from_environment() -> SignerKey | None:
    configured = os.environ.get("EXECAUDIT_SIGNING_KEY")
    return read_signing_key(configured) if configured else None


def _listeners(state: str | Path | bool | None, telemetry: Telemetry | None) -> tuple:
    """What each checkpoint is handed to: the witness state file (unless ``state`` is False)
    and the events the traces go with, so that copies exist outside the ledger."""
    def export(path: Path, checkpoint: StoredCheckpoint, root_at: Any) -> None:
        emit_event(telemetry, CHECKPOINT_EVENT, checkpoint_attributes(checkpoint))

    if state is False:
        return (export,)
    witness = WitnessState(None if state is None or state is True else state)

    def record(path: Path, checkpoint: StoredCheckpoint, root_at: Any) -> None:
        def extends(held: Witnessed) -> str | None:
            if root_at(held.size) == held.root:
                return None
            return (f"its root at size {held.size} is not the one witnessed {held.updated}: the "
                    "entries up to it were changed")
        try:
            witness.record(Witnessed(checkpoint.origin, checkpoint.size, checkpoint.root,
                                     checkpoint.note, str(path), checkpoint.ts),
                           extends)
        except ExecAuditError as problem:
            _log.error("checkpoint not witnessed", problem=str(problem))

    return (record, export)


def checkpoint_attributes(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    """The attributes of a checkpoint's span event and log record."""
    return {"execaudit.checkpoint.origin": checkpoint.origin,
            "execaudit.checkpoint.size": checkpoint.size,
            "execaudit.checkpoint.root": checkpoint.checkpoint.body().split("\n")[2],
            "execaudit.checkpoint.signed": checkpoint.signed,
            "execaudit.checkpoint.note": checkpoint.note}
