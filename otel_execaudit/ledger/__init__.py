"""The ledger: an append-only, hash-chained SQLite file of canonical JSON entries, and its
offline verification. It knows nothing of recording, telemetry or execution above it.

``store`` (the ``Ledger``), ``commit`` (its group commit, and committing before fork() and at
exit), ``file`` (the file and its identity), ``readonly`` (opening it to read and checking the
file around the chain), ``canonical`` (the bytes and hashes of an entry), ``verify`` (checking a
ledger offline).
"""

from otel_execaudit.ledger.canonical import CanonicalizationError, canonical_bytes
from otel_execaudit.ledger.store import Durability, Ledger, LedgerEntry, default_ledger_path
from otel_execaudit.ledger.verify import VerifyReport, verify

__all__ = ["CanonicalizationError", "Durability", "Ledger", "LedgerEntry", "VerifyReport",
           "canonical_bytes", "default_ledger_path", "verify"]
