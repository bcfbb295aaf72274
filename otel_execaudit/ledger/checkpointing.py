"""Taking checkpoints of a ledger: the Merkle tree head over its entries, checked against the
previous checkpoint, signed when a key is configured, and stored in a table beside the chain.

Each stored checkpoint keeps the tree's right edge (its compact range: O(log n) hashes), so the
next one reads only the entries appended since and costs O(k + log n), never a rebuild. Before
a new checkpoint is signed the previous one is checked: its root is the root of its stored edge,
and the entry it ended on still has the hash it had. A ledger whose history changed under its
last checkpoint gets no new one, so the log never signs two checkpoints that disagree.

The origin (``origin_of``) names the ledger, not the file or the key: ``otel-execaudit/`` and
the first 32 hex digits of entry 0's hash, stable across copies and moves and different for any
other ledger (docs/ledger-format.md#checkpoints).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
from collections.abc import Callable

from otel_execaudit.errors import AnchorError, ProofError
from otel_execaudit.ledger.checkpoint import Checkpoint
from otel_execaudit.ledger.merkle import HASH_SIZE, CompactRange
from otel_execaudit.ledger.note import SignerKey

__all__ = ["CHECKPOINT_TABLE", "Checkpointing", "StoredCheckpoint", "checkpointed_size", "latest_checkpoint",
           "origin_of", "root_at", "take_checkpoint"]

ORIGIN_PREFIX = "otel-execaudit/"

CHECKPOINT_TABLE = """CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    head TEXT NOT NULL,
    frontier BLOB NOT NULL,
    note TEXT NOT NULL,
    ts TEXT NOT NULL
)"""
_LATEST = "SELECT size, root, head, frontier, note, ts FROM checkpoints ORDER BY size DESC LIMIT 1"
_AT_MOST = ("SELECT size, root, head, frontier, note, ts FROM checkpoints WHERE size <= ? "
            "ORDER BY size DESC LIMIT 1")
_LEAVES = "SELECT hash FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq"


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """When a ledger takes checkpoints and what it does with them.

    ``signer``: the key that signs them (None: unsigned, and said to be); ``every`` entries and
    ``interval`` seconds: a checkpoint is also taken at the first commit past either (besides the
    one at the end of every execution); ``listeners``: called after each checkpoint is committed
    as ``listener(ledger_path, checkpoint, root_at)``, ``root_at(size)`` giving the ledger's root
    at any size it holds (the runtime's witness and telemetry copies; a listener's failure never
    reaches the caller).
    """

    signer: SignerKey | None = None
    every: int = 10_000
    interval: float = 60.0
    listeners: tuple[Callable[[pathlib.Path, StoredCheckpoint, Callable[[int], bytes | None]], None], ...] = ()


@dataclasses.dataclass(frozen=True)
class StoredCheckpoint:
    """One checkpoint as the table holds it: the tree of entries 0..size-1, its root, the hash
    of entry size-1 (``head``), the right edge, the note verbatim and when it was taken."""

    checkpoint: Checkpoint
    head: str
    frontier: CompactRange
    note: str
    ts: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def signed(self) -> bool:
        """Whether the note carries a signature (a bare body is unsigned)."""
        return self.note != self.checkpoint.body()


def origin_of(first_entry_hash: str) -> str:
    """The origin of the ledger whose entry 0 has this hash (hex).

    >>> origin_of("ab" * 32)
    'otel-execaudit/abababababababababababababababab'
    """
    return ORIGIN_PREFIX + first_entry_hash[:32]


def latest_checkpoint(connection: sqlite3.Connection, at_most: int | None = None) -> StoredCheckpoint | None:
    """The latest stored checkpoint (of at most ``at_most`` entries), or None."""
    if not _has_table(connection):
        return None
    row = connection.execute(_LATEST if at_most is None else _AT_MOST,
                             () if at_most is None else (at_most,)).fetchone()
    return None if row is None else _stored(row)


def checkpointed_size(connection: sqlite3.Connection) -> int:
    """The size of the latest stored checkpoint, 0 when there is none."""
    if not _has_table(connection):
        return 0
    return connection.execute("SELECT coalesce(max(size), 0) FROM checkpoints").fetchone()[0]


def take_checkpoint(connection: sqlite3.Connection, size: int, signer: SignerKey | None,
                    ts: str) -> StoredCheckpoint | None:
    """Take the checkpoint of the first ``size`` entries inside the caller's write transaction
    (its rows flushed) and store it; return the latest one unchanged when it already has that
    size, None for an empty ledger. Raises ``AnchorError``, storing nothing, when the previous
    checkpoint no longer matches the entries or is larger than the ledger."""
    if size <= 0:
        return None
    connection.execute(CHECKPOINT_TABLE)
    previous = latest_checkpoint(connection)
    if previous is not None:
        problem = _history_problem(connection, previous, size)
        if problem is not None:
            raise AnchorError(f"no checkpoint taken at size {size}: {problem}; run `execaudit verify`")
        if previous.size == size:
            if signer is None or previous.signed:
                return previous
            note = previous.checkpoint.sign(signer)  # same tree, now signed: no second tree head
            connection.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))
            return dataclasses.replace(previous, note=note)
    frontier = CompactRange() if previous is None else CompactRange(
        0, previous.frontier.hashes, previous.size)
    start = frontier.end
    leaves = [bytes.fromhex(digest) for (digest,) in connection.execute(_LEAVES, (start, size))]
    if len(leaves) != size - start:
        raise AnchorError(f"no checkpoint taken at size {size}: entries {start}..{size - 1} are "
                          f"not all there ({len(leaves)} found); run `execaudit verify`")
    frontier.extend(leaves)
    (first,) = connection.execute("SELECT hash FROM entries WHERE seq = 0").fetchone()
    checkpoint = Checkpoint(origin_of(first), size, frontier.root())
    note = checkpoint.sign(signer) if signer is not None else checkpoint.body()
    stored = StoredCheckpoint(checkpoint, leaves[-1].hex(), frontier, note, ts)
    connection.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                       (size, stored.root.hex(), stored.head, b"".join(frontier.hashes), note, ts))
    return stored


def root_at(connection: sqlite3.Connection, size: int) -> bytes | None:
    """The root of the tree of the first ``size`` entries, from the nearest stored checkpoint at
    or below it and the entries after; None when the ledger holds fewer entries."""
    base = latest_checkpoint(connection, at_most=size)
    frontier = CompactRange() if base is None else CompactRange(0, base.frontier.hashes, base.size)
    leaves = [bytes.fromhex(digest) for (digest,) in connection.execute(_LEAVES, (frontier.end, size))]
    if frontier.end + len(leaves) != size:
        return None
    frontier.extend(leaves)
    return frontier.root()


def _history_problem(connection: sqlite3.Connection, previous: StoredCheckpoint, size: int) -> str | None:
    if previous.size > size:
        return (f"the ledger holds {size} entries but its last checkpoint covers {previous.size}: "
                "entries were removed from its end")
    if previous.frontier.root() != previous.root:
        return f"the stored checkpoint at size {previous.size} does not match its own tree edge"
    row = connection.execute("SELECT hash FROM entries WHERE seq = ?", (previous.size - 1,)).fetchone()
    if row is None or row[0] != previous.head:
        return (f"entry {previous.size - 1} no longer has the hash the checkpoint at size "
                f"{previous.size} recorded: the entries up to it were changed")
    return None


def _has_table(connection: sqlite3.Connection) -> bool:
    return connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'").fetchone() is not None


def _stored(row: tuple) -> StoredCheckpoint:
    size, root, head, frontier, note, ts = row
    changed = (f"the stored checkpoint at size {size} is not as it was taken: the checkpoints "
               "table was changed; run `execaudit verify`")
    try:
        hashes = [bytes(frontier[at:at + HASH_SIZE]) for at in range(0, len(frontier), HASH_SIZE)]
        checkpoint = Checkpoint.read(note)[0]
        edge = CompactRange(0, hashes, size)
    except (ProofError, TypeError) as error:
        raise AnchorError(f"{changed} ({error})") from error
    if checkpoint.size != size or checkpoint.root.hex() != root:
        raise AnchorError(changed)
    return StoredCheckpoint(checkpoint, head, edge, note, ts)
