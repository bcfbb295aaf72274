"""One execution as one self-contained HTML page, for people: ``render_report``.

It needs nothing but itself: inline CSS, no script to run (the data rides along as JSON, which
no browser executes), a Content-Security-Policy that forbids every fetch, everything recorded
escaped (anyone may have written it), and a size bounded whatever the execution (docs/report.md)::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit.inspection import ExecutionLog, RollbackPlanner
    >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
    >>> _ = otel_execaudit.configure(ledger=path, exporter="none")
    >>> with otel_execaudit.execution("backup", execution_id="run-1") as ex, ex.step("dump <b>"):
    ...     pass
    >>> otel_execaudit.shutdown()
    >>> with ExecutionLog(path) as log:
    ...     view = log.get_execution("run-1")
    ...     page = render_report(view, RollbackPlanner.plan_rollback(view.record), log.integrity)
    >>> "dump &lt;b&gt;" in page, "dump <b>" in page
    (True, False)
"""

from __future__ import annotations

import collections
import html
import json
import math
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from otel_execaudit.inspection.integrity import Integrity
from otel_execaudit.inspection.rebuild import ExecutionView
from otel_execaudit.inspection.rollback import RollbackScaffold
from otel_execaudit.recording import ExecutionRecord, SideEffect, StepEventType
from otel_execaudit.recording.records import escaped_text, format_timestamp, thawed

__all__ = ["DATA_BUDGET", "PAGE_BUDGET", "ROW_CAPS", "TEXT_CAPS", "embedded_data",
           "json_for_script", "render_report"]

# Characters shown of one recorded field, by kind; a cut says so where it was made.
TEXT_CAPS = {"traceback": 16_384, "message": 4_096, "description": 2_048, "name": 256}
# Rows shown per section, the rest counted in a marker (failed steps are kept first); "details"
# caps the run's details and a hint's risks.
ROW_CAPS = {"steps": 2_000, "side effects": 1_000, "guard decisions": 1_000, "actions": 1_000,
            "notes": 1_000, "checklist items": 1_000, "warnings": 64, "details": 64}
PAGE_BUDGET = 2_000_000  # bytes of rendered rows; once spent, no further row is rendered
DATA_BUDGET = 1_500_000  # bytes of the embedded JSON; once spent, no further item is embedded
FLOOR = 64  # characters a field still shows once a budget is nearly spent
DEPTH = 12  # levels of the embedded JSON; a value deeper is replaced by a marker
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_MARK = {"completed": "✓", "completed_partial": "!", "failed": "✗", "blocked": "✗",
         "incomplete": "✗", "cancelled": "⊘", "started": "…", "allow": "✓", "warn": "!",
         "deny": "✗"}  # glyphs beside the words of statuses and decisions: never colour alone
