"""The HTML report (otel_execaudit/inspection/report.py), read in a real headless browser:
Debian's chromium driven by playwright (never a browser playwright downloads), and its bounds
and escaping checked without one.

The demo's failed execution is rendered and, when docs/report-demo-failed.png is missing or
EXECAUDIT_UPDATE_SCREENSHOT=1, photographed there (otherwise into the test's directory, so that
a test run leaves the work tree as it found it).
"""

from __future__ import annotations

import dataclasses
import html.parser
import json
import os
import pathlib
import re
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

import otel_execaudit
from otel_execaudit.demo import run_demo, run_guarded_demo
from otel_execaudit.inspection import ExecutionLog, Integrity, RollbackPlanner, RollbackScaffold
from otel_execaudit.inspection.rebuild import ExecutionView
from otel_execaudit.inspection.report import (CSP, DATA_BUDGET, ROW_CAPS, TEXT_CAPS,
                                              embedded_data, render_report)
from otel_execaudit.recording import (ExecutionRecord, ExecutionStatus, SecuritySnapshot,
                                      SideEffect, SideEffectCategory, SideEffectReport,
                                      StepEvent, StepEventType)
from otel_execaudit.recording.declarations import RollbackHint

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "report-demo-failed.png"
CHROMIUM = shutil.which("chromium") or next(
    (path for path in ("/usr/bin/chromium",) if os.access(path, os.X_OK)), None)
# Root needs --no-sandbox; without the networking flags Chromium phones Google at start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCRIPT_BREAKOUT = "</script><script>alert(1)</script>"
IMAGE_ONERROR = "<img src=x onerror=alert(2)>"
MIGRATION_ERROR = "column orders.legacy_status is referenced by view v_open_orders"


# ----- what the browser tests read ---------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_ledger(tmp_path_factory) -> pathlib.Path:
    """The demo recorded into a ledger of its own: two release runs (the second fails at
    migrate_database) and the guarded executor's three runs."""
    path = tmp_path_factory.mktemp("report") / "demo.db"
    otel_execaudit.configure(ledger=path, exporter="none")
    try:
        completed, failed = run_demo()
        run_guarded_demo()
    finally:
        otel_execaudit.shutdown()
    assert failed.status is ExecutionStatus.FAILED and completed.status is ExecutionStatus.COMPLETED
    (path.parent / "failed-id").write_text(failed.execution_id)
    return path


def failed_id(ledger: pathlib.Path) -> str:
    return (ledger.parent / "failed-id").read_text()


def read(ledger: pathlib.Path, reference: str) -> tuple[ExecutionView, RollbackScaffold, Integrity, str]:
    """As `execaudit report` does: the view, its scaffold, the check, and the page."""
    with ExecutionLog(ledger) as log:
        view = log.get_execution(reference)
        scaffold = RollbackPlanner.plan_rollback(view.record, view.rollback_hints)
        integrity = log.integrity
    return view, scaffold, integrity, render_report(view, scaffold, integrity)


def embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="execution-data">(.*?)</script>',
                      page, re.S)
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium was not found (on Debian: apt-get install chromium; `make test` "
                    "installs it): the report's browser tests need a real browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Loaded:
    """A page loaded from a file, with every request it made and every dialog it opened."""

    def __init__(self, browser, path: pathlib.Path, **options) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message),
                                               dialog.dismiss()))
        self.url = path.as_uri()
        self.page.goto(self.url)

    def __enter__(self) -> Loaded:
        return self

    def __exit__(self, *exc_info) -> None:
        self.context.close()


def write(tmp_path: pathlib.Path, page: str, name: str = "report.html") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(page, encoding="utf-8")
    return path


# ----- in the browser ----------------------------------------------------------------------------

