"""The witness: a state file outside the ledger's folder that remembers the latest checkpoint of
every ledger it has seen, as the Go checksum database's clients and immudb's do.

Whoever can write a ledger file can cut its tail or rewrite it from some entry on and leave a
chain that checks; they cannot also change what was written elsewhere. Each checkpoint the
ledger takes is handed to the witness, which accepts it only if it extends the one it holds for
that origin (same root at the old size, never a smaller size), and ``verify`` checks the ledger
against the witness's copy. The file is JSON, replaced atomically under a lock::

    >>> import tempfile, pathlib
    >>> state = WitnessState(pathlib.Path(tempfile.mkdtemp()) / "checkpoints.json")
    >>> seen = state.record(Witnessed("o/1", 2, bytes(32), "o/1\\n2\\nAAAA\\n", "/l.db", ""))
    >>> state.latest("o/1").size
    2

The format (``docs/ledger-format.md#the-witness-state-file``)::

    {"format": 1, "logs": {"<origin>": {"size": 2, "root": "<base64>", "note": "<checkpoint>",
                                        "ledger": "/abs/path/ledger.db", "updated": "<ts>"}}}
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
from collections.abc import Callable, Iterator

from otel_execaudit.errors import AnchorError, ConfigurationError

__all__ = ["STATE_FORMAT", "Witnessed", "WitnessState", "default_state_path"]

STATE_FORMAT = 1


def default_state_path() -> pathlib.Path:
    """``$EXECAUDIT_STATE``, else ``$XDG_STATE_HOME/otel-execaudit/checkpoints.json``, else
    ``~/.local/state/otel-execaudit/checkpoints.json``.

    >>> import os
    >>> os.environ.get("EXECAUDIT_STATE") is not None or default_state_path().name == "checkpoints.json"
    True
    """
    configured = os.environ.get("EXECAUDIT_STATE")
    if configured:
        return pathlib.Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return pathlib.Path(base) / "otel-execaudit" / "checkpoints.json"


@dataclasses.dataclass(frozen=True)
class Witnessed:
    """The latest checkpoint the witness holds for one origin: its size and root, the checkpoint
    note verbatim (signed or not), the ledger file it came from, and when it was recorded."""

    origin: str
    size: int
    root: bytes
    note: str
    ledger: str
    updated: str

    def to_dict(self) -> dict:
        return {"size": self.size, "root": base64.b64encode(self.root).decode(), "note": self.note,
                "ledger": self.ledger, "updated": self.updated}


class WitnessState:
    """The state file at ``path`` (default ``default_state_path()``)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = pathlib.Path(path if path is not None else default_state_path()).absolute()

    def __repr__(self) -> str:
        return f"WitnessState({str(self.path)!r})"

    def latest(self, origin: str) -> Witnessed | None:
        """The checkpoint held for ``origin``, or None. Example: ``state.latest(origin).size``."""
        return self._read().get(origin)

    def for_ledger(self, ledger: str | os.PathLike[str]) -> list[Witnessed]:
        """Every checkpoint last recorded from the file at ``ledger`` (more than one origin there
        means the file was replaced by another ledger)."""
        target = str(pathlib.Path(ledger).absolute())
        return [seen for seen in self._read().values() if seen.ledger == target]

    def record(self, checkpoint: Witnessed,
               extends: Callable[[Witnessed], str | None] | None = None) -> Witnessed:
        """Remember ``checkpoint`` as its origin's latest, and return what was held before it
        (or the checkpoint itself when there was none).

        The witness never goes back: a checkpoint smaller than the one held is refused, and so
        is one at the same size with another root. For a larger one, ``extends(held)`` (given by
        the ledger, which can compute its root at the held size) returns None when the new
        checkpoint extends the held one and otherwise the evidence; the witness then refuses it
        with ``AnchorError`` and keeps what it holds.
        """
        with self._locked():
            logs = self._read()
            held = logs.get(checkpoint.origin)
            if held is not None:
                problem = _regression(held, checkpoint)
                if problem is None and held.size < checkpoint.size and extends is not None:
                    problem = extends(held)
                if problem is not None:
                    raise AnchorError(
                        f"checkpoint for {checkpoint.origin} at size {checkpoint.size} refused by the "
                        f"witness {self.path}: {problem}. The ledger {checkpoint.ledger} does not "
                        "extend what was witnessed; run `execaudit verify` on it.")
            logs[checkpoint.origin] = checkpoint
            self._write(logs)
        return held or checkpoint

    # -- the file -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path.with_name(self.path.name + ".lock"),
                                 os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise ConfigurationError(
                f"cannot use the witness state file {self.path}: {error.strerror}. Set "
                "EXECAUDIT_STATE (or configure(state=...)) to a writable file outside the "
                "ledger's folder.") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _read(self) -> dict[str, Witnessed]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise self._unusable(error.strerror or str(error)) from error
        try:
            document = json.loads(text)
            if document.get("format") != STATE_FORMAT:
                raise ValueError(f"format {document.get('format')!r}, not {STATE_FORMAT}")
            return {origin: Witnessed(origin, int(seen["size"]),
                                      base64.b64decode(seen["root"], validate=True),
                                      str(seen["note"]), str(seen["ledger"]), str(seen["updated"]))
                    for origin, seen in document["logs"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
            raise self._unusable(f"it is not a witness state file ({error})") from error

    def _write(self, logs: dict[str, Witnessed]) -> None:
        document = {"format": STATE_FORMAT,
                    "logs": {origin: logs[origin].to_dict() for origin in sorted(logs)}}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1, sort_keys=True)
                out.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise self._unusable(error.strerror or str(error)) from error

    def _unusable(self, problem: str) -> ConfigurationError:
        return ConfigurationError(
            f"cannot use the witness state file {self.path}: {problem}. Keep the file (it is "
            "evidence), and point EXECAUDIT_STATE at another path to go on.")


def _regression(held: Witnessed, new: Witnessed) -> str | None:
    if new.size < held.size:
        return (f"it holds size {held.size} (recorded {held.updated} from {held.ledger}): the "
                f"ledger is {held.size - new.size} entries shorter than it was")
    if new.size == held.size and new.root != held.root:
        return (f"it holds another root at size {held.size} (recorded {held.updated}): the ledger "
                "was rewritten")
    return None
