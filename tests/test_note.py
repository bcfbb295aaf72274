"""C2SP signed notes and tlog checkpoints, against the published vectors, byte for byte.

Vectors (copied verbatim, checked when written):
- golang/mod sumdb/note/note.go and note_test.go (TestNewVerifier, TestNewSigner, TestGenerateKey,
  TestFromEd25519, TestSign, TestOpen): the PeterNeumann and EnochRoot keys and signatures.
- C2SP/C2SP signed-note.md: the example.com/foo key and note, and the quasimodo note (no key).
- C2SP/C2SP tlog-checkpoint.md: the example.com/behind-the-sofa checkpoint. Its signature is a real
  sum.golang.org one (key ID 033de0ae) over the same checkpoint with the origin
  "go.sum database tree"; the sum.golang.org key is in golang/mod gosumcheck/main.go.
- golang/mod sumdb/client_test.go: the localhost.localdev/sumdb test keys and its signed trees 5
  and 6 (in the comment of TestClientForkDetection); sumdb/tlog/note_test.go: a tree body.
- transparency-dev/formats log/checkpoint_test.go: the bodies it rejects.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_execaudit.errors import ProofError
from otel_execaudit.ledger.checkpoint import Checkpoint
from otel_execaudit.ledger.note import (
    MAX_SIGNATURES,
    Signature,
    SignerKey,
    UnverifiedNoteError,
    VerifierKey,
    open_note,
    sign_note,
    split_note,
)

EM = "\u2014"
# golang/mod sumdb/note/note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_B64 = ("x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ryy"
             "BwJnAM=")
ENOCH_B64 = ("rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1R"
             "vMc+QQ=")
PETER_SIG = f"{EM} PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"{EM} EnochRoot {ENOCH_B64}\n"
PETER = Signature("PeterNeumann", 0xC74F20A3, PETER_B64)
ENOCH = Signature("EnochRoot", 0xAF0CFE78, ENOCH_B64)
# C2SP/C2SP signed-note.md
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (f"This is an example message.\n\n{EM} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6"
            "TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
QUASIMODO_NOTE = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    f"\n{EM} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONr"
    "MouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n")
# C2SP/C2SP tlog-checkpoint.md; golang/mod gosumcheck/main.go
SOFA_B64 = ("Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xe"
            "McTOAYQ8=")
SOFA_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_NOTE = f"{SOFA_BODY}\n{EM} example.com/behind-the-sofa {SOFA_B64}\n"
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
# golang/mod sumdb/client_test.go
TEST_SKEY = ("PRIVATE+KEY+localhost.localdev/sumdb+00000c67+"
             "AXu6+oaVaOYuQOFrf1V59JK1owcFlJcHwwXHDfDGxSPk")
TEST_VKEY = "localhost.localdev/sumdb+00000c67+AcTrnkbUA+TU4heY3hkjiSES/DSQniBqIeQ/YppAUtK6"
TREES = [  # (size, root, signature) of "go.sum database tree" checkpoints
    (5, "nWzN20+pwMt62p7jbv1/NlN95ePTlHijabv5zO/s36w=", "AAAMZ5/2FVAdMH58kmnz/0h299pwyskEbzDzoa2/"
     "YaPdhvLya4YWDFQQxu2TQb5GpwAH4NdWnTwuhILafisyf3CNbgg="),
    (6, "wc4SkQt52o5W2nQ8To2ARs+mWuUJjss+sdleoiqxMmM=", "AAAMZ6oRNswlEZ6ZZhxrCvgl1MBy+nusq4JU+TG6"
     "Fe2NihWLqOzb+y2c2kzRLoCr4tvw9o36ucQEnhc20e4nA4Qc/wc="),
]
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
KEY = SignerKey.generate("example.com/log")


def test_go_sign_reproduces_the_published_note_byte_for_byte():
    signer = SignerKey.parse(PETER_SKEY)
    assert (signer.name, signer.key_hash, signer.text) == ("PeterNeumann", 0xC74F20A3, PETER_SKEY)
    assert signer.verifier().text == PETER_VKEY and "AYEK" not in repr(signer)
    assert sign_note(TEXT, signer) == TEXT + "\n" + PETER_SIG


def test_go_open_keeps_unknown_signatures_unverified():
    peter, enoch = VerifierKey.parse(PETER_VKEY), VerifierKey.parse(ENOCH_VKEY)
    assert (enoch.name, enoch.key_hash, enoch.text) == ("EnochRoot", 0xAF0CFE78, ENOCH_VKEY)
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [peter]) == open_note(note.encode(), [peter])
    opened = open_note(note, [peter])
    assert (opened.text, opened.verified, opened.unverified) == (TEXT, (PETER,), (ENOCH,))
    assert open_note(note, [peter, enoch, enoch]).verified == (PETER, ENOCH)
    with pytest.raises(UnverifiedNoteError, match="no known key") as caught:
        open_note(note, [])
    assert caught.value.unverified == (PETER, ENOCH)
    assert split_note(note) == (TEXT, (PETER, ENOCH))


def test_go_open_drops_repeated_signatures():
    abcd = ENOCH_SIG.encode()[:60] + b"ABCD" + ENOCH_SIG.encode()[60:]  # as Go, at byte 60
    note = (TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2).encode() + abcd
    opened = open_note(note, [VerifierKey.parse(PETER_VKEY)])
    assert opened.verified == (PETER,)
    assert [s.base64 for s in opened.unverified] == [ENOCH_B64, abcd.decode().split()[-1]]


def test_go_open_rejects_a_bad_signature_by_a_known_key():
    bad_sig = (PETER_SIG.encode()[:60] + b"ABCD" + PETER_SIG.encode()[60:]).decode()  # as Go
    peter = VerifierKey.parse(PETER_VKEY)
    with pytest.raises(ProofError, match="PeterNeumann\\+c74f20a3 does not verify"):
        open_note(TEXT + "\n" + bad_sig, [peter])
    with pytest.raises(ProofError, match="does not verify"):  # after a good one too (Go skips it)
        open_note(TEXT + "\n" + PETER_SIG + bad_sig, [peter])


def test_go_open_limits_signatures():
    peter = VerifierKey.parse(PETER_VKEY)
    assert open_note(TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [peter]).verified == (PETER,)
    for known in ([peter], []):
        with pytest.raises(ProofError, match="more than 100"):
            open_note(TEXT + "\n" + PETER_SIG * 101, known)


@pytest.mark.parametrize("note", [
    TEXT, TEXT + "\n", TEXT + "\n" + PETER_SIG[:-1], "\x01" + TEXT + "\n" + PETER_SIG,
    (b"\xff" + (TEXT + "\n" + PETER_SIG).encode()),
    TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    # and beyond Go's list:
    "\ud800" + TEXT + "\n" + PETER_SIG, (TEXT + "\n" + PETER_SIG).replace("\n", "\r\n"),
    TEXT + "\n" + PETER_SIG.replace(EM, "-"), TEXT + "\n" + PETER_SIG.replace("AM=", "AM"),
    TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # unused base64 bits set: not canonical
    TEXT + "\n" + f"{EM} PeterNeumann AAAAAA==\n", TEXT + "\n" + f"{EM} PeterNeumann \n",
    TEXT + "\n" + f"{EM} Peter+Neumann {PETER_B64}\n",
], ids=range(15))
def test_go_open_rejects_malformed_notes(note):
    with pytest.raises(ProofError):
        open_note(note, [VerifierKey.parse(PETER_VKEY)])


def test_tampered_text_or_signature_fails():
    peter = VerifierKey.parse(PETER_VKEY)
    with pytest.raises(ProofError, match="does not verify"):
        open_note(TEXT.replace("you", "they", 1) + "\n" + PETER_SIG, [peter])
    with pytest.raises(ProofError, match="does not verify"):
        open_note(TEXT + "\n" + PETER_SIG.replace("S9UG", "S9UH"), [peter])
    with pytest.raises(ProofError, match="not canonical"):  # same bytes, other spelling
        open_note(TEXT + "\n" + PETER_SIG.replace("AM=", "AN="), [peter])
    with pytest.raises(UnverifiedNoteError):  # same name, other key: unknown, not verified
        open_note(TEXT + "\n" + PETER_SIG, [VerifierKey("PeterNeumann", KEY.verifier().public_key)])


def _manglings(key: str):
    raw = key.encode()
    yield from (raw[i:j].decode() for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1)
                if (i, j) != (0, len(raw)))
    yield from ((raw[:i] + bytes([raw[i] + 1]) + raw[i + 1:]).decode() for i in range(len(raw)))


def test_go_new_verifier_and_signer_reject_every_mangling():
    for kind, text in ((VerifierKey, PETER_VKEY), (SignerKey, PETER_SKEY)):
        for bad in _manglings(text):
            with pytest.raises(ProofError):
                kind.parse(bad)
    for bad, message in (  # Go: wrong length, unknown algorithm (each with its hash adjusted)
            ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
             "base64"),
            ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
             "not an Ed25519")):
        with pytest.raises(ProofError, match=message):
            VerifierKey.parse(bad)


@pytest.mark.parametrize("kind, text, message", [
    # the seed's tail mistyped: the derived public key no longer matches c74f20a3
    (SignerKey, PETER_SKEY.replace("vxdXHKDFz", "vxEXUKgZj"), "would be be145ce0"),
    (VerifierKey, PETER_VKEY.replace("c74f20a3", "c74f20a4"), "would be c74f20a3"),
    (VerifierKey, PETER_VKEY.replace("c74f20a3", "C74F20A3"), "lowercase"),
    (VerifierKey, PETER_VKEY.replace("Peter", "Pe ter"), "bad key name"),
    (SignerKey, PETER_VKEY, "PRIVATE"), (VerifierKey, PETER_SKEY, "signer key"),
    (SignerKey, PETER_SKEY.replace("KEY+", "KEY+PRIVATE+"), "key hash"),
])
def test_keys_with_a_wrong_hash_or_form_are_rejected(kind, text, message):
    with pytest.raises(ProofError, match=message):
        kind.parse(text)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b",
                                  "a\u2028b", "a\x00b", "a\ud800"])
def test_bad_key_names_are_rejected(name):
    with pytest.raises(ProofError, match="bad key name"):
        SignerKey.generate(name)
    with pytest.raises(ProofError, match="bad key name"):
        VerifierKey(name, KEY.verifier().public_key)


def test_errors_never_show_a_private_key():
    seed64 = PETER_SKEY.rsplit("+", 1)[1]
    for bad in (PETER_SKEY[:-1], PETER_SKEY + "=", PETER_SKEY.replace("vxd", "vxe")):
        with pytest.raises(ProofError) as caught:
            SignerKey.parse(bad)
        assert seed64[:-1] not in str(caught.value) and seed64[:8] not in str(caught.value)
    with pytest.raises(ProofError) as caught:
        VerifierKey.parse(PETER_SKEY)
    assert seed64[:8] not in str(caught.value)


def test_go_generate_key_and_from_ed25519():
    for signer in (SignerKey.generate("EnochRoot"), SignerKey("EnochRoot", bytes(range(32)))):
        verifier = VerifierKey.parse(signer.verifier().text)
        assert SignerKey.parse(signer.text).text == signer.text
        assert (verifier.name, verifier.key_hash) == ("EnochRoot", signer.key_hash)
        sig = signer.sign(b"hi")
        assert verifier.verify(b"hi", sig) and len(sig) == 64
        assert not verifier.verify(b"hi", bytes([sig[0] ^ 1]) + sig[1:])
        assert not verifier.verify(b"hj", sig) and not verifier.verify(b"hi", sig[:63])
    for make, size in ((SignerKey, 31), (VerifierKey, 31), (VerifierKey, 33)):
        with pytest.raises(ProofError, match="32 bytes"):
            make("EnochRoot", bytes(size))


def test_c2sp_signed_note_example_verifies():
    key = VerifierKey.parse(FOO_VKEY)
    assert (key.name, key.key_hash, key.text) == ("example.com/foo", 0x530D903A, FOO_VKEY)
    opened = open_note(FOO_NOTE, [key])
    assert opened.text == "This is an example message.\n" and opened.verified[0].name == key.name
    with pytest.raises(ProofError, match="does not verify"):
        open_note(FOO_NOTE.replace("example message", "example massage"), [key])


def test_c2sp_note_text_ends_at_the_last_blank_line():
    text, sigs = split_note(QUASIMODO_NOTE)
    assert text.endswith(":\n\ned è subito sera.\n")
    assert sigs[0].name == "quasimodo.example/salvatore"
    with pytest.raises(UnverifiedNoteError):
        open_note(QUASIMODO_NOTE, [KEY.verifier()])


def test_sign_note_rejects_what_open_would():
    for text, signers, message in [("abc", (KEY,), "end with a newline"), (TEXT, (), "1 to 100"),
                                   (TEXT, (KEY, KEY), "twice"), ("a\tb\n", (KEY,), "control"),
                                   ("\ud800\n", (KEY,), "UTF-8")]:
        with pytest.raises(ProofError, match=message):
            sign_note(text, *signers)


def test_c2sp_checkpoint_example_is_a_sum_golang_org_checkpoint():
    checkpoint = Checkpoint.parse(SOFA_BODY)
    assert (checkpoint.origin, checkpoint.size, checkpoint.body()) == (
        "example.com/behind-the-sofa", 20852163, SOFA_BODY)
    assert Checkpoint.read(SOFA_NOTE, [KEY.verifier()]) == (checkpoint, False)
    assert Checkpoint.read_unsigned(SOFA_NOTE) == checkpoint == Checkpoint.read_unsigned(SOFA_BODY)
    assert split_note(SOFA_NOTE)[1][0].key_hash == 0x033DE0AE  # sum.golang.org's key ID
    sumdb = VerifierKey.parse(SUMDB_VKEY)
    original = SOFA_BODY.replace("example.com/behind-the-sofa", "go.sum database tree")
    assert Checkpoint.read(f"{original}\n{EM} sum.golang.org {SOFA_B64}\n", [sumdb]) == (
        Checkpoint("go.sum database tree", 20852163, checkpoint.root), True)
    with pytest.raises(UnverifiedNoteError):
        Checkpoint.open(SOFA_NOTE, [sumdb])  # the renamed key is not sum.golang.org


@pytest.mark.parametrize("size, root, signature", TREES)
def test_go_sumdb_trees_are_reproduced_byte_for_byte(size, root, signature):
    signer, verifier = SignerKey.parse(TEST_SKEY), VerifierKey.parse(TEST_VKEY)
    assert signer.verifier() == verifier and verifier.key_hash == 0x00000C67
    checkpoint = Checkpoint("go.sum database tree", size, base64.b64decode(root))
    signed = checkpoint.sign(signer)
    assert signed == (f"go.sum database tree\n{size}\n{root}\n"
                      f"\n{EM} localhost.localdev/sumdb {signature}\n")
    assert Checkpoint.open(signed, [verifier], origin="go.sum database tree") == checkpoint
    with pytest.raises(ProofError, match="not 'example.com/log'"):
        Checkpoint.open(signed, [verifier], origin="example.com/log")
    with pytest.raises(ProofError, match="does not verify"):  # as the test's comment shows tree 5
        Checkpoint.read(signed.replace("tree\n", "tree!\n", 1), [verifier])


GO_TREE = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"


@pytest.mark.parametrize("body, message", [
    # golang/mod sumdb/tlog/note_test.go TestParseTree
    (GO_TREE.replace("123456789012", "0xabcdef"), "tree size"),
    (GO_TREE.replace("Bb0=", "BTOOBIG="), "root hash"), (GO_TREE + "JOE", "newline"),
    # transparency-dev/formats log/checkpoint_test.go TestUnmarshalLogState
    ("Log\n123\nYmFuYW5hcw==\n", "32 bytes"), ("Head\n9944\n", "at least 3 lines"),
    (f"\n9944\n{ROOT_B64}\n", "line 1"), ("Log\n123\nYmFuYW5hcw==", "newline"),
    (f"Log\nbananas\n{ROOT_B64}\n", "tree size"), (f"Log\n-34\n{ROOT_B64}\n", "tree size"),
    (f"Log\n3438945738945739845734895735\n{ROOT_B64}\n", "tree size"),
    ("Log\n123\nThisIsn'tBase64\n", "root hash"), (f"Log\n1\n{ROOT_B64}\n\n\n\n", "line 4"),
    # each further rule of c2sp.org/tlog-checkpoint
    (f"Log\n01\n{ROOT_B64}\n", "leading zeros"), (f"Log\n+1\n{ROOT_B64}\n", "sign"),
    (f"Log\n 1\n{ROOT_B64}\n", "spaces"), (f"Log\n1_0\n{ROOT_B64}\n", "tree size"),
    (f"Log\n١٢\n{ROOT_B64}\n", "tree size"), (f"Log\n{2**64}\n{ROOT_B64}\n", "2\\*\\*64-1"),
    ("Log\n1\n\n", "line 3"), (f"Log\n1\n{ROOT_B64[:-1]}\n", "root hash"),
    (f"Log\n1\n{'A' * 42}B=\n", "canonical"), (f"Log\n1\n{base64.b64encode(bytes(33)).decode()}\n",
                                               "32 bytes"),
    (f"Log\n1\n{ROOT_B64}\next\n\nmore\n", "line 5"), (f"L\tog\n1\n{ROOT_B64}\n", "'\\\\t'"),
    (f"Log\r\n1\r\n{ROOT_B64}\r\n", "'\\\\r'"), (f"Log\n1\n{ROOT_B64}\nx\x7f\x1b\n", "'\\\\x1b'"),
    (b"L\xffg\n1\n" + ROOT_B64.encode() + b"\n", "UTF-8"),
    (f"\ud800\n1\n{ROOT_B64}\n", "surrogate"),
], ids=range(28))
def test_checkpoint_parse_rejects_what_the_spec_forbids(body, message):
    with pytest.raises(ProofError, match=message):
        Checkpoint.parse(body)


def test_checkpoint_goldens_and_construction():
    assert Checkpoint.parse(GO_TREE).body() == GO_TREE
    assert Checkpoint.parse(GO_TREE).size == 123456789012
    assert Checkpoint.parse(GO_TREE + "JOE\n").extensions == ("JOE",)
    assert Checkpoint("o", 0, ROOT, ["a b", "+"]).body() == f"o\n0\n{ROOT_B64}\na b\n+\n"
    for args in [("", 1, ROOT), ("a\nb", 1, ROOT), ("o", -1, ROOT), ("o", 2**64, ROOT),
                 ("o", True, ROOT), ("o", 1, ROOT[:31]), ("o", 1, ROOT_B64), ("o", 1, ROOT, ("",)),
                 ("o", 1, ROOT, "ext")]:
        with pytest.raises(ProofError):
            Checkpoint(*args)


def test_unsigned_checkpoint_is_its_body_alone():
    checkpoint = Checkpoint("example.com/log", 7, ROOT)
    assert Checkpoint.read(checkpoint.body(), [KEY.verifier()]) == (checkpoint, False)
    assert Checkpoint.read(checkpoint.sign(KEY).encode(), [KEY.verifier()]) == (checkpoint, True)
    with pytest.raises(ProofError, match="cut short or unsigned"):
        Checkpoint.read(checkpoint.body() + "\n", [KEY.verifier()])
    with pytest.raises(UnverifiedNoteError):
        Checkpoint.open(checkpoint.body() + "\n" + PETER_SIG, [KEY.verifier()])
    with pytest.raises(ProofError, match="does not verify"):
        Checkpoint.read(checkpoint.sign(KEY).replace("\n7\n", "\n8\n"), [KEY.verifier()])


lines = st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), min_size=1)
checkpoints = st.builds(Checkpoint, lines, st.integers(0, 2**64 - 1),
                        st.binary(min_size=32, max_size=32), st.lists(lines, max_size=3).map(tuple))
texts = st.lists(st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",))), min_size=1
                 ).map(lambda parts: "\n".join(parts) + "\n")


@given(checkpoints)
def test_checkpoint_body_and_signature_round_trip(checkpoint):
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    assert Checkpoint.parse(checkpoint.body().encode()).body() == checkpoint.body()
    assert Checkpoint.open(checkpoint.sign(KEY), [KEY.verifier()]) == checkpoint


@given(texts, st.data())
def test_note_sign_open_round_trip_and_any_tampering_fails(text, data):
    signed = sign_note(text, KEY)
    assert open_note(signed, [KEY.verifier()]).text == text == split_note(signed)[0]
    i = data.draw(st.integers(0, len(text) - 1))
    other = data.draw(st.sampled_from("\na\u2014é").filter(lambda c: c != text[i]))
    with pytest.raises(ProofError):
        open_note(text[:i] + other + signed[i + 1:], [KEY.verifier()])
