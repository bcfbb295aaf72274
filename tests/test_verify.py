"""verify() finds every kind of tampering and names the first bad entry."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from otel_execaudit.canonical import canonical_bytes, leaf_hash_hex
from otel_execaudit.errors import LedgerNotFoundError, NotALedgerError
from otel_execaudit.ledger import Ledger
from otel_execaudit.verify import VerifyReport, verify


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


def assert_broken_at(path, seq, reason_part):
    report = verify(path)
    assert not report.ok
    assert report.first_bad_seq == seq, report
    assert reason_part in report.reason, report
    assert report.entries == seq
    return report


def test_intact_ledger_verifies(ledger_path):
    report = verify(ledger_path)
    assert report == VerifyReport(str(ledger_path), True, 10, row(ledger_path, 9)[0], None, None)
    assert report.to_dict()["head_hash"] == row(ledger_path, 9)[0]
    assert verify(ledger_path, strict=True).ok


def test_empty_ledger_verifies(tmp_path):
    Ledger(tmp_path / "ledger.db").close()
    assert verify(tmp_path / "ledger.db") == VerifyReport(str(tmp_path / "ledger.db"), True, 0, None, None, None)


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


def test_deleted_last_entry_is_not_tampering_but_changes_the_head(ledger_path):
    # Truncating the tail is indistinguishable from a shorter ledger; the head hash is what
    # an external witness compares (see docs/ledger-format.md).
    head = verify(ledger_path).head_hash
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 9")
    report = verify(ledger_path)
    assert report.ok and report.entries == 9 and report.head_hash != head


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

    verify_module = sys.modules["otel_execaudit.verify"]  # the package exports the function

    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        for number in range(48):
            ledger.append(fields(number))
    PARALLEL_CASES[case](path)
    single = verify(path, workers=1)
    monkeypatch.setattr(verify_module, "PARALLEL_FROM", 10)
    parallel = verify(path, workers=4)  # parts of 12 entries: 0-11, 12-23, 24-35, 36-47
    assert parallel == single
    assert single.ok == (case in ("intact", "truncated tail"))  # see docs: anchor the head
