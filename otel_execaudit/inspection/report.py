"""One execution as one self-contained HTML page, for people: ``render_report``.

The page needs nothing but itself: inline CSS, no script to run (the execution's data rides
along as JSON in a ``<script type="application/json">``, which no browser executes), a
Content-Security-Policy that forbids every fetch, and everything recorded escaped, for a ledger
may hold text anyone wrote. Its size is bounded whatever the execution (``TEXT_CAPS``,
``ROW_CAPS``, ``PAGE_BUDGET``, ``DATA_BUDGET``; docs/report.md)::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit.inspection import ExecutionLog, RollbackPlanner
    >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
    >>> _ = otel_execaudit.configure(ledger=path, exporter="none")
    >>> with otel_execaudit.execution("nightly-backup", execution_id="run-1") as ex:
    ...     with ex.step("dump <b>"):
    ...         pass
    >>> otel_execaudit.shutdown()
    >>> with ExecutionLog(path) as log:
    ...     view = log.get_execution("run-1")
    ...     page = render_report(view, RollbackPlanner.plan_rollback(view.record), log.integrity)
    >>> "dump &lt;b&gt;" in page, "dump <b>" in page
    (True, False)
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from otel_execaudit.inspection.integrity import Integrity
from otel_execaudit.inspection.queries import ExecutionView
from otel_execaudit.inspection.rollback import RollbackScaffold
from otel_execaudit.recording import ExecutionRecord, SideEffect, StepEvent, StepEventType
from otel_execaudit.recording.records import escaped_text, format_timestamp

__all__ = ["DATA_BUDGET", "PAGE_BUDGET", "ROW_CAPS", "TEXT_CAPS", "render_report"]

# Characters shown of one recorded field, by kind; what is cut says so where it was cut.
TEXT_CAPS = {"traceback": 16_384, "message": 4_096, "description": 2_048, "name": 256}
# Rows shown per section; the rest are counted in a marker (the failed steps are kept first).
ROW_CAPS = {"steps": 2_000, "side effects": 1_000, "guard decisions": 1_000, "actions": 1_000,
            "notes": 1_000, "checklist items": 1_000, "details": 64}
PAGE_BUDGET = 2_000_000  # bytes of the rendered sections; once spent, no further rows
DATA_BUDGET = 1_500_000  # bytes of the embedded JSON; once spent, no further items
FLOOR = 64  # characters a field still shows once a budget is nearly spent
DEPTH = 12  # levels of the embedded JSON; deeper values are replaced by a marker
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STEP_MARK = {"completed": "✓", "failed": "✗", "cancelled": "⊘", "started": "…"}
_RUN_MARK = {"completed": "✓", "completed_partial": "!", "failed": "✗", "blocked": "✗",
             "incomplete": "✗", "cancelled": "⊘", "started": "…"}
_GUARD_MARK = {"allow": "✓", "warn": "!", "deny": "✗"}
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;color:#1b1b1b;background:#fff;max-width:1200px;
margin:0 auto;padding:1em 1.5em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;
border-bottom:1px solid #ccc}code,pre{font:12px/1.4 ui-monospace,monospace}
pre{background:#f6f6f6;border:1px solid #ddd;padding:.6em;white-space:pre-wrap;
overflow-wrap:anywhere}
.alert{border:3px solid #a00;background:#fff0f0;color:#600;padding:.8em 1em;font-size:1.1em}
.ok{border-left:4px solid #2a7a2a;padding:.3em .8em;background:#f2faf2}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.5em 0}
.facts dt{color:#555}.facts dd{margin:0;overflow-wrap:anywhere}
.status{font-weight:bold;padding:0 .4em;border:1px solid currentColor;border-radius:3px}
.bad{color:#a00}.warn{color:#8a5a00}.good{color:#2a7a2a}
.cut{color:#8a5a00;font-style:italic}
details.step{border-bottom:1px solid #eee}
details.step>summary{display:grid;grid-template-columns:1.2em 3em minmax(8em,16em) 8em 6em 1fr;
gap:.5em;align-items:center;cursor:pointer;list-style:none;padding:.15em 0}
details.step>summary::-webkit-details-marker{display:none}
details.step>summary::before{content:"▸"}details.step[open]>summary::before{content:"▾"}
.stepbody{padding:.2em 0 .6em 4.7em}.name{overflow-wrap:anywhere}
.track{position:relative;height:.9em;background:#f0f0f4;border-radius:2px}
.bar{position:absolute;top:0;bottom:0;min-width:2px;background:#4a78b5;border-radius:2px}
.failed .bar{background:repeating-linear-gradient(45deg,#b00 0 4px,#e55 4px 8px)}
.started .bar,.cancelled .bar{background:#c90}
.axis{display:flex;justify-content:space-between;color:#555;font-size:.85em;padding-left:40%}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;
padding:.2em .5em;border-bottom:1px solid #eee;overflow-wrap:anywhere}
tr.irreversible td{background:#fff4f4}.mark{white-space:nowrap;font-weight:bold}
.checklist li{margin:.25em 0}.checklist ul{list-style:none;padding-left:1em}
.note{border:2px dashed #555;padding:.5em .8em;font-weight:bold}
footer{margin-top:2em;color:#555;font-size:.85em}
@media print{body{max-width:none;padding:0}
details::details-content{content-visibility:visible;display:block}
details:not([open])>summary~*{display:block}
details.step>summary::before{content:""}
details,tr,li,.alert,.facts{break-inside:avoid}
.track,.bar,tr.irreversible td{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
"""


