"""Daily limit counters: consumed atomically with the ledger entry that records them."""

import multiprocessing

import pytest

import otel_execaudit
from otel_execaudit.executor import limits
from otel_execaudit.errors import LedgerWriteError
from otel_execaudit.ledger.store import Ledger
from otel_execaudit.executor.limits import LimitCounters

SCOPE = "client:1"


def entry_for(data):
    return {"kind": "limits.consumed", "ts": "2026-11-22T03:07:19.123456Z",
            "execution_id": "e1", "plan_id": "p", "trace_id": None, "span_id": None,
            "data": data}


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "l.db") as opened:
        yield opened


@pytest.fixture
def counters(ledger):
    return LimitCounters(ledger)


def entries(ledger):
    return [entry.fields() for entry in ledger.entries()]


def test_a_consumption_within_the_maxima_is_allowed_and_counted(ledger, counters):
    first = counters.consume("e1:0", SCOPE, {"orders": 1, "notional": 50},
                             {"orders": 2, "notional": 100}, entry_for)
    assert first.allowed and not first.replayed and first.over == ()
    assert first.used_before == {}
    assert counters.usage(SCOPE) == {"orders": 1, "notional": 50}
    second = counters.consume("e1:1", SCOPE, {"orders": 1, "notional": 50},
                              {"orders": 2, "notional": 100}, entry_for)
    assert second.allowed and second.used_before == {"orders": 1, "notional": 50}
    assert counters.usage(SCOPE) == {"orders": 2, "notional": 100}
    recorded = entries(ledger)
    assert [entry["data"]["allowed"] for entry in recorded] == [True, True]
    assert recorded[1]["data"]["key"] == "e1:1" and recorded[1]["data"]["scope"] == SCOPE
    assert first.entry.seq == 0 and second.entry.seq == 1


def test_counters_without_maxima_count_everything(counters):
    for number in range(3):
        assert counters.consume(f"k{number}", SCOPE, {"orders": 5}, {}, entry_for).allowed
    assert counters.usage(SCOPE) == {"orders": 15}


def test_over_a_maximum_nothing_is_counted_and_the_refusal_is_recorded(ledger, counters):
    counters.consume("e1:0", SCOPE, {"orders": 2}, {"orders": 3}, entry_for)
    refused = counters.consume("e1:1", SCOPE, {"orders": 2, "notional": 10},
                               {"orders": 3, "notional": 1000}, entry_for)
    assert refused.allowed is False and refused.replayed is False
    assert refused.over == ("orders",)
    assert refused.used_before == {"orders": 2}
    assert counters.usage(SCOPE) == {"orders": 2}  # not even the notional that fitted
    data = entries(ledger)[-1]["data"]
    assert data["allowed"] is False and data["over"] == ["orders"]
    assert data["key"] == "e1:1" and data["amounts"] == {"orders": 2, "notional": 10}
    assert refused.entry.fields()["data"]["allowed"] is False
    # exactly at the maximum still fits
    assert counters.consume("e1:2", SCOPE, {"orders": 1}, {"orders": 3}, entry_for).allowed
    assert counters.usage(SCOPE) == {"orders": 3}


def test_a_refused_key_may_be_retried_when_there_is_room(counters):
    assert not counters.consume("k", SCOPE, {"orders": 2}, {"orders": 1}, entry_for).allowed
    retried = counters.consume("k", SCOPE, {"orders": 1}, {"orders": 1}, entry_for)
    assert retried.allowed and not retried.replayed
    assert counters.usage(SCOPE) == {"orders": 1}


def test_a_replayed_key_is_allowed_and_not_counted_twice(ledger, counters):
    first = counters.consume("e1:0", SCOPE, {"orders": 1}, {"orders": 1}, entry_for)
    again = counters.consume("e1:0", SCOPE, {"orders": 1}, {"orders": 1}, entry_for)
    assert first.allowed and not first.replayed
    assert again.allowed and again.replayed and again.over == ()
    assert counters.usage(SCOPE) == {"orders": 1}
    assert [entry["data"]["replayed"] for entry in entries(ledger)] == [False, True]
    # a new key is still held to the maximum
    assert not counters.consume("e2:0", SCOPE, {"orders": 1}, {"orders": 1}, entry_for).allowed


