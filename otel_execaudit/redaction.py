"""Make any value safe to record: redacted, bounded, JSON-safe, and never raising.

One ``Redactor`` runs once per captured value and its output feeds spans, ledger and logs alike,
so a secret cannot leak through one channel that another one scrubbed::

    >>> redactor = Redactor()
    >>> redactor.clean({"user": "ada", "password": "hunter2", "note": "x" * 10}, )
    {'user': 'ada', 'password': '[REDACTED]', 'note': 'xxxxxxxxxx'}
    >>> redactor.clean("Authorization: Bearer abc.def.ghi")
    'Authorization: Bearer [REDACTED]'
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

REDACTED = "[REDACTED]"

# Key names whose values are never recorded. Matched anywhere in the key, case-insensitively.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    r"pass(word|wd|phrase)?", r"token", r"secret", r"api[-_ ]?key", r"authori[sz]ation",
    r"cookie", r"credential", r"private[-_ ]?key", r"session[-_ ]?id",
)

# Secrets spotted inside free text (exception messages, descriptions, repr of objects).
_SECRET_IN_TEXT = re.compile(
    r"(?i)(\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|((?:pass(?:word|wd)?|token|secret|api[-_]?key|authorization|cookie)\s*[=:]\s*"
    r"(?:(?:bearer|basic|token)\s+)?)"
    r"(?!\s*\[REDACTED\])[^\s,;&'\")\]}]{3,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
)

_SAFE_INTEGER = 2**53 - 1


def _replace_secret(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + REDACTED
    if match.group(2):
        return match.group(2) + REDACTED
    return REDACTED


@dataclass(frozen=True)
class Limits:
    """Bounds for one recorded value. Past each bound an explicit marker says what was cut."""

    max_string: int = 2048
    max_items: int = 64
    max_depth: int = 6
    max_total: int = 16384  # characters of strings for the whole value, a budget shared by all parts


@dataclass(frozen=True)
class Redactor:
    """Redacts secrets by key name and by pattern in text, and bounds every value."""

    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        pattern = re.compile("|".join(f"(?:{key})" for key in self.secret_keys), re.IGNORECASE)
        object.__setattr__(self, "_key_pattern", pattern)

    def with_keys(self, extra: Iterable[str]) -> Redactor:
        """A redactor that also redacts keys matching the given regular expressions."""
        return Redactor(self.secret_keys + tuple(extra), self.limits)

    def is_secret_key(self, key: str) -> bool:
        return self._key_pattern.search(key) is not None  # type: ignore[attr-defined]

    def clean(self, value: Any) -> Any:
        """Return a JSON-safe, redacted, bounded copy of ``value``. Never raises."""
        return _Walk(self).value(value, 0)

    def clean_text(self, text: str, max_length: int | None = None) -> str:
        """Redact secrets in free text and bound its length, keeping the end (where a
        traceback puts the error)."""
        try:
            text = _SECRET_IN_TEXT.sub(_replace_secret, text)
        except Exception:
            return "[unrecordable text]"
        limit = max_length if max_length is not None else self.limits.max_string
        if len(text) > limit:
            cut = len(text) - limit
            text = f"[truncated {cut} chars]…" + text[cut:]
        return text

    def capture(self, names: Iterable[str], arguments: dict[str, Any]) -> dict[str, Any]:
        """Capture only the named arguments (opt-in per name), cleaned."""
        captured = {}
        for name in names:
            if name in arguments:
                captured[name] = REDACTED if self.is_secret_key(name) else arguments[name]
        return self.clean(captured)


class _Walk:
    """One traversal with its own budget and cycle guard."""

    __slots__ = ("redactor", "limits", "budget", "active")

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.limits = redactor.limits
        self.budget = redactor.limits.max_total
        self.active: set[int] = set()

    def text(self, text: str) -> str:
        text = _SECRET_IN_TEXT.sub(_replace_secret, text)
        limit = min(self.limits.max_string, max(self.budget, 0))
        if len(text) > limit:
            text = text[:limit] + f"…[truncated {len(text) - limit} chars]"
        self.budget -= len(text)
        return text

    def value(self, value: Any, depth: int) -> Any:
        try:
            return self.convert(value, depth)
        except Exception as error:  # a hostile __repr__, __iter__ or to_dict stays contained
            return f"[unrecordable {type(value).__name__}: {type(error).__name__}]"

    def convert(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            # JCS numbers are IEEE doubles: larger integers are kept exactly, as text.
            return int(value) if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else str(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.text(f"<{len(value)} bytes>")
        if depth >= self.limits.max_depth:
            return f"[truncated: deeper than {self.limits.max_depth} levels]"
        if isinstance(value, dict):
            return self.container(value, depth, self.mapping)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self.container(value, depth, self.sequence)
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict) and not isinstance(value, type):
            return self.container(value, depth, lambda item, d: self.value(item.to_dict(), d))
        if isinstance(value, enum.Enum):
            return self.value(value.value, depth)
        if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
            return self.container(value, depth, lambda item, d: self.mapping(
                {name: getattr(item, name) for name in item.__dataclass_fields__}, d))
        return self.text(_safe_repr(value))

    def container(self, value: Any, depth: int, walk: Any) -> Any:
        identity = id(value)
        if identity in self.active:
            return "[cycle]"
        self.active.add(identity)
        try:
            return walk(value, depth)
        finally:
            self.active.discard(identity)

    def mapping(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        cleaned: dict[str, Any] = {}
        for position, (key, item) in enumerate(value.items()):
            if position >= self.limits.max_items or self.budget <= 0:
                cleaned["…"] = f"[truncated {len(value) - position} items]"
                break
            name = key if isinstance(key, str) else _safe_repr(key)
            name = name[: self.limits.max_string]
            if self.redactor.is_secret_key(name):
                cleaned[name] = REDACTED
            else:
                cleaned[name] = self.value(item, depth + 1)
        return cleaned

    def sequence(self, value: Any, depth: int) -> list[Any]:
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        cleaned = []
        for position, item in enumerate(items):
            if position >= self.limits.max_items or self.budget <= 0:
                cleaned.append(f"[truncated {len(value) - position} items]")
                break
            cleaned.append(self.value(item, depth + 1))
        return cleaned


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as error:
        return f"<unrepresentable {type(value).__name__}: {type(error).__name__}>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"