_SCRIPT_ESCAPES = {ord(char): f"\\u{ord(char):04x}" for char in "<>&\u2028\u2029"}
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;color:#1b1b1b;max-width:1200px;margin:0 auto;padding:1em}
h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{background:#f6f6f6;border:1px solid #ddd;
padding:.6em;white-space:pre-wrap;overflow-wrap:anywhere}.alert{border:3px solid #a00;
background:#fff0f0;color:#600;padding:.8em 1em;font-size:1.1em}.ok{border-left:4px solid #2a7a2a;
padding:.3em .8em;background:#f2faf2}header dl{display:grid;grid-template-columns:max-content 1fr;
gap:.15em 1em}header dd{margin:0}.status{font-weight:bold;padding:0 .4em;border:1px solid}
.bad{color:#a00}.warn{color:#8a5a00}.good{color:#2a7a2a}.cut{color:#8a5a00;font-style:italic}
details.step{border-bottom:1px solid #eee}details.step>summary,.axis{display:grid;
grid-template-columns:1.2em 3em minmax(8em,16em) 8em 6em 1fr;gap:.5em;align-items:center;
list-style:none;padding:.15em 0}details.step>summary::-webkit-details-marker{display:none}
details.step>summary::before{content:"▸"}details.step[open]>summary::before{content:"▾"}
.stepbody{padding:.2em 0 .6em 4.7em}#side-effects td:first-child{white-space:nowrap;
font-weight:bold}.track{position:relative;height:.9em;background:#f0f0f4}.bar{position:absolute;
top:0;bottom:0;min-width:2px;background:#4a78b5}
.failed .bar{background:repeating-linear-gradient(45deg,#b00 0 4px,#e55 4px 8px)}
.started .bar,.cancelled .bar{background:#c90}.axis{color:#555}.axis>*{font-size:.85em}
.axis>:last-child{display:flex;justify-content:space-between}table{border-collapse:collapse;
width:100%}tr.irreversible td{background:#fff4f4}th,td{text-align:left;vertical-align:top;
padding:.2em .5em;border-bottom:1px solid #eee;overflow-wrap:anywhere}
#rollback ol,#rollback ul{list-style:none}.note{border:2px dashed #555;padding:.5em .8em;
font-weight:bold}footer{margin-top:2em;color:#555;font-size:.85em}@media print{body{max-width:none;
padding:0}details::details-content{content-visibility:visible;display:block}
details:not([open])>summary~*{display:block}details.step>summary::before{content:""}
details,tr,li,.alert,header dl{break-inside:avoid}
.track,.bar,tr.irreversible td{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
"""


def render_report(view: ExecutionView, scaffold: RollbackScaffold, integrity: Integrity) -> str:
    """The page for ``view``: the integrity verdict (a failed check's warning first), header,
    step waterfall, side effects (irreversible first), guard decisions, actions, notes, the
    rollback checklist (never executed), and the data as JSON (``#execution-data``).

    Example: ``pathlib.Path("r.html").write_text(render_report(view, scaffold, log.integrity))``
    """
    page, record = _Budget(PAGE_BUDGET), view.record
    names = {event.step_index: event.step_name for event in reversed(record.step_events)}
    effects = _effect_rows(record)
    sections = [_integrity(page, integrity), _header(page, view), _steps(page, record),
                *_tables(page, view, effects, names), _rollback(page, scaffold, effects, names)]
    title = page.text(f"{record.plan_id} · {record.execution_id} · {record.status.value}", 512)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<meta http-equiv='
            f'"Content-Security-Policy" content="{CSP}">\n<meta name="viewport" '
            f'content="width=device-width, initial-scale=1">\n<title>{title}</title>\n'
            f"<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(filter(None, sections))
            + f"\n<footer>From ledger entries {view.first_seq}–{view.last_seq}. Nothing here runs"
            " or fetches anything; the data is in <code>#execution-data</code> as JSON. Bounds "
            "(docs/report.md): every cut is marked.</footer>\n"
            '<script type="application/json" id="execution-data">'
            f"{embedded_data(view, scaffold, integrity)}</script>\n</body></html>\n")


def embedded_data(view: ExecutionView, scaffold: RollbackScaffold, integrity: Integrity) -> str:
    """The JSON in ``#execution-data``: ``execution`` (``view.to_dict()``), ``rollback``,
    ``integrity``, and ``truncated`` (whether ``DATA_BUDGET`` cut anything), safe in a script.

    Example: ``json.loads(embedded_data(view, scaffold, integrity))["execution"] ==
    view.to_dict()`` when nothing was cut.
    """
    bounded = _bounded({"format": "otel-execaudit.report/1", "execution": view.to_dict(),
                        "rollback": scaffold.to_dict(), "integrity": integrity.to_dict()},
                       budget := _Budget(DATA_BUDGET), 0)
    return json_for_script({**bounded, "truncated": budget.cuts > 0})


def json_for_script(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&``, U+2028 and U+2029
    as escapes (they occur only inside strings, so the JSON means the same).

    >>> json_for_script({"x": "</script>&\\u2028"})
    '{"x": "\\\\u003c/script\\\\u003e\\\\u0026\\\\u2028"}'
    """
    return json.dumps(value, ensure_ascii=True, allow_nan=False).translate(_SCRIPT_ESCAPES)


class _Budget:
    """What is left to spend, in bytes, and how many values were cut."""

    def __init__(self, total: int) -> None:
        self.left, self.cuts = total, 0

    def cut(self, text: str, cap: int) -> tuple[str, int]:
        """(kept, characters cut): ``cap`` characters kept, fewer (not under FLOOR) near the end."""
        keep = min(cap, max(self.left, FLOOR))
        self.cuts += len(text) > keep
        return text[:keep], max(len(text) - keep, 0)

    def text(self, value: Any, cap: int) -> str:
        """Recorded text as valid UTF-8, cut to ``cap`` with a marker, HTML-escaped; "" for None."""
        if value is None:
            return ""
        kept, cut = self.cut(escaped_text(value if isinstance(value, str) else str(value)), cap)
        marker = f'<span class="cut">… [{cut:,} more characters not shown]</span>' if cut else ""
        return html.escape(kept) + marker

    def rows(self, items: Sequence[Any], noun: str, render: Callable[[Any], str]) -> str:
        """``render`` of each item while the row cap and the budget last, then a marker."""
        out, cap = [], ROW_CAPS[noun]
        for item in items:
            if len(out) >= cap or self.left <= 0:
                break
            out.append(render(item))
            self.left -= len(out[-1].encode("utf-8", "replace"))
        if rest := len(items) - len(out):
            why = f"at most {cap:,} are shown" if len(out) >= cap else "the page is full"
            out.append(f'<p class="cut">… {rest:,} more {noun} not shown ({why}); the embedded '
                       "JSON and <code>execaudit show</code> hold more.</p>")
        return "\n".join(out)


def _bounded(value: Any, budget: _Budget, depth: int) -> Any:
    """``value`` as plain JSON data within the budget: long text cut (and marked), lists and
    mappings ended (with a marker) once it is spent, nesting beyond ``DEPTH`` replaced."""
    if isinstance(value, str):
        kept, cut = budget.cut(value, TEXT_CAPS["traceback"])
        kept += f"… [{cut:,} more characters not embedded]" if cut else ""
        budget.left -= len(json_for_script(kept)) + 2
        return kept
    if value is None or isinstance(value, (bool, int)) or \
            isinstance(value, float) and math.isfinite(value):
        budget.left -= 8
        return value
    if depth >= DEPTH or not isinstance(value, (Mapping, list, tuple)):
        budget.cuts += 1
        return f"[not embedded: a {type(value).__name__}, {depth} levels deep]"
    mapping = isinstance(value, Mapping)
    items, kept = list(value.items()) if mapping else list(enumerate(value)), []
    for key, item in items:
        if budget.left <= 0:
            budget.cuts += 1
            break
        kept.append((_bounded(str(key), budget, depth) if mapping else key,
                     _bounded(item, budget, depth + 1)))
    rest = len(items) - len(kept)
    if mapping:
        return {**dict(kept), **({"[truncated]": f"{rest:,} more keys"} if rest else {})}
    return [item for _, item in kept] + ([f"[truncated: {rest:,} more items]"] if rest else [])


def _milliseconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.1f} ms" if abs(ms) < 10_000 else f"{ms / 1e3:,.2f} s"


def _between(start: datetime, end: datetime) -> str:
    return _milliseconds((end - start).total_seconds() * 1e3)


def _compact(value: Any) -> str:
    return json.dumps(thawed(value), ensure_ascii=False, default=str, sort_keys=True)[:200_000]


def _integrity(page: _Budget, integrity: Integrity) -> str:
    if integrity.warning:  # first on the page, before any data
        return (f'<div class="alert" role="alert" id="integrity"><strong>⚠ '
                f"{page.text(integrity.warning, TEXT_CAPS['message'])}</strong><br>Checked: "
                f"{page.text(integrity.scope, 64)}, {integrity.entries:,} entries.</div>")
    what = (f"the whole ledger, {integrity.entries:,} entries (every hash, link and seq)"
            if integrity.scope == "ledger" else f"the {integrity.entries:,} entries read and "
            "their links, not the rest: <code>execaudit verify</code> checks all of it")
    return f'<p class="ok" id="integrity">✓ Verified before showing: {what}.</p>'


def _header(page: _Budget, view: ExecutionView) -> str:
    record, name, post = view.record, TEXT_CAPS["name"], view.record.security_snapshot_post
    status = record.status.value
    tone = "good" if status == "completed" else "bad" if _MARK.get(status) == "✗" else "warn"
    pairs = [("execution", f"<code>{page.text(record.execution_id, name)}</code>"),
             ("status", f'<span class="status {tone}">{_MARK.get(status, "?")} '
                        f"{page.text(status.upper(), name)}</span>"),
             ("mode", page.text(record.live_mode_state, name)),
             ("started", format_timestamp(record.timestamp_start)),
             ("ended", "not recorded (still running, or its process died)"
              if record.timestamp_end is None else format_timestamp(record.timestamp_end)),
             ("duration", _milliseconds(view.duration_ms)),
             ("trace id", f"<code>{page.text(record.trace_id or '-', name)}</code>"),
             ("run", f"{view.run} of {view.runs} under this id" if view.runs > 1 else None),
             ("tenant", page.text(view.tenant, name)),
             ("parent execution", page.text(record.parent_execution_id, name)),
             ("reason", page.text(record.reason, TEXT_CAPS["message"])),
             ("security", page.text(record.security_snapshot_pre.state.value, name) + " → "
              + ("-" if post is None else page.text(post.state.value, name)))]
    details, cap = list(view.details.items()), ROW_CAPS["details"]
    pairs += [(f"detail {page.text(key, name)}", page.text(_compact(value), 2_048))
              for key, value in details[:cap]]
    pairs += [("details", f'<span class="cut">… {len(details) - cap:,} more not shown</span>')
              ] if len(details) > cap else []
    facts = "".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in pairs if value)
    return f"<header><h1>{page.text(record.plan_id, name)}</h1><dl>{facts}</dl></header>"


def _steps(page: _Budget, record: ExecutionRecord) -> str:
    by_index: dict[int, list[Any]] = {}  # [index, name, start, started event, ending event]
    for event in record.step_events:
        step = by_index.setdefault(event.step_index, [event.step_index, event.step_name,
                                                      event.timestamp, None, None])
        if event.event_type is not StepEventType.STARTED or step[3] is None:
            step[3 if event.event_type is StepEventType.STARTED else 4] = event
    steps = list(by_index.values())
    origin = record.timestamp_start
    last = max([record.timestamp_end or origin] + [event.timestamp for event in record.step_events])
    total = max((last - origin).total_seconds(), 1e-6)

    def outcome(step: list[Any]) -> str:
        return "started" if step[4] is None else step[4].event_type.value

    # Failed and unfinished steps survive a cut first; the rows stay in execution order.
    kept = {step[0] for step in sorted(steps, key=lambda step: outcome(step) == "completed")
            [:ROW_CAPS["steps"]]}
    ordered = [step for step in steps if step[0] in kept] + [s for s in steps if s[0] not in kept]

    def row(step: list[Any]) -> str:  # a tampered ledger may hold any JSON as an index
        index, step_name, start, started, ended = page.text(step[0], 64), *step[1:]
        state, end = outcome(step), last if ended is None else ended.timestamp
        left = min(max((start - origin).total_seconds() / total * 100, 0.0), 100.0)
        width = min(max((end - start).total_seconds() / total * 100, 0.0), 100.0 - left)
        simulated = " (simulated)" if ended is not None and ended.details.get("simulated") else ""
        body = [f"<p>started +{_between(origin, start)}, " + (
            "no end recorded" if ended is None else f"ended +{_between(origin, end)}")]
        if ended is not None and (ended.error_type or ended.error_message):
            body.append(f'<p class="bad"><strong>{page.text(ended.error_type or "error", 512)}'
                        f"</strong>: {page.text(ended.error_message, TEXT_CAPS['message'])}")
        if ended is not None and ended.traceback:
            body.append(f'<pre>{page.text(ended.traceback, TEXT_CAPS["traceback"])}</pre>')
        body += [f"<p>{label}: <code>{page.text(_compact(event.details), 2_048)}</code>"
                 for label, event in (("details at start", started), ("details at end", ended))
                 if event is not None and event.details]
        return (f'<details class="step {state}" id="step-{index}"'
                f'{" open" if state != "completed" else ""}><summary><span>{index}</span>'
                f'<span class="name">{page.text(step_name, TEXT_CAPS["name"])}</span><span>'
                f'{_MARK.get(state, "?")} {state}{simulated}</span><span>'
                f'{"-" if ended is None else _between(start, end)}</span><span class="track" '
                f'aria-hidden="true"><span class="bar" style="left:{left:.3f}%;width:{width:.3f}%">'
                f'</span></span></summary><div class="stepbody">{"".join(body)}</div></details>')

    unfinished = sum(outcome(step) != "completed" for step in steps)
    return (f'<section id="steps"><h2>Steps ({len(steps):,}; {unfinished:,} not completed)</h2>'
            '<div class="axis"><span></span><span>#</span><span>step</span><span>outcome</span>'
            f"<span>took</span><span><span>0</span><span>{_milliseconds(total * 1e3)}</span>"
            "</span></div>"
            f"{page.rows(ordered, 'steps', row) or '<p>None recorded.</p>'}</section>")


def _effect_rows(record: ExecutionRecord) -> list[tuple[SideEffect, str]]:
    """Observed effects, then declared ones no observed effect of their step and category
    answers; irreversible first."""
    observed = record.side_effects_report.observed
    unanswered = collections.Counter((effect.step_index, effect.category) for effect in observed)
    rows = [(effect, "observed") for effect in observed]
    for effect in record.side_effects_report.declared:
        unanswered[effect.step_index, effect.category] -= 1
        if unanswered[effect.step_index, effect.category] < 0:
            rows.append((effect, "declared, not reported"))
    return sorted(rows, key=lambda row: row[0].reversible)


def _table(page: _Budget, anchor: str, title: str, noun: str, items: Sequence[Any],
           columns: Sequence[tuple[str, Callable[[Any], Any]]],
           kind: Callable[[Any], str] = lambda item: "", empty: str = "") -> str:
    """A section of one table, a row per item; without items, ``empty`` alone, or nothing."""
    def row(item: Any) -> str:
        return f'<tr class="{kind(item)}">' + "".join(
            f"<td>{page.text(cell(item), TEXT_CAPS['description'])}</td>"
            for _, cell in columns) + "</tr>"

    head = "".join(f"<th>{label}</th>" for label, _ in columns)
    body = f"<table><tr>{head}</tr>{page.rows(list(items), noun, row)}</table>" if items else empty
    return body and f'<section id="{anchor}"><h2>{title} ({len(items):,})</h2>{body}</section>'


def _tables(page: _Budget, view: ExecutionView, effects: list[tuple[SideEffect, str]],
            names: Mapping[int, str]) -> list[str]:
    """Tables: side effects (irreversible first), guard decisions, actions, step notes."""
    def field(key: str, empty: Any = "-") -> Callable[[Mapping[str, Any]], Any]:
        return lambda item: empty if item.get(key) is None else item[key]

    return [_table(page, "side-effects", "Side effects, irreversible first", "side effects",
                   effects, [
                ("", lambda row: "↺ reversible" if row[0].reversible else "✗ IRREVERSIBLE"),
                ("step", lambda row: "outside any step" if row[0].step_index is None
                 else f"{row[0].step_index} {names.get(row[0].step_index, '')}"),
                ("category", lambda row: row[0].category.value),
                ("description", lambda row: row[0].description), ("source", lambda row: row[1])],
                   lambda row: "reversible" if row[0].reversible else "irreversible",
                   "<p>None recorded.</p>"),
            _table(page, "guards", "Guard decisions", "guard decisions", view.guards, [
                ("decision", lambda g: f"{_MARK.get(str(g.get('decision')), '?')} "
                                       f"{g.get('decision')}"),
                ("guard", field("guard")), ("stage", field("stage")), ("step", field("step_index")),
                ("message", field("message", ""))]),
            _table(page, "actions", "Action terminal events", "actions", view.actions, [
                ("action", field("action_type")), ("adapter", field("adapter")),
                ("status", field("status")), ("error code", field("error_code", "")),
                ("at", field("timestamp"))]),
            _table(page, "notes", "Step notes", "notes", view.notes, [
                ("step", field("step_index")), ("note", field("name")),
                ("details", lambda note: _compact(note.get("details") or {}))])]


def _rollback(page: _Budget, scaffold: RollbackScaffold, effects: list[tuple[SideEffect, str]],
              names: Mapping[int, str]) -> str:
    """The scaffold as a checklist of disabled boxes: the hints' actions to undo, then the
    changes no hint undoes (irreversible, or without a hint) to review; nothing is executed."""
    name, text = TEXT_CAPS["name"], TEXT_CAPS["description"]
    undo = [(hint, action) for hint in scaffold.rollback_hints
            for action in hint.actions or (hint.description,)]
    blocking = set(scaffold.irreversible_steps)
    review = [item for item in effects if item[0].step_index in blocking]

    def box(index: Any, content: str) -> str:
        step = page.text(f"Step {index} ({names.get(index, '?')})", name)
        return f'<li><label><input type="checkbox" disabled> {step}: {content}</label></li>'

    def undo_row(item: tuple[Any, str]) -> str:
        hint, action = item
        risks = "".join(f'<br><span class="warn">risk: {page.text(risk, text)}</span>'
                        for risk in hint.risks[:ROW_CAPS["details"]])
        return box(hint.step_index, f"{page.text(action, text)} <small>("
                   f"{page.text(hint.description, text)})</small>{risks}")

    def review_row(item: tuple[SideEffect, str]) -> str:
        effect, source = item
        mark = "no rollback hint" if effect.reversible else "✗ IRREVERSIBLE"
        return box(effect.step_index, f"<strong>{mark}</strong>: "
                   f"{page.text(effect.description, text)} <small>({source})</small>")

    verdict = ('<span class="good">possible, by hand</span>' if scaffold.is_rollback_possible
               else '<span class="bad">✗ NOT possible</span>')
    # Confirming is offered only where `confirm-rollback` would accept it.
    after = ("each item is for a person to do by hand, then to confirm with <code>execaudit "
             f"confirm-rollback {page.text(scaffold.execution_id, name)}</code>"
             if scaffold.is_rollback_possible else
             "each item is for a person to review by hand; as rollback is not possible, there is "
             "no manual rollback to confirm")
    parts = [f'<section id="rollback"><h2>Rollback guidance: {verdict}</h2>',
             '<p class="note">Nothing here is executed, and nothing on this page can execute it: '
             f"{after}.</p>",
             f"<p>{page.text(scaffold.reason, TEXT_CAPS['message'])}</p>",
             page.rows(scaffold.warnings, "warnings",
                       lambda warning: f'<p class="warn">! {page.text(warning, text)}</p>')]
    headings = {"ol": "To undo, in this order (the reverse of execution; hints as recorded)",
                "ul": "To review by hand: changes no hint undoes"}
    for tag, items, render in (("ol", undo, undo_row), ("ul", review, review_row)):
        if items:
            parts.append(f"<h3>{headings[tag]}</h3><{tag}>"
                         f"{page.rows(items, 'checklist items', render)}</{tag}>")
    if not undo and not review:
        parts.append("<p>No manual step: nothing recorded needs undoing.</p>")
    return "".join(parts) + "</section>"
