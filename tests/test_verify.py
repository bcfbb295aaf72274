"""verify() finds every kind of tampering and names the first bad entry."""

from __future__ import annotations

import json
import os
import pathlib
import re
import sqlite3
import subprocess
import sys

import orjson
import pytest

from otel_execaudit.ledger.canonical import GENESIS_PREV, canonical_bytes, leaf_hash_hex
from otel_execaudit.errors import LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger import merkle
from otel_execaudit.ledger.store import Ledger
from otel_execaudit.ledger.verify import VerifyReport, verify


def fields(number: int) -> dict:
    return {
        "kind": "step.completed",
        "ts": "2026-11-22T03:07:19.123456Z",
        "execution_id": f"exec-{number % 3}",
        "plan_id": "plan-1",
        "trace_id": None,
        "span_id": None,
        "data": {"number": number},
    }


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        for number in range(10):
            ledger.append(fields(number))
    return path


def tamper(path, statement, *arguments):
    connection = sqlite3.connect(path)
    connection.execute(statement, arguments)
    connection.commit()
    connection.close()


def row(path, seq):
    connection = sqlite3.connect(path)
    found = connection.execute("SELECT hash, body FROM entries WHERE seq = ?", (seq,)).fetchone()
    connection.close()
    return found


def rewrite(path, seq, change):
    """Replace entry ``seq`` with a changed body whose stored hash is recomputed (a careful forger)."""
    body = orjson.loads(row(path, seq)[1])
    change(body)
    new_body = canonical_bytes(body)
    tamper(path, "UPDATE entries SET body = ?, hash = ? WHERE seq = ?", new_body, leaf_hash_hex(new_body), seq)


def drop_checkpoints(path):
    """What a forger who can write the file does too: remove the ledger's own checkpoints,
    which would otherwise give the change away (only a witness outside the file catches it)."""
    tamper(path, "DROP TABLE checkpoints")


def assert_broken_at(path, seq, reason_part):
    report = verify(path)
    assert not report.ok
    assert report.first_bad_seq == seq, report
    assert reason_part in report.reason, report
    assert report.entries == seq
    return report


def test_intact_ledger_verifies(ledger_path):
    report = verify(ledger_path)
    assert (report.path, report.ok, report.entries, report.head_hash, report.first_bad_seq,
            report.reason) == (str(ledger_path), True, 10, row(ledger_path, 9)[0], None, None)
    assert report.to_dict()["head_hash"] == row(ledger_path, 9)[0]
    leaves = [bytes.fromhex(row(ledger_path, seq)[0]) for seq in range(10)]
    assert report.root == merkle.root(leaves).hex()
    # its own checkpoint (taken at close) agrees; nothing outside the file vouches for it
    assert report.anchor["status"] == "unanchored"
    assert [item["agrees"] for item in report.anchor["checkpoints"]] == [True]
    assert verify(ledger_path, strict=True).ok


def test_empty_ledger_verifies(tmp_path):
    Ledger(tmp_path / "ledger.db").close()
    report = verify(tmp_path / "ledger.db")
    assert (report.ok, report.entries, report.head_hash, report.root) == (True, 0, None, merkle.EMPTY_ROOT.hex())
    assert report.anchor == {"status": "unanchored", "origin": None, "checkpoints": [], "evidence": []}


def test_modified_body_is_found(ledger_path):
    body = row(ledger_path, 4)[1].replace(b'"number":4', b'"number":5')
    tamper(ledger_path, "UPDATE entries SET body = ? WHERE seq = 4", body)
    assert_broken_at(ledger_path, 4, "hash")


def test_modified_body_with_recomputed_hash_breaks_the_next_link(ledger_path):
    rewrite(ledger_path, 4, lambda body: body["data"].update(number=99))
    report = assert_broken_at(ledger_path, 5, "prev does not match the hash of entry 4")
    assert report.head_hash == row(ledger_path, 4)[0]  # the last entry whose own checks passed


def test_modified_hash_is_found(ledger_path):
    tamper(ledger_path, "UPDATE entries SET hash = ? WHERE seq = 6", "0" * 64)
    assert_broken_at(ledger_path, 6, "hash")


def test_deleted_entry_in_the_middle_is_found(ledger_path):
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 5")
    assert_broken_at(ledger_path, 5, "entry 5 is missing")


def test_deleted_first_entry_is_found(ledger_path):
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 0")
    assert_broken_at(ledger_path, 0, "entry 0 is missing")