def test_the_demo_failure_as_a_person_sees_it(demo_ledger, browser, tmp_path):
    view, scaffold, _, page = read(demo_ledger, failed_id(demo_ledger))
    with Loaded(browser, write(tmp_path, page)) as loaded:
        screen = loaded.page
        assert screen.locator("h1").inner_text() == "release-shop-v2.4.0"
        header = screen.locator("header").inner_text()
        for shown in (view.record.execution_id, "✗ FAILED", "LIVE", view.record.trace_id,
                      "duration"):
            assert shown in header

        names = screen.locator("details.step .name").all_inner_texts()
        assert names == ["fetch_manifest", "write_config", "snapshot_database",
                         "migrate_database"]  # notify_customers never started
        for index in range(3):
            step = screen.locator(f"#step-{index}")
            assert "✓ completed" in step.locator("summary").inner_text()
            assert step.get_attribute("open") is None  # passed: collapsed
            assert not step.locator(".stepbody").is_visible()
        failed = screen.locator("#step-3")
        assert failed.get_attribute("open") == ""  # failed: open
        assert "✗ failed" in failed.locator("summary").inner_text()
        error = failed.locator("p.bad")
        assert error.is_visible() and MIGRATION_ERROR in error.inner_text()
        assert "otel_execaudit.demo.MigrationError" in error.inner_text()
        traceback = failed.locator("pre")
        assert traceback.is_visible()
        assert traceback.inner_text().startswith("Traceback (most recent call last):")
        assert "in _migrate" in traceback.inner_text()

        # The waterfall: each bar placed by its start, in order, inside the track.
        bars = [screen.locator(f"#step-{index} .bar").get_attribute("style") for index in range(4)]
        lefts = [float(re.search(r"left:([\d.]+)%", style).group(1)) for style in bars]
        widths = [float(re.search(r"width:([\d.]+)%", style).group(1)) for style in bars]
        assert lefts == sorted(lefts) and all(0 <= left <= 100 for left in lefts)
        assert all(0 <= left + width <= 100 for left, width in zip(lefts, widths))

        rows = screen.locator("#side-effects tr").all_inner_texts()[1:]
        assert "✗ IRREVERSIBLE" in rows[0] and "ALTER TABLE orders DROP COLUMN legacy_status" in rows[0]
        assert all("↺ reversible" in row for row in rows[1:])  # irreversible first

        rollback = screen.locator("#rollback")
        assert "NOT possible" in rollback.locator("h2").inner_text()
        assert "Nothing here is executed" in rollback.inner_text()
        boxes = rollback.locator("input[type=checkbox]")
        assert boxes.count() == 4
        assert all(boxes.nth(index).is_disabled() for index in range(boxes.count()))
        assert "✗ IRREVERSIBLE: ALTER TABLE orders DROP COLUMN legacy_status" in \
            rollback.locator("li").first.inner_text()

        data = screen.evaluate(
            "() => JSON.parse(document.getElementById('execution-data').textContent)")
        assert data["execution"] == json.loads(json.dumps(view.to_dict()))
        assert data["rollback"] == scaffold.to_dict() and data["truncated"] is False
        assert data["integrity"]["ok"] is True

        assert loaded.requests == [loaded.url]  # the file itself, nothing else
        assert loaded.dialogs == []
        target = SCREENSHOT if not SCREENSHOT.exists() or \
            os.environ.get("EXECAUDIT_UPDATE_SCREENSHOT") == "1" else tmp_path / SCREENSHOT.name
        screen.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000


def test_the_page_reads_with_javascript_off(demo_ledger, browser, tmp_path):
    view, _, _, page = read(demo_ledger, failed_id(demo_ledger))
    with Loaded(browser, write(tmp_path, page), java_script_enabled=False) as loaded:
        screen = loaded.page
        assert screen.locator("#step-3 pre").is_visible()
        assert MIGRATION_ERROR in screen.locator("#step-3").inner_text()
        assert not screen.locator("#step-0 .stepbody").is_visible()
        screen.locator("#step-0 summary").click()  # <details> opens without any script
        assert screen.locator("#step-0 .stepbody").is_visible()
        assert screen.locator("#rollback input[type=checkbox]").count() == 4
        text = screen.locator("#execution-data").text_content()
        assert json.loads(text)["execution"]["record"]["execution_id"] == view.record.execution_id
        assert loaded.requests == [loaded.url]


def test_printing_expands_every_step(demo_ledger, browser, tmp_path):
    *_, page = read(demo_ledger, failed_id(demo_ledger))
    with Loaded(browser, write(tmp_path, page)) as loaded:
        loaded.page.emulate_media(media="print")
        assert loaded.page.locator("#step-0 .stepbody").is_visible()
        assert loaded.page.locator("#step-3 pre").is_visible()


