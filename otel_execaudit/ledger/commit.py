"""Group commit: appends share one write transaction, committed within ``batch_delay`` by a
background thread (at once under ``Durability.FULL``), and every open ledger is committed and
closed before fork() and at interpreter exit.
"""

from __future__ import annotations

import atexit
import datetime
import enum
import os
import pathlib
import sqlite3
import sys
import threading
import time
import weakref

from otel_execaudit.errors import LedgerError, LedgerWriteError
from otel_execaudit.ledger.canonical import GENESIS_PREV
from otel_execaudit.ledger.checkpointing import (
    Checkpointing,
    StoredCheckpoint,
    checkpointed_size,
    root_at,
    take_checkpoint,
)
from otel_execaudit.ledger.file import rollback_quietly, write_error

__all__ = ["Durability", "GROUP_SIZE_CAP", "GroupCommit", "SYNCHRONOUS"]

GROUP_SIZE_CAP = 1024  # bounds the work lost to a crash and the time other writers wait

_INSERT = "INSERT INTO entries (seq, hash, body, execution_id, kind) VALUES (?, ?, ?, ?, ?)"
_TAIL = "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1"


class Durability(str, enum.Enum):
    """How hard ``append`` works to survive a crash (see docs/ledger-format.md, "Durability").

    >>> Durability("full") is Durability.FULL
    True
    """

    FULL = "full"  # committed and fsynced before append returns
    BATCH = "batch"  # group commit within batch_delay; survives process crashes once committed
    OFF = "off"  # group commit, no fsync; an OS crash or power cut may lose recent groups


SYNCHRONOUS = {Durability.FULL: "FULL", Durability.BATCH: "NORMAL", Durability.OFF: "OFF"}