def test_deleted_last_entry_is_caught_by_the_ledgers_own_checkpoint(ledger_path):
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 9")
    report = verify(ledger_path)
    assert not report.ok and report.entries == 9
    assert "covers 10 entries and the ledger holds 9" in report.reason
    assert report.anchor["status"] == "contradicted"


def test_a_cut_tail_without_its_checkpoints_is_consistent_but_unanchored(ledger_path):
    # With its checkpoints gone too, only a copy held outside the file can tell (test_anchor.py).
    head = verify(ledger_path).head_hash
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 9")
    drop_checkpoints(ledger_path)
    report = verify(ledger_path)
    assert report.ok and report.entries == 9 and report.head_hash != head
    assert report.anchor["status"] == "unanchored"


def test_inserted_entry_is_found(ledger_path):
    # Shift entries 3.. up by one and insert a forged, internally consistent entry 3.
    connection = sqlite3.connect(ledger_path)
    connection.execute("UPDATE entries SET seq = seq + 1000 WHERE seq >= 3")
    connection.execute("UPDATE entries SET seq = seq - 999 WHERE seq >= 1000")
    previous_hash = connection.execute("SELECT hash FROM entries WHERE seq = 2").fetchone()[0]
    forged = {**fields(3), "format": 1, "seq": 3, "prev": previous_hash, "data": {"forged": True}}
    body = canonical_bytes(forged)
    connection.execute(
        "INSERT INTO entries (seq, hash, body, execution_id, kind) VALUES (3, ?, ?, ?, ?)",
        (leaf_hash_hex(body), body, forged["execution_id"], forged["kind"]),
    )
    connection.commit()
    connection.close()
    assert_broken_at(ledger_path, 4, "body says seq 3")


def test_entry_inserted_at_the_end_with_a_wrong_prev_is_found(ledger_path):
    forged = {**fields(10), "format": 1, "seq": 10, "prev": "ab" * 32}
    body = canonical_bytes(forged)
    tamper(
        ledger_path,
        "INSERT INTO entries (seq, hash, body, execution_id, kind) VALUES (10, ?, ?, ?, ?)",
        leaf_hash_hex(body),
        body,
        forged["execution_id"],
        forged["kind"],
    )
    assert_broken_at(ledger_path, 10, "prev does not match")


def test_swapped_bodies_are_found(ledger_path):
    hash_two, body_two = row(ledger_path, 2)
    hash_seven, body_seven = row(ledger_path, 7)
    tamper(ledger_path, "UPDATE entries SET hash = ?, body = ? WHERE seq = 2", hash_seven, body_seven)
    tamper(ledger_path, "UPDATE entries SET hash = ?, body = ? WHERE seq = 7", hash_two, body_two)
    assert_broken_at(ledger_path, 2, "reordered")


@pytest.mark.parametrize(("column", "value"), [("execution_id", "exec-other"), ("kind", "step.failed")])
def test_derived_column_tampering_is_found(ledger_path, column, value):
    tamper(ledger_path, f"UPDATE entries SET {column} = ? WHERE seq = 8", value)
    assert_broken_at(ledger_path, 8, "column")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body: body.update(format=2), "format"),
        (lambda body: body.update(format=True), "format"),
        (lambda body: body.pop("plan_id"), "missing ['plan_id']"),
        (lambda body: body.update(extra=1), "unexpected ['extra']"),
        (lambda body: body.update(trace_id="XYZ"), "trace_id"),
        (lambda body: body.update(data=[]), "data"),
    ],
)
def test_malformed_first_entry_is_found(ledger_path, change, reason):
    rewrite(ledger_path, 0, change)
    assert_broken_at(ledger_path, 0, reason)


def test_body_that_is_not_json_is_found(ledger_path):
    body = b"not json"
    tamper(ledger_path, "UPDATE entries SET body = ?, hash = ? WHERE seq = 0", body, leaf_hash_hex(body))
    assert_broken_at(ledger_path, 0, "not valid JSON")


def test_strict_mode_finds_non_canonical_bodies(ledger_path):
    parsed = orjson.loads(row(ledger_path, 9)[1])
    body = orjson.dumps(dict(reversed(list(parsed.items()))))  # same value, keys in reverse order
    assert body != row(ledger_path, 9)[1]
    tamper(ledger_path, "UPDATE entries SET body = ?, hash = ? WHERE seq = 9", body, leaf_hash_hex(body))
    assert not verify(ledger_path).ok  # its checkpoint no longer matches
    drop_checkpoints(ledger_path)
    assert verify(ledger_path).ok
    report = verify(ledger_path, strict=True)
    assert not report.ok and report.first_bad_seq == 9 and "canonical" in report.reason