def render_report(view: ExecutionView, scaffold: RollbackScaffold, integrity: Integrity) -> str:
    """The whole page for ``view``: the integrity verdict (a failed check's warning first),
    header, step waterfall, side effects (irreversible first), guard decisions, actions, notes,
    the rollback checklist (never executed), and the data as JSON (``#execution-data``).

    Example: ``pathlib.Path("r.html").write_text(render_report(view, scaffold, log.integrity))``
    """
    page = _Page(PAGE_BUDGET)
    record = view.record
    effects = _effect_rows(record)
    sections = [_integrity(page, integrity), _header(page, view), _steps(page, record),
                _effects(page, record, effects), _guards(page, view.guards),
                _actions(page, view.actions), _notes(page, view.notes),
                _rollback(page, scaffold, effects, record)]
    title = f"{record.plan_id} · {record.execution_id} · {record.status.value}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="referrer" content="no-referrer">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{page.text(title, TEXT_CAPS['name'] * 2)}</title>\n<style>{_STYLE}</style>"
            "</head>\n<body>\n" + "\n".join(part for part in sections if part)
            + f"\n<footer>Written by otel_execaudit from the ledger (entries {view.first_seq}"
            f"–{view.last_seq}); nothing on this page runs or fetches anything. The data is "
            'embedded as JSON in <code>#execution-data</code>. Bounds: at most '
            f'{ROW_CAPS["steps"]:,} steps and {ROW_CAPS["side effects"]:,} rows per other '
            f'section, {TEXT_CAPS["traceback"]:,} characters per traceback, '
            f'{TEXT_CAPS["description"]:,} per description; cuts are marked.</footer>\n'
            f'<script type="application/json" id="execution-data">{embedded_data(view, scaffold, integrity)}'
            "</script>\n</body></html>\n")


def embedded_data(view: ExecutionView, scaffold: RollbackScaffold, integrity: Integrity) -> str:
    """The JSON in ``#execution-data``: ``execution`` (``view.to_dict()``), ``rollback``,
    ``integrity``, and ``truncated`` (whether ``DATA_BUDGET`` cut anything); escaped so that no
    recorded text can end the script element.

    Example: ``json.loads(embedded_data(view, scaffold, integrity))["execution"] ==
    view.to_dict()`` when nothing was cut.
    """
    allowance = _Allowance(DATA_BUDGET)
    document = {"format": "otel-execaudit.report/1", "execution": view.to_dict(),
                "rollback": scaffold.to_dict(), "integrity": integrity.to_dict()}
    bounded = _bounded(document, allowance, 0)
    bounded["truncated"] = allowance.cuts > 0
    return json_for_script(bounded)


def json_for_script(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&``, U+2028 and U+2029
    as escapes (they occur only inside strings, so the JSON means the same).

    >>> json_for_script({"x": "</script>&\\u2028"})
    '{"x": "\\\\u003c/script\\\\u003e\\\\u0026\\\\u2028"}'
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    for raw, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                        ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escape)
    return text