def test_a_plans_rollback_hints_are_a_checklist_never_run(demo_ledger, browser, tmp_path):
    view, scaffold, _, page = read(demo_ledger, "last")  # the pinned LIVE scale-up
    assert scaffold.is_rollback_possible and view.tenant == "1"
    with Loaded(browser, write(tmp_path, page)) as loaded:
        rollback = loaded.page.locator("#rollback")
        assert "possible, by hand" in rollback.locator("h2").inner_text()
        item = rollback.locator("ol li")
        assert item.count() == 1 and item.locator("input[type=checkbox]").is_disabled()
        assert "Step 1 (scale_up): set_replicas checkout 3" in item.inner_text()
        assert "tenant\n1" in loaded.page.locator("header").inner_text()
        guards = loaded.page.locator("#guards tr").all_inner_texts()[1:]
        assert len(guards) == len(view.guards) and all(row.startswith("✓ allow") for row in guards)
        assert loaded.page.locator("#actions tr").count() == 1 + len(view.actions)


def test_recorded_markup_is_text_and_never_runs(browser, tmp_path):
    ledger = tmp_path / "hostile.db"
    otel_execaudit.configure(ledger=ledger, exporter="none")
    try:
        with pytest.raises(ValueError):
            with otel_execaudit.execution(f"plan {IMAGE_ONERROR}", execution_id="hostile",
                                          details={"note": SCRIPT_BREAKOUT}) as ex:
                with ex.step(f"step {IMAGE_ONERROR}") as st:
                    st.side_effect("data_mutation", SCRIPT_BREAKOUT + "\u2028", reversible=False)
                    raise ValueError(SCRIPT_BREAKOUT + IMAGE_ONERROR)
    finally:
        otel_execaudit.shutdown()
    view, _, _, page = read(ledger, "hostile")
    path = write(tmp_path, page)
    # Escaping alone must hold, so the second load switches the CSP off.
    for options in ({}, {"bypass_csp": True}):
        with Loaded(browser, path, **options) as loaded:
            screen = loaded.page
            assert loaded.dialogs == []
            assert screen.evaluate("document.querySelectorAll('img').length") == 0
            assert screen.evaluate("document.scripts.length") == 1
            assert screen.locator("script").get_attribute("type") == "application/json"
            shown = screen.locator("body").inner_text()
            assert f"plan {IMAGE_ONERROR}" in shown and f"step {IMAGE_ONERROR}" in shown
            assert SCRIPT_BREAKOUT + IMAGE_ONERROR in screen.locator("#step-0 p.bad").inner_text()
            assert SCRIPT_BREAKOUT in screen.locator("#side-effects").inner_text()
            data = screen.evaluate(
                "() => JSON.parse(document.getElementById('execution-data').textContent)")
            assert data["execution"] == json.loads(json.dumps(view.to_dict()))
            assert loaded.requests == [loaded.url]


def test_a_tampered_ledger_shows_its_warning_first(demo_ledger, browser, tmp_path):
    copy = tmp_path / "tampered.db"
    shutil.copyfile(demo_ledger, copy)
    with sqlite3.connect(copy) as connection:
        seq, body = connection.execute(
            "SELECT seq, body FROM entries WHERE kind = 'side_effect.declared' AND CAST(body AS TEXT) LIKE ? "
            "AND execution_id = ?", ("%DROP COLUMN legacy_status%", failed_id(demo_ledger))
        ).fetchone()
        connection.execute("UPDATE entries SET body = ? WHERE seq = ?",
                           (bytes(body).replace(b"DROP COLUMN legacy_status", b"ADD INDEX i"), seq))
    view, _, integrity, page = read(copy, failed_id(demo_ledger))
    assert not integrity.ok and integrity.first_bad_seq == seq
    with Loaded(browser, write(tmp_path, page)) as loaded:
        screen = loaded.page
        first = screen.locator("body > *").first
        assert first.get_attribute("role") == "alert" and first.is_visible()
        assert screen.locator("body").inner_text().startswith(
            f"⚠ WARNING: this ledger failed verification at seq {seq}")
        assert "ALTER TABLE orders ADD INDEX i" in screen.locator("#side-effects").inner_text()
        assert embedded(page)["integrity"]["ok"] is False


# ----- without a browser -------------------------------------------------------------------------

