"""Daily limit counters, kept in the ledger's own database and consumed atomically.

Counters live in a table beside the hash chain (``limit_usage``). Consuming is one SQLite
transaction that checks the day's usage, adds this step's amounts, and appends the ledger entry
that records it, so that two processes cannot both take the last unit, and the counters never
disagree with the ledger. Each consumption has an idempotency key: a replayed or retried step
presents the same key and is not counted twice::

    >>> import tempfile, pathlib
    >>> from otel_execaudit.ledger.store import Ledger
    >>> ledger = Ledger(pathlib.Path(tempfile.mkdtemp()) / "l.db")
    >>> counters = LimitCounters(ledger)
    >>> entry_for = lambda data: {"kind": "limits.consumed", "ts": "2026-11-22T03:07:19.123456Z",
    ...     "execution_id": "e1", "plan_id": "p", "trace_id": None, "span_id": None, "data": data}
    >>> first = counters.consume("e1:0", "client:1", {"orders": 1}, {"orders": 1}, entry_for)
    >>> again = counters.consume("e1:0", "client:1", {"orders": 1}, {"orders": 1}, entry_for)
    >>> first.allowed, again.allowed, again.replayed, counters.usage("client:1")
    (True, True, True, {'orders': 1.0})
    >>> ledger.close()
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from otel_execaudit.ledger.store import Ledger, LedgerEntry

__all__ = ["Consumption", "LimitCounters", "exceeded", "today"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS limit_usage ("
    " key TEXT NOT NULL, counter TEXT NOT NULL, scope TEXT NOT NULL, day TEXT NOT NULL,"
    " amount REAL NOT NULL, content TEXT NOT NULL DEFAULT '', PRIMARY KEY (key, counter))",
    "CREATE INDEX IF NOT EXISTS limit_usage_by_scope ON limit_usage (scope, day, counter)",
)
# The day's totals, kept with every change to limit_usage in the same transaction, so that a
# check reads a few rows however many actions the tenant took today (a sum over limit_usage
# grows with them). Derived: it is rebuilt from limit_usage when missing (older ledgers).
_TOTALS = (
    "CREATE TABLE limit_totals (scope TEXT NOT NULL, day TEXT NOT NULL, counter TEXT NOT NULL,"
    " amount REAL NOT NULL, PRIMARY KEY (scope, day, counter))",
    "INSERT INTO limit_totals (scope, day, counter, amount)"
    " SELECT scope, day, counter, SUM(amount) FROM limit_usage GROUP BY scope, day, counter",
)
_ADD = ("INSERT INTO limit_totals (scope, day, counter, amount) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (scope, day, counter) DO UPDATE SET amount = amount + excluded.amount")


def today() -> str:
    """The current UTC day, the unit limits are counted in. Example: ``'2026-11-22'``."""
    return time.strftime("%Y-%m-%d", time.gmtime())


def exceeded(used: Mapping[str, float], wanted: Mapping[str, float],
             maxima: Mapping[str, float], *, acting: bool = False) -> list[str]:
    """The counters that ``wanted`` on top of ``used`` would take past their maximum, and, for
    an action (``acting``), those already at their maximum today: a limit reached stops every
    action of the day (the seed's ``orders >= max_orders``), which is what makes a daily loss,
    reported after the fact, a breaker.

    >>> exceeded({"orders": 9}, {"orders": 2, "notional": 5}, {"orders": 10})
    ['orders']
    >>> exceeded({"loss": 100}, {"orders": 1}, {"loss": 100, "orders": 10}, acting=True)
    ['loss']
    """
    over = []
    for name, maximum in maxima.items():
        spent, extra = used.get(name, 0), wanted.get(name, 0)
        if (extra > 0 and spent + extra > maximum) or (acting and 0 < spent >= maximum):
            over.append(name)
    return over


@dataclass(frozen=True)
class Consumption:
    """The outcome of one ``consume``: whether it was allowed, usage before it, and the entry.

    ``conflict`` is set when the key was consumed before for another scope or other amounts:
    not a replay, and refused.
    """

    allowed: bool
    replayed: bool
    used_before: Mapping[str, float]
    over: tuple[str, ...]
    entry: LedgerEntry
    conflict: str | None = None

    @property
    def reason(self) -> str:
        if self.conflict:
            return self.conflict
        return f"Daily limit reached for {', '.join(self.over)}" if self.over else ""


class LimitCounters:
    """Per-scope, per-day counters stored in ``ledger``'s database."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def usage(self, scope: str, day: str | None = None) -> dict[str, float]:
        """What ``scope`` has consumed on ``day`` (default: today), by counter.

        Example: ``counters.usage("client:1")`` gives ``{"orders": 3.0, "notional": 150.0}``.
        """
        return self.ledger.read(lambda connection: _usage(connection, scope, day or today()))

    def consumed(self, keys: Iterable[str], scope: str) -> set[str]:
        """Those of ``keys`` already consumed for ``scope`` (a replay presents them again).

        Example: ``counters.consumed(["run-1:0", "run-1:1"], "client:1")``.
        """
        wanted = list(keys)

        def read(connection: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            try:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start:start + 500]
                    found.update(key for (key,) in connection.execute(
                        "SELECT DISTINCT key FROM limit_usage WHERE scope = ? AND key IN "
                        f"({', '.join('?' * len(chunk))})", [scope, *chunk]))
            except sqlite3.OperationalError as error:
                if "no such table" not in str(error):
                    raise
            return found

        return self.ledger.read(read) if wanted else set()

    def consume(self, key: str, scope: str, amounts: Mapping[str, float],
                maxima: Mapping[str, float],
                entry_for: Callable[[dict[str, Any]], Mapping[str, Any]],
                content: str = "", *, acting: bool = True) -> Consumption:
        """Check and consume ``amounts`` for ``scope`` today, in one transaction with the ledger
        entry ``entry_for(data)`` returns. Over a maximum: nothing is consumed, and the entry
        records the refusal. A ``key`` already consumed for the same scope and amounts is a
        replay: allowed, not counted (the day it was first consumed keeps it); one consumed
        for another scope or other amounts is refused as a conflict."""
        day = today()
        outcome: dict[str, Any] = {}

        def work(connection: sqlite3.Connection) -> Mapping[str, Any]:
            _ensure_schema(connection)
            earlier = connection.execute(
                "SELECT counter, amount, scope, content FROM limit_usage WHERE key = ?",
                (key,)).fetchall()
            conflict = None
            if earlier and ({row[2] for row in earlier} != {scope} or {
                    row[0]: row[1] for row in earlier} != {
                    name: float(value) for name, value in amounts.items()}
                    or {row[3] for row in earlier} != {content}):
                conflict = (f"idempotency key {key!r} was already consumed for another tenant, "
                            "other amounts or another action; give this step a key of its own "
                            "(its idempotency_key), or run with a new execution id")
            replayed = bool(earlier) and conflict is None
            used = _usage(connection, scope, day)
            over = [] if replayed or conflict else exceeded(used, amounts, maxima,
                                                             acting=acting)
            allowed = conflict is None and not over
            if allowed and not replayed:
                connection.executemany(
                    "INSERT INTO limit_usage (key, counter, scope, day, amount, content)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(key, name, scope, day, float(value), content)
                     for name, value in amounts.items()])
                connection.executemany(_ADD, [(scope, day, name, float(value))
                                              for name, value in amounts.items()])
            outcome.update(allowed=allowed, replayed=replayed, used=used, over=tuple(over),
                           conflict=conflict)
            return entry_for({"key": key, "scope": scope, "day": day, "allowed": allowed,
                              "replayed": replayed, "conflict": conflict is not None,
                              "amounts": dict(amounts), "used_before": used,
                              "maxima": dict(maxima), "over": over})

        entry = self.ledger.transact(work)
        return Consumption(outcome["allowed"], outcome["replayed"], outcome["used"],
                           outcome["over"], entry, outcome["conflict"])

    def record(self, key: str, scope: str, amounts: Mapping[str, float],
               entry_for: Callable[[dict[str, Any]], Mapping[str, Any]]) -> LedgerEntry:
        """Count ``amounts`` that an action turned out to use (a realised loss) for ``scope``,
        in one transaction with the ledger entry ``entry_for(data)`` returns. Never refused:
        it happened. A ``key`` recorded before is replaced, not added to, so that a replayed
        step reporting again is counted once (on the day of its first report).

        Example: ``counters.record("run-1:0#usage:0", "client:1", {"loss": 120.5}, entry_for)``
        """
        def work(connection: sqlite3.Connection) -> Mapping[str, Any]:
            _ensure_schema(connection)
            earlier = connection.execute(
                "SELECT scope, day, counter, amount FROM limit_usage WHERE key = ?",
                (key,)).fetchall()
            day = earlier[0][1] if earlier else today()
            connection.executemany(_ADD, [(row[0], row[1], row[2], -row[3]) for row in earlier])
            connection.execute("DELETE FROM limit_usage WHERE key = ?", (key,))
            connection.executemany(
                "INSERT INTO limit_usage (key, counter, scope, day, amount) VALUES (?, ?, ?, ?, ?)",
                [(key, name, scope, day, float(value)) for name, value in amounts.items()])
            connection.executemany(_ADD, [(scope, day, name, float(value))
                                          for name, value in amounts.items()])
            return entry_for({"key": key, "scope": scope, "day": day,
                              "amounts": dict(amounts), "replaced": bool(earlier),
                              "used_after": _usage(connection, scope, day)})

        return self.ledger.transact(work)


def _ensure_schema(connection: sqlite3.Connection) -> None:
    """The tables, inside a write transaction; the totals built once from older ledgers."""
    for statement in _SCHEMA:
        connection.execute(statement)
    if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                          " AND name = 'limit_totals'").fetchone() is None:
        for statement in _TOTALS:
            connection.execute(statement)


def _usage(connection: sqlite3.Connection, scope: str, day: str) -> dict[str, float]:
    for query in ("SELECT counter, amount FROM limit_totals WHERE scope = ? AND day = ?",
                  # a ledger whose totals are not built yet (nothing consumed since an upgrade)
                  "SELECT counter, SUM(amount) FROM limit_usage WHERE scope = ? AND day = ?"
                  " GROUP BY counter"):
        try:
            rows = connection.execute(query, (scope, day)).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            continue
        return {counter: float(total) for counter, total in rows}
    return {}  # nothing was ever consumed in this ledger