class _Allowance:
    """What is left to spend, in bytes, and how many values were cut."""

    def __init__(self, total: int) -> None:
        self.left, self.cuts = total, 0

    def cut(self, value: Any, cap: int) -> tuple[str, int]:
        """``value`` as text (what UTF-8 cannot hold escaped), cut to ``cap`` characters, or
        fewer (not under ``FLOOR``) once little is left: (kept, characters cut)."""
        text = escaped_text(value if isinstance(value, str) else str(value))
        keep = min(cap, max(self.left, FLOOR))
        if len(text) <= keep:
            return text, 0
        self.cuts += 1
        return text[:keep], len(text) - keep


class _Page(_Allowance):
    def text(self, value: Any, cap: int) -> str:
        """Recorded text, escaped, with a marker where it was cut; "" for None."""
        if value is None:
            return ""
        kept, cut = self.cut(value, cap)
        marker = f'<span class="cut">… [{cut:,} more characters not shown]</span>' if cut else ""
        return html.escape(kept) + marker

    def rows(self, items: Sequence[Any], noun: str, render: Callable[[Any], str]) -> str:
        """``render`` of each item while the row cap and the budget last, then a marker."""
        out, cap = [], ROW_CAPS[noun]
        for item in items:
            if len(out) >= cap or self.left <= 0:
                break
            row = render(item)
            self.left -= len(row.encode("utf-8", "replace"))
            out.append(row)
        rest = len(items) - len(out)
        if rest:
            why = f"at most {cap:,} are shown" if len(out) >= cap else "the page's size limit was reached"
            out.append(f'<p class="cut">… {rest:,} more {noun} not shown ({why}); the JSON data '
                       "and <code>execaudit show</code> hold more.</p>")
        return "\n".join(out)


def _bounded(value: Any, allowance: _Allowance, depth: int) -> Any:
    """``value`` as plain JSON data within the allowance: long text cut (and marked), lists and
    mappings ended (with a marker) once it is spent, nesting beyond ``DEPTH`` replaced."""
    if isinstance(value, str):
        kept, cut = allowance.cut(value, TEXT_CAPS["traceback"])
        kept += f"… [{cut:,} more characters not embedded]" if cut else ""
        allowance.left -= len(json_for_script(kept)) + 2
        return kept
    if value is None or isinstance(value, (bool, int)) or \
            isinstance(value, float) and math.isfinite(value):
        allowance.left -= 8
        return value
    if depth >= DEPTH or not isinstance(value, (Mapping, list, tuple)):
        allowance.cuts += 1
        return _bounded(f"[not embedded: {type(value).__name__} deeper than {DEPTH} levels or "
                        "not JSON]", allowance, depth)
    items = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
    kept_items = []
    for key, item in items:
        if allowance.left <= 0:
            allowance.cuts += 1
            break
        kept_items.append((_bounded(str(key), allowance, depth) if isinstance(value, Mapping)
                           else key, _bounded(item, allowance, depth + 1)))
    rest = len(items) - len(kept_items)
    if isinstance(value, Mapping):
        bounded = dict(kept_items)
        if rest:
            bounded["[truncated]"] = f"{rest:,} more keys not embedded"
        return bounded
    return [item for _, item in kept_items] + ([f"[truncated: {rest:,} more items]"] if rest else [])


@dataclasses.dataclass
class _Step:
    index: int
    name: str
    start: datetime
    started: StepEvent | None = None
    ended: StepEvent | None = None

    @property
    def outcome(self) -> str:
        return "started" if self.ended is None else self.ended.event_type.value


def _collect_steps(record: ExecutionRecord) -> list[_Step]:
    steps: dict[int, _Step] = {}
    for event in record.step_events:
        step = steps.setdefault(event.step_index, _Step(event.step_index, event.step_name,
                                                        event.timestamp))
        if event.event_type is StepEventType.STARTED:
            step.started = step.started or event
        else:
            step.ended = event
    return list(steps.values())


def _milliseconds(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:,.1f} ms" if abs(ms) < 10_000 else f"{ms / 1e3:,.2f} s"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)[:200_000]


