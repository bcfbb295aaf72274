"""Recorded text made safe to show: anyone may have written it (a step name, an error message,
an execution id), and a terminal obeys what it prints.

``visible`` writes every control character as Python writes it in a string (``\\x1b``,
``\\x9b``, ``\\u202e``): the C0 and C1 controls, DEL, and the bidirectional overrides and
isolates that reorder what a line seems to say ("Trojan source"). Text shown as lines (a
traceback, an error message) keeps its newlines and tabs; everything else keeps nothing, so
that one recorded value is one line. ``visible_json`` does the same to a JSON document in the
JSON's own terms (``\\u009b``), so that it stays the same JSON, value for value::

    >>> print(visible("fetch\\x1b[2J\\x1b[H"))
    fetch\\x1b[2J\\x1b[H
    >>> print(visible("line one\\nline two", lines=True))
    line one
    line two
    >>> visible("two\\nlines")
    'two\\\\nlines'
    >>> visible_json('{"name": "a\\x9b"}')
    '{"name": "a\\\\u009b"}'

A backslash already in the text is left as it is: ``\\x1b`` shown may have been recorded as
those four characters; ``--json`` tells the two apart.
"""

from __future__ import annotations

from typing import Any

from otel_execaudit.recording.records import escaped_text

__all__ = ["visible", "visible_json"]

# What a terminal may act on, or what reorders a line: C0, DEL, C1, the line and paragraph
# separators, and the Unicode bidirectional controls (marks, embeddings, overrides, isolates).
_CONTROL_POINTS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F,
                   0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]


def _written(point: int) -> str:
    short = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(point)
    return short or (f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}")


_ONE_LINE = {point: _written(point) for point in _CONTROL_POINTS}
_LINES = {point: text for point, text in _ONE_LINE.items() if point not in (0x09, 0x0A)}
# JSON (json.dumps) has escaped C0 already; what it leaves, as JSON escapes of the same value.
_JSON = {point: f"\\u{point:04x}" for point in _CONTROL_POINTS if point >= 0x20}
_JSON.update({point: f"\\u{point:04x}" for point in range(0xD800, 0xE000)})  # lone surrogates


def visible(value: Any, *, lines: bool = False) -> str:
    """``value`` as text that prints as itself: controls written out (``\\x1b``), bytes that
    are not UTF-8 escaped. ``lines=True`` keeps newlines and tabs (a CRLF is a newline).

    Example: ``click.echo(visible(step_name))``
    """
    text = value if isinstance(value, str) else str(value)
    if lines:
        text = text.replace("\r\n", "\n").translate(_LINES)
    else:
        text = text.translate(_ONE_LINE)
    return escaped_text(text)


def visible_json(text: str) -> str:
    """A JSON document's text (``json.dumps(..., ensure_ascii=False)``) with the controls JSON
    leaves unescaped (DEL, C1, bidirectional controls, U+2028/U+2029) and lone surrogates
    written as ``\\uXXXX``: the same JSON value, safe to print. They can only stand inside
    strings, where an escape means the very same character.

    Example: ``click.echo(visible_json(json.dumps(document, ensure_ascii=False)))``
    """
    return text.translate(_JSON)