def test_the_counters_and_the_entry_commit_together_or_not_at_all(tmp_path, ledger, counters):
    counters.consume("before", SCOPE, {"orders": 1}, {}, entry_for)

    def broken(data):
        raise RuntimeError("entry cannot be built")

    with pytest.raises(RuntimeError, match="entry cannot be built"):
        counters.consume("broken", SCOPE, {"orders": 1}, {"orders": 10}, broken)
    assert counters.usage(SCOPE) == {"orders": 1}
    assert len(entries(ledger)) == 1

    def invalid(data):  # the ledger refuses the entry: the counters must not move either
        return {"kind": "limits.consumed", "data": data}

    with pytest.raises(LedgerWriteError):
        counters.consume("invalid", SCOPE, {"orders": 1}, {"orders": 10}, invalid)
    assert counters.usage(SCOPE) == {"orders": 1}
    assert len(entries(ledger)) == 1

    # the failed keys were not recorded as consumed: retrying them counts
    retried = counters.consume("broken", SCOPE, {"orders": 1}, {"orders": 10}, entry_for)
    assert retried.allowed and not retried.replayed
    assert counters.usage(SCOPE) == {"orders": 2}
    ledger.sync()
    report = otel_execaudit.verify(ledger.path)
    assert report.ok and report.entries == 2


def test_a_failure_on_the_first_consumption_of_a_new_ledger_leaves_it_usable(tmp_path):
    path = tmp_path / "fresh.db"
    with Ledger(path) as ledger:
        counters = LimitCounters(ledger)
        with pytest.raises(ZeroDivisionError):
            counters.consume("k", SCOPE, {"orders": 1}, {}, lambda data: 1 / 0)
        assert counters.usage(SCOPE) == {}
        assert counters.consume("k", SCOPE, {"orders": 1}, {}, entry_for).allowed
    report = otel_execaudit.verify(path)
    assert report.ok and report.entries == 1
    with Ledger(path) as reopened:
        assert LimitCounters(reopened).usage(SCOPE) == {"orders": 1}


def test_counters_survive_reopening_the_ledger(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        LimitCounters(ledger).consume("k", SCOPE, {"orders": 3}, {"orders": 3}, entry_for)
    with Ledger(path) as ledger:
        counters = LimitCounters(ledger)
        assert counters.usage(SCOPE) == {"orders": 3}
        assert not counters.consume("k2", SCOPE, {"orders": 1}, {"orders": 3},
                                    entry_for).allowed


def test_usage_is_per_scope(counters):
    counters.consume("a", "client:1", {"orders": 1}, {"orders": 1}, entry_for)
    other = counters.consume("b", "client:2", {"orders": 1}, {"orders": 1}, entry_for)
    strategy = counters.consume("c", "client:1/strategy:s", {"orders": 1}, {"orders": 1},
                                entry_for)
    assert other.allowed and other.used_before == {}
    assert strategy.allowed
    assert counters.usage("client:1") == {"orders": 1}
    assert counters.usage("client:2") == {"orders": 1}
    assert counters.usage("client:3") == {}
    assert not counters.consume("d", "client:1", {"orders": 1}, {"orders": 1}, entry_for).allowed


def test_usage_is_per_utc_day(monkeypatch, ledger, counters):
    monkeypatch.setattr(limits, "today", lambda: "2026-11-22")
    assert counters.consume("d1", SCOPE, {"orders": 1}, {"orders": 1}, entry_for).allowed
    assert not counters.consume("d1b", SCOPE, {"orders": 1}, {"orders": 1}, entry_for).allowed
    monkeypatch.setattr(limits, "today", lambda: "2026-11-23")
    assert counters.usage(SCOPE) == {}
    next_day = counters.consume("d2", SCOPE, {"orders": 1}, {"orders": 1}, entry_for)
    assert next_day.allowed and next_day.used_before == {}
    assert entries(ledger)[-1]["data"]["day"] == "2026-11-23"
    assert counters.usage(SCOPE) == {"orders": 1}
    assert counters.usage(SCOPE, day="2026-11-22") == {"orders": 1}
    assert counters.usage(SCOPE, day="2026-11-21") == {}


def test_usage_of_an_empty_ledger_is_empty(counters):
    assert counters.usage(SCOPE) == {}


# -- two processes, one last unit -----------------------------------------------------------------

MAXIMUM, ROUNDS = 3, 30  # each round: a fresh scope, both processes try to take all of it


def _race(path, tag, barrier, results):
    with Ledger(path, lock_timeout=60) as ledger:
        counters = LimitCounters(ledger)
        allowed = 0
        for round_number in range(ROUNDS):
            barrier.wait(timeout=60)  # both start each round together
            for number in range(MAXIMUM):
                consumed = counters.consume(f"{tag}:{round_number}:{number}",
                                            f"client:{round_number}", {"orders": 1},
                                            {"orders": MAXIMUM}, entry_for)
                allowed += consumed.allowed
    results.put((tag, allowed))


def test_two_processes_cannot_both_take_the_last_unit(tmp_path):
    path = str(tmp_path / "shared.db")
    with Ledger(path) as ledger:  # create the file first, so both open an existing ledger
        ledger.sync()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(path, tag, barrier, results))
               for tag in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    outcomes = dict(results.get(timeout=10) for _ in workers)
    assert sum(outcomes.values()) == MAXIMUM * ROUNDS
    with Ledger(path) as ledger:
        counters = LimitCounters(ledger)
        assert all(counters.usage(f"client:{number}") == {"orders": MAXIMUM}
                   for number in range(ROUNDS))
        recorded = [entry["data"] for entry in entries(ledger)]
    assert len(recorded) == 2 * MAXIMUM * ROUNDS
    assert sum(data["allowed"] for data in recorded) == MAXIMUM * ROUNDS
    report = otel_execaudit.verify(path)
    assert report.ok and report.entries == 2 * MAXIMUM * ROUNDS