def _facts(page: _Page, pairs: Sequence[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{page.text(key, TEXT_CAPS['name'])}</dt>"
                                          f"<dd>{value}</dd>" for key, value in pairs) + "</dl>"


def _integrity(page: _Page, integrity: Integrity) -> str:
    if integrity.warning:  # first on the page, before any data
        return (f'<div class="alert" role="alert" id="integrity"><strong>⚠ '
                f"{page.text(integrity.warning, TEXT_CAPS['message'])}</strong><br>Checked: "
                f"{page.text(integrity.scope, 64)}, {integrity.entries:,} entries.</div>")
    what = (f"the whole ledger, {integrity.entries:,} entries (every hash, link and seq)"
            if integrity.scope == "ledger" else f"the {integrity.entries:,} entries read and "
            "their links; the rest of the ledger was not: <code>execaudit verify</code> checks all of "
            "it")
    return f'<p class="ok" id="integrity">✓ Verified before showing: {what}.</p>'


def _header(page: _Page, view: ExecutionView) -> str:
    record, name = view.record, TEXT_CAPS["name"]
    status = record.status.value
    tone = "good" if status == "completed" else "bad" if _RUN_MARK.get(status) == "✗" else "warn"
    pairs = [("execution", f"<code>{page.text(record.execution_id, name)}</code>"),
             ("status", f'<span class="status {tone}">{_RUN_MARK.get(status, "?")} '
                        f"{page.text(status.upper(), name)}</span>"),
             ("mode", page.text(record.live_mode_state, name)),
             ("started", format_timestamp(record.timestamp_start)),
             ("ended", "not recorded (still running, or its process died)"
              if record.timestamp_end is None else format_timestamp(record.timestamp_end)),
             ("duration", _milliseconds(view.duration_ms)),
             ("trace id", f"<code>{page.text(record.trace_id or '-', name)}</code>")]
    if view.tenant is not None:
        pairs.append(("tenant", page.text(view.tenant, name)))
    if view.runs > 1:
        pairs.append(("run", f"{view.run} of {view.runs} under this id"))
    if record.parent_execution_id:
        pairs.append(("parent execution", page.text(record.parent_execution_id, name)))
    if record.reason:
        pairs.append(("reason", page.text(record.reason, TEXT_CAPS["message"])))
    post = record.security_snapshot_post
    pairs.append(("security", page.text(record.security_snapshot_pre.state.value, name) + " → "
                  + ("-" if post is None else page.text(post.state.value, name))))
    details = list(view.details.items())
    shown = details[:ROW_CAPS["details"]]
    pairs += [(f"detail {key}", page.text(_compact(value), TEXT_CAPS["description"]))
              for key, value in shown]
    if len(details) > len(shown):
        pairs.append(("details", f'<span class="cut">… {len(details) - len(shown):,} more '
                                 "not shown</span>"))
    return (f'<header><h1>{page.text(record.plan_id, name)}</h1>{_facts(page, pairs)}</header>')


def _steps(page: _Page, record: ExecutionRecord) -> str:
    steps = _collect_steps(record)
    if not steps:
        return '<section id="steps"><h2>Steps</h2><p>None recorded.</p></section>'
    origin = record.timestamp_start
    last = max([record.timestamp_end or origin] + [event.timestamp for event in record.step_events])
    total = max((last - origin).total_seconds(), 1e-6)
    # The failed and unfinished steps survive a cut first; rows stay in execution order.
    keep = sorted(steps, key=lambda step: step.outcome == "completed")[:ROW_CAPS["steps"]]
    kept = {id(step) for step in keep}
    shown = [step for step in steps if id(step) in kept] + [step for step in steps if id(step) not in kept]

    def row(step: _Step) -> str:
        end = step.ended.timestamp if step.ended else last
        left = min(max((step.start - origin).total_seconds() / total * 100, 0.0), 100.0)
        width = min(max((end - step.start).total_seconds() / total * 100, 0.0), 100.0 - left)
        duration = (end - step.start).total_seconds() * 1e3 if step.ended else None
        outcome, ended = step.outcome, step.ended
        simulated = " (simulated)" if ended and ended.details.get("simulated") else ""
        body = [f"<p>started +{_milliseconds((step.start - origin).total_seconds() * 1e3)}"
                + (f", ended +{_milliseconds((end - origin).total_seconds() * 1e3)}" if ended
                   else ", no end recorded") + "</p>"]
        if ended is not None and (ended.error_type or ended.error_message):
            body.append(f'<p class="bad"><strong>{page.text(ended.error_type or "error", TEXT_CAPS["name"])}'
                        f"</strong>: {page.text(ended.error_message, TEXT_CAPS['message'])}</p>")
        if ended is not None and ended.traceback:
            body.append(f'<pre class="traceback">{page.text(ended.traceback, TEXT_CAPS["traceback"])}</pre>')
        for label, event in (("details at start", step.started), ("details at end", ended)):
            if event is not None and event.details:
                body.append(f"<p>{label}: <code>"
                            f"{page.text(_compact(event.details), TEXT_CAPS['description'])}</code></p>")
        return (f'<details class="step {outcome}" id="step-{step.index}"'
                f'{" open" if outcome != "completed" else ""}><summary>'
                f"<span>{step.index}</span><span class=\"name\">{page.text(step.name, TEXT_CAPS['name'])}"
                f'</span><span class="outcome">{_STEP_MARK.get(outcome, "?")} {outcome}{simulated}'
                f'</span><span>{_milliseconds(duration)}</span><span class="track" '
                f'aria-hidden="true"><span class="bar" style="left:{left:.3f}%;width:{width:.3f}%">'
                f'</span></span></summary><div class="stepbody">{"".join(body)}</div></details>')

    failed = sum(step.outcome != "completed" for step in steps)
    return (f'<section id="steps"><h2>Steps ({len(steps):,}; {failed:,} not completed)</h2>'
            f'<div class="axis"><span>0</span><span>{_milliseconds(total * 1e3)}</span></div>'
            f"{page.rows(shown, 'steps', row)}</section>")


def _effect_rows(record: ExecutionRecord) -> list[tuple[SideEffect, str]]:
    """Observed effects, and the declared ones no observed effect matches: irreversible first."""
    observed = list(record.side_effects_report.observed)
    unmatched = [(effect.step_index, effect.category, effect.description, effect.reversible)
                 for effect in observed]
    rows = [(effect, "observed") for effect in observed]
    for effect in record.side_effects_report.declared:
        key = (effect.step_index, effect.category, effect.description, effect.reversible)
        if key in unmatched:
            unmatched.remove(key)
        else:
            rows.append((effect, "declared only (not reported as done)"))
    return sorted(rows, key=lambda row: row[0].reversible)


def _effects(page: _Page, record: ExecutionRecord, rows: list[tuple[SideEffect, str]]) -> str:
    names = {event.step_index: event.step_name for event in reversed(record.step_events)}

    def row(item: tuple[SideEffect, str]) -> str:
        effect, source = item
        mark = "✗ IRREVERSIBLE" if not effect.reversible else "↺ reversible"
        where = "outside any step" if effect.step_index is None else \
            f"{effect.step_index} {names.get(effect.step_index, '')}"
        return (f'<tr class="{"irreversible" if not effect.reversible else "reversible"}">'
                f'<td class="mark">{mark}</td><td>{page.text(where, TEXT_CAPS["name"])}</td>'
                f"<td>{page.text(effect.category.value, TEXT_CAPS['name'])}</td>"
                f"<td>{page.text(effect.description, TEXT_CAPS['description'])}</td>"
                f"<td>{source}</td></tr>")

    irreversible = sum(not effect.reversible for effect, _ in rows)
    body = (f"<table><tr><th></th><th>step</th><th>category</th><th>description</th>"
            f"<th>source</th></tr>{page.rows(rows, 'side effects', row)}</table>") if rows \
        else "<p>None recorded.</p>"
    return (f'<section id="side-effects"><h2>Side effects ({len(rows):,}; {irreversible:,} '
            f"irreversible, listed first)</h2>{body}</section>")


def _table(page: _Page, anchor: str, title: str, noun: str, items: Sequence[Mapping[str, Any]],
           columns: Sequence[tuple[str, Callable[[Mapping[str, Any]], Any]]]) -> str:
    if not items:
        return ""

    def row(item: Mapping[str, Any]) -> str:
        return "<tr>" + "".join(f"<td>{page.text(cell(item), TEXT_CAPS['description'])}</td>"
                                for _, cell in columns) + "</tr>"

    head = "".join(f"<th>{label}</th>" for label, _ in columns)
    return (f'<section id="{anchor}"><h2>{title} ({len(items):,})</h2><table><tr>{head}</tr>'
            f"{page.rows(list(items), noun, row)}</table></section>")


def _guards(page: _Page, guards: Sequence[Mapping[str, Any]]) -> str:
    return _table(page, "guards", "Guard decisions", "guard decisions", guards, [
        ("decision", lambda g: f"{_GUARD_MARK.get(str(g.get('decision')), '?')} {g.get('decision')}"),
        ("guard", lambda g: g.get("guard")), ("stage", lambda g: g.get("stage")),
        ("step", lambda g: g.get("step_index", "-")), ("message", lambda g: g.get("message"))])


def _actions(page: _Page, actions: Sequence[Mapping[str, Any]]) -> str:
    return _table(page, "actions", "Action terminal events", "actions", actions, [
        ("action", lambda a: a.get("action_type")), ("adapter", lambda a: a.get("adapter")),
        ("status", lambda a: a.get("status")), ("error code", lambda a: a.get("error_code") or ""),
        ("at", lambda a: a.get("timestamp"))])


def _notes(page: _Page, notes: Sequence[Mapping[str, Any]]) -> str:
    return _table(page, "notes", "Step notes", "notes", notes, [
        ("step", lambda n: n.get("step_index")), ("note", lambda n: n.get("name")),
        ("details", lambda n: _compact(n.get("details") or {}))])


def _rollback(page: _Page, scaffold: RollbackScaffold, effects: list[tuple[SideEffect, str]],
              record: ExecutionRecord) -> str:
    names = {event.step_index: event.step_name for event in reversed(record.step_events)}
    verdict = ('<span class="good">possible, by hand</span>' if scaffold.is_rollback_possible
               else '<span class="bad">✗ NOT possible</span>')
    items: list[tuple[str, str]] = []  # (group, item html)
    for hint in scaffold.rollback_hints:
        step = f"Step {hint.step_index} ({names.get(hint.step_index, '?')})"  # type: ignore[arg-type]
        risks = "".join(f"<br><span class=\"warn\">risk: {page.text(risk, TEXT_CAPS['description'])}"
                        "</span>" for risk in hint.risks[:ROW_CAPS["details"]])
        for action in hint.actions or (hint.description,):
            items.append(("undo", f"{page.text(step, TEXT_CAPS['name'])}: "
                          f"{page.text(action, TEXT_CAPS['description'])}"
                          f" <small>({page.text(hint.description, TEXT_CAPS['description'])})"
                          f"</small>{risks}"))
    for index in scaffold.irreversible_steps:
        for effect, source in effects:
            if effect.step_index == index:
                mark = "✗ IRREVERSIBLE" if not effect.reversible else "no rollback hint"
                items.append(("review", f"Step {index} ({page.text(names.get(index, '?'), TEXT_CAPS['name'])})"
                              f": <strong>{mark}</strong>: {page.text(effect.description, TEXT_CAPS['description'])}"
                              f" <small>({source})</small>"))

    def row(item: tuple[str, str]) -> str:
        return f'<li class="{item[0]}"><label><input type="checkbox" disabled> {item[1]}</label></li>'

    undo = [item for item in items if item[0] == "undo"]
    review = [item for item in items if item[0] == "review"]
    parts = [f'<section id="rollback"><h2>Rollback guidance: {verdict}</h2>',
             '<p class="note">Nothing here is executed, and nothing on this page can execute it: '
             "each item is for a person to do by hand, then to confirm with <code>execaudit "
             f"confirm-rollback {page.text(scaffold.execution_id, TEXT_CAPS['name'])}</code>.</p>",
             f"<p>{page.text(scaffold.reason, TEXT_CAPS['message'])}</p>"]
    parts += [f'<p class="warn">! {page.text(warning, TEXT_CAPS["description"])}</p>'
              for warning in scaffold.warnings[:ROW_CAPS["details"]]]
    if undo:
        parts.append("<h3>To undo, in this order (the reverse of execution; hints as recorded)"
                     f'</h3><ol class="checklist">{page.rows(undo, "checklist items", row)}</ol>')
    if review:
        parts.append("<h3>To review by hand: changes that cannot be undone from a hint</h3>"
                     f'<ul class="checklist">{page.rows(review, "checklist items", row)}</ul>')
    if not items:
        parts.append("<p>No manual step: nothing recorded needs undoing.</p>")
    return "".join(parts) + "</section>"
