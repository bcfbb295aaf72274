"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, as Go's golang.org/x/mod/sumdb/note.

A signed note is a text ending in a newline, a blank line, then one or more lines
``— <key name> base64(4-byte key hash || 64-byte signature)``; each signature covers the text
exactly (its final newline included, the blank line not)::

    >>> signer = SignerKey.generate("example.com/log")
    >>> signed = sign_note("hello\\n", signer)
    >>> signed.startswith("hello\\n\\n— example.com/log ")
    True
    >>> opened = open_note(signed, [signer.verifier()])
    >>> opened.text, [sig.name for sig in opened.verified]
    ('hello\\n', ['example.com/log'])

Everything malformed or unverifiable raises ``ProofError``. Base64 must be canonical (standard
alphabet, padded, unused bits zero), so a signature has exactly one spelling.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from otel_execaudit.errors import ProofError

__all__ = ["MAX_SIGNATURES", "OpenedNote", "Signature", "SignerKey", "UnverifiedNoteError",
           "VerifierKey", "open_note", "sign_note", "split_note"]

MAX_SIGNATURES = 100  # Go's limit; the spec says accept at least 16
ED25519 = 0x01  # the signature type byte of Ed25519 keys
_DASH = "— "  # em dash U+2014 and a space open every signature line


class UnverifiedNoteError(ProofError):
    """The note is well formed but no known key signed it; ``unverified`` lists its signatures."""

    def __init__(self, message: str, unverified: tuple[Signature, ...]) -> None:
        super().__init__(message)
        self.unverified = unverified


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() or c < " " or "\ud800" <= c <= "\udfff"
                                      for c in name):
        raise ProofError(f"bad key name {name!r}: a key name must be non-empty UTF-8 with no "
                         "spaces, '+' or control characters; use one like 'example.com/log'")
    return name


def _b64(text: str, what: str, secret: bool = False) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if not text or raw is None or base64.b64encode(raw).decode() != text:
        shown = "" if secret else f" {text!r}"  # never echo a private key into logs
        raise ProofError(f"the {what}{shown} is not canonical standard base64; copy it whole")
    return raw


def _key_hash(name: str, key: bytes) -> int:
    """The key ID: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || type || key)."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def _parse_key(text: str, kind: str, public_of: Callable[[bytes], bytes]) -> tuple[str, bytes]:
    """Read ``name+hash+base64(0x01 || key)``; check the hash against ``public_of(key)``."""
    name, hash16, key64 = (text.split("+", 2) + ["", ""])[:3]
    _check_name(name)
    if len(hash16) != 8 or hash16.strip("0123456789abcdef"):
        raise ProofError(f"the {kind} key hash {hash16!r} is not 8 lowercase hex digits; "
                         "copy the key whole")
    raw = _b64(key64, f"{kind} key data", secret=kind == "signer")
    if raw[0] != ED25519 or len(raw) != 33:
        raise ProofError(f"the {kind} key is not an Ed25519 key (type byte 0x01 and 32 bytes); "
                         "only Ed25519 keys are supported")
    actual = _key_hash(name, bytes([ED25519]) + public_of(raw[1:]))
    if actual != int(hash16, 16):
        raise ProofError(f"the {kind} key hash {hash16} does not match its name and key (that "
                         f"would be {actual:08x}); the key was altered, get it again")
    return name, raw[1:]


def _public_of_seed(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


class VerifierKey:
    """An Ed25519 public key and its name, as text ``name+hash+base64(0x01 || public key)``.

    ``VerifierKey(name, public_key)`` makes one from a raw 32-byte key::

        >>> key = VerifierKey.parse(
        ...     "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
        >>> key.name, f"{key.key_hash:08x}"
        ('example.com/foo', '530d903a')
    """

    __slots__ = ("_public", "key_hash", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise ProofError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
        self.name, self.public_key = _check_name(name), bytes(public_key)
        self.key_hash = _key_hash(name, bytes([ED25519]) + self.public_key)
        self._public = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read a verifier key; its hash must match its name and key."""
        if text.startswith("PRIVATE+KEY+"):
            raise ProofError("this is a signer key, which must stay secret; pass its verifier key "
                             "(SignerKey.parse(text).verifier().text) instead")
        return cls(*_parse_key(text, "verifier", bytes))

    @property
    def text(self) -> str:
        key64 = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_hash:08x}+{key64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (64 bytes) is this key's Ed25519 signature of ``message``."""
        try:
            self._public.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifierKey) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"VerifierKey({self.text!r})"


