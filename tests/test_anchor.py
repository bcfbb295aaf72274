"""A ledger held against its checkpoints: a cut tail, a rewrite from any entry on, another
ledger in its place and a fork are caught against the witness's copy, even when the forger
also removes the ledger's own checkpoints; without a witness the ledger is said UNANCHORED."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import orjson
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_execaudit
from otel_execaudit.ledger import merkle
from otel_execaudit.ledger.canonical import canonical_entry_bytes, leaf_hash_hex
from otel_execaudit.ledger.checkpoint import Checkpoint
from otel_execaudit.ledger.keys import write_key_file
from otel_execaudit.ledger.verify import verify
from otel_execaudit.ledger.witness import WitnessState


def record(path, executions=3, steps=4, **settings):
    """Record executions through the runtime, as an application does: each ends with a
    checkpoint, witnessed in the state file."""
    otel_execaudit.configure(ledger=path, exporter="none", **settings)
    try:
        for number in range(executions):
            with otel_execaudit.execution("nightly", execution_id=f"run-{path.stem}-{number}") as ex:
                for step in range(steps):
                    with ex.step(f"step-{step}"):
                        pass
    finally:
        otel_execaudit.shutdown()


def sql(path, statement, *arguments):
    with sqlite3.connect(path) as connection:
        connection.execute(statement, arguments)
    connection.close()


def count(path):
    with sqlite3.connect(path) as connection:
        (entries,) = connection.execute("SELECT count(*) FROM entries").fetchone()
    connection.close()
    return entries


def rewrite_from(path, k, *, drop_checkpoints=True):
    """Rewrite the chain consistently from entry k: entry k's data changed, every later entry's
    prev and hash recomputed, so that the chain checks (a forger who can write the file)."""
    connection = sqlite3.connect(path)
    rows = connection.execute("SELECT seq, body FROM entries WHERE seq >= ? ORDER BY seq", (k,)).fetchall()
    (previous,) = connection.execute("SELECT hash FROM entries WHERE seq = ?", (k - 1,)).fetchone() \
        if k else ("0" * 64,)
    for seq, body in rows:
        entry = orjson.loads(body)
        if seq == k:
            entry["data"]["forged"] = True
        entry["prev"] = previous
        new_body = canonical_entry_bytes(entry)
        previous = leaf_hash_hex(new_body)
        connection.execute("UPDATE entries SET body = ?, hash = ? WHERE seq = ?", (new_body, previous, seq))
    if drop_checkpoints:
        connection.execute("DROP TABLE IF EXISTS checkpoints")
    connection.commit()
    connection.close()


def cut(path, keep):
    sql(path, "DELETE FROM entries WHERE seq >= ?", keep)
    sql(path, "DROP TABLE IF EXISTS checkpoints")  # its own checkpoints would give it away


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "ledger.db"
    record(path)
    return path


def test_a_recorded_ledger_is_anchored_by_the_witness(ledger, witness_state):
    report = verify(ledger)
    assert report.ok and report.anchor["status"] == "anchored"
    held = WitnessState(witness_state).latest(report.anchor["origin"])
    assert held.size == report.entries == count(ledger) and held.root.hex() == report.root
    assert held.ledger == str(ledger)


@pytest.mark.parametrize("attack", ["delete the last entry", "cut the tail by 1", "cut the tail by half",
                                    "rewrite from seq 0", "rewrite from seq 7", "rewrite the last entry"])
def test_an_attack_the_chain_cannot_show_is_caught_against_the_witness(ledger, attack):
    entries = count(ledger)
    if attack == "delete the last entry":
        sql(ledger, "DELETE FROM entries WHERE seq = ?", entries - 1)
        sql(ledger, "DELETE FROM checkpoints WHERE size >= ?", entries)
    elif attack.startswith("cut"):
        cut(ledger, entries - 1 if attack.endswith("by 1") else entries // 2)
    else:
        k = {"rewrite from seq 0": 0, "rewrite from seq 7": 7}.get(attack, entries - 1)
        rewrite_from(ledger, k)
    without_witness = verify(ledger, state=False)
    assert without_witness.ok and without_witness.anchor["status"] == "unanchored"  # the chain checks
    report = verify(ledger)
    assert not report.ok and report.anchor["status"] == "contradicted", report
    assert "witness" in report.reason
    if attack.startswith(("delete", "cut")):
        assert f"the first missing is seq {report.entries}" in report.reason
    elif attack == "rewrite from seq 0":  # a new entry 0 is a new origin: the witness knows the path
        assert "replaced or rewritten from entry 0" in report.reason
    else:
        assert "were rewritten" in report.reason


def test_another_valid_ledger_in_its_place_is_caught(tmp_path, ledger):
    other = tmp_path / "other" / "ledger.db"
    record(other, executions=5)
    assert verify(other).ok
    shutil.copyfile(other, ledger)
    report = verify(ledger)
    assert not report.ok and "replaced or rewritten from entry 0" in report.reason
    ledger.unlink()  # and a new ledger started at the same path
    record(ledger, executions=1)
    assert "replaced or rewritten from entry 0" in verify(ledger).reason


def test_the_witness_never_goes_back_and_the_next_run_cannot_hide_a_cut(ledger, witness_state):
    entries = count(ledger)
    origin = verify(ledger).anchor["origin"]
    cut(ledger, entries - 3)
    record(ledger, executions=1)  # appends past the old length: a checkpoint the witness refuses
    assert count(ledger) > entries
    assert WitnessState(witness_state).latest(origin).size == entries
    report = verify(ledger)
    assert not report.ok and f"root at size {entries} is" in report.reason


def test_a_checkpoint_given_on_the_command_line(tmp_path, ledger):
    key_path = tmp_path / "ledger.key"
    key = write_key_file(key_path, "ops.example/ledger")
    record(ledger, executions=1, signing_key=key_path)  # signed from now on
    held = verify(ledger, state=False).anchor["checkpoints"][0]
    assert held["signed"] is None  # signed, but no key was given to check it
    note = held["note"]
    assert Checkpoint.open(note, [key.verifier()]).size == count(ledger)
    (tmp_path / "cp.txt").write_text(note)

    def run(*arguments):
        return subprocess.run([sys.executable, "-m", "otel_execaudit.cli", "verify", str(ledger),
                               "--no-state", *arguments], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    assert run("--checkpoint", str(tmp_path / "cp.txt"), "--key", key.verifier().text).returncode == 0
    assert run("--require-anchor").returncode == 3
    assert "UNANCHORED" in run().stdout
    other_key = write_key_file(tmp_path / "other.key", "someone-else")
    refused = run("--checkpoint", note.rstrip("\n"), "--key", other_key.verifier().text)
    assert refused.returncode == 2 and "not signed by the key given" in refused.stderr
    cut(ledger, count(ledger) - 1)
    caught = run("--checkpoint", str(tmp_path / "cp.txt"), "--json")
    assert caught.returncode == 1
    document = json.loads(caught.stdout)
    assert document["anchor"]["status"] == "contradicted" and document["anchor"]["evidence"]


def test_a_fork_of_two_signed_checkpoints_is_named(tmp_path, ledger, witness_state):
    key = write_key_file(tmp_path / "ledger.key", "ops.example/ledger")
    record(ledger, executions=1, signing_key=key)
    signed_before = WitnessState(witness_state).latest(verify(ledger).anchor["origin"]).note
    rewrite_from(ledger, 5)
    otel_execaudit.configure(ledger=ledger, exporter="none", signing_key=key, state=False)
    otel_execaudit.get_runtime().ledger.checkpoint()  # the key holder signs the rewritten tree
    otel_execaudit.shutdown()
    report = verify(ledger, checkpoints=[signed_before], keys=[key.verifier()], state=False)
    assert not report.ok and "fork:" in report.reason and "both signed" in report.reason


def test_every_checkpoint_goes_out_on_the_root_span_and_as_a_log_record(tmp_path):
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    otel_execaudit.configure(ledger=tmp_path / "l.db", exporter=spans, log_exporter=logs)
    with otel_execaudit.execution("nightly") as ex:
        with ex.step("dump"):
            pass
    otel_execaudit.shutdown()
    (root,) = [span for span in spans.get_finished_spans() if span.parent is None]
    (event,) = [event for event in root.events if event.name == "execaudit.ledger.checkpoint"]
    checkpoint = Checkpoint.parse(event.attributes["execaudit.checkpoint.note"])
    assert checkpoint.size == 4 and event.attributes["execaudit.checkpoint.signed"] is False
    assert checkpoint.root.hex() == verify(tmp_path / "l.db").root
    notes = [record.log_record.attributes["execaudit.checkpoint.note"]
             for record in logs.get_finished_logs()
             if record.log_record.event_name == "execaudit.ledger.checkpoint"]
    assert event.attributes["execaudit.checkpoint.note"] in notes


def test_checkpoints_are_taken_every_n_entries_and_extend_each_other(tmp_path):
    path = tmp_path / "l.db"
    # at the first commit past every 16 entries (each append commits at durability "full")
    record(path, executions=1, steps=30, checkpoint_every=16, durability="full")
    with sqlite3.connect(path) as connection:
        sizes = [size for (size,) in connection.execute("SELECT size FROM checkpoints ORDER BY size")]
        leaves = [bytes.fromhex(digest) for (digest,) in connection.execute("SELECT hash FROM entries ORDER BY seq")]
        notes = dict(connection.execute("SELECT size, note FROM checkpoints"))
    connection.close()
    assert len(sizes) >= 3 and sizes[-1] == len(leaves)  # periodic ones, and the one at the end
    assert all(later - earlier >= 16 or later == sizes[-1] for earlier, later in zip(sizes, sizes[1:]))
    for size in sizes:
        assert Checkpoint.parse(notes[size]).root == merkle.root(leaves[:size])
    for earlier, later in zip(sizes, sizes[1:]):  # each extends the one before: a proof joins them
        proof = merkle.consistency_proof(leaves[:later], earlier)
        merkle.verify_consistency(earlier, later, proof, merkle.root(leaves[:earlier]), merkle.root(leaves[:later]))


def test_no_checkpoint_is_signed_over_a_changed_history(tmp_path):
    path = tmp_path / "l.db"
    record(path, executions=1)
    rewrite_from(path, 2, drop_checkpoints=False)  # under the last checkpoint, consistently
    otel_execaudit.configure(ledger=path, exporter="none", state=False)
    ledger = otel_execaudit.get_runtime().ledger
    assert ledger.checkpoint() is None
    assert "no longer has the hash" in str(ledger.checkpoint_problem)
    otel_execaudit.shutdown()


def test_an_unusable_state_file_is_a_clear_error_and_the_execution_still_runs(tmp_path):
    state = tmp_path / "state.json"
    state.write_text("not json")
    record(tmp_path / "l.db", executions=1, state=state)  # the execution is not stopped
    assert state.read_text() == "not json"  # evidence is never overwritten
    with pytest.raises(otel_execaudit.ConfigurationError, match="not a witness state file"):
        verify(tmp_path / "l.db", state=state)
