"""Signing keys in files: written by ``execaudit keygen`` (mode 0600, never over an existing
file) and read back for ``configure(signing_key=...)``, ``EXECAUDIT_SIGNING_KEY`` and ``--key``.

A key file holds one line, the C2SP signer key (``PRIVATE+KEY+name+hash+base64``); a verifier
key (``name+hash+base64``) is public and may be passed as text or as a file holding it::

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.key"
    >>> key = write_key_file(path, "ops.example/ledger")
    >>> oct(path.stat().st_mode & 0o777), read_signing_key(path).verifier() == key.verifier()
    ('0o600', True)
"""

from __future__ import annotations

import os
import pathlib

from otel_execaudit.errors import ConfigurationError, ProofError
from otel_execaudit.ledger.note import SignerKey, VerifierKey

__all__ = ["read_signing_key", "read_verifier_key", "write_key_file"]

_SIGNER_PREFIX = "PRIVATE+KEY+"


def write_key_file(path: str | os.PathLike[str], name: str) -> SignerKey:
    """Generate an Ed25519 signing key named ``name``, write it to ``path`` with mode 0600 and
    return it; refuse (``ConfigurationError``) if the file exists."""
    key = SignerKey.generate(name)
    target = pathlib.Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{target} exists; a signing key is never overwritten. Choose "
                                 "another path, or remove the old key if you are sure.") from None
    except OSError as error:
        raise ConfigurationError(f"cannot write the key file {target}: {error.strerror}") from error
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(key.text + "\n")
    return key


def read_signing_key(value: SignerKey | str | os.PathLike[str]) -> SignerKey:
    """The signer key given as a ``SignerKey``, as its text, or as a file holding it (which must
    not be readable by others). Raises ``ConfigurationError`` saying what to fix."""
    if isinstance(value, SignerKey):
        return value
    text = str(value).strip()
    if not text.startswith(_SIGNER_PREFIX):
        path = pathlib.Path(text).expanduser()
        try:
            if path.stat().st_mode & 0o077:
                raise ConfigurationError(f"the signing key file {path} is readable by others; "
                                         f"run `chmod 600 {path}`")
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(
                f"cannot read the signing key {path} ({error}). Pass the file that "
                "`execaudit keygen` wrote, or set EXECAUDIT_SIGNING_KEY to it.") from error
    try:
        return SignerKey.parse(text)
    except ProofError as error:
        raise ConfigurationError(f"not a signing key: {error}. Use a file written by "
                                 "`execaudit keygen`.") from error


def read_verifier_key(value: VerifierKey | str | os.PathLike[str]) -> VerifierKey:
    """The verifier key given as a ``VerifierKey``, as its text, or as a file holding it."""
    if isinstance(value, VerifierKey):
        return value
    text = str(value).strip()
    if text.startswith(_SIGNER_PREFIX):
        raise ConfigurationError("that is a signing key, which stays secret; pass its verifier "
                                 "key (the line `execaudit keygen` printed)")
    path = pathlib.Path(text).expanduser()
    if "\n" not in text and path.is_file():
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"cannot read the verifier key file {path} ({error})") from error
    try:
        return VerifierKey.parse(text)
    except ProofError as error:
        raise ConfigurationError(f"not a verifier key: {error}") from error
