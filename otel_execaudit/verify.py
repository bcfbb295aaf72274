"""Offline verification of a ledger file: every entry, every link, nothing written.

The rules checked are those of ``docs/ledger-format.md`` ("What verify checks")::

    >>> import tempfile, pathlib
    >>> from otel_execaudit.ledger import Ledger
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
    >>> Ledger(path).close()
    >>> verify(path).to_dict()["ok"]
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import sqlite3
import urllib.parse

import orjson

from otel_execaudit.canonical import (
    GENESIS_PREV,
    CanonicalizationError,
    canonical_bytes,
)
from otel_execaudit.errors import LedgerError, LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger_file import FORMAT_VERSION, ledger_identity

__all__ = ["VerifyReport", "verify"]

ENTRY_FIELDS = frozenset(("format", "seq", "prev", "ts", "kind", "execution_id", "plan_id", "trace_id", "span_id", "data"))
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``verify``.

    ``entries`` counts the intact entries from seq 0 on (all of them when ``ok``), ``head_hash``
    is the hash of the last intact one; ``first_bad_seq`` and ``reason`` say where and why the
    chain breaks.

    >>> VerifyReport("l.db", True, 0, None, None, None).to_dict()["entries"]
    0
    """

    path: str
    ok: bool
    entries: int
    head_hash: str | None
    first_bad_seq: int | None
    reason: str | None

    def to_dict(self) -> dict:
        """Return the report as a JSON-ready dict. Example: ``json.dumps(report.to_dict())``."""
        return dataclasses.asdict(self)


def verify(path: str | os.PathLike[str], *, strict: bool = False) -> VerifyReport:
    """Check every entry of the ledger at ``path`` without modifying (or creating) the file.

    ``strict`` also checks that each body is exactly the canonical form of its parsed value
    (slower; the hash chain already makes any change after writing visible).
    Raises ``LedgerNotFoundError`` if the path does not exist, ``NotALedgerError`` if it is not
    a ledger.

    Example: ``report = verify(".execaudit/ledger.db"); sys.exit(0 if report.ok else 1)``
    """
    path = pathlib.Path(path)
    connection = _open_read_only(path)
    try:
        return _verify_entries(connection, str(path), strict)
    finally:
        connection.close()


def _open_read_only(path: pathlib.Path) -> sqlite3.Connection:
    if not path.exists():
        raise LedgerNotFoundError(f"no ledger at {path}. Check the path or EXECAUDIT_LEDGER.")
    if not path.is_file():
        raise NotALedgerError(f"{path} is not a file, so it is not an otel-execaudit ledger.")
    uri = "file:" + urllib.parse.quote(str(path.absolute()))
    connection = sqlite3.connect(uri + "?mode=ro", uri=True)
    try:
        identity = ledger_identity(connection, path)
    except sqlite3.OperationalError as error:
        connection.close()
        # A read-only directory without a -shm file cannot host a WAL reader; with no -wal file
        # every committed entry is in the main file, so reading it as immutable is exact.
        if pathlib.Path(f"{path}-wal").exists():
            raise LedgerError(
                f"cannot read ledger {path}: {error}. Copy it with its -wal file to a writable directory."
            ) from error
        connection = sqlite3.connect(uri + "?immutable=1", uri=True)
        identity = ledger_identity(connection, path)
    except BaseException:
        connection.close()
        raise
    if identity == "empty":
        connection.close()
        raise NotALedgerError(f"{path} is an empty SQLite database, not an otel-execaudit ledger.")
    return connection


