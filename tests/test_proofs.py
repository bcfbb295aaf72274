"""Proofs people can carry: execaudit keygen, prove SEQ and verify-proof BUNDLE --key, checked
without the ledger, and every part of a bundle bound to the signed checkpoint."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys

import pytest

import otel_execaudit
from otel_execaudit.errors import ProofError
from otel_execaudit.ledger.keys import read_signing_key
from otel_execaudit.ledger.proofs import verify_bundle
from otel_execaudit.ledger.note import VerifierKey


def execaudit(*arguments, env=None):
    return subprocess.run([sys.executable, "-m", "otel_execaudit.cli", *map(str, arguments)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def signed(tmp_path):
    """A key from `execaudit keygen`, and a ledger whose checkpoints it signs."""
    key_path = tmp_path / "keys" / "ledger.key"
    made = execaudit("keygen", key_path, "--name", "ops.example/ledger")
    assert made.returncode == 0, made.stderr
    verifier = made.stdout.strip()
    ledger = tmp_path / "ledger.db"
    otel_execaudit.configure(ledger=ledger, exporter="none", signing_key=key_path)
    with otel_execaudit.execution("payout", execution_id="payout-1") as ex:
        for name in ("quote", "pay", "notify"):
            with ex.step(name):
                pass
    otel_execaudit.shutdown()
    return key_path, verifier, ledger


def test_keygen_writes_a_private_key_and_prints_its_verifier(signed, tmp_path):
    key_path, verifier, _ = signed
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert read_signing_key(key_path).verifier() == VerifierKey.parse(verifier)
    assert "PRIVATE" not in verifier
    again = execaudit("keygen", key_path)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert read_signing_key(key_path).verifier().text == verifier  # the old key is untouched


def test_a_proof_bundle_verifies_without_the_ledger(signed, tmp_path):
    key_path, verifier, ledger = signed
    proof = execaudit("prove", "3", "--ledger", ledger)
    assert proof.returncode == 0, proof.stderr
    bundle = tmp_path / "entry-3.tlog-proof"
    bundle.write_text(proof.stdout)
    ledger.unlink()  # the third party has no ledger
    checked = execaudit("verify-proof", bundle, "--key", verifier)
    assert checked.returncode == 0 and "verified: entry 3" in checked.stdout
    verified = verify_bundle(proof.stdout, [VerifierKey.parse(verifier)])
    assert verified.signed and verified.entry["seq"] == 3 and verified.entry["kind"] == "step.started"
    unkeyed = execaudit("verify-proof", bundle)
    assert unkeyed.returncode == 3 and "UNAUTHENTICATED" in unkeyed.stdout
    stdin = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", "verify-proof", "-", "--key", verifier],
                           input=proof.stdout, capture_output=True, text=True, timeout=120)
    assert stdin.returncode == 0


def _mutations(bundle: str):
    lines = bundle.split("\n")
    extra = base64.b64decode(lines[1][len("extra "):])
    yield "another entry", "\n".join([lines[0], "extra " + base64.b64encode(extra.replace(b'"seq":3', b'"seq":4')).decode(), *lines[2:]])
    yield "another index", bundle.replace("\nindex 3\n", "\nindex 2\n", 1)
    yield "a path hash changed", bundle.replace(lines[3], base64.b64encode(bytes(32)).decode(), 1)
    yield "a path hash dropped", "\n".join(lines[:3] + lines[4:])
    yield "another size", bundle.replace("\n8\n", "\n9\n", 1)
    yield "not a bundle", bundle.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1)


def test_any_change_to_a_bundle_is_rejected(signed):
    _, verifier, ledger = signed
    bundle = execaudit("prove", "3", "--ledger", ledger).stdout
    assert "\n8\n" in bundle  # the checkpoint covers the 8 entries: started, 3 steps, ended
    for what, changed in _mutations(bundle):
        with pytest.raises(ProofError):
            verify_bundle(changed, [VerifierKey.parse(verifier)])
        run = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", "verify-proof", "-", "--key", verifier],
                             input=changed, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and run.stdout.startswith("INVALID"), what


def test_prove_says_when_no_checkpoint_covers_the_entry(signed):
    _, _, ledger = signed
    assert execaudit("prove", "8", "--ledger", ledger).returncode == 4
    missing = execaudit("prove", "0", "--ledger", ledger.with_name("missing.db"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_the_signing_key_from_the_environment(tmp_path, signed):
    key_path, verifier, _ = signed
    ledger = tmp_path / "env.db"
    taken = execaudit("checkpoint", "--ledger", ledger)
    assert taken.returncode == 2  # no ledger there yet
    otel_execaudit.configure(ledger=ledger, exporter="none")
    with otel_execaudit.execution("x"):
        pass
    otel_execaudit.shutdown()
    signed_now = execaudit("checkpoint", "--ledger", ledger, env={"EXECAUDIT_SIGNING_KEY": str(key_path)})
    assert signed_now.returncode == 0 and "\n— ops.example/ledger " in signed_now.stdout
    bundle = execaudit("prove", "0", "--ledger", ledger).stdout
    assert verify_bundle(bundle, [VerifierKey.parse(verifier)]).signed
    os.chmod(key_path, 0o644)
    loose = execaudit("checkpoint", "--ledger", ledger, env={"EXECAUDIT_SIGNING_KEY": str(key_path)})
    assert loose.returncode == 2 and "chmod 600" in loose.stderr
