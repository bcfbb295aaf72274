"""Checking a ledger before anything read from it is shown.

A small ledger is verified whole (``verify``); a big one, where that would take seconds, has the
entries read checked instead: each body hashes to its stored hash, holds its own ``seq``, and is
named as ``prev`` by the entry after it. Either way the verdict comes first, never silently::

    >>> Integrity(True, "ledger", 12, None, None).warning is None
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import sqlite3
from typing import Any, Iterable

from otel_execaudit.ledger import verify

__all__ = ["FULL_CHECK_UP_TO", "Integrity", "check_entries", "check_ledger"]

# Up to this many entries the whole ledger is verified before a read (about 0.3 s on one
# core); beyond it, the entries read and their links (benchmarks/bench_inspection.py).
FULL_CHECK_UP_TO = 50_000


@dataclasses.dataclass(frozen=True)
class Integrity:
    """What was checked before showing: ``scope`` is ``"ledger"`` (all of it, by ``verify``)
    or ``"entries read"`` (those entries and their links); ``entries`` how many were checked."""

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


def check_entries(connection: sqlite3.Connection, rows: Iterable[tuple[int, str, bytes]],
                  last_seq: int) -> Integrity:
    """Check the rows read (``seq, hash, body``) and the links that name them."""
    rows = sorted(set(rows))
    checked = {seq: digest for seq, digest, _ in rows}
    for seq, digest, body in rows:
        if hashlib.sha256(b"\x00" + body).hexdigest() != digest:
            return Integrity(False, "entries read", len(rows), seq,
                             "the entry's body does not match its hash")
        try:
            if json.loads(body).get("seq") != seq:
                return Integrity(False, "entries read", len(rows), seq,
                                 "the entry's body holds another seq")
        except (ValueError, AttributeError):
            return Integrity(False, "entries read", len(rows), seq, "the entry is not JSON")
    following = [seq + 1 for seq in checked if seq < last_seq]
    for start in range(0, len(following), 500):
        chunk = following[start:start + 500]
        found = dict(connection.execute(
            f"SELECT seq, body FROM entries WHERE seq IN ({','.join('?' * len(chunk))})", chunk))
        for seq in chunk:
            body = found.get(seq)
            try:
                prev = None if body is None else json.loads(body).get("prev")
            except (ValueError, AttributeError):
                prev = None
            if prev != checked[seq - 1]:
                return Integrity(False, "entries read", len(rows), seq - 1,
                                 "the entry after it does not link to it (an entry was changed, "
                                 "removed or inserted)")
    return Integrity(True, "entries read", len(rows), None, None)
