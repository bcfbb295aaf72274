"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): a Merkle tree head as the text of a signed note.

The body is the origin, the tree size in decimal, the base64 of the 32-byte root hash, then any
extension lines, each line ending in a newline::

    >>> cp = Checkpoint("example.com/log", 2, bytes(32))
    >>> print(cp.body(), end="")
    example.com/log
    2
    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
    >>> key = SignerKey.generate("example.com/log")
    >>> Checkpoint.open(cp.sign(key), [key.verifier()]) == cp
    True
    >>> Checkpoint.read(cp.body(), [key.verifier()])  # doctest: +ELLIPSIS
    (Checkpoint(origin='example.com/log', size=2, root=b'\\x00...', extensions=()), False)

An UNSIGNED checkpoint is written as its body alone: no blank line, no signature lines. A body
never holds a blank line, so a bare body and a signed note cannot be mistaken for each other.
``Checkpoint.read`` takes either and says whether a known key signed it; ``Checkpoint.open``
accepts only a note that a known key signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from otel_execaudit.errors import ProofError
from otel_execaudit.ledger.note import (
    SignerKey,
    UnverifiedNoteError,
    VerifierKey,
    open_note,
    sign_note,
    split_note,
)

__all__ = ["MAX_SIZE", "Checkpoint"]

MAX_SIZE = 2**64 - 1  # a tree size is a uint64, as in transparency-dev/formats
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # ASCII digits, no sign, no leading zero


def _check_chars(text: str, what: str) -> None:
    bad = next((c for c in text if c < " " and c != "\n" or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise ProofError(f"the checkpoint {what} holds {bad!r}: no control character but newline, "
                         "nor lone surrogate, is allowed (convert CRLF to LF, remove tabs)")


def _check_line(line: object, what: str) -> None:
    if not isinstance(line, str) or not line or "\n" in line:
        raise ProofError(f"the checkpoint {what} must be one non-empty line, not {line!r}")
    _check_chars(line, what)


def _as_text(data: str | bytes) -> str:
    try:
        text = bytes(data).decode() if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError as exc:
        raise ProofError(f"the checkpoint is not valid UTF-8 ({exc.reason} at byte {exc.start})"
                         ) from None
    _check_chars(text, "text")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A log's origin, tree size and 32-byte RFC 6962 root hash, with optional extension lines.

    The origin is any non-empty line (the spec only recommends a schema-less URL like
    ``example.com/log``; Go's sumdb uses ``go.sum database tree``).
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if type(self.size) is not int or not 0 <= self.size <= MAX_SIZE:
            raise ProofError(f"the tree size must be an int from 0 to 2**64-1, not {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise ProofError(f"the root hash must be 32 bytes (SHA-256), not {self.root!r}")
        if isinstance(self.extensions, str):
            raise ProofError("extensions is a tuple of lines, not one string; wrap it in a tuple")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            _check_line(line, "extension line")

    def body(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(),
                 *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str | bytes) -> Checkpoint:
        """Read a checkpoint body (the note text, without blank line or signatures).

        >>> Checkpoint.parse("log\\n0\\n" + "A" * 43 + "=\\n").size
        0
        """
        body = _as_text(body)
        if not body.endswith("\n"):
            raise ProofError("a checkpoint body ends with a newline; this one is cut short")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise ProofError(f"a checkpoint body has at least 3 lines (origin, tree size, root "
                             f"hash), this one has {len(lines)}")
        origin, size, root, *extensions = lines
        if "" in lines:
            raise ProofError(f"line {lines.index('') + 1} of the checkpoint body is empty: no "
                             "line may be (a signed note? read it with Checkpoint.open)")
        if not _DECIMAL.fullmatch(size) or int(size) > MAX_SIZE:
            raise ProofError(f"the tree size {size!r} is not a decimal number from 0 to 2**64-1 "
                             "without sign, spaces or leading zeros")
        try:
            raw = base64.b64decode(root, validate=True)
        except (binascii.Error, ValueError):
            raw = None
        if raw is None or len(raw) != 32 or base64.b64encode(raw).decode() != root:
            raise ProofError(f"the root hash {root!r} is not the canonical base64 of 32 bytes")
        return cls(origin, int(size), raw, tuple(extensions))

    def sign(self, signer: SignerKey, *more: SignerKey) -> str:
        """The signed note of this checkpoint (the log's key name should be the origin)."""
        return sign_note(self.body(), signer, *more)

    @classmethod
    def open(cls, signed: str | bytes, verifiers: Iterable[VerifierKey], *,
             origin: str | None = None) -> Checkpoint:
        """The checkpoint of a signed note that one of ``verifiers`` signed (pass only keys you
        trust to sign this log's checkpoints); with ``origin``, the origin must be that."""
        checkpoint = cls.parse(open_note(signed, verifiers).text)
        if origin is not None and checkpoint.origin != origin:
            raise ProofError(f"the checkpoint is of log {checkpoint.origin!r}, not {origin!r}; "
                             "check which log it came from")
        return checkpoint

    @classmethod
    def read(cls, text: str | bytes, verifiers: Iterable[VerifierKey] = ()
             ) -> tuple[Checkpoint, bool]:
        """``(checkpoint, signed)`` of a bare body or a signed note; ``signed`` is whether one of
        ``verifiers`` signed it. A signature by a known key that fails is still an error."""
        text = _as_text(text)
        if "\n\n" not in text:
            return cls.parse(text), False
        try:
            return cls.open(text, verifiers), True
        except UnverifiedNoteError:
            return cls.parse(split_note(text)[0]), False

    @classmethod
    def read_unsigned(cls, text: str | bytes) -> Checkpoint:
        """The checkpoint of a bare body or a signed note, checking no signature (syntax only)."""
        return cls.read(text)[0]