class SignerKey:
    """An Ed25519 private key and its name, as text ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``.

    ``SignerKey(name, seed)`` makes one from a raw 32-byte seed. Keep ``text`` secret; ``repr()``
    never shows it::

        >>> key = SignerKey.generate("example.com/log")
        >>> SignerKey.parse(key.text).verifier() == key.verifier()
        True
    """

    __slots__ = ("_private", "_seed", "_verifier", "key_hash", "name")

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != 32:
            raise ProofError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
        self._seed = bytes(seed)
        self._private = Ed25519PrivateKey.from_private_bytes(self._seed)
        self._verifier = VerifierKey(name, self._private.public_key().public_bytes_raw())
        self.name, self.key_hash = self._verifier.name, self._verifier.key_hash

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        """A new random key named ``name``."""
        return cls(_check_name(name), Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        """Read a signer key; its hash must match its name and derived public key."""
        if not text.startswith("PRIVATE+KEY+"):
            raise ProofError("a signer key starts with 'PRIVATE+KEY+'; is this a verifier key?")
        return cls(*_parse_key(text[len("PRIVATE+KEY+"):], "signer", _public_of_seed))

    @property
    def text(self) -> str:
        seed64 = base64.b64encode(bytes([ED25519]) + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{seed64}"

    def verifier(self) -> VerifierKey:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic)."""
        return self._private.sign(bytes(message))

    def __repr__(self) -> str:
        return f"SignerKey(name={self.name!r}, key_hash=0x{self.key_hash:08x})"


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key hash, and the base64 of hash and signature."""

    name: str
    key_hash: int
    base64: str

    @property
    def line(self) -> str:
        return f"{_DASH}{self.name} {self.base64}\n"


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text a known key signed; ``unverified`` holds signatures by unknown keys."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _check_text(data: str | bytes, what: str) -> str:
    """``data`` as a str of valid UTF-8 with no control character but newline."""
    try:
        data = bytes(data).decode() if isinstance(data, bytes | bytearray) else data
        data.encode()  # a str with a lone surrogate is not UTF-8
    except UnicodeError as exc:
        raise ProofError(f"the {what} is not valid UTF-8 ({exc.reason} at {exc.start})") from None
    bad = next((c for c in data if c < " " and c != "\n"), None)
    if bad is not None:
        raise ProofError(f"the {what} contains the control character {bad!r}; only newline is "
                         "allowed (convert CRLF to LF, remove tabs)")
    return data


def split_note(signed: str | bytes) -> tuple[str, tuple[Signature, ...]]:
    """Split a signed note into its text and signatures, checking syntax only, verifying nothing.

    >>> split_note("hi\\n\\n— k AAAAAAE=\\n")
    ('hi\\n', (Signature(name='k', key_hash=0, base64='AAAAAAE='),))
    """
    note = _check_text(signed, "signed note")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        raise ProofError("a signed note is text ending in a newline, a blank line, then signature "
                         "lines each ending in a newline; this one is cut short or unsigned")
    text, lines = note[:split + 1], note[split + 2:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ProofError(f"the note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    sigs: list[Signature] = []
    for line in lines:
        if not line.startswith(_DASH):
            raise ProofError(f"signature line {line!r} does not start with '— ' (em dash, space)")
        name, _, sig64 = line.removeprefix(_DASH).partition(" ")
        _check_name(name)
        raw = _b64(sig64, f"signature of {name}")
        if len(raw) < 5:
            raise ProofError(f"the signature of {name} is too short to hold a key hash and more")
        sigs.append(Signature(name, int.from_bytes(raw[:4], "big"), sig64))
    return text, tuple(sigs)


def open_note(signed: str | bytes, verifiers: Iterable[VerifierKey]) -> OpenedNote:
    """Check a signed note against known keys: signatures by other keys are kept unverified, a
    known key's signature that fails is an error, and at least one known key must have signed.

    Raises ``UnverifiedNoteError`` (a ``ProofError``) when no known key signed.
    """
    text, sigs = split_note(signed)
    known: dict[tuple[str, int], set[VerifierKey]] = {}
    for key in verifiers:
        known.setdefault((key.name, key.key_hash), set()).add(key)
    # dicts keep the signatures in order, each once: by key when verified, by line when not
    verified: dict[tuple[str, int], Signature] = {}
    unverified: dict[Signature, None] = {}
    for sig in sigs:
        keys = known.get((sig.name, sig.key_hash))
        if keys is None:
            unverified[sig] = None
            continue
        if len(keys) > 1:
            raise ProofError(f"several verifier keys are named {sig.name}+{sig.key_hash:08x}; "
                             "keep only the right one")
        if not next(iter(keys)).verify(text.encode(), _b64(sig.base64, "signature")[4:]):
            raise ProofError(f"the signature by {sig.name}+{sig.key_hash:08x} does not verify: "
                             "the note or its signature was altered; do not trust this note")
        verified.setdefault((sig.name, sig.key_hash), sig)
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_hash:08x}" for s in unverified)
        raise UnverifiedNoteError(f"no known key signed this note (signed by {names}); pass "
                                  "the verifier key of its signer", tuple(unverified))
    return OpenedNote(text, tuple(verified.values()), tuple(unverified))


def sign_note(text: str, *signers: SignerKey) -> str:
    """The signed note: ``text`` (ending in a newline), a blank line, one line per signer.

    >>> key = SignerKey.generate("k")
    >>> sign_note("two\\nlines\\n", key).split("\\n")[:3]
    ['two', 'lines', '']
    """
    _check_text(text, "note text")
    if not text.endswith("\n"):
        raise ProofError("the note text must end with a newline; append '\\n'")
    if not signers or len(signers) > MAX_SIGNATURES:
        raise ProofError(f"sign a note with 1 to {MAX_SIGNATURES} signer keys, not {len(signers)}")
    if len({(s.name, s.key_hash) for s in signers}) != len(signers):
        raise ProofError("the same signer key was given twice; give each key once")
    message = text.encode()
    lines = [Signature(s.name, s.key_hash, base64.b64encode(
        s.key_hash.to_bytes(4, "big") + s.sign(message)).decode()).line for s in signers]
    return text + "\n" + "".join(lines)
