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
import pathlib
import sqlite3
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from otel_execaudit.errors import (
    AmbiguousExecutionError,
    LedgerError,
    UnknownExecutionError,
    UnreadableExecutionError,
)
from otel_execaudit.inspection.integrity import (
    Checked,
    Integrity,
    Stored,
    check_entries,
    check_ledger,
    checked,
    parsed,
)
from otel_execaudit.ledger import CanonicalizationError, canonical_bytes
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
from otel_execaudit.recording import ExecutionStatus, StepEventType
from otel_execaudit.recording.records import format_timestamp

__all__ = ["ExecutionLog", "ExecutionSummary"]

# A scan reads backwards by seq, in ranges that grow from the first to the last size: the
# newest entries answer most questions, and a scan of the whole ledger needs few queries.
_FIRST_RANGE, _LAST_RANGE = 1_024, 65_536
STATUSES = tuple(status.value for status in ExecutionStatus)
_COLUMNS = "seq, hash, body, kind, execution_id"


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
        self._read: dict[int, Checked] = {}
        self._checked: tuple[int, Integrity] | None = None
        # Executions a listing left out because their entries cannot be rebuilt: id -> why.
        self.unreadable: dict[str, str] = {}
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
        entries read, their neighbours and links (worked out again only after more reads)."""
        if self._whole is not None:
            return self._whole
        if self._checked is None or self._checked[0] != len(self._read):
            self._checked = (len(self._read), check_entries(
                self._connection, self._read, self.last_seq))
        return self._checked[1]

    # ----- listing ---------------------------------------------------------------------------

    def list_executions(self, *, status: str | None = None, plan_id: str | None = None,
                        mode: str | None = None, since: datetime | str | None = None,
                        until: datetime | str | None = None, tenant: str | None = None,
                        limit: int | None = 20) -> list[ExecutionSummary]:
        """The newest executions first (each id once, as its latest run), filtered.

        ``status`` is one of ``STATUSES``; ``limit`` a positive number or None (all); anything
        else raises ``ValueError``. Example: ``log.list_executions(status="failed",
        since="2026-12-01", limit=5)``
        """
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise ValueError(f"limit={limit!r}: give a positive number of executions, or None "
                             "for all of them")
        wanted = None if status is None else str(status).lower()
        if wanted is not None and wanted not in STATUSES:
            raise ValueError(f"status={status!r} is not a status; give one of "
                             f"{', '.join(STATUSES)}")
        since_text, until_text = _bound(since), _bound(until)
        mode = None if mode is None else mode.upper().replace("-", "_")

        def matches(summary: ExecutionSummary) -> bool:
            return ((plan_id is None or summary.plan_id == plan_id)
                    and (mode is None or summary.mode == mode)
                    and (since_text is None or summary.started_at >= since_text)
                    and (until_text is None or summary.started_at < until_text)
                    and (tenant is None or summary.tenant == str(tenant)))

        # Entries whose bodies cannot name the plan (or tenant) are not read at all: the test is
        # on the body, which a changed column cannot mislead.
        plan = () if plan_id is None else (member("plan_id", plan_id),)
        if wanted is not None and wanted != "started":
            return self._ended_so(wanted, plan, matches, limit)
        who = () if tenant is None else (member_text(str(tenant)),)
        found: list[ExecutionSummary] = []
        seen: set[str] = set()
        # For "started", each run's end is read as the scan meets it (newest first, before its
        # start): only the executions that may not have ended are rebuilt.
        ends: dict[str, dict[Any, Any]] = {}
        kinds = ("execution.started",) if wanted is None else ("execution.started",
                                                                "execution.ended")
        for row in self.scan(kinds, having=plan + (who if wanted is None else ())):
            execution_id = row.entry["execution_id"]
            if row.kind == "execution.ended":
                if execution_id not in seen:
                    ends.setdefault(execution_id, {}).setdefault(row.entry.get("trace_id"),
                                                                 row.data.get("status"))
                continue
            if execution_id in seen:
                continue
            seen.add(execution_id)
            ended = ends.pop(execution_id, {})
            if plan_id is not None and row.entry["plan_id"] != plan_id:
                continue
            if mode is not None and row.data.get("mode") != mode:
                continue
            if since_text and row.entry["ts"] < since_text or until_text and row.entry["ts"] >= until_text:
                continue
            if tenant is not None and tenant_of(row.data.get("details") or {}) != str(tenant):
                continue
            if wanted is not None:
                trace = row.entry.get("trace_id")  # this run's end, else any end after it
                possible = {ended[trace]} if trace in ended else {"started", *ended.values()}
                if wanted not in possible:
                    continue
            try:
                summary, _ = self._summary(execution_id)
            except UnreadableExecutionError as error:  # said by the check, and in .unreadable
                self.unreadable[execution_id] = str(error)
                continue
            if wanted is not None and summary.status != wanted:
                continue
            found.append(summary)
            if limit is not None and len(found) >= limit:
                break
        return found

    def _ended_so(self, status: str, plan: tuple[bytes | None, ...],
                  matches: Callable[[ExecutionSummary], bool], limit: int | None
                  ) -> list[ExecutionSummary]:
        """The executions whose latest run ended with ``status``, newest start first: read from
        the ends that say so (newest first), each execution rebuilt once. The scan stops when
        no execution it has still to meet can start late enough to be among the ``limit``
        newest: one that ends earlier also started earlier."""
        found: list[tuple[int, ExecutionSummary]] = []
        met: set[str] = set()
        for row in self.scan(("execution.ended",), having=(member("status", status), *plan)):
            if limit is not None and len(found) >= limit and \
                    row.seq < sorted(seq for seq, _ in found)[-limit]:
                break
            execution_id = row.entry["execution_id"]
            if row.data.get("status") != status or execution_id in met:
                continue
            met.add(execution_id)  # its newest end: an older run's says nothing of the latest
            try:
                summary, first_seq = self._summary(execution_id)
            except UnreadableExecutionError as error:
                self.unreadable[execution_id] = str(error)
                continue
            if summary.status == status and matches(summary):
                found.append((first_seq, summary))
        found.sort(key=lambda item: item[0], reverse=True)
        return [summary for _, summary in found[:limit]]

    def _summary(self, execution_id: str) -> tuple[ExecutionSummary, int]:
        """The summary of an execution's latest run, and the seq that run starts at."""
        runs = split_runs(self.rows(execution_id))
        run = runs[-1]
        view = self._view(run, len(runs), len(runs))
        record = view.record
        failed = next((event.step_name for event in reversed(record.step_events)
                       if event.event_type is StepEventType.FAILED), None)
        return ExecutionSummary(
            record.execution_id, record.plan_id, record.status.value, record.live_mode_state,
            run[0].entry["ts"], run_end_ts(run), view.duration_ms, record.trace_id, view.tenant,
            len({event.step_index for event in record.step_events}), failed, record.reason,
            len(runs)), run[0].seq

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
        if not candidates:  # no column names it: a body may, when the columns were changed
            candidates = self._named_in_bodies(reference)
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
        return self._view(runs[number - 1], number, len(runs))

    def _view(self, run: list[Row], number: int, runs: int) -> ExecutionView:
        """The run rebuilt; an entry it cannot be rebuilt from is an ``UnreadableExecutionError``
        that says whether the ledger failed its check (a tampered entry) or not."""
        try:
            return build_view(run, number, runs)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as error:
            execution_id = run[0].entry.get("execution_id") if run else None
            integrity = self.integrity
            why = (f"the ledger was tampered with: {integrity.warning}" if not integrity.ok
                   else "the ledger verifies, but an entry is not one the recorder writes "
                   "(appended by other code?)")
            raise UnreadableExecutionError(
                f"an entry in {self.path} cannot be read as part of execution "
                f"{execution_id!r} ({type(error).__name__}: {error}): {why}", execution_id,
                tampered=not integrity.ok) from None

    # ----- plumbing --------------------------------------------------------------------------

    def rows(self, execution_id: str) -> list[Row]:
        """Every entry of ``execution_id``, in order.

        The index finds the seqs its ``execution_id`` column names; then every entry between
        the first and the last is read whose column or body names the id, so that an entry whose
        column was changed is still read (and the check reports the change). With no column
        naming the id, the bodies of the whole ledger are searched for it.
        """
        pattern = member("execution_id", execution_id)
        span = self._connection.execute(
            "SELECT min(seq), max(seq) FROM entries WHERE execution_id = ?",
            (execution_id,)).fetchone()
        if span[0] is None and pattern is not None:
            span = self._connection.execute(
                "SELECT min(seq), max(seq) FROM entries WHERE instr(body, ?) > 0",
                (pattern,)).fetchone()
        if span[0] is None:
            return []
        raw = self._connection.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE seq >= ? AND seq <= ? AND (execution_id = ? "
            "OR instr(body, ?) > 0) ORDER BY seq", (*span, execution_id, pattern)).fetchall()
        found = []
        for stored in raw:
            entry = None
            if stored[4] != execution_id:  # named in the body only: is it the body's id?
                entry = parsed(stored[2])
                if not isinstance(entry, dict) or entry.get("execution_id") != execution_id:
                    continue
            row = self._keep(stored, entry)
            if row is not None:
                found.append(row)
        return found

    def scan(self, kinds: tuple[str, ...], having: tuple[bytes | None, ...] = ()
             ) -> Iterator[Row]:
        """Entries of the given kinds, newest first, read backwards by seq in growing ranges:
        the newest entries are read first, and a listing stops as soon as it has what it
        needs, however long the ledger. An entry is read when its ``kind`` column or its body
        names one of ``kinds``, so that a changed column cannot hide it; it is yielded by what
        its body says, and only what is yielded counts as read. ``having``: bytes every body
        read must hold (``member`` of a field: a plan id, a status), so that entries which
        cannot match are not read at all; the readers test the field itself too."""
        patterns = [member("kind", kind) for kind in kinds]
        in_body = " OR ".join("instr(body, ?) > 0" for _ in kinds)
        needed = [pattern for pattern in having if pattern is not None]
        query = (f"SELECT {_COLUMNS} FROM entries WHERE seq < ? AND seq >= ? AND (kind IN "
                 f"({','.join('?' * len(kinds))}) OR {in_body})"
                 + "".join(" AND instr(body, ?) > 0" for _ in needed) + " ORDER BY seq DESC")
        below, size = self.last_seq + 1, _FIRST_RANGE
        while below > 0:
            above = max(below - size, 0)
            for stored in self._connection.execute(query, (below, above, *kinds, *patterns,
                                                           *needed)):
                entry = None
                if stored[3] not in kinds:  # named in the body only: is it the body's kind?
                    entry = parsed(stored[2])
                    if not isinstance(entry, dict) or entry.get("kind") not in kinds:
                        continue
                row = self._keep(stored, entry)
                if row is not None and row.kind in kinds:
                    yield row
            below, size = above, min(size * 2, _LAST_RANGE)

    def _named_in_bodies(self, reference: str) -> list[str]:
        """The execution ids starting with ``reference`` that only bodies name (their columns
        were changed): searched in every body, read, so that the check reports them."""
        pattern = member("execution_id", reference)
        if pattern is None or not reference:
            return []
        names: dict[str, None] = {}
        for stored in self._connection.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE instr(body, ?) > 0 LIMIT 1000",
                (pattern[:-1],)):  # without the closing quote: a prefix
            entry = parsed(stored[2])
            name = entry.get("execution_id") if isinstance(entry, dict) else None
            if isinstance(name, str) and name.startswith(reference):
                self._keep(stored, entry)
                names.setdefault(name)
        return list(names)[:11]

    def _keep(self, stored: Stored | tuple[Any, ...], entry: Any = None) -> Row | None:
        """The row, kept for the check of what was read; None when its body is no entry (not
        JSON, or without its kind, ids and time, as a tampered one may be): readers skip it,
        and the check names it."""
        seq, digest, body, kind, execution_id = stored[:5]
        body = as_bytes(body)
        entry = parsed(body) if entry is None else entry
        self._read[seq] = checked((seq, digest, body, kind, execution_id, entry))
        if not isinstance(entry, dict) or not isinstance(entry.get("data") or {}, dict) or \
                not all(isinstance(entry.get(key), str)
                        for key in ("kind", "execution_id", "plan_id", "ts")):
            return None
        return Row(seq, digest, entry)


def member_text(value: str) -> bytes | None:
    """How a body holds ``value`` inside a JSON string (its canonical form, unquoted)."""
    named = member("", value)
    return None if named is None else named[4:-1]


def member(name: str, value: str) -> bytes | None:
    """How a body names ``value`` as its member ``name``: ``"name":`` and the value's canonical
    JSON, as every body written holds it (None for a value no body can hold)."""
    try:
        return b'"' + name.encode() + b'":' + canonical_bytes(value)
    except (CanonicalizationError, UnicodeError, TypeError, ValueError):
        return None


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