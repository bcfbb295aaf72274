"""Offline verification of a ledger file: every entry, every link, nothing written.

The rules checked are those of ``docs/ledger-format.md`` ("What verify checks"): the file
around the chain (``meta``, the schema, the index), then every entry. A ledger that is damaged
(unreadable pages, a truncated file) is reported like a tampered one, never raised::

    >>> import tempfile, pathlib
    >>> from otel_execaudit.ledger.store import Ledger
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
    >>> Ledger(path).close()
    >>> verify(path).to_dict()["ok"]
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from otel_execaudit.ledger.canonical import (
    GENESIS_PREV,
    CanonicalizationError,
    canonical_bytes,
)
from otel_execaudit.ledger.anchor import gather, judge, state_from_argument
from otel_execaudit.ledger.file import FORMAT_VERSION
from otel_execaudit.ledger.merkle import CompactRange
from otel_execaudit.ledger.note import VerifierKey
from otel_execaudit.ledger.readonly import (
    COUNT_INDEXED,
    INDEX,
    Damaged,
    damage_reason,
    file_problem,
    open_read_only,
)
from otel_execaudit.ledger.witness import WitnessState

__all__ = ["VerifyReport", "verify"]

ENTRY_FIELDS = frozenset(("format", "seq", "prev", "ts", "kind", "execution_id", "plan_id", "trace_id", "span_id", "data"))
_HEX_DIGITS = frozenset("0123456789abcdef")



@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``verify``.

    ``entries`` counts the intact entries from seq 0 on (all of them when ``ok``), ``head_hash``
    is the hash of the last intact one; ``first_bad_seq`` and ``reason`` say where and why the
    chain breaks. ``root`` is the Merkle tree root (hex) of the intact entries, ``roots`` the
    roots at the sizes asked for (``verify(..., roots_at=...)``), ``anchor`` the verdict against
    checkpoints held outside the ledger (``otel_execaudit.ledger.anchor``).

    >>> VerifyReport("l.db", True, 0, None, None, None).to_dict()["entries"]
    0
    """

    path: str
    ok: bool
    entries: int
    head_hash: str | None
    first_bad_seq: int | None
    reason: str | None
    root: str | None = None
    roots: Mapping[int, str] = dataclasses.field(default_factory=dict)
    anchor: Mapping[str, Any] | None = None

    def to_dict(self) -> dict:
        """Return the report as a JSON-ready dict. Example: ``json.dumps(report.to_dict())``.
        A path that is not valid UTF-8 is given with its odd bytes escaped (``l\\xff.db``)."""
        document = dataclasses.asdict(self)
        document["path"] = os.fsencode(self.path).decode("utf-8", "backslashreplace")
        document["roots"] = {str(size): root for size, root in sorted(self.roots.items())}
        return document


def verify(path: str | os.PathLike[str], *, strict: bool = False,
           workers: int | None = None, roots_at: Iterable[int] = (),
           checkpoints: Iterable[str] = (), keys: Iterable[VerifierKey] = (),
           state: WitnessState | str | os.PathLike[str] | bool | None = None) -> VerifyReport:
    """Check every entry of the ledger at ``path`` without modifying (or creating) the file.

    ``strict`` also checks that each body is exactly the canonical form of its parsed value
    (slower; the hash chain already makes any change after writing visible). Ledgers of
    200,000 entries or more are checked by ``workers`` processes (default: one per core).
    Raises ``LedgerNotFoundError`` if the path does not exist, ``NotALedgerError`` if it is not
    a ledger, ``LedgerError`` if it cannot be opened at all (permissions). The Merkle root of
    the entries is computed on the way, and at each size in ``roots_at`` too. A damaged ledger
    gives a report like a tampered one: ``first_bad_seq`` is the entry where reading failed, or
    None when the problem is the file around the chain rather than one entry.

    The chain is then held against checkpoints (``otel_execaudit.ledger.anchor``): the ledger's
    own latest one, the witness ``state`` file's for its origin (default: the one checkpoints are
    sent to; ``False``: none) and each of ``checkpoints`` (their text; with ``keys``, each must be
    signed by one of them). ``report.anchor["status"]`` is ``anchored``, ``unanchored`` or
    ``contradicted``; a contradiction (a cut tail, a rewrite, another ledger in its place, a
    fork) makes the report not ``ok``, with the evidence as its reason.

    Example: ``report = verify(".execaudit/ledger.db"); sys.exit(0 if report.ok else 1)``
    """
    path = pathlib.Path(path)
    try:
        return _verify_file(path, strict, workers, frozenset(roots_at), list(checkpoints),
                            list(keys), state_from_argument(state))
    except Damaged as damage:
        return VerifyReport(str(path), False, 0, None, None, str(damage))


