"""Anchoring a verified chain to checkpoints: the ledger's own latest one, and those held
outside it (the witness state file, a checkpoint passed in). A chain that checks can still have
been cut short or rewritten from some entry on; a checkpoint taken earlier catches both, since
the ledger must hold at least its size and have its root at that size.

``verify`` (``otel_execaudit.ledger.verify``) gathers the checkpoints with ``gather``, computes
the roots at their sizes while it checks the chain, and lets ``judge`` give the verdict:

- ``anchored``: at least one checkpoint held outside the ledger agrees with it, none disagrees;
- ``unanchored``: the ledger is internally consistent, but nothing outside it says it is whole;
- ``contradicted``: a checkpoint disagrees (truncated, rewritten, another ledger in its place,
  or a fork: two signed checkpoints no consistency proof joins); the evidence is given.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from otel_execaudit.errors import AnchorError, ConfigurationError, ProofError
from otel_execaudit.ledger.checkpoint import Checkpoint
from otel_execaudit.ledger.checkpointing import latest_checkpoint, origin_of
from otel_execaudit.ledger.note import VerifierKey, split_note
from otel_execaudit.ledger.witness import WitnessState

__all__ = ["Anchor", "gather", "judge", "read_checkpoint_argument"]


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One checkpoint to hold the ledger against: where it came from (``source``), the
    checkpoint, its note verbatim, and whether a given key verified it (``signed``: True;
    False: no signature, or none by a given key; None: signed, but no key was given)."""

    source: str
    checkpoint: Checkpoint
    note: str
    signed: bool | None
    external: bool = True
    recorded: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "origin": self.checkpoint.origin,
                "size": self.checkpoint.size,
                "root": base64.b64encode(self.checkpoint.root).decode(),
                "signed": self.signed, "recorded": self.recorded, "note": self.note}


def read_checkpoint_argument(value: str) -> str:
    """The checkpoint text of ``--checkpoint``: a file holding it, or the text itself (its
    final newline restored, as ``$(...)`` in a shell drops it)."""
    if "\n" not in value:
        try:
            return pathlib.Path(value).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"--checkpoint {value!r} is neither a checkpoint nor a "
                                     f"readable file holding one ({error})") from error
    return value if value.endswith("\n") else value + "\n"


def gather(connection: sqlite3.Connection, path: pathlib.Path, *, checkpoints: Iterable[str] = (),
           keys: Sequence[VerifierKey] = (), state: WitnessState | None = None
           ) -> tuple[str | None, list[Anchor], list[str]]:
    """The ledger's origin, the anchors to check it against, and the evidence already at hand
    (a witness that knows another ledger at this path). Raises ``ProofError`` for a given
    checkpoint that is malformed or whose signature a given key rejects."""
    row = connection.execute("SELECT hash FROM entries WHERE seq = 0").fetchone()
    origin = origin_of(row[0]) if row and isinstance(row[0], str) else None
    anchors, evidence = [], []
    try:
        own = latest_checkpoint(connection)
    except AnchorError as error:
        own, evidence = None, [str(error)]
    if own is not None:
        anchors.append(_anchor("the ledger's own latest checkpoint", own.note, keys,
                               external=False, recorded=own.ts))
    for number, text in enumerate(checkpoints, 1):
        anchors.append(_anchor(f"checkpoint {number} given", text, keys, strict=bool(keys)))
    if state is not None:
        here = str(pathlib.Path(path).absolute())
        for seen in state.for_ledger(here):
            if seen.origin != origin:
                evidence.append(
                    f"the witness {state.path} last saw ledger {seen.origin} at this path "
                    f"({seen.size} entries, {seen.updated}); the file now holds "
                    f"{origin or 'no entries'}: it was replaced or rewritten from entry 0")
        held = state.latest(origin) if origin else None
        if held is not None:
            anchors.append(_anchor(f"witness {state.path}", held.note, keys, recorded=held.updated))
    return origin, anchors, evidence