def test_verify_does_not_write_or_create(tmp_path, ledger_path):
    before = ledger_path.read_bytes()
    verify(ledger_path)
    assert ledger_path.read_bytes() == before
    with pytest.raises(LedgerNotFoundError):
        verify(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_non_sqlite_file_is_not_a_ledger(tmp_path):
    (tmp_path / "notes.txt").write_text("just some text, certainly not SQLite\n" * 50)
    with pytest.raises(NotALedgerError):
        verify(tmp_path / "notes.txt")


def test_sqlite_file_without_our_meta_is_not_a_ledger(tmp_path):
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, hash, body)")
    connection.execute("CREATE TABLE meta (key, value)")
    connection.execute("INSERT INTO meta VALUES ('application', 'someone-else')")
    connection.commit()
    connection.close()
    with pytest.raises(NotALedgerError):
        verify(path)
    sqlite3.connect(tmp_path / "empty.db").close()
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(NotALedgerError):
        verify(tmp_path / "empty.db")


# Large ledgers are verified by several processes, each checking a part of the chain; the parts
# meet at one link each. Whatever the tampering, the result must equal the one-process result.

def _forge_at(seq):
    return lambda path: rewrite(path, seq, lambda body: body["data"].update(number=-1))


PARALLEL_CASES = {
    "intact": lambda path: None,
    "row with seq -1": lambda path: insert_row_before_entry_0(path),
    "duplicate member in the last entry": lambda path: duplicate_member(path, 47),
    "forged in the first part": _forge_at(3),
    "forged last entry of a part": _forge_at(11),
    "forged first entry of a part": _forge_at(12),
    "forged in the last part": _forge_at(40),
    "deleted at a boundary": lambda path: tamper(path, "DELETE FROM entries WHERE seq = 12"),
    "deleted before a boundary": lambda path: tamper(path, "DELETE FROM entries WHERE seq = 11"),
    "truncated tail": lambda path: tamper(path, "DELETE FROM entries WHERE seq >= 45"),
    "hash column changed": lambda path: tamper(
        path, "UPDATE entries SET hash = ? WHERE seq = 30", "0" * 64),
    "swapped across a boundary": lambda path: _swap(path, 11, 12),
}


def _swap(path, first, second):
    first_row, second_row = row(path, first), row(path, second)
    tamper(path, "UPDATE entries SET hash = ?, body = ? WHERE seq = ?", *second_row, first)
    tamper(path, "UPDATE entries SET hash = ?, body = ? WHERE seq = ?", *first_row, second)


@pytest.mark.parametrize("case", list(PARALLEL_CASES))
def test_parallel_verification_equals_the_single_process_one(tmp_path, monkeypatch, case):
    import sys

    verify_module = sys.modules["otel_execaudit.ledger.verify"]  # the package exports the function

    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        for number in range(48):
            ledger.append(fields(number))
    PARALLEL_CASES[case](path)
    single = verify(path, workers=1)
    monkeypatch.setattr(verify_module, "PARALLEL_FROM", 10)
    parallel = verify(path, workers=4)  # parts of 12 entries: 0-11, 12-23, 24-35, 36-47
    assert parallel == single
    assert single.ok == (case == "intact")  # a cut tail too: the last checkpoint covers it


# Rows outside 0..n-1, the file around the chain, empty kinds and duplicate members: the
# decisions of docs/ledger-format.md ("What verify checks").

def insert_row_before_entry_0(path):
    """Insert a self-consistent entry at row seq -1: ORDER BY seq puts it first, and a lookup
    by execution id finds it like any entry."""
    forged = {**fields(0), "format": 1, "seq": -1, "prev": GENESIS_PREV}
    body = canonical_bytes(forged)
    tamper(path, "INSERT INTO entries (seq, hash, body, execution_id, kind) VALUES (-1, ?, ?, ?, ?)",
           leaf_hash_hex(body), body, forged["execution_id"], forged["kind"])


def store_body(path, seq, body):
    tamper(path, "UPDATE entries SET body = ?, hash = ? WHERE seq = ?", body, leaf_hash_hex(body), seq)


def duplicate_member(path, seq):
    """Give entry ``seq`` (the last one, or one whose successor is not checked) a second "data"
    member before the real one: orjson keeps the last, so every other check still passes."""
    body = row(path, seq)[1]
    store_body(path, seq, body.replace(b'{"data":', b'{"data":{"number":-1},"data":', 1))


def test_row_with_a_negative_seq_is_tampering(ledger_path):
    insert_row_before_entry_0(ledger_path)
    report = verify(ledger_path)
    assert not report.ok and report.first_bad_seq == -1 and report.entries == 0, report
    assert report.head_hash is None
    assert "seq -1" in report.reason and "before entry 0" in report.reason