def test_the_days_totals_agree_with_every_consumption_and_report(ledger, counters):
    counters.consume("a", "client:1", {"orders": 1, "notional": 50}, {}, entry_for)
    counters.consume("a", "client:1", {"orders": 1, "notional": 50}, {}, entry_for)  # replay
    counters.consume("b", "client:1", {"orders": 1}, {}, entry_for)
    counters.record("b#usage:0", "client:1", {"loss": 30}, entry_for)
    counters.record("b#usage:0", "client:1", {"loss": 45}, entry_for)  # replaced, not added
    expected = {"orders": 2.0, "notional": 50.0, "loss": 45.0}
    assert counters.usage("client:1") == expected
    summed = ledger.read(lambda connection: dict(connection.execute(
        "SELECT counter, SUM(amount) FROM limit_usage WHERE scope = 'client:1' GROUP BY counter")))
    assert summed == expected


def test_a_ledger_from_before_the_totals_table_is_counted_and_upgraded(tmp_path):
    path = tmp_path / "old.db"
    with Ledger(path) as old:
        LimitCounters(old).consume("a", "client:1", {"orders": 3}, {}, entry_for)
        old.transact(lambda connection: (connection.execute("DROP TABLE limit_totals"),
                                         entry_for({"dropped": True}))[1])
    with Ledger(path) as reopened:
        counters = LimitCounters(reopened)
        assert counters.usage("client:1") == {"orders": 3.0}  # summed from limit_usage
        counters.consume("b", "client:1", {"orders": 1}, {}, entry_for)  # builds the totals
        assert counters.usage("client:1") == {"orders": 4.0}
        assert reopened.read(lambda connection: connection.execute(
            "SELECT amount FROM limit_totals WHERE counter = 'orders'").fetchone()) == (4.0,)


def test_the_limits_guard_on_a_stuck_ledger_denies_within_its_lock_timeout(tmp_path):
    from otel_execaudit.executor.evaluation import evaluate
    from otel_execaudit.executor.guards import GuardContext
    from otel_execaudit.executor.plans import load_plan
    from otel_execaudit.recording.records import ExecutionMode

    stuck = Ledger(tmp_path / "stuck.db", lock_timeout=0.2)
    counters = LimitCounters(stuck)
    plan = load_plan({"plan_id": "p", "limits": {"orders": 5}, "steps": [
        {"name": "buy", "action_type": "place_order", "side_effects": ["network"]}]})
    context = GuardContext(plan=plan, mode=ExecutionMode.LIVE, client_id=1,
                           usage=lambda: counters.usage("client:1"))
    stuck._lock.acquire()  # the guard runs inline: only the ledger's own bound stops the wait
    try:
        (verdict,) = evaluate([otel_execaudit.ExecutionLimitsGuard()], context, timeout=60)
    finally:
        stuck._lock.release()
        stuck.close()
    assert verdict.decision == "deny" and "held for more than 0.2 s" in verdict.message
