"""Proofs people can carry: one entry, its inclusion proof and a checkpoint, in the C2SP
tlog-proof format (c2sp.org/tlog-proof), verifiable without the ledger.

The bundle's ``extra`` line is the entry's canonical body (base64), so the leaf is
SHA-256(0x00 || extra); then the entry's index, the audit path (one base64 hash a line, from
the leaf's sibling up), an empty line and the checkpoint verbatim::

    c2sp.org/tlog-proof@v1
    extra eyJkYXRhIjp7fSwiZXhlY3V0aW9uX2lkIjoi...
    index 3
    gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
    B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=

    otel-execaudit/5f3c...
    12
    sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

    — ops.example/ledger hI2DJw...

``prove`` writes one from a ledger; ``verify_bundle`` checks one (docs/ledger-format.md#proof-bundles).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import sqlite3
from collections.abc import Iterable

import orjson

from otel_execaudit.errors import ProofError
from otel_execaudit.ledger.canonical import leaf_hash
from otel_execaudit.ledger.checkpoint import Checkpoint
from otel_execaudit.ledger.checkpointing import latest_checkpoint
from otel_execaudit.ledger.merkle import inclusion_proof, root, verify_inclusion
from otel_execaudit.ledger.note import VerifierKey

__all__ = ["PROOF_HEADER", "VerifiedBundle", "prove", "verify_bundle"]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")


@dataclasses.dataclass(frozen=True)
class VerifiedBundle:
    """What a bundle proves: the entry (parsed), its index, the checkpoint it is included in,
    and whether one of the keys given signed that checkpoint (``signed``)."""

    entry: dict
    index: int
    checkpoint: Checkpoint
    signed: bool


def prove(connection: sqlite3.Connection, seq: int) -> str:
    """The proof bundle of entry ``seq`` in the tree of the ledger's latest checkpoint. Raises
    ``LookupError`` when no checkpoint covers it yet, ``ProofError`` when the ledger's entries
    do not give the checkpoint's root (the ledger changed: run ``execaudit verify``)."""
    checkpoint = latest_checkpoint(connection)
    if checkpoint is None or seq >= checkpoint.size:
        covered = "no checkpoint yet" if checkpoint is None else f"the latest covers seq 0..{checkpoint.size - 1}"
        raise LookupError(f"entry {seq} is not covered by a checkpoint ({covered}); the next one "
                          "is taken at the end of the next execution")
    if seq < 0:
        raise LookupError(f"there is no entry {seq}: entries are numbered from 0")
    leaves = [bytes.fromhex(digest) for (digest,) in connection.execute(
        "SELECT hash FROM entries WHERE seq < ? ORDER BY seq", (checkpoint.size,))]
    (body,) = connection.execute("SELECT body FROM entries WHERE seq = ?", (seq,)).fetchone()
    body = bytes(body)
    if len(leaves) != checkpoint.size or leaf_hash(body) != leaves[seq] or root(leaves) != checkpoint.root:
        raise ProofError(f"the ledger's entries do not give the root of its checkpoint at size "
                         f"{checkpoint.size}: it was changed; run `execaudit verify`")
    path = inclusion_proof(leaves, seq)
    lines = [PROOF_HEADER, "extra " + base64.b64encode(body).decode(), f"index {seq}",
             *(base64.b64encode(node).decode() for node in path)]
    return "\n".join(lines) + "\n\n" + checkpoint.note


def verify_bundle(text: str | bytes, keys: Iterable[VerifierKey] = ()) -> VerifiedBundle:
    """Check a proof bundle: its syntax, the entry's leaf under the checkpoint's root, and the
    checkpoint's signature when ``keys`` are given (``signed`` says whether one of them signed
    it; a signature by a given key that fails is an error). Raises ``ProofError`` saying what
    failed."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode()
        except UnicodeDecodeError as error:
            raise ProofError(f"the proof bundle is not UTF-8 ({error.reason} at byte {error.start})") from None
    head, separator, note = text.partition("\n\n")
    lines = head.split("\n")
    if not separator or lines[0] != PROOF_HEADER:
        raise ProofError(f"not a proof bundle: it must start with the line {PROOF_HEADER} and hold "
                         "an empty line before its checkpoint")
    if len(lines) < 3 or not lines[1].startswith("extra "):
        raise ProofError("the proof bundle has no `extra` line holding the entry; this format "
                         "needs it to rebuild the leaf")
    body = _base64(lines[1][len("extra "):], "the extra line")
    match = _INDEX.fullmatch(lines[2])
    if match is None:
        raise ProofError(f"the third line must be `index N` (decimal, no leading zero), not {lines[2]!r}")
    index = int(match.group(1))
    path = [_base64(line, f"proof line {number}") for number, line in enumerate(lines[3:], 1)]
    checkpoint, signed = Checkpoint.read(note, list(keys))
    if index >= checkpoint.size:
        raise ProofError(f"index {index} is not in the checkpoint's tree of {checkpoint.size} entries")
    verify_inclusion(leaf_hash(body), index, checkpoint.size, path, checkpoint.root)
    try:
        entry = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ProofError(f"the entry in the bundle is not JSON ({error})") from None
    if not isinstance(entry, dict) or entry.get("seq") != index:
        raise ProofError(f"the entry in the bundle is not entry {index} of a ledger (its seq is "
                         f"{entry.get('seq') if isinstance(entry, dict) else None!r})")
    return VerifiedBundle(entry, index, checkpoint, signed)


def _base64(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"{what} is not base64") from None
    if base64.b64encode(value).decode() != text:
        raise ProofError(f"{what} is not canonical base64")
    return value
