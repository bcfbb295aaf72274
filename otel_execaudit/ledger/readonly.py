"""Opening a ledger for reading only, and checking that the file around the chain is exactly
the format's: ``meta``'s two rows, the ``entries`` table's columns, its index. A file that is a
ledger but not as the format has it, or that SQLite cannot read, is ``Damaged``: ``verify``
reports it as tampering, never raises it.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import urllib.parse

from otel_execaudit.errors import LedgerError, LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger.file import APPLICATION, APPLICATION_ID, FORMAT_VERSION, ledger_identity

__all__ = ["COUNT_INDEXED", "Damaged", "INDEX", "damage_reason", "file_problem",
           "open_read_only"]

# The file around the chain, as file.SCHEMA creates it: meta's rows, and for each column
# of entries its declared type, NOT NULL and primary-key flags (seq: the INTEGER PRIMARY KEY).
_META_ROWS = [("application", APPLICATION), ("format", str(FORMAT_VERSION))]
_ENTRY_COLUMNS = {"seq": ("INTEGER", 0, 1), "hash": ("TEXT", 1, 0), "body": ("BLOB", 1, 0),
                  "execution_id": ("TEXT", 1, 0), "kind": ("TEXT", 1, 0)}
INDEX, _INDEX_COLUMNS = "entries_by_execution", ["execution_id", "seq"]
COUNT_INDEXED = f"SELECT count(*) FROM entries INDEXED BY {INDEX}"
_SQLITE_HEADER = b"SQLite format 3\x00"


class Damaged(Exception):
    """The file is a ledger (its meta rows, or when those cannot be read its header, say so) but
    not as the format has it; the message is the report's reason."""


def damage_reason(error: sqlite3.DatabaseError) -> str:
    return f"the SQLite file is damaged ({error})"


def file_problem(connection: sqlite3.Connection) -> str | None:
    """Say how the file around the chain differs from the format, or return None.

    ``meta`` holds exactly its two rows (the file was identified by them; another row means it
    was changed), ``entries`` has exactly the format's columns and the index exists.
    """
    meta = sorted(connection.execute("SELECT key, value FROM meta"))
    if meta != _META_ROWS:
        others = [found for found in meta if found not in _META_ROWS]
        return f"meta holds rows other than application and format ({others}): the file was changed"
    columns = {name: (declared.upper(), not_null, primary)
               for _, name, declared, not_null, _, primary in connection.execute("PRAGMA table_info(entries)")}
    if columns != _ENTRY_COLUMNS:
        missing = sorted(_ENTRY_COLUMNS.keys() - columns.keys())
        different = sorted(name for name in _ENTRY_COLUMNS.keys() & columns.keys()
                           if columns[name] != _ENTRY_COLUMNS[name])
        unexpected = sorted(columns.keys() - _ENTRY_COLUMNS.keys())
        return (f"the entries table is not the format's (missing columns {missing}, changed "
                f"{different}, unexpected {unexpected}): the file was changed")
    partial = {name: partial for _, name, _, _, partial in connection.execute("PRAGMA index_list(entries)")}
    indexed = [name for _, _, name in connection.execute(f"PRAGMA index_info({INDEX})")]
    if partial.get(INDEX) != 0 or indexed != _INDEX_COLUMNS:  # a partial index skips rows
        return f"index {INDEX} on entries (execution_id, seq) is missing or different: the file was changed"
    return None


def open_read_only(path: pathlib.Path) -> sqlite3.Connection:
    if not path.exists():
        raise LedgerNotFoundError(f"no ledger at {path}. Check the path or EXECAUDIT_LEDGER.")
    if not path.is_file():
        raise NotALedgerError(f"{path} is not a file, so it is not an otel-execaudit ledger.")
    # The path's bytes, quoted: a file name that is not UTF-8 is still a file to open.
    uri = "file:" + urllib.parse.quote(os.fsencode(path.absolute()))
    connection = sqlite3.connect(uri + "?mode=ro", uri=True)
    try:
        identity = _identify(connection, path)
    except sqlite3.OperationalError as error:
        connection.close()
        # A read-only directory without a -shm file cannot host a WAL reader; with no -wal file
        # every committed entry is in the main file, so reading it as immutable is exact.
        if pathlib.Path(f"{path}-wal").exists():
            raise LedgerError(
                f"cannot read ledger {path}: {error}. Copy it with its -wal file to a writable directory."
            ) from error
        connection = sqlite3.connect(uri + "?immutable=1", uri=True)
        try:
            identity = _identify(connection, path)
        except sqlite3.OperationalError as error:
            connection.close()
            raise LedgerError(f"cannot read ledger {path}: {error}. Check its permissions.") from error
        except BaseException:
            connection.close()
            raise
    except BaseException:
        connection.close()
        raise
    if identity == "empty":
        connection.close()
        raise NotALedgerError(f"{path} is an empty SQLite database, not an otel-execaudit ledger; "
                              "check the path.")
    return connection


def _identify(connection: sqlite3.Connection, path: pathlib.Path) -> str:
    """``ledger_identity``, except that a file whose header names it a ledger (application_id
    "EXAU") but that SQLite cannot read is a damaged ledger, not something else."""
    try:
        return ledger_identity(connection, path)
    except sqlite3.DatabaseError as error:  # a damaged page, or meta without its columns
        # Other operational errors (permissions, locks) are no verdict on the file: the caller
        # retries or reports that it cannot read it.
        if isinstance(error, sqlite3.OperationalError) and error.sqlite_errorname != "SQLITE_ERROR":
            raise
        if _header_names_a_ledger(path):
            raise Damaged(damage_reason(error)) from error
        raise NotALedgerError(f"{path} is not an otel-execaudit ledger ({error}).") from error
    except NotALedgerError as error:
        if isinstance(error.__cause__, sqlite3.DatabaseError) and _header_names_a_ledger(path):
            raise Damaged(damage_reason(error.__cause__)) from error
        raise


def _header_names_a_ledger(path: pathlib.Path) -> bool:
    """Whether the file starts with an SQLite header carrying the ledger's application_id.

    The header is informative only (docs/ledger-format.md): it decides nothing about a file
    SQLite can read, but tells a damaged ledger (exit 1) from a foreign file (exit 2).
    """
    try:
        with path.open("rb") as file:
            header = file.read(72)
    except OSError:
        return False
    return header[:16] == _SQLITE_HEADER and int.from_bytes(header[68:72], "big") == APPLICATION_ID