def judge(origin: str | None, entries: int, roots: dict[int, str], anchors: list[Anchor],
          evidence: list[str]) -> tuple[dict[str, Any], str | None]:
    """The anchor verdict (a JSON-ready dict) and, when contradicted, the reason for the report."""
    checked, problems = [], list(evidence)
    for anchor in anchors:
        outcome = anchor.describe()
        problem = _disagreement(anchor, origin, entries, roots)
        outcome["agrees"] = problem is None
        checked.append(outcome)
        if problem is not None:
            problems.append(f"{anchor.source}: {problem}")
    problems += _forks(anchors, roots)
    external = [outcome for outcome, anchor in zip(checked, anchors) if anchor.external]
    status = ("contradicted" if problems else
              "anchored" if any(outcome["agrees"] for outcome in external) else "unanchored")
    verdict = {"status": status, "origin": origin, "checkpoints": checked, "evidence": problems}
    return verdict, ("; ".join(problems) if problems else None)


def _anchor(source: str, text: str, keys: Sequence[VerifierKey], *, external: bool = True,
            recorded: str | None = None, strict: bool = False) -> Anchor:
    try:
        checkpoint, verified = Checkpoint.read(text, keys)
    except ProofError as error:
        if external and source.startswith("checkpoint"):
            raise ProofError(f"{source}: {error}") from error
        return Anchor(source, Checkpoint("(unreadable)", 0, bytes(32)), text, False, external, recorded)
    if strict and not verified:
        raise ProofError(f"{source} is not signed by the key given (--key); check that it is "
                         "this log's checkpoint and this log's verifier key")
    signatures = split_note(text)[1] if "\n\n" in text else ()
    signed = True if verified else (None if signatures and not keys else False)
    return Anchor(source, checkpoint, text, signed, external, recorded)


def _disagreement(anchor: Anchor, origin: str | None, entries: int, roots: dict[int, str]) -> str | None:
    checkpoint = anchor.checkpoint
    if checkpoint.origin == "(unreadable)":
        return "its checkpoint note is not a readable checkpoint: it was changed"
    if origin is not None and checkpoint.origin != origin:
        return (f"it is a checkpoint of ledger {checkpoint.origin}, but this file is ledger "
                f"{origin}: another ledger is in its place, or it was rewritten from entry 0")
    if checkpoint.size > entries:
        return (f"it covers {checkpoint.size} entries and the ledger holds {entries} intact: "
                f"{checkpoint.size - entries} entries were cut from the end (or are damaged), "
                f"the first missing is seq {entries}")
    root = roots.get(checkpoint.size)
    if root is not None and root != checkpoint.root.hex():
        return (f"the ledger's root at size {checkpoint.size} is {root}, not the checkpoint's "
                f"{checkpoint.root.hex()}: entries up to seq {checkpoint.size - 1} were rewritten")
    return None


def _forks(anchors: list[Anchor], roots: dict[int, str]) -> list[str]:
    """Two signed checkpoints of one origin that no consistency proof can join: the same size
    with two roots, or a larger one whose tree does not contain the smaller one's."""
    signed = [anchor for anchor in anchors if anchor.signed]
    found = []
    for number, first in enumerate(signed):
        for second in signed[number + 1:]:
            a, b = sorted((first.checkpoint, second.checkpoint), key=lambda cp: cp.size)
            if a.origin != b.origin:
                continue
            if (a.size == b.size and a.root != b.root) or (
                    roots.get(b.size) == b.root.hex() and roots.get(a.size) not in (None, a.root.hex())):
                found.append(f"fork: {first.source} and {second.source} are both signed, at sizes "
                             f"{a.size} and {b.size}, and no consistency proof joins them")
    return found


def state_from_argument(state: WitnessState | str | os.PathLike[str] | bool | None) -> WitnessState | None:
    """The witness ``verify`` consults: the default state file (None or True), the one named,
    or none (False)."""
    if state is False:
        return None
    if isinstance(state, WitnessState):
        return state
    return WitnessState(None if state is None or state is True else state)
