"""Reading executions back from a ledger: listed, found by id or unique prefix, and rebuilt into
the very ``ExecutionRecord`` the recorder returned at the time.

Every read is checked first (``integrity``): ``ExecutionLog.integrity`` says what was checked
and how it went, and a reader shows its ``warning`` before any data::

    >>> import otel_execaudit, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
    >>> _ = otel_execaudit.configure(ledger=path, exporter="none")
    >>> with otel_execaudit.execution("nightly-backup", execution_id="run-1") as ex:
    ...     with ex.step("dump"):
    ...         pass
    >>> otel_execaudit.shutdown()
    >>> log = ExecutionLog(path)
    >>> [(item.execution_id, item.status) for item in log.list_executions()]
    [('run-1', 'completed')]
    >>> log.get_execution("run").record.step_events[-1].event_type.value
    'completed'
    >>> log.integrity.ok
    True
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sqlite3
from datetime import datetime, timezone
from typing import Any, Iterator

from otel_execaudit.errors import (
    AmbiguousExecutionError,
    LedgerError,
    UnknownExecutionError,
)
from otel_execaudit.inspection.integrity import Integrity, check_entries, check_ledger
from otel_execaudit.ledger.readonly import Damaged, damage_reason, file_problem, open_read_only
from otel_execaudit.inspection.rebuild import (
    ExecutionView,
    Row,
    as_bytes,
    build_view,
    run_end_ts,
    split_runs,
    tenant_of,
)
from otel_execaudit.recording import StepEventType
from otel_execaudit.recording.records import format_timestamp

__all__ = ["ExecutionLog", "ExecutionSummary"]

_SCAN_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class ExecutionSummary:
    """One line of ``list_executions``: an execution id's latest run."""

    execution_id: str
    plan_id: str
    status: str
    mode: str
    started_at: str
    ended_at: str | None
    duration_ms: float | None
    trace_id: str | None
    tenant: str | None
    steps: int
    failed_step: str | None
    reason: str | None
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ExecutionLog:
    """Read-only queries over the ledger at ``path``; nothing here writes.

    ``list_executions`` (newest first, filtered), ``resolve`` (an id or unique prefix, or
    ``"last"``), ``get_execution``. Raises ``LedgerNotFoundError``, ``NotALedgerError`` (a newer
    format among them) or ``LedgerError`` when the file cannot be read as a ledger.
    """

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        try:
            self._connection = open_read_only(self.path)
            problem = file_problem(self._connection)
        except Damaged as damage:
            raise LedgerError(f"{self.path} is a damaged ledger ({damage}); run `execaudit "
                              "verify` on it, and restore it from a copy.") from None
        except sqlite3.DatabaseError as error:
            raise LedgerError(f"{self.path}: {damage_reason(error)}; run `execaudit verify` on "
                              "it, and restore it from a copy.") from None
        last = self._connection.execute("SELECT max(seq) FROM entries").fetchone()[0]
        self.last_seq: int = -1 if last is None else last
        self._read: dict[int, tuple[int, str, bytes]] = {}
        whole = check_ledger(self.path, self.last_seq + 1)
        if problem is not None:
            whole = Integrity(False, "ledger", self.last_seq + 1, None, problem)
        self._whole = whole

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ExecutionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def empty(self) -> bool:
        return self.last_seq < 0

    @property
    def integrity(self) -> Integrity:
        """The check of what was read so far: the whole ledger when it is small, else the
        entries read and their links."""
        if self._whole is not None:
            return self._whole
        return check_entries(self._connection, self._read.values(), self.last_seq)

    # ----- listing ---------------------------------------------------------------------------

    def list_executions(self, *, status: str | None = None, plan_id: str | None = None,
                        mode: str | None = None, since: datetime | str | None = None,
                        until: datetime | str | None = None, tenant: str | None = None,
                        limit: int | None = 20) -> list[ExecutionSummary]:
        """The newest executions first (each id once, as its latest run), filtered.

        Example: ``log.list_executions(status="failed", since="2026-12-01", limit=5)``
        """
        since_text, until_text = _bound(since), _bound(until)
        found: list[ExecutionSummary] = []
        seen: set[str] = set()
        for row in self.scan(("execution.started",)):
            execution_id = row.entry["execution_id"]
            if execution_id in seen:
                continue
            seen.add(execution_id)
            if plan_id is not None and row.entry["plan_id"] != plan_id:
                continue
            if mode is not None and row.data.get("mode") != mode.upper().replace("-", "_"):
                continue
            if since_text and row.entry["ts"] < since_text or until_text and row.entry["ts"] >= until_text:
                continue
            if tenant is not None and tenant_of(row.data.get("details") or {}) != str(tenant):
                continue
            summary = self._summary(execution_id)
            if status is not None and summary.status != status.lower():
                continue
            found.append(summary)
            if limit is not None and len(found) >= limit:
                break
        return found

    def _summary(self, execution_id: str) -> ExecutionSummary:
        runs = split_runs(self.rows(execution_id))
        run = runs[-1]
        view = build_view(run, len(runs), len(runs))
        record = view.record
        failed = next((event.step_name for event in reversed(record.step_events)
                       if event.event_type is StepEventType.FAILED), None)
        return ExecutionSummary(
            record.execution_id, record.plan_id, record.status.value, record.live_mode_state,
            run[0].entry["ts"], run_end_ts(run), view.duration_ms, record.trace_id, view.tenant,
            len({event.step_index for event in record.step_events}), failed, record.reason,
            len(runs))

    # ----- one execution ---------------------------------------------------------------------

    def resolve(self, reference: str) -> str:
        """The execution id that ``reference`` names: an id, a unique prefix, or ``last``.

        Raises ``UnknownExecutionError`` (none, or an empty ledger) or
        ``AmbiguousExecutionError`` (a prefix of several ids, which it lists).
        """
        if reference == "last":
            for row in self.scan(("execution.started",)):
                return row.entry["execution_id"]
            raise UnknownExecutionError(f"{self.path} holds no execution yet: record or run "
                                        "one first (`execaudit demo` writes an example).")
        try:
            reference.encode("utf-8")  # ids are text: bytes that are not UTF-8 name none
        except UnicodeEncodeError:
            raise UnknownExecutionError(f"no execution {reference!r} in {self.path}; "
                                        "`execaudit executions` lists them.") from None
        exact = self._connection.execute(
            "SELECT 1 FROM entries WHERE execution_id = ? LIMIT 1", (reference,)).fetchone()
        if exact:
            return reference
        # The range keeps to the index; substr makes it exact when the bound had to be looser.
        upper = _above(reference)
        candidates = [name for (name,) in self._connection.execute(
            "SELECT DISTINCT execution_id FROM entries WHERE execution_id >= ? AND execution_id < ?"
            " AND substr(execution_id, 1, ?) = ? LIMIT 11",
            (reference, upper, len(reference), reference))] if upper else []
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise UnknownExecutionError(
                f"no execution {reference!r} in {self.path}; `execaudit executions` lists them.")
        shown = ", ".join(candidates[:10]) + (", ..." if len(candidates) > 10 else "")
        raise AmbiguousExecutionError(
            f"{reference!r} is the start of several execution ids ({shown}); give more of it.",
            candidates=tuple(candidates[:10]))

    def get_execution(self, reference: str, *, run: int | None = None) -> ExecutionView:
        """One execution (by id, unique prefix or ``last``): its latest run, or run ``run``
        (1-based) of an id that holds several (a replay reuses its id)."""
        execution_id = self.resolve(reference)
        runs = split_runs(self.rows(execution_id))
        number = len(runs) if run is None else run
        if not 1 <= number <= len(runs):
            raise UnknownExecutionError(f"execution {execution_id} has {len(runs)} run(s); "
                                        f"there is no run {run}.")
        return build_view(runs[number - 1], number, len(runs))

    # ----- plumbing --------------------------------------------------------------------------

    def rows(self, execution_id: str) -> list[Row]:
        """Every entry of ``execution_id``, in order."""
        raw = self._connection.execute(
            "SELECT seq, hash, body FROM entries WHERE execution_id = ? ORDER BY seq",
            (execution_id,)).fetchall()
        return [row for seq, digest, body in raw if (row := self._keep(seq, digest, body))]

    def scan(self, kinds: tuple[str, ...]) -> Iterator[Row]:
        """Entries of the given kinds, newest first: backwards by seq, in chunks: the newest entries are read first, and a listing stops
        as soon as it has what it needs, however long the ledger."""
        marks = ",".join("?" * len(kinds))
        below = self.last_seq + 1
        while below > 0:
            raw = self._connection.execute(
                f"SELECT seq, hash, body FROM entries WHERE seq < ? AND seq >= ? AND kind IN ({marks})"
                " ORDER BY seq DESC", (below, below - _SCAN_CHUNK * 64, *kinds)).fetchall()
            for seq, digest, body in raw:
                row = self._keep(seq, digest, body)
                if row is not None:
                    yield row
            below -= _SCAN_CHUNK * 64

    def _keep(self, seq: int, digest: str, body: bytes | str) -> Row | None:
        """The row, kept for the check of what was read; None when its body is no entry (not
        JSON, or without its kind, ids and time, as a tampered one may be): readers skip it,
        and the check names it."""
        body = as_bytes(body)
        self._read[seq] = (seq, digest, body)
        try:
            entry = json.loads(body)
        except ValueError:
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("data") or {}, dict) or \
                not all(isinstance(entry.get(key), str)
                        for key in ("kind", "execution_id", "plan_id", "ts")):
            return None
        return Row(seq, digest, entry)


def _above(prefix: str) -> str | None:
    """A string above every string that starts with ``prefix`` (None for an empty prefix)."""
    while prefix:
        following = ord(prefix[-1]) + 1
        following += 0x800 if 0xD800 <= following <= 0xDFFF else 0  # past the surrogates
        if following <= 0x10FFFF:
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


def _bound(moment: datetime | str | None) -> str | None:
    """A since/until bound in the ledger's timestamp form, so that it compares as text with
    every entry's ``ts`` (a bound written as ``12:00:00Z`` would sort after ``12:00:00.5Z``).
    Text is read as ISO 8601, UTC unless it names an offset."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        try:
            moment = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{moment!r} is not a time such as 2026-12-01 or "
                             "2026-12-01T08:00 (UTC) or 2026-12-01T09:00+01:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_timestamp(moment)