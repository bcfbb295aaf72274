"""The ledger file itself: its schema, how it is opened and recognised, what a caller may append,
and how SQLite's errors become errors that say what to do.

>>> FORMAT_VERSION
1
"""

from __future__ import annotations

import pathlib
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

from otel_execaudit.errors import LedgerWriteError, NotALedgerError

FORMAT_VERSION = 1
APPLICATION = "otel-execaudit"
APPLICATION_ID = 0x45584155  # "EXAU" in the SQLite header: `file` and hex dumps recognise us too
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    body BLOB NOT NULL,
    execution_id TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE INDEX entries_by_execution ON entries (execution_id, seq);
"""

_CALLER_FIELDS = ("kind", "ts", "execution_id", "plan_id", "trace_id", "span_id", "data")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


def validate_caller_fields(fields: Mapping[str, Any], path: pathlib.Path) -> dict[str, Any]:
    """Return a new entry dict (format included) from the caller's fields, or raise LedgerWriteError.

    >>> validate_caller_fields({"kind": "k", "ts": "2026-11-22T03:07:19.123456Z", "execution_id": "e",
    ...     "plan_id": "p", "trace_id": None, "span_id": None, "data": {}}, pathlib.Path("l.db"))["format"]
    1
    """
    try:
        kind, ts, execution_id, plan_id = fields["kind"], fields["ts"], fields["execution_id"], fields["plan_id"]
        trace_id, span_id, data = fields["trace_id"], fields["span_id"], fields["data"]
    except KeyError as missing:
        raise _field_error(path, f"field {missing} is missing") from None
    # One cheap test for the common case; the exact complaint is worked out only on failure.
    if not (
        type(kind) is str
        and kind
        and type(ts) is str
        and _TIMESTAMP.fullmatch(ts)
        and type(execution_id) is str
        and type(plan_id) is str
        and (trace_id is None or (type(trace_id) is str and _TRACE_ID.fullmatch(trace_id)))
        and (span_id is None or (type(span_id) is str and _SPAN_ID.fullmatch(span_id)))
        and (type(data) is dict or isinstance(data, Mapping))
        and len(fields) == len(_CALLER_FIELDS)
    ):
        raise _field_error(path, _field_problem(fields))
    return {
        "format": FORMAT_VERSION,
        "kind": kind,
        "ts": ts,
        "execution_id": execution_id,
        "plan_id": plan_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "data": data,
    }


def _field_problem(fields: Mapping[str, Any]) -> str:
    extra = sorted(set(fields) - set(_CALLER_FIELDS))
    if extra:
        return f"unexpected field(s) {extra}; the ledger sets format, seq and prev itself"
    kind, ts, data = fields["kind"], fields["ts"], fields["data"]
    if type(kind) is not str or not kind:
        return f"kind must be a non-empty str, got {kind!r}"
    if type(ts) is not str or _TIMESTAMP.fullmatch(ts) is None:
        return f"ts must be RFC 3339 UTC with microseconds like 2026-11-22T03:07:19.123456Z, got {ts!r}"
    for name in ("execution_id", "plan_id"):
        if type(fields[name]) is not str:
            return f"{name} must be a str, got {type(fields[name]).__name__}"
    for name, pattern, length in (("trace_id", _TRACE_ID, 32), ("span_id", _SPAN_ID, 16)):
        value = fields[name]
        if value is not None and (type(value) is not str or pattern.fullmatch(value) is None):
            return f"{name} must be {length} lowercase hex characters or None, got {value!r}"
    return f"data must be a dict, got {type(data).__name__}"


def _field_error(path: pathlib.Path, problem: str) -> LedgerWriteError:
    return LedgerWriteError(f"entry not appended to ledger {path}: {problem}. Fix the caller; nothing was written.")


def write_error(
    path: pathlib.Path,
    error: BaseException,
    lock_timeout: float,
    lost: tuple[int, int] | None = None,
    *,
    refused: bool = False,
) -> LedgerWriteError:
    """Translate an SQLite error into a LedgerWriteError that says what to do next.

    ``lost``: the seq range of entries already acknowledged to callers that did not survive;
    ``refused``: the append in progress was not written.
    """
    name = getattr(error, "sqlite_errorname", "")
    text = str(error)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        advice = (
            f"another process or connection has held the write lock for more than {lock_timeout:g} s. "
            f"Wait and retry, raise lock_timeout, or find the holder (for example `fuser {path}`)."
        )
    elif name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN")) or "readonly" in text:
        advice = (
            "the file or its directory is not writable by this user. Make both writable (SQLite also "
            f"creates {path.name}-wal and {path.name}-shm beside it) or set EXECAUDIT_LEDGER to a writable path."
        )
    elif name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or "full" in text:
        advice = (
            "the filesystem refused the write (disk full, quota or file size limit). Free space or set "
            "EXECAUDIT_LEDGER to a path on another filesystem."
        )
    else:
        advice = "check the file with `execaudit verify` and the filesystem it lives on."
    outcome = "This entry was not appended. " if refused else ""
    if lost is None:
        outcome += "Nothing already committed is lost."
    else:
        outcome += (
            f"Entries {lost[0]}..{lost[1]}, acknowledged since the last commit, were not committed and are "
            f"lost; everything before seq {lost[0]} is intact."
        )
    return LedgerWriteError(f"cannot write ledger {path}: {text}; {advice} {outcome}")


def open_connection(path: pathlib.Path, lock_timeout: float, synchronous: str) -> sqlite3.Connection:
    """Open (creating if needed) a ledger for writing; raise NotALedgerError for foreign files."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LedgerWriteError(
            f"cannot create the directory of ledger {path}: {error.strerror}. "
            "Create it and make it writable, or set EXECAUDIT_LEDGER to a writable path."
        ) from error
    try:
        connection = sqlite3.connect(path, timeout=lock_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise write_error(path, error, lock_timeout) from error
    try:
        if ledger_identity(connection, path) == "empty":
            _initialise(connection, path, lock_timeout)
        elif connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
    except sqlite3.Error as error:
        connection.close()
        raise write_error(path, error, lock_timeout) from error
    except BaseException:
        connection.close()
        raise
    return connection


def ledger_identity(connection: sqlite3.Connection, path: pathlib.Path | str) -> str:
    """Return "ledger" or "empty" (an SQLite file without tables); raise NotALedgerError otherwise."""
    advice = "Point EXECAUDIT_LEDGER (or the path you passed) at a ledger file or at a new path."
    try:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError:
        raise  # cannot open or read (permissions, locks): not a verdict on what the file is
    except sqlite3.DatabaseError as error:
        raise NotALedgerError(f"{path} is not an otel-execaudit ledger ({error}). {advice}") from error
    if not tables:
        return "empty"
    if not {"meta", "entries"} <= tables:
        raise NotALedgerError(f"{path} is an SQLite database but not an otel-execaudit ledger. {advice}")
    meta = dict(connection.execute("SELECT key, value FROM meta"))
    if meta.get("application") != APPLICATION:
        raise NotALedgerError(f"{path} is an SQLite database but not an otel-execaudit ledger. {advice}")
    if meta.get("format") != str(FORMAT_VERSION):
        raise NotALedgerError(
            f"{path} is an otel-execaudit ledger of format {meta.get('format')!r}; this version reads format "
            f"{FORMAT_VERSION}. Upgrade otel-execaudit."
        )
    return "ledger"


def _initialise(connection: sqlite3.Connection, path: pathlib.Path, lock_timeout: float) -> None:
    # Larger pages: fewer page writes per group commit (about 10 % cheaper appends). It only
    # takes effect on a new file, before WAL mode is set; it is not part of the format.
    connection.execute("PRAGMA page_size = 16384")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have initialised the file while we waited for the lock.
        if ledger_identity(connection, path) == "empty":
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("application", APPLICATION), ("format", str(FORMAT_VERSION))],
            )
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("COMMIT")
    except BaseException:
        rollback_quietly(connection)
        raise


def rollback_quietly(connection: sqlite3.Connection) -> None:
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the group is already gone; the caller reports the original error
