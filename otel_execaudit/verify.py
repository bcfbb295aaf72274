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


def verify(path: str | os.PathLike[str], *, strict: bool = False,
           workers: int | None = None) -> VerifyReport:
    """Check every entry of the ledger at ``path`` without modifying (or creating) the file.

    ``strict`` also checks that each body is exactly the canonical form of its parsed value
    (slower; the hash chain already makes any change after writing visible). Ledgers of
    200,000 entries or more are checked by ``workers`` processes (default: one per core).
    Raises ``LedgerNotFoundError`` if the path does not exist, ``NotALedgerError`` if it is not
    a ledger.

    Example: ``report = verify(".execaudit/ledger.db"); sys.exit(0 if report.ok else 1)``
    """
    path = pathlib.Path(path)
    connection = _open_read_only(path)
    try:
        last_seq = connection.execute("SELECT max(seq) FROM entries").fetchone()[0]
        workers = workers or min(os.cpu_count() or 1, MAX_WORKERS)
        if last_seq is None or last_seq + 1 < PARALLEL_FROM or workers < 2:
            outcome = _verify_range(connection, str(path), strict, 0, None)
            return outcome.report(str(path), GENESIS_PREV, 0)
    finally:
        connection.close()
    return _verify_in_parallel(path, strict, last_seq + 1, workers)


# Verification is embarrassingly parallel: each part of the chain checks its own entries and
# links, and the parts meet at one link each, compared afterwards. Below PARALLEL_FROM entries
# starting worker processes costs more than it saves.
PARALLEL_FROM = 200_000
MAX_WORKERS = 8


@dataclasses.dataclass(frozen=True)
class _RangeOutcome:
    """What one part of the chain showed: how many entries passed, the hash of the last one,
    the ``prev`` its first entry names (checked against the part before), and the first
    failure."""

    start: int
    checked: int
    head_hash: str | None
    first_prev: str | None
    bad_seq: int | None = None
    reason: str | None = None

    def report(self, path: str, previous: str, checked_before: int) -> VerifyReport:
        head = self.head_hash if self.checked else (previous if checked_before else None)
        return VerifyReport(path, self.reason is None, checked_before + self.checked, head,
                            self.bad_seq, self.reason)


def _verify_in_parallel(path: pathlib.Path, strict: bool, count: int,
                        workers: int) -> VerifyReport:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    bounds = [count * part // workers for part in range(workers + 1)]
    context = multiprocessing.get_context("spawn")  # no fork: the caller may have threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        outcomes = list(pool.map(_verify_part, [str(path)] * workers, [strict] * workers,
                                 bounds[:-1], bounds[1:]))
    previous, checked = GENESIS_PREV, 0
    for outcome in outcomes:
        if outcome.first_prev is not None and outcome.first_prev != previous:
            reason = _prev_problem(outcome.start)
            return VerifyReport(str(path), False, checked, previous if checked else None,
                                outcome.start, reason)
        if outcome.reason is not None:
            return outcome.report(str(path), previous, checked)
        previous, checked = outcome.head_hash, checked + outcome.checked  # type: ignore[assignment]
    return VerifyReport(str(path), True, checked, previous, None, None)


def _verify_part(path: str, strict: bool, start: int, stop: int) -> _RangeOutcome:
    connection = _open_read_only(pathlib.Path(path))
    try:
        return _verify_range(connection, path, strict, start, stop)
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
        raise NotALedgerError(f"{path} is an empty SQLite database, not an otel-execaudit ledger; "
                              "check the path.")
    return connection


def _verify_range(connection: sqlite3.Connection, path: str, strict: bool, start: int,
                  stop: int | None) -> _RangeOutcome:
    """Check entries ``start <= seq < stop`` (to the end when ``stop`` is None). The first one's
    ``prev`` is checked here only from seq 0; otherwise it is returned for the caller."""
    sha256 = hashlib.sha256
    loads = orjson.loads
    expected_seq = start
    previous: str | None = GENESIS_PREV if start == 0 else None
    first_prev: str | None = None

    def broken(seq: int, reason: str) -> _RangeOutcome:
        return _RangeOutcome(start, expected_seq - start,
                             previous if expected_seq > start else None, first_prev, seq, reason)

    if stop is None:
        rows = connection.execute(
            "SELECT seq, hash, body, execution_id, kind FROM entries WHERE seq >= ? ORDER BY seq",
            (start,))
    else:
        rows = connection.execute(
            "SELECT seq, hash, body, execution_id, kind FROM entries WHERE seq >= ? AND seq < ?"
            " ORDER BY seq", (start, stop))
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
            if previous is None:  # the first entry of a later part: its link is checked later
                previous = first_prev = fields["prev"]
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
    if stop is not None and expected_seq < stop:  # the part ends early: the next entries are gone
        (following,) = connection.execute("SELECT min(seq) FROM entries WHERE seq > ?",
                                          (expected_seq,)).fetchone()
        return broken(expected_seq, f"entry {expected_seq} is missing (the next stored entry is {following})")
    return _RangeOutcome(start, expected_seq - start,
                         previous if expected_seq > start else None, first_prev)


def _field_set_problem(fields: object) -> str:
    if type(fields) is not dict:
        return "body is not a JSON object"
    missing = sorted(ENTRY_FIELDS - fields.keys())
    unexpected = sorted(fields.keys() - ENTRY_FIELDS)
    return f"body fields are wrong (missing {missing}, unexpected {unexpected})"


def _prev_problem(seq: int) -> str:
    return f"prev does not match the hash of entry {seq - 1}: an entry before it was changed, removed or inserted"


def _is_hex(value: object, length: int) -> bool:
    return type(value) is str and len(value) == length and _HEX_DIGITS.issuperset(value)


def _entry_problem(fields: dict, seq: int, previous: str, execution_id: object, kind: object) -> str:
    if fields["seq"] != seq or type(fields["seq"]) is not int:
        return f"body says seq {fields['seq']!r} but it is stored as entry {seq}: entries were reordered or renumbered"
    if fields["prev"] != previous:
        if seq == 0:
            return "prev of entry 0 is not 64 zeros"
        return _prev_problem(seq)
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