def _verify_file(path: pathlib.Path, strict: bool, workers: int | None, sizes: frozenset[int],
                 checkpoints: list[str], keys: list[VerifierKey],
                 state: WitnessState | None) -> VerifyReport:
    connection = open_read_only(path)
    try:
        # One snapshot for the checks of the whole file: entries appended meanwhile are not seen
        # (in parallel mode the parts read only seqs below the snapshot's end).
        connection.execute("BEGIN")
        problem = file_problem(connection)
        if problem is not None:
            raise Damaged(problem)
        origin, anchors, evidence = gather(connection, path, checkpoints=checkpoints, keys=keys,
                                           state=state)
        sizes = sizes | {anchor.checkpoint.size for anchor in anchors}
        last_seq = connection.execute("SELECT max(seq) FROM entries").fetchone()[0]
        # Reading the whole index (a covering index: about 2 % of the file) finds its damaged
        # pages, and rows it lacks or has too many of, which lookups by execution id would show.
        indexed = connection.execute(COUNT_INDEXED).fetchone()[0]
        workers = workers or min(os.cpu_count() or 1, MAX_WORKERS)
        if last_seq is None or last_seq + 1 < PARALLEL_FROM or workers < 2:
            outcome = _verify_range(connection, str(path), strict, 0, None, sizes)
            report = _with_roots(outcome.report(str(path), GENESIS_PREV, 0), [outcome])
        else:
            report = _verify_in_parallel(path, strict, last_seq + 1, workers, sizes)
    except sqlite3.DatabaseError as error:
        raise Damaged(damage_reason(error)) from error
    finally:
        connection.close()
    if report.ok and indexed != report.entries:
        report = dataclasses.replace(report, ok=False, reason=(
            f"index {INDEX} holds {indexed} rows for {report.entries} entries: the file is "
            "damaged or was changed, and lookups by execution id would not show the chain"))
    verdict, contradiction = judge(origin, report.entries, dict(report.roots), anchors, evidence)
    if report.ok and contradiction is not None:
        report = dataclasses.replace(report, ok=False, reason=contradiction)
    return dataclasses.replace(report, anchor=verdict)



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
    edge: CompactRange | None = None  # the tree edge of the intact entries checked
    snapshots: tuple[CompactRange, ...] = ()  # the edge at each size asked for

    def report(self, path: str, previous: str, checked_before: int) -> VerifyReport:
        head = self.head_hash if self.checked else (previous if checked_before else None)
        return VerifyReport(path, self.reason is None, checked_before + self.checked, head,
                            self.bad_seq, self.reason)


def _with_roots(report: VerifyReport, outcomes: list[_RangeOutcome]) -> VerifyReport:
    """The report with the tree roots of the intact entries: the parts' edges joined in order
    (each one's snapshots joined to the edge before it)."""
    edge, roots = CompactRange(), {}
    for outcome in outcomes:
        for snapshot in outcome.snapshots:
            if snapshot.end <= report.entries:
                joined = CompactRange(0, edge.hashes, edge.end)
                joined.merge(snapshot)
                roots[snapshot.end] = joined.root().hex()
        if outcome.edge is None or edge.end != outcome.edge.begin or edge.end >= report.entries:
            break
        edge.merge(outcome.edge)
    if edge.end != report.entries:  # a part after the break: the intact prefix ends earlier
        return dataclasses.replace(report, roots=roots)
    return dataclasses.replace(report, root=edge.root().hex(), roots=roots)


def _verify_in_parallel(path: pathlib.Path, strict: bool, count: int,
                        workers: int, sizes: frozenset[int]) -> VerifyReport:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    bounds = [count * part // workers for part in range(workers + 1)]
    context = multiprocessing.get_context("spawn")  # no fork: the caller may have threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        outcomes = list(pool.map(_verify_part, [str(path)] * workers, [strict] * workers,
                                 bounds[:-1], bounds[1:], [sizes] * workers))
    previous, checked = GENESIS_PREV, 0
    for outcome in outcomes:
        if outcome.first_prev is not None and outcome.first_prev != previous:
            reason = _prev_problem(outcome.start)
            return _with_roots(VerifyReport(str(path), False, checked, previous if checked else None,
                                            outcome.start, reason), outcomes)
        if outcome.reason is not None:
            return _with_roots(outcome.report(str(path), previous, checked), outcomes)
        previous, checked = outcome.head_hash, checked + outcome.checked  # type: ignore[assignment]
    return _with_roots(VerifyReport(str(path), True, checked, previous, None, None), outcomes)