class Resources(html.parser.HTMLParser):
    """Every tag, and every attribute value, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.values: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.values += [value or "" for _, value in attrs]


def test_the_page_names_nothing_outside_itself(demo_ledger):
    for reference in (failed_id(demo_ledger), "last"):
        *_, page = read(demo_ledger, reference)
        parser = Resources()
        parser.feed(page)
        assert not {"link", "img", "iframe", "object", "embed", "base", "form", "a", "audio",
                    "video", "source", "frame", "svg"} & set(parser.tags)
        assert [value for value in parser.values if "://" in value or value.startswith("//")] == []
        assert parser.tags.count("script") == 1 and parser.tags.count("meta") == 3
        assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
        style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
        assert "url(" not in style and "@import" not in style


def test_the_embedded_data_is_the_view(demo_ledger):
    view, scaffold, integrity, page = read(demo_ledger, failed_id(demo_ledger))
    data = embedded(page)
    assert data["format"] == "otel-execaudit.report/1" and data["truncated"] is False
    assert data["execution"] == view.to_dict()
    assert data["rollback"] == scaffold.to_dict() and data["integrity"] == integrity.to_dict()
    assert json.loads(embedded_data(view, scaffold, integrity)) == data


def test_recorded_text_is_escaped_in_the_markup_and_the_data(tmp_path):
    view = synthetic_view(1, name=SCRIPT_BREAKOUT, traceback=IMAGE_ONERROR,
                          message="line\u2028separator & <b>", description=SCRIPT_BREAKOUT)
    page = render_report(view, RollbackScaffold("x", True, "nothing"), ok())
    assert SCRIPT_BREAKOUT not in page and IMAGE_ONERROR not in page and "<b>" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    data = re.search(r'id="execution-data">(.*?)</script>', page, re.S).group(1)
    assert not re.search("[<>&\u2028\u2029]", data)
    assert json.loads(data)["execution"] == json.loads(json.dumps(view.to_dict()))
    assert page.count("</script>") == 1


def test_the_page_stays_small_whatever_the_execution():
    """3,000 failed steps, 3,000 side effects, guards, actions, notes and rollback hints, 100
    run details, every text long and made of '"' (six bytes escaped, the worst case): the page
    stays under 5 MB (docs/report.md), cut where it must be, and says where."""
    quotes = '"' * 40_000
    view = synthetic_view(3_000, name=quotes, traceback=quotes, message=quotes,
                          description=quotes, extras=3_000)
    view = dataclasses.replace(view, details={f'"{index}' * 300: quotes for index in range(100)})
    hints = tuple(RollbackHint(quotes, (quotes,) * 3, (quotes,) * 100, step_index=index)
                  for index in range(3_000))
    scaffold = RollbackScaffold(quotes, False, quotes, hints, (quotes,) * 500, tuple(range(3_000)))
    page = render_report(view, scaffold, ok())
    size = len(page.encode("utf-8"))
    assert size < 5_000_000, size
    assert page.count('<details class="step') <= ROW_CAPS["steps"]
    assert re.search(r"… [\d,]+ more steps not shown", page)
    assert re.search(r"… [\d,]+ more side effects not shown", page)
    assert re.search(r"… [\d,]+ more guard decisions not shown", page)
    assert re.search(r"… \[[\d,]+ more characters not shown\]", page)
    assert re.search(r"… [\d,]+ more warnings not shown", page)
    data = embedded(page)
    assert data["truncated"] is True
    assert len(json.dumps(data)) < DATA_BUDGET + 200_000
    assert data["execution"]["record"]["step_events"][-1].startswith("[truncated: ")


def test_a_long_field_is_cut_at_its_cap_with_a_marker():
    view = synthetic_view(1, traceback="t" * (TEXT_CAPS["traceback"] + 1_000))
    page = render_report(view, RollbackScaffold("x", True, "nothing"), ok())
    shown = re.search(r"<pre>(t+)<span", page).group(1)
    assert len(shown) == TEXT_CAPS["traceback"]
    assert "… [1,000 more characters not shown]" in page
    # The data is cut at the same bound, and says so.
    traceback = embedded(page)["execution"]["record"]["step_events"][1]["traceback"]
    assert traceback.endswith("… [1,000 more characters not embedded]")


def test_a_cut_keeps_the_failed_steps():
    view = synthetic_view(ROW_CAPS["steps"] + 500, failed_every=0)
    last = view.record.step_events[-1]
    failed = StepEvent(last.timestamp, last.step_index, last.step_name, StepEventType.FAILED,
                       {}, "the one that failed", last.previous_event_hash, last.event_hash)
    record = dataclasses.replace(view.record, step_events=view.record.step_events[:-1] + (failed,))
    page = render_report(ExecutionView(record, {}, (), (), (), (), 1, 1, 0, 1),
                         RollbackScaffold("x", True, "nothing"), ok())
    assert "the one that failed" in page
    assert f'id="step-{last.step_index}" open' in page
    assert "… 500 more steps not shown" in page


def test_data_no_browser_could_read_is_replaced_not_fatal():
    deep: dict = {}
    for _ in range(40):
        deep = {"deeper": deep}
    # NaN and lone surrogates only in the run's details: the record's own to_dict (its
    # execution_hash, canonical JSON) refuses them, before the report is reached.
    view = dataclasses.replace(synthetic_view(1, details={"deep": deep}),
                               details={"nan": float("nan"), "bad \udcff": "\udcff"})
    page = render_report(view, RollbackScaffold("x", True, "nothing"), ok())
    assert "detail bad \\xff" in page  # as Python writes bytes that are not UTF-8
    page.encode("utf-8")  # lone surrogates shown escaped, not a UnicodeEncodeError
    data = json.loads(re.search(r'id="execution-data">(.*?)</script>', page, re.S).group(1),
                      parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["truncated"] is True
    assert "levels deep]" in json.dumps(data)


def test_the_verdict_says_what_was_checked():
    view = synthetic_view(1)
    scaffold = RollbackScaffold("x", True, "nothing")
    partial = render_report(view, scaffold, Integrity(True, "entries read", 9, None, None))
    assert "✓ Verified before showing: the 9 entries read and their links, not the rest" in partial
    bad = render_report(view, scaffold, Integrity(False, "entries read", 9, 4, "a <reason>"))
    body = bad.split("<body>\n", 1)[1]
    assert body.startswith('<div class="alert" role="alert"')
    assert "at seq 4: a &lt;reason&gt;" in body


# ----- a synthetic execution, for sizes the recorder would take long to write --------------------

def ok() -> Integrity:
    return Integrity(True, "ledger", 1, None, None)


def synthetic_view(steps: int, *, name: str = "step", traceback: str = "Traceback", message:
                   str = "it broke", description: str = "changed", extras: int = 0,
                   failed_every: int = 1, details: dict | None = None) -> ExecutionView:
    """``steps`` steps (every ``failed_every``-th failed, with the given texts), ``extras`` side
    effects, guards, actions and notes."""
    start = datetime(2026, 12, 4, tzinfo=timezone.utc)
    events = []
    for index in range(steps):
        at = start + timedelta(milliseconds=index)
        fails = failed_every and index % failed_every == 0
        events.append(StepEvent(at, index, f"{name} {index}" if steps > 1 else name,
                                StepEventType.STARTED, details or {}, None, "0" * 64, "1" * 64))
        events.append(StepEvent(at + timedelta(microseconds=500), index, name,
                                StepEventType.FAILED if fails else StepEventType.COMPLETED, {},
                                message if fails else None, "1" * 64, "2" * 64,
                                "ValueError" if fails else None, traceback if fails else None))
    effects = tuple(SideEffect(SideEffectCategory.DATA_MUTATION, description, False, index)
                    for index in range(extras))
    record = ExecutionRecord("synthetic", "plan", "LIVE", ExecutionStatus.FAILED,
                             SecuritySnapshot(), None, start, start + timedelta(seconds=steps),
                             tuple(events), SideEffectReport((), effects), message)
    guard = {"decision": "deny", "guard": "G" * 100, "stage": "preflight", "message": message}
    action = {"action_type": "t", "adapter": description, "status": "failed", "error_code": "E"}
    note = {"step_index": 0, "name": name, "details": {"text": description}}
    return ExecutionView(record, details or {}, (guard,) * extras, (action,) * extras,
                         (note,) * extras, (), 1, 1, 0, 2 * steps)


def test_confirming_is_offered_only_when_rollback_is_possible(demo_ledger):
    """The demo's failure cannot be rolled back: the page does not send anyone to
    confirm-rollback, which would refuse; a possible rollback's page does."""
    _, scaffold, _, page = read(demo_ledger, failed_id(demo_ledger))
    assert not scaffold.is_rollback_possible
    assert "confirm-rollback" not in page and "no manual rollback to confirm" in page
    view = synthetic_view(1)
    possible = render_report(view, RollbackScaffold("synthetic", True, "nothing"), ok())
    assert "then to confirm with <code>execaudit confirm-rollback synthetic</code>" in possible
