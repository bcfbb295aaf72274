"""Checking a ledger before anything read from it is shown.

A small ledger is verified whole (``verify``); a big one, where that would take seconds, has the
entries read checked instead (docs/inspection.md#checked-before-shown says exactly what that
finds and what it cannot): each one read, and each one next to one read, hashes to its stored
hash, holds its own ``seq``, and has the ``kind`` and ``execution_id`` columns its body says;
each read entry names the one before it as ``prev`` and is named by the one after it. Either
way the verdict comes first, never silently::

    >>> Integrity(True, "ledger", 12, None, None).warning is None
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import sqlite3
from typing import Any, Mapping

import orjson

from otel_execaudit.inspection.rebuild import as_bytes
from otel_execaudit.ledger import verify

__all__ = ["FULL_CHECK_UP_TO", "Checked", "Integrity", "Stored", "check_entries", "check_ledger",
           "checked", "entry_problem", "parsed"]

# Up to this many entries the whole ledger is verified before a read (about 0.3 s on one
# core); beyond it, the entries read and their neighbours (benchmarks/bench_inspection.py).
FULL_CHECK_UP_TO = 50_000
GENESIS = "0" * 64
_BATCH = 900  # seqs a query names (SQLite allows 999 parameters by default on old builds)

# One row as stored: seq, hash, body, the kind and execution_id columns, and the body parsed
# (None when it was not parsed yet).
Stored = tuple[int, Any, Any, Any, Any, Any]


@dataclasses.dataclass(frozen=True)
class Integrity:
    """What was checked before showing: ``scope`` is ``"ledger"`` (all of it, by ``verify``)
    or ``"entries read"`` (those entries, their neighbours and links); ``entries`` how many
    were read and checked."""

    ok: bool
    scope: str
    entries: int
    first_bad_seq: int | None
    reason: str | None

    @property
    def warning(self) -> str | None:
        """The line to show before any data when the check failed, else None."""
        if self.ok:
            return None
        where = "" if self.first_bad_seq is None else f" at seq {self.first_bad_seq}"
        return (f"WARNING: this ledger failed verification{where}: {self.reason}. What follows "
                "is what the file holds now, which may not be what was recorded; run "
                "`execaudit verify` for the full report.")

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON data, ``warning`` included (None when the check passed)."""
        return {**dataclasses.asdict(self), "warning": self.warning}


def check_ledger(path: pathlib.Path, entry_count: int) -> Integrity | None:
    """The whole ledger verified, when it is small enough; None when it is not."""
    if entry_count > FULL_CHECK_UP_TO:
        return None
    report = verify(path)
    return Integrity(report.ok, "ledger", report.entries if report.ok else entry_count,
                     report.first_bad_seq, report.reason)


def parsed(body: Any) -> Any:
    """A body parsed as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(as_bytes(body))
    except (orjson.JSONDecodeError, TypeError):
        return None


def entry_problem(row: Stored) -> tuple[str | None, Any]:
    """What is wrong with one stored row, or None; and the ``prev`` its body names.

    >>> entry_problem((0, "00", b"{}", "k", "e", None))[0]
    "the entry's body does not match its hash"
    """
    seq, digest, body, kind, execution_id, entry = row
    if type(body) is not bytes:
        body = as_bytes(body)
    if entry is None:
        entry = parsed(body)
    if type(entry) is not dict:
        problem = "the entry is not a JSON object"
        if hashlib.sha256(b"\x00" + body).hexdigest() != digest:
            problem = "the entry's body does not match its hash"
        return problem, None
    prev = entry.get("prev")
    if hashlib.sha256(b"\x00" + body).hexdigest() != digest:
        return "the entry's body does not match its hash", prev
    if entry.get("seq") != seq or type(entry.get("seq")) is not int:
        return "the entry's body holds another seq", prev
    if entry.get("kind") != kind or entry.get("execution_id") != execution_id:
        column, value = ("kind", kind) if entry.get("kind") != kind else \
            ("execution_id", execution_id)
        return (f"its {column} column ({value!r}) is not its body's ({entry.get(column)!r}): "
                "the column was changed, and lookups by it are misled"), prev
    return None, prev


Checked = tuple[Any, Any, "str | None"]  # an entry read: its hash, its prev, its problem


def checked(row: Stored) -> Checked:
    """What the check keeps of a row read: its hash, the ``prev`` it names, its problem (or
    None), so that a long read need not keep the bodies."""
    problem, prev = entry_problem(row)
    return row[1], prev, problem


def check_entries(connection: sqlite3.Connection, read: Mapping[int, Checked], last_seq: int
                  ) -> Integrity:
    """Check the rows read (``checked`` each, by seq), the rows next to them, and the links
    between them all.

    Every read row and every neighbour (the entry just before and just after each run of
    consecutive rows read) must pass ``entry_problem``; each read row's ``prev`` must be the
    hash of the entry before it (64 zeros for seq 0), and the entry after it must name it.
    The first problem, by seq, is the verdict.
    """
    problems = [(seq, problem) for seq, (_, _, problem) in read.items() if problem]
    prevs = {seq: prev for seq, (_, prev, _) in read.items()}
    hashes = {seq: digest for seq, (digest, _, _) in read.items()}
    wanted = sorted({seq - 1 for seq in read if seq > 0 and seq - 1 not in read}
                    | {seq + 1 for seq in read if seq < last_seq and seq + 1 not in read})
    for start in range(0, len(wanted), _BATCH):  # a batch at a time: no body is kept
        chunk = wanted[start:start + _BATCH]
        found = _fetch(connection, chunk)
        for seq in chunk:
            row = found.get(seq)
            if row is None:
                problems.append((seq, "the entry is missing (removed), though entries after "
                                      "it remain"))
                continue
            reason, prevs[seq] = entry_problem(row)
            hashes[seq] = row[1]
            if reason:
                problems.append((seq, f"{reason} (an entry next to one read)"))
    # Each link that touches an entry read; a broken one is said at its earlier entry, the one
    # whose hash the next does not name (the one changed, when an edit was re-hashed).
    links = {seq for seq in read if seq + 1 in hashes} | {seq - 1 for seq in read if seq - 1 in hashes}
    for seq in links:
        if prevs.get(seq + 1) != hashes[seq]:
            problems.append((seq, "the entry after it does not link to it (an entry was "
                                  "changed, removed or inserted)"))
    if 0 in read and prevs[0] != GENESIS:
        problems.append((0, "the first entry does not start the chain (its prev is not 64 "
                            "zeros)"))
    if problems:
        seq, reason = min(problems)
        return Integrity(False, "entries read", len(read), seq, reason)
    return Integrity(True, "entries read", len(read), None, None)


def _fetch(connection: sqlite3.Connection, seqs: list[int]) -> dict[int, Stored]:
    return {seq: (seq, digest, body, kind, execution_id, None)
            for seq, digest, body, kind, execution_id in connection.execute(
                "SELECT seq, hash, body, kind, execution_id FROM entries WHERE seq IN "
                f"({','.join('?' * len(seqs))})", seqs)}