def _verify_part(path: str, strict: bool, start: int, stop: int, sizes: frozenset[int]) -> _RangeOutcome:
    connection = open_read_only(pathlib.Path(path))
    try:
        return _verify_range(connection, path, strict, start, stop, sizes)
    finally:
        connection.close()


def _verify_range(connection: sqlite3.Connection, path: str, strict: bool, start: int,
                  stop: int | None, sizes: frozenset[int] = frozenset()) -> _RangeOutcome:
    """Check entries ``start <= seq < stop`` (to the end when ``stop`` is None). The first one's
    ``prev`` is checked here only from seq 0; otherwise it is returned for the caller."""
    sha256 = hashlib.sha256
    loads, dumps = orjson.loads, orjson.dumps
    expected_seq = start
    previous: str | None = GENESIS_PREV if start == 0 else None
    first_prev: str | None = None
    edge, snapshots = CompactRange(start), []
    append_leaf, fromhex = edge.append, bytes.fromhex

    def broken(seq: int, reason: str) -> _RangeOutcome:
        return _RangeOutcome(start, expected_seq - start,
                             previous if expected_seq > start else None, first_prev, seq, reason,
                             edge, tuple(snapshots))

    # The part from seq 0 has no lower bound: a row below 0 is not an entry of the chain, yet
    # lookups by execution id find it, so it must come first and fail.
    bounds = ([] if start == 0 else ["seq >= :start"]) + ([] if stop is None else ["seq < :stop"])
    query = ("SELECT seq, hash, body, execution_id, kind FROM entries"
             + "".join(f" {word} {bound}" for word, bound in zip(("WHERE", "AND"), bounds))
             + " ORDER BY seq")
    try:
        for seq, stored_hash, body, execution_id, kind in connection.execute(
                query, {"start": start, "stop": stop}):
            if seq != expected_seq:
                if seq < 0:
                    return broken(seq, f"row seq {seq} is outside 0..n-1: a row was added before entry 0")
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
            # orjson keeps the last of two members with one name and canonical JSON has none. Re-
            # encoding the parsed value gives the body back exactly when it has none (one dumps,
            # about 1 µs); only bodies that differ anyway are parsed again to look for one.
            try:
                reencoded = dumps(fields)
            except orjson.JSONEncodeError:  # nested deeper than orjson writes: the exact test decides
                reencoded = None
            if reencoded != body:
                problem = _duplicate_problem(body)
                if problem is not None:
                    return broken(seq, problem)
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
                and kind
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
            append_leaf(fromhex(digest))
            if expected_seq in sizes:
                snapshots.append(CompactRange(start, edge.hashes, expected_seq))
        if stop is not None and expected_seq < stop:  # the part ends early: the next entries are gone
            (following,) = connection.execute("SELECT min(seq) FROM entries WHERE seq > ?",
                                              (expected_seq,)).fetchone()
            return broken(expected_seq, f"entry {expected_seq} is missing (the next stored entry is {following})")
    except sqlite3.DatabaseError as error:
        return broken(expected_seq, damage_reason(error))
    return _RangeOutcome(start, expected_seq - start,
                         previous if expected_seq > start else None, first_prev, None, None,
                         edge, tuple(snapshots))


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
    if not fields["kind"]:
        return "kind is empty; the format requires a non-empty string"
    for name, length in (("trace_id", 32), ("span_id", 16)):
        if fields[name] is not None and not _is_hex(fields[name], length):
            return f"{name} is neither null nor {length} lowercase hex characters"
    return "data is not a JSON object"


class _DuplicateMember(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise _DuplicateMember(name)
        seen.add(name)
    # Returns None: only the names matter here, so no object is built.


def _duplicate_problem(body: bytes) -> str | None:
    """Name a member that one object of ``body`` has twice, or return None (the exact test).

    >>> _duplicate_problem(b'{"a": {"b": 1, "b": 2}}')
    "body has a duplicate member 'b' (not canonical; readers may disagree on its value)"
    >>> _duplicate_problem(b'{"a": {"b": 1}, "b": 2}') is None
    True
    """
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except _DuplicateMember as duplicate:
        return f"body has a duplicate member {duplicate.args[0]!r} (not canonical; readers may disagree on its value)"
    except (ValueError, RecursionError) as error:  # orjson read it; fail closed if json cannot
        return f"body cannot be checked for duplicate members ({error})"
    return None


def _canonical_problem(fields: dict, body: bytes) -> str | None:
    try:
        if canonical_bytes(fields) == body:
            return None
    except CanonicalizationError as error:
        return f"body cannot be canonicalised ({error})"
    return "body is not in RFC 8785 canonical form"
