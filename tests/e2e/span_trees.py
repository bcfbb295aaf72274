"""Helpers to read span trees as Phoenix returns them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# --------------------------------------------------------------------------------------------
# Reading a span tree back


def spans_by_name(spans: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Index Phoenix span dicts by name; a name that occurs twice is an error."""
    index: dict[str, dict[str, Any]] = {}
    for span in spans:
        if span["name"] in index:
            raise AssertionError(f"span name {span['name']!r} occurs more than once")
        index[span["name"]] = dict(span)
    return index


def root_span(spans: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The single span without a parent."""
    roots = [dict(span) for span in spans if not span.get("parent_id")]
    if len(roots) != 1:
        raise AssertionError(
            f"expected one root span, found {[r['name'] for r in roots]}"
        )
    return roots[0]


def children_of(
    spans: Iterable[Mapping[str, Any]], parent: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Spans whose ``parent_id`` is ``parent``'s span id, in start order."""
    parent_id = parent["context"]["span_id"]
    children = [dict(span) for span in spans if span.get("parent_id") == parent_id]
    return sorted(children, key=lambda span: span["start_time"])

