"""The ledger: an append-only, hash-chained SQLite file of canonical JSON entries.

Every entry names the hash of the one before it, so any change to the file shows up in
``otel_execaudit.ledger.verify``. The format is described in ``docs/ledger-format.md``::

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
    >>> with Ledger(path) as ledger:
    ...     entry = ledger.append({"kind": "execution.started", "ts": "2026-11-22T03:07:19.123456Z",
    ...                            "execution_id": "e1", "plan_id": "p1", "trace_id": None,
    ...                            "span_id": None, "data": {}})
    >>> entry.seq, entry.fields()["prev"] == "0" * 64
    (0, True)
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from otel_execaudit.errors import LedgerWriteError
from otel_execaudit.ledger.canonical import CanonicalizationError, canonical_entry_bytes, leaf_hash_hex
from otel_execaudit.ledger.checkpointing import Checkpointing, StoredCheckpoint
from otel_execaudit.ledger.commit import GROUP_SIZE_CAP, SYNCHRONOUS, Durability, GroupCommit
from otel_execaudit.ledger.file import (
    FORMAT_VERSION,
    open_connection,
    rollback_quietly,
    validate_caller_fields,
    write_error,
)

__all__ = ["Durability", "Ledger", "LedgerEntry", "default_ledger_path", "FORMAT_VERSION"]

_READ_CHUNK = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stored entry: its position, its leaf hash (hex) and its canonical bytes.

    >>> LedgerEntry(0, "ab" * 32, b'{"seq":0}').fields()
    {'seq': 0}
    """

    seq: int
    hash: str
    body: bytes

    def fields(self) -> dict:
        """Return the parsed body. Example: ``entry.fields()["kind"]``."""
        return orjson.loads(self.body)


def default_ledger_path() -> pathlib.Path:
    """Return ``$EXECAUDIT_LEDGER`` if set, else ``./.execaudit/ledger.db``.

    >>> default_ledger_path().name
    'ledger.db'
    """
    configured = os.environ.get("EXECAUDIT_LEDGER")
    if configured:
        return pathlib.Path(configured).expanduser()
    return pathlib.Path.cwd() / ".execaudit" / "ledger.db"