def test_extra_meta_row_is_tampering(ledger_path):
    tamper(ledger_path, "INSERT INTO meta (key, value) VALUES ('note', 'added later')")
    report = verify(ledger_path)
    assert not report.ok and report.first_bad_seq is None and report.entries == 0, report
    assert "meta" in report.reason and "'note'" in report.reason


def shrink_index(path):
    """Leave the index with only the rows of entries 0..4 while the schema names a full index
    (writable_schema): a lookup by execution id would miss entries 5..9."""
    connection = sqlite3.connect(path)
    connection.execute("DROP INDEX entries_by_execution")
    connection.execute("CREATE INDEX entries_by_execution ON entries (execution_id, seq) WHERE seq < 5")
    connection.execute("PRAGMA writable_schema = ON")
    connection.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX entries_by_execution ON entries "
                       "(execution_id, seq)' WHERE name = 'entries_by_execution'")
    connection.commit()
    connection.close()


def test_index_that_lacks_rows_is_tampering(ledger_path):
    shrink_index(ledger_path)
    report = verify(ledger_path)
    assert not report.ok and report.first_bad_seq is None and report.entries == 10, report
    assert "index entries_by_execution holds 5 rows for 10 entries" in report.reason


def test_empty_kind_is_tampering(ledger_path):
    rewrite(ledger_path, 9, lambda body: body.update(kind=""))
    tamper(ledger_path, "UPDATE entries SET kind = '' WHERE seq = 9")
    assert_broken_at(ledger_path, 9, "kind is empty")


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    ("name", "original", "forged"),
    [
        ("data", b'{"data":', b'{"data":{"number":-1},"data":'),
        ("number", b'"number":9}', b'"number":-1,"number":9}'),
        # Not canonical in other ways as well: the exact (slower) check, not the fast one, decides.
        ("number", b'"number":9}', b'"number": -1, "number": 9}'),
    ],
)
def test_duplicate_members_are_tampering_even_without_strict(ledger_path, strict, name, original, forged):
    body = row(ledger_path, 9)[1]
    assert original in body
    store_body(ledger_path, 9, body.replace(original, forged, 1))
    report = verify(ledger_path, strict=strict)
    assert not report.ok and report.first_bad_seq == 9 and report.entries == 9, report
    assert f"duplicate member {name!r}" in report.reason


def test_a_non_canonical_body_without_duplicates_passes_only_the_fast_check(ledger_path):
    # The counterpart of the cases above: spaces alone are found by --strict only, and the
    # duplicate test does not mistake them (or an integer orjson reads as a float) for one.
    body = row(ledger_path, 9)[1]
    drop_checkpoints(ledger_path)
    store_body(ledger_path, 9, body.replace(b'"number":9}', b'"number": 9, "large": 123456789012345678901234567890}'))
    assert verify(ledger_path).ok
    assert "canonical" in verify(ledger_path, strict=True).reason
    store_body(ledger_path, 9, body.replace(b'"number":9}', b'"number": 9, "number": 9}'))
    assert "duplicate member 'number'" in verify(ledger_path).reason


# The sample verifier of docs/ledger-format.md, run as a reader would run it, must give the
# status verify gives (0 intact, 1 tampered, 2 not a ledger) on every case.

SPEC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "ledger-format.md"


SAMPLE_CASES = {
    "intact": (0, lambda path: None),
    "spaces in a body (not canonical; check 8 only)": (
        0, lambda path: (drop_checkpoints(path),
                         store_body(path, 9, row(path, 9)[1].replace(b'":', b'": ')))),
    "edited body": (1, lambda path: tamper(path, "UPDATE entries SET body = ? WHERE seq = 4",
                                           row(path, 4)[1].replace(b'"number":4', b'"number":5'))),
    "edited body, hash recomputed": (1, lambda path: rewrite(path, 4, lambda body: body["data"].update(number=99))),
    "deleted entry": (1, lambda path: tamper(path, "DELETE FROM entries WHERE seq = 5")),
    "row with seq -1": (1, insert_row_before_entry_0),
    "extra meta row": (1, lambda path: tamper(path, "INSERT INTO meta VALUES ('note', 'added later')")),
    "empty kind": (1, lambda path: (rewrite(path, 9, lambda body: body.update(kind="")),
                                    tamper(path, "UPDATE entries SET kind = '' WHERE seq = 9"))),
    "duplicate member": (1, lambda path: duplicate_member(path, 9)),
    "duplicate member in data": (1, lambda path: store_body(
        path, 9, row(path, 9)[1].replace(b'"number":9}', b'"number":-1,"number":9}'))),
    "format true": (1, lambda path: rewrite(path, 9, lambda body: body.update(format=True))),
    "kind column changed": (1, lambda path: tamper(path, "UPDATE entries SET kind = 'x' WHERE seq = 3")),
    "dropped index": (1, lambda path: tamper(path, "DROP INDEX entries_by_execution")),
    "partial index": (1, lambda path: (
        tamper(path, "DROP INDEX entries_by_execution"),
        tamper(path, "CREATE INDEX entries_by_execution ON entries (execution_id, seq) "
                     "WHERE seq >= 0"))),
    "index lacking rows": (1, shrink_index),
    "dropped column": (1, lambda path: tamper(path, "ALTER TABLE entries DROP COLUMN kind")),
    "meta of another application": (2, lambda path: tamper(
        path, "UPDATE meta SET value = 'someone-else' WHERE key = 'application'")),
    "format 2": (2, lambda path: tamper(path, "UPDATE meta SET value = '2' WHERE key = 'format'")),
}