class GroupCommit:
    """The ``Ledger``'s writing state in this process: its lock, connection, open group and
    committer thread, and how they end (commit, close, fork, exit)."""

    path: pathlib.Path
    durability: Durability
    batch_delay: float
    lock_timeout: float
    checkpointing: Checkpointing
    _closed: bool

    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._connection: sqlite3.Connection | None = None
        self._inserter: sqlite3.Cursor | None = None  # reused: a new cursor per append costs 0.5 µs
        self._committer: threading.Thread | None = None
        self._failure: LedgerWriteError | None = None
        self._pending: list[tuple[int, str, bytes, str, str]] = []
        self._in_group = False
        self._group_first_seq = 0
        self._group_size = 0
        self._deadline = 0.0
        self._tail_seq = -1
        self._tail_hash = GENESIS_PREV
        self._checkpointed = -1  # the size of the latest checkpoint this process knows; -1 unknown
        self._checkpoint_deadline = time.monotonic() + self.checkpointing.interval
        self.last_checkpoint: StoredCheckpoint | None = None
        self.checkpoint_problem: Exception | None = None

    # -- groups ---------------------------------------------------------------------------------

    def _begin_group(self, connection: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE takes the file's write lock now, so the tail read below cannot go stale:
        # this is what makes appends from several processes one chain.
        try:
            connection.execute("BEGIN IMMEDIATE")
            row = connection.execute(_TAIL).fetchone()
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise write_error(self.path, error, self.lock_timeout) from error
        self._tail_seq, self._tail_hash = row if row is not None else (-1, GENESIS_PREV)
        self._in_group = True
        self._group_first_seq = self._tail_seq + 1
        self._group_size = 0
        self._deadline = time.monotonic() + self.batch_delay
        if self.durability is not Durability.FULL:
            self._wake_committer()

    def _commit_group(self, connection: sqlite3.Connection, *, last_is_current: bool = False,
                      checkpoint: bool = False) -> None:
        """Commit the open group, with a checkpoint when asked (``checkpoint``) or due;
        ``last_is_current``: its last entry is the append in progress."""
        self._in_group = False
        taken = None
        try:
            self._flush_pending(connection)
            if checkpoint or self._checkpoint_due(connection):
                taken = self._take_checkpoint(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._pending.clear()
            rollback_quietly(connection)
            acknowledged_last = self._tail_seq - 1 if last_is_current else self._tail_seq
            raise write_error(
                self.path, error, self.lock_timeout, self._lost_range(acknowledged_last), refused=last_is_current
            ) from error

        if taken is not None:
            self._announce(connection, taken)

    # -- checkpoints ----------------------------------------------------------------------------

    def _checkpoint_due(self, connection: sqlite3.Connection) -> bool:
        if self._checkpointed < 0:  # once per process; another process's checkpoints are seen later
            self._checkpointed = checkpointed_size(connection)
        size = self._tail_seq + 1
        return size > self._checkpointed and (
            size - self._checkpointed >= self.checkpointing.every
            or time.monotonic() >= self._checkpoint_deadline)

    def _take_checkpoint(self, connection: sqlite3.Connection) -> StoredCheckpoint | None:
        """Take a checkpoint inside the open transaction; a failure is kept in
        ``checkpoint_problem`` and never loses the group."""
        self._checkpoint_deadline = time.monotonic() + self.checkpointing.interval
        connection.execute("SAVEPOINT checkpoint")
        try:
            known = self.last_checkpoint
            taken = take_checkpoint(connection, self._tail_seq + 1, self.checkpointing.signer, _now())
            connection.execute("RELEASE checkpoint")
        except (LedgerError, sqlite3.Error) as problem:
            connection.execute("ROLLBACK TO checkpoint")
            connection.execute("RELEASE checkpoint")
            self.checkpoint_problem = problem
            return None
        self.checkpoint_problem = None
        if taken is None:
            return None
        self._checkpointed, self.last_checkpoint = taken.size, taken
        return None if known is not None and (known.size, known.note) == (taken.size, taken.note) else taken

    def _announce(self, connection: sqlite3.Connection, taken: StoredCheckpoint) -> None:
        for listener in self.checkpointing.listeners:
            try:
                listener(self.path, taken, lambda size: root_at(connection, size))
            except Exception:  # noqa: BLE001 - a listener (witness, telemetry) never fails a commit
                pass

    def _flush_pending(self, connection: sqlite3.Connection) -> None:
        """Insert the rows appended since the last flush (inside the open group)."""
        if self._pending:
            connection.executemany(_INSERT, self._pending)
            self._pending.clear()

    def _lost_range(self, last_seq: int) -> tuple[int, int] | None:
        return (self._group_first_seq, last_seq) if last_seq >= self._group_first_seq else None

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        raise failure

    # -- background committer -------------------------------------------------------------------

    def _wake_committer(self) -> None:
        if self._committer is None:
            self._committer = threading.Thread(
                target=_run_committer, args=(self,), name="execaudit-ledger-commit", daemon=True
            )
            self._committer.start()
        self._wake.notify()

    # -- closing, fork and exit -----------------------------------------------------------------

    def _close(self, lock_timeout: float) -> None:
        if not self._lock.acquire(timeout=lock_timeout):
            return  # another thread is stuck inside SQLite; exiting must not hang on it
        try:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            failure = self._commit_and_close(checkpoint=True)
            if failure is not None:
                raise failure
            if self._failure is not None:
                self._raise_failure()
        finally:
            self._lock.release()
            _OPEN_LEDGERS.discard(self)

    def _detach_before_fork(self) -> None:
        """Commit and close before fork(): SQLite's in-process lock state must not be inherited."""
        self._lock.acquire()
        self._failure = self._commit_and_close() or self._failure

    def _commit_and_close(self, *, checkpoint: bool = False) -> LedgerWriteError | None:
        """Commit the open group (with a checkpoint when asked) and close the connection;
        return the commit's failure."""
        connection, self._connection, self._inserter = self._connection, None, None
        if connection is None:
            return None
        try:
            if self._in_group:
                self._commit_group(connection, checkpoint=checkpoint)
            elif checkpoint and self._tail_seq + 1 > max(self._checkpointed, 0):
                try:  # appended here since the last checkpoint: one more before closing
                    self._begin_group(connection)
                    self._commit_group(connection, checkpoint=True)
                except LedgerWriteError as error:
                    self.checkpoint_problem = error
        except LedgerWriteError as error:
            return error
        finally:
            connection.close()
        return None

    def _follow_fork_and_exit(self) -> None:
        """From now on, commit and close this ledger before fork() and at interpreter exit."""
        _OPEN_LEDGERS.add(self)


def _run_committer(ledger: GroupCommit) -> None:
    """Commit each group at most batch_delay after it began; ends when the ledger closes."""
    wake = ledger._wake
    with wake:
        while not ledger._closed and ledger._committer is threading.current_thread():
            if not ledger._in_group:
                wake.wait()
                continue
            remaining = ledger._deadline - time.monotonic()
            if remaining > 0:
                wake.wait(remaining)
                continue
            try:
                ledger._commit_group(ledger._connection)
            except LedgerWriteError as error:
                ledger._failure = error  # surfaces on the next append, sync or close


_OPEN_LEDGERS: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


def _before_fork() -> None:
    for ledger in list(_OPEN_LEDGERS):
        ledger._detach_before_fork()


def _after_fork_in_parent() -> None:
    for ledger in list(_OPEN_LEDGERS):
        if ledger._lock.locked():
            ledger._lock.release()


def _after_fork_in_child() -> None:
    for ledger in list(_OPEN_LEDGERS):
        failure = ledger._failure
        ledger._reset_process_state()  # the parent's threads and locks do not exist here
        ledger._failure = failure


def _close_all_at_exit() -> None:
    for ledger in list(_OPEN_LEDGERS):
        try:
            ledger._close(lock_timeout=ledger.lock_timeout)
        except LedgerWriteError as error:
            print(f"otel_execaudit: {error}", file=sys.stderr)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
atexit.register(_close_all_at_exit)


def _now() -> str:
    """The time in the ledger's timestamp form (2026-11-22T03:07:19.123456Z)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