class Ledger(GroupCommit):
    """An open ledger file; thread-safe, and several processes may append to one file.

    >>> import tempfile, pathlib
    >>> ledger = Ledger(pathlib.Path(tempfile.mkdtemp()) / "l.db", durability="full")
    >>> ledger.tail() is None
    True
    >>> ledger.close()
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: Durability | str = Durability.BATCH,
        batch_delay: float = 0.05,
        lock_timeout: float = 5.0,
        checkpointing: Checkpointing | None = None,
    ) -> None:
        self.path = pathlib.Path(path if path is not None else default_ledger_path()).absolute()
        self.durability = Durability(durability)
        self.batch_delay = float(batch_delay)
        self.lock_timeout = float(lock_timeout)
        self.checkpointing = checkpointing or Checkpointing()
        self._closed = False
        self._reset_process_state()
        with self._lock:
            self._usable_inserter()
        self._follow_fork_and_exit()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, durability={self.durability.value!r})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, fields: Mapping[str, Any]) -> LedgerEntry:
        """Append one entry and return it; it is in the ledger when this returns.

        ``fields`` holds kind, ts, execution_id, plan_id, trace_id, span_id and data; the ledger
        adds format, seq and prev. Raises ``LedgerWriteError`` saying what to do on any failure.

        Example: ``ledger.append({"kind": "step.started", ..., "data": {"step": "deploy"}})``
        """
        entry = validate_caller_fields(fields, self.path)
        self._acquire()
        try:
            if self._failure is not None:
                self._raise_failure()
            inserter = self._inserter or self._usable_inserter()
            if not self._in_group:
                self._begin_group(inserter.connection)
            elif time.monotonic() >= self._deadline:
                self._commit_group(inserter.connection)
                self._begin_group(inserter.connection)
            stored = self._stage(entry)
            if self.durability is Durability.FULL or self._group_size >= GROUP_SIZE_CAP:
                self._commit_group(inserter.connection, last_is_current=True)
        finally:
            self._lock.release()
        return stored

    def transact(self, work: Callable[[sqlite3.Connection], Mapping[str, Any]]) -> LedgerEntry:
        """Run ``work(connection)`` inside the ledger's write transaction, append the entry it
        returns, and commit both together before returning (fsynced per durability).

        This is how state kept beside the chain (limit counters) changes atomically with the
        entry that records the change: both are committed, or neither. If ``work`` raises, its
        changes are rolled back, nothing is appended, and the error propagates.

        Example: ``ledger.transact(lambda connection: {"kind": "limits.consumed", ...})``
        """
        self._acquire()
        try:
            if self._failure is not None:
                self._raise_failure()
            connection = (self._inserter or self._usable_inserter()).connection
            if not self._in_group:
                self._begin_group(connection)
            try:
                self._flush_pending(connection)
                connection.execute("SAVEPOINT work")
            except sqlite3.Error as error:
                self._commit_group(connection)  # keeps what is pending, or reports it lost
                raise write_error(self.path, error, self.lock_timeout, refused=True) from error
            tail = (self._tail_seq, self._tail_hash, self._group_size, len(self._pending))
            try:
                entry = validate_caller_fields(work(connection), self.path)
                stored = self._stage(entry)
                connection.execute("RELEASE work")
            except BaseException:
                self._tail_seq, self._tail_hash, self._group_size, staged = tail
                del self._pending[staged:]
                self._roll_back_work(connection)
                raise
            self._commit_group(connection, last_is_current=True)
        finally:
            self._lock.release()
        return stored

    def read(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run the read-only ``work(connection)`` on the ledger's connection and return its
        result; it sees everything appended so far. Waits at most ``lock_timeout`` for the
        ledger (a guard reads limits through it), then raises ``LedgerWriteError``.
        Example: ``ledger.read(count_rows)``."""
        self._acquire("read")
        try:
            connection = self._usable_inserter().connection
            if self._pending:
                # Inside the open group this connection sees its own rows: flushing them is
                # enough, and the group goes on (a commit each read would end every group).
                try:
                    self._flush_pending(connection)
                except sqlite3.Error:
                    self._commit_group(connection)  # reports the group lost, as a commit would
            return work(connection)
        finally:
            self._lock.release()

    def _stage(self, entry: dict[str, Any]) -> LedgerEntry:
        """Give ``entry`` its place at the tail of the open group; the row waits in memory."""
        seq = self._tail_seq + 1
        entry["seq"] = seq
        entry["prev"] = self._tail_hash
        try:
            body = canonical_entry_bytes(entry)
        except CanonicalizationError as error:
            raise LedgerWriteError(
                f"entry not appended to ledger {self.path}: {error}. Pass only JSON values in data."
            ) from error
        digest = leaf_hash_hex(body)
        # Rows wait in memory and go in with one executemany when the group commits (a
        # quarter of the cost of one INSERT each). An uncommitted group is lost in a crash
        # either way, so this changes no guarantee; reads flush first, so they see it.
        self._pending.append((seq, digest, body, entry["execution_id"], entry["kind"]))
        self._tail_seq = seq
        self._tail_hash = digest
        self._group_size += 1
        return LedgerEntry(seq, digest, body)

    def _roll_back_work(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("ROLLBACK TO work")
            connection.execute("RELEASE work")
        except sqlite3.Error:  # the whole group is gone: say so on the next write
            self._pending.clear()
            rollback_quietly(connection)
            self._in_group = False

    def sync(self) -> None:
        """Commit (and fsync, per durability) everything appended so far. Example: ``ledger.sync()``."""
        self._acquire()
        try:
            if self._failure is not None:
                self._raise_failure()
            if self._in_group:
                self._commit_group(self._usable_inserter().connection)
        finally:
            self._lock.release()

    def checkpoint(self) -> StoredCheckpoint | None:
        """Commit everything appended so far together with a checkpoint of it, and return that
        checkpoint (the latest one when nothing was appended since; None for an empty ledger).

        The checkpoint is signed when ``checkpointing.signer`` is set, and handed to the
        listeners (the runtime's witness). It never raises for the checkpoint itself: when the
        previous checkpoint no longer matches the entries, none is taken, the reason is kept in
        ``checkpoint_problem`` and None is returned. Example: ``ledger.checkpoint().size``.
        """
        self._acquire()
        try:
            if self._failure is not None:
                self._raise_failure()
            connection = self._usable_inserter().connection
            if not self._in_group:
                self._begin_group(connection)
            self._commit_group(connection, checkpoint=True)
            return None if self.checkpoint_problem is not None else self.last_checkpoint
        finally:
            self._lock.release()

    def entries(self, start: int = 0, *, execution_id: str | None = None) -> Iterator[LedgerEntry]:
        """Yield entries with seq >= start in seq order, optionally only one execution's.

        Example: ``[entry.seq for entry in ledger.entries(execution_id="e1")]``
        """
        next_seq = start
        while True:
            with self._lock:
                connection = self._usable_inserter().connection
                if self._pending:  # a reader sees what was appended: commit the group now
                    self._commit_group(connection)
                if execution_id is None:
                    rows = connection.execute(
                        "SELECT seq, hash, body FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?",
                        (next_seq, _READ_CHUNK),
                    ).fetchall()
                else:
                    rows = connection.execute(
                        "SELECT seq, hash, body FROM entries WHERE execution_id = ? AND seq >= ?"
                        " ORDER BY seq LIMIT ?",
                        (execution_id, next_seq, _READ_CHUNK),
                    ).fetchall()
            # The lock is released between chunks so that readers never stall writers for long.
            for seq, digest, body in rows:
                yield LedgerEntry(seq, digest, bytes(body))
            if len(rows) < _READ_CHUNK:
                return
            next_seq = rows[-1][0] + 1

    def tail(self) -> LedgerEntry | None:
        """Return the last entry (including this connection's uncommitted ones), or None if empty.

        Example: ``head = ledger.tail(); head.seq if head else -1``
        """
        with self._lock:
            connection = self._usable_inserter().connection
            if self._pending:
                self._commit_group(connection)
            row = connection.execute("SELECT seq, hash, body FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else LedgerEntry(row[0], row[1], bytes(row[2]))

    def close(self) -> None:
        """Commit pending entries and close the file; idempotent. Example: ``ledger.close()``."""
        self._close(lock_timeout=-1)

    def _acquire(self, purpose: str = "write") -> None:
        """Take the ledger's lock, waiting at most ``lock_timeout``: at interpreter exit a daemon
        thread frozen by the interpreter can hold it forever, and a write (or a guard's read)
        must fail, not hang."""
        if self._closed:
            raise LedgerWriteError(f"ledger {self.path} is closed; open a new Ledger to "
                                   f"{'append' if purpose == 'write' else purpose}.")
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise LedgerWriteError(
                f"cannot {purpose} ledger {self.path}: its lock was held for more than "
                f"{self.lock_timeout:g} s (is the interpreter exiting?). Nothing was "
                f"{'appended' if purpose == 'write' else 'changed'}.")

    # -- connection life cycle ------------------------------------------------------------------

    def _usable_inserter(self) -> sqlite3.Cursor:
        if self._closed:
            raise LedgerWriteError(f"ledger {self.path} is closed; open a new Ledger to append or read.")
        if self._connection is None:  # not yet opened, or dropped around a fork()
            self._connection = self._open()
            self._inserter = self._connection.cursor()
        return self._inserter

    def _open(self) -> sqlite3.Connection:
        return open_connection(self.path, self.lock_timeout, SYNCHRONOUS[self.durability])