def verify_status(path):
    try:
        return 0 if verify(path).ok else 1
    except NotALedgerError:
        return 2


def test_the_spec_sample_verifier_agrees_with_verify(tmp_path):
    sample = re.search(r"A minimal independent verifier.*?```python\n(.*?)```", SPEC.read_text(), re.S)
    script = tmp_path / "sample_verifier.py"
    script.write_text(sample.group(1))
    statuses = {}
    for number, (case, (expected, change)) in enumerate(SAMPLE_CASES.items()):
        path = tmp_path / f"ledger-{number}.db"
        with Ledger(path) as ledger:
            for entry in range(10):
                ledger.append(fields(entry))
        change(path)
        run = subprocess.run([sys.executable, "-I", str(script), str(path)], capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
        sample_status = "traceback" if "Traceback" in run.stderr else run.returncode
        statuses[case] = (expected, verify_status(path), sample_status)
    assert {case: found for case, found in statuses.items() if len(set(found)) > 1} == {}


# A damaged file is reported like tampering (exit 1, a report, JSON with --json), never with a
# traceback; exit 2 stays for a path that is missing or is not a ledger at all.

PAGE = 16384  # the page size of a new ledger (ledger/file.py, _initialise)


def _corrupt_page_holding(marker):
    def corrupt(path):
        data = bytearray(path.read_bytes())
        start = data.index(marker) // PAGE * PAGE
        data[start:start + 64] = b"\xff" * 64  # the b-tree page header: not a page any more
        path.write_bytes(bytes(data))
    return corrupt


def _corrupt_index_root(path):
    connection = sqlite3.connect(path)
    (root,) = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'entries_by_execution'").fetchone()
    connection.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * PAGE:(root - 1) * PAGE + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


DAMAGE = {
    "corrupted page holding the last entry": _corrupt_page_holding(b'"number":499}'),
    "corrupted index page": _corrupt_index_root,
    "missing column": lambda path: tamper(path, "ALTER TABLE entries DROP COLUMN kind"),
    "dropped index": lambda path: tamper(path, "DROP INDEX entries_by_execution"),
    "truncated by one page": lambda path: os.truncate(path, path.stat().st_size - PAGE),
    "truncated inside its first page": lambda path: os.truncate(path, 8000),
}


@pytest.fixture(scope="module")
def big_ledger_bytes(tmp_path_factory):
    """A ledger of 500 entries: a dozen pages, so that a page can be damaged alone."""
    path = tmp_path_factory.mktemp("big") / "ledger.db"
    with Ledger(path) as ledger:
        for number in range(500):
            ledger.append(fields(number))
    assert not pathlib.Path(f"{path}-wal").exists() or not pathlib.Path(f"{path}-wal").stat().st_size
    return path.read_bytes()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_ledger_exits_1_with_a_report(tmp_path, big_ledger_bytes, damage):
    path = tmp_path / "ledger.db"
    path.write_bytes(big_ledger_bytes)
    DAMAGE[damage](path)
    command = [sys.executable, "-m", "otel_execaudit.cli", "verify", str(path)]
    as_json = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    assert "Traceback" not in as_json.stdout + as_json.stderr, as_json.stderr
    assert as_json.returncode == 1, (as_json.stdout, as_json.stderr)
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["reason"], report
    text = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in text.stdout + text.stderr, text.stderr
    assert text.returncode == 1 and "TAMPERED" in text.stdout, (text.stdout, text.stderr)
    assert report["reason"] in text.stdout and "seq None" not in text.stdout
