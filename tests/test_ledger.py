"""The ledger: chain fields, durability, threads, processes, crashes and write errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from otel_execaudit.ledger.canonical import GENESIS_PREV, canonical_bytes, leaf_hash_hex
from otel_execaudit.errors import LedgerWriteError, NotALedgerError
from otel_execaudit.ledger.store import Durability, Ledger, LedgerEntry, default_ledger_path
from otel_execaudit.ledger.verify import verify

WORKER = pathlib.Path(__file__).with_name("ledger_worker.py")
REPOSITORY = WORKER.parent.parent


def fields(number: int = 0, *, execution_id: str = "exec-1", kind: str = "step.completed") -> dict:
    return {
        "kind": kind,
        "ts": "2026-11-22T03:07:19.123456Z",
        "execution_id": execution_id,
        "plan_id": "plan-1",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "data": {"number": number},
    }


def run_worker(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WORKER), *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_chain(path: pathlib.Path, expected_count: int) -> None:
    report = verify(path)
    assert report.ok, report
    assert report.entries == expected_count


def test_entries_carry_the_chain_fields(tmp_path):
    with Ledger(tmp_path / "ledger.db") as ledger:
        first = ledger.append(fields(0))
        second = ledger.append(fields(1))
    assert isinstance(first, LedgerEntry)
    body = first.fields()
    assert body["format"] == 1 and body["seq"] == 0 and body["prev"] == GENESIS_PREV
    assert body["data"] == {"number": 0} and body["kind"] == "step.completed"
    assert first.body == canonical_bytes(body)
    assert first.hash == leaf_hash_hex(first.body)
    assert second.seq == 1 and second.fields()["prev"] == first.hash


def test_reopening_continues_the_chain_and_reads_back(tmp_path):
    path = tmp_path / "nested" / "dir" / "ledger.db"
    with Ledger(path) as ledger:
        written = [ledger.append(fields(number, execution_id=f"exec-{number % 2}")) for number in range(5)]
    with Ledger(path) as ledger:
        written.append(ledger.append(fields(5)))
        assert list(ledger.entries()) == written
        assert [entry.seq for entry in ledger.entries(2)] == [2, 3, 4, 5]
        assert [entry.seq for entry in ledger.entries(execution_id="exec-0")] == [0, 2, 4]
        assert ledger.tail() == written[-1]
    assert_one_chain(path, 6)


def test_entries_reads_in_chunks_past_the_chunk_size(tmp_path):
    with Ledger(tmp_path / "ledger.db", durability="off") as ledger:
        for number in range(2500):
            ledger.append(fields(number))
        assert [entry.seq for entry in ledger.entries()] == list(range(2500))
        assert len(list(ledger.entries(execution_id="exec-1", start=1000))) == 1500


@pytest.mark.parametrize("durability", list(Durability))
def test_each_durability_is_visible_to_another_connection_after_sync(tmp_path, durability):
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, durability=durability, batch_delay=30)
    assert ledger.durability is durability
    ledger.append(fields(0))
    other = sqlite3.connect(path)
    committed = other.execute("SELECT count(*) FROM entries").fetchone()[0]
    # full commits inside append; batch and off keep the group open (batch_delay is 30 s here).
    assert committed == (1 if durability is Durability.FULL else 0)
    ledger.sync()
    assert other.execute("SELECT count(*) FROM entries").fetchone()[0] == 1
    synchronous = ledger._connection.execute("PRAGMA synchronous").fetchone()[0]
    assert synchronous == {Durability.FULL: 2, Durability.BATCH: 1, Durability.OFF: 0}[durability]
    assert ledger._connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    ledger.close()


def test_batch_groups_commit_within_batch_delay_without_sync(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path, batch_delay=0.05) as ledger:
        ledger.append(fields(0))
        other = sqlite3.connect(path)
        deadline = time.monotonic() + 5
        while other.execute("SELECT count(*) FROM entries").fetchone()[0] == 0:
            assert time.monotonic() < deadline, "the background committer never committed"
            time.sleep(0.01)
        other.close()


def test_close_is_idempotent_and_append_after_close_raises(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.append(fields())
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerWriteError, match="closed"):
        ledger.append(fields())
    assert_one_chain(tmp_path / "ledger.db", 1)


def test_invalid_fields_are_refused_and_nothing_is_written(tmp_path):
    with Ledger(tmp_path / "ledger.db") as ledger:
        for broken, message in [
            ({**fields(), "ts": "2026-11-22 03:07:19"}, "ts must be RFC 3339"),
            ({**fields(), "trace_id": "ABC"}, "trace_id"),
            ({**fields(), "span_id": 5}, "span_id"),
            ({**fields(), "seq": 4}, "unexpected field"),
            ({key: value for key, value in fields().items() if key != "plan_id"}, "plan_id"),
            ({**fields(), "data": [1]}, "data must be a dict"),
            ({**fields(), "data": {"value": float("nan")}}, "JSON"),
        ]:
            with pytest.raises(LedgerWriteError, match=message):
                ledger.append(broken)
        ledger.append({**fields(), "data": {"big": 2**70, "ratio": 0.5}})
        assert ledger.tail().fields()["data"] == {"big": str(2**70), "ratio": 0.5}
    assert_one_chain(tmp_path / "ledger.db", 1)


def test_threads_appending_together_form_one_chain(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, batch_delay=0.005)
    errors = []

    def work(thread_number: int) -> None:
        try:
            for number in range(300):
                ledger.append(fields(number, execution_id=f"thread-{thread_number}"))
                if number % 100 == 0:
                    ledger.sync()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    assert errors == []
    assert_one_chain(path, 8 * 300)


def test_several_processes_form_one_chain(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), "append", str(path), "500", f"p{number}"], cwd=REPOSITORY)
        for number in range(4)
    ]
    assert [worker.wait(timeout=240) for worker in workers] == [0, 0, 0, 0]
    assert_one_chain(path, 2000)
    with Ledger(path) as ledger:
        for number in range(4):
            assert len(list(ledger.entries(execution_id=f"exec-p{number}"))) == 500


def _append_in_forked_child(path: str, count: int) -> None:
    ledger = _FORK_LEDGER[0]
    for number in range(count):
        ledger.append(fields(number, execution_id=f"child-{os.getpid()}"))
    ledger.close()


_FORK_LEDGER: list[Ledger] = []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_children_reopen_instead_of_sharing_the_connection(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, batch_delay=0.02)
    _FORK_LEDGER[:] = [ledger]
    ledger.append(fields(0))  # an open group at fork time: must be committed exactly once
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_append_in_forked_child, args=(str(path), 200)) for _ in range(3)]
    for child in children:
        child.start()
    for number in range(200):
        ledger.append(fields(number, execution_id="parent"))
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    ledger.close()
    assert_one_chain(path, 1 + 200 + 3 * 200)


def test_sigkill_while_appending_leaves_a_verifiable_ledger(tmp_path):
    path = tmp_path / "ledger.db"
    child = subprocess.Popen(
        [sys.executable, str(WORKER), "forever", str(path)], cwd=REPOSITORY, stdout=subprocess.PIPE, text=True
    )
    try:
        reported = 0
        for line in child.stdout:  # each line is written only after sync() returned
            reported = int(line.split()[1])
            if reported >= 1000:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert reported >= 1000
    report = verify(path)
    assert report.ok, report
    assert report.entries >= reported
    with Ledger(path) as ledger:  # and the chain continues after the crash
        ledger.append(fields())
    assert verify(path).ok


def test_lock_held_past_lock_timeout_raises_and_names_the_file(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        ledger = Ledger(path, lock_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(LedgerWriteError) as raised:
            ledger.append(fields())
        assert 0.15 <= time.monotonic() - started < 5
        message = str(raised.value)
        assert str(path) in message and "lock" in message and "lock_timeout" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ledger.append(fields())  # usable again once the lock is released
    ledger.close()
    assert_one_chain(path, 1)


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX permissions")
def test_read_only_file_raises_a_clear_error_and_loses_nothing():
    directory = pathlib.Path(tempfile.mkdtemp())
    try:
        directory.chmod(0o777)
        path = directory / "ledger.db"
        with Ledger(path, durability="full") as ledger:
            for number in range(3):
                ledger.append(fields(number))
        path.chmod(0o444)
        outcome = json.loads(run_worker("read-only", str(path)).stdout)
        assert outcome["stage"] in ("open", "append")
        assert str(path) in outcome["error"] and "writable" in outcome["error"]
        assert_one_chain(path, 3)
    finally:
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX permissions")
def test_unwritable_directory_raises_a_clear_error():
    directory = pathlib.Path(tempfile.mkdtemp())
    try:
        directory.chmod(0o755)  # owned by the test user; the worker runs as someone else (or is us)
        if os.geteuid() != 0:
            directory.chmod(0o555)
        outcome = json.loads(run_worker("read-only", str(directory / "sub" / "ledger.db")).stdout)
        assert outcome["stage"] == "open"
        assert "writable" in outcome["error"] and "EXECAUDIT_LEDGER" in outcome["error"]
    finally:
        directory.chmod(0o755)
        directory.rmdir()


def test_disk_full_raises_a_clear_error_and_keeps_committed_entries(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    result = run_worker("size-limit", str(path), str(1024 * 1024))
    outcome = json.loads(result.stdout)
    assert outcome["committed"] > 10
    message = outcome["error"]
    assert str(path) in message and "This entry was not appended. Nothing already committed is lost." in message
    assert "free space" in message.lower()
    assert_one_chain(path, outcome["committed"])


def test_a_failed_background_commit_surfaces_on_the_next_call(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db", batch_delay=30)
    ledger.append(fields(0))

    class RefusingConnection:
        """Stands in for a connection whose COMMIT fails (as on a full disk)."""

        def __init__(self, real):
            self.real = real
            self.in_transaction = True

        def execute(self, statement, *arguments):
            if statement == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return self.real.execute(statement, *arguments)

        def executemany(self, statement, rows):
            return self.real.executemany(statement, rows)

    with ledger._lock:
        real = ledger._connection
        try:
            ledger._commit_group(RefusingConnection(real))
        except LedgerWriteError as error:
            ledger._failure = error  # exactly what the background committer does
    with pytest.raises(LedgerWriteError, match=r"Entries 0\.\.0, acknowledged .* lost"):
        ledger.append(fields(1))
    entry = ledger.append(fields(2))
    assert entry.seq == 0  # the lost group left no trace; the chain restarts cleanly
    ledger.close()
    assert_one_chain(tmp_path / "ledger.db", 1)


def test_foreign_sqlite_file_is_not_a_ledger(tmp_path):
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE things (x)")
    connection.commit()
    connection.close()
    with pytest.raises(NotALedgerError):
        Ledger(path)
    (tmp_path / "text.db").write_text("hello, I am not SQLite" * 100)
    with pytest.raises(NotALedgerError):
        Ledger(tmp_path / "text.db")


def test_default_ledger_path(monkeypatch, tmp_path):
    monkeypatch.setenv("EXECAUDIT_LEDGER", str(tmp_path / "x.db"))
    assert default_ledger_path() == tmp_path / "x.db"
    monkeypatch.delenv("EXECAUDIT_LEDGER")
    monkeypatch.chdir(tmp_path)
    assert default_ledger_path() == tmp_path / ".execaudit" / "ledger.db"


def test_a_read_waits_at_most_the_lock_timeout(tmp_path):
    ledger = Ledger(tmp_path / "l.db", lock_timeout=0.2)
    ledger._lock.acquire()  # a thread stuck inside the ledger
    try:
        with pytest.raises(LedgerWriteError, match="cannot read ledger .* held for more than 0.2 s"):
            ledger.read(lambda connection: connection.execute("SELECT 1").fetchone())
    finally:
        ledger._lock.release()
    assert ledger.read(lambda connection: connection.execute("SELECT 1").fetchone()) == (1,)
    ledger.close()