def _verify_entries(connection: sqlite3.Connection, path: str, strict: bool) -> VerifyReport:
    sha256 = hashlib.sha256
    loads = orjson.loads
    expected_seq = 0
    previous = GENESIS_PREV

    def broken(seq: int, reason: str) -> VerifyReport:
        return VerifyReport(path, False, expected_seq, None if expected_seq == 0 else previous, seq, reason)

    rows = connection.execute("SELECT seq, hash, body, execution_id, kind FROM entries ORDER BY seq")
    try:
        for seq, stored_hash, body, execution_id, kind in rows:
            if seq != expected_seq:
                if seq < expected_seq:  # cannot happen with INTEGER PRIMARY KEY; kept for other engines
                    return broken(seq, f"entry {seq} appears twice")
                return broken(expected_seq, f"entry {expected_seq} is missing (the next stored entry is {seq})")
            if type(body) is not bytes:
                return broken(seq, "body is not stored as a BLOB")
            digest = sha256(b"\x00" + body).hexdigest()
            if digest != stored_hash:
                return broken(seq, "stored hash differs from SHA-256(0x00 || body): the body or the hash was changed")
            try:
                fields = loads(body)
            except orjson.JSONDecodeError as error:
                return broken(seq, f"body is not valid JSON ({error})")
            if type(fields) is not dict or fields.keys() != ENTRY_FIELDS:
                return broken(seq, _field_set_problem(fields))
            # One combined test for the common case; the precise reason is worked out on failure.
            if not (
                fields["seq"] == seq
                and fields["prev"] == previous
                and fields["execution_id"] == execution_id
                and fields["kind"] == kind
                and type(fields["format"]) is int
                and fields["format"] == FORMAT_VERSION
                and type(fields["seq"]) is int
                and type(fields["ts"]) is str
                and type(execution_id) is str
                and type(kind) is str
                and type(fields["plan_id"]) is str
                and type(fields["data"]) is dict
                and (fields["trace_id"] is None or _is_hex(fields["trace_id"], 32))
                and (fields["span_id"] is None or _is_hex(fields["span_id"], 16))
            ):
                return broken(seq, _entry_problem(fields, seq, previous, execution_id, kind))
            if strict:
                problem = _canonical_problem(fields, body)
                if problem is not None:
                    return broken(seq, problem)
            previous = digest
            expected_seq += 1
    except sqlite3.DatabaseError as error:
        return broken(expected_seq, f"the SQLite file is damaged ({error})")
    return VerifyReport(path, True, expected_seq, None if expected_seq == 0 else previous, None, None)


def _field_set_problem(fields: object) -> str:
    if type(fields) is not dict:
        return "body is not a JSON object"
    missing = sorted(ENTRY_FIELDS - fields.keys())
    unexpected = sorted(fields.keys() - ENTRY_FIELDS)
    return f"body fields are wrong (missing {missing}, unexpected {unexpected})"


def _is_hex(value: object, length: int) -> bool:
    return type(value) is str and len(value) == length and _HEX_DIGITS.issuperset(value)


def _entry_problem(fields: dict, seq: int, previous: str, execution_id: object, kind: object) -> str:
    if fields["seq"] != seq or type(fields["seq"]) is not int:
        return f"body says seq {fields['seq']!r} but it is stored as entry {seq}: entries were reordered or renumbered"
    if fields["prev"] != previous:
        if seq == 0:
            return "prev of entry 0 is not 64 zeros"
        return f"prev does not match the hash of entry {seq - 1}: an entry before it was changed, removed or inserted"
    if fields["execution_id"] != execution_id or fields["kind"] != kind:
        return "the execution_id or kind column differs from the body: a column was changed"
    if type(fields["format"]) is not int or fields["format"] != FORMAT_VERSION:
        return f"format is {fields['format']!r}, expected {FORMAT_VERSION}"
    for name in ("ts", "kind", "execution_id", "plan_id"):
        if type(fields[name]) is not str:
            return f"{name} is not a string"
    for name, length in (("trace_id", 32), ("span_id", 16)):
        if fields[name] is not None and not _is_hex(fields[name], length):
            return f"{name} is neither null nor {length} lowercase hex characters"
    return "data is not a JSON object"


def _canonical_problem(fields: dict, body: bytes) -> str | None:
    try:
        if canonical_bytes(fields) == body:
            return None
    except CanonicalizationError as error:
        return f"body cannot be canonicalised ({error})"
    return "body is not in RFC 8785 canonical form"
