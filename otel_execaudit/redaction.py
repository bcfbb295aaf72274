"""Make any value safe to record: redacted, bounded, JSON-safe, and never raising.

One ``Redactor`` runs once per captured value and its output feeds spans, ledger and logs alike,
so a secret cannot leak through one channel that another one scrubbed::

    >>> redactor = Redactor()
    >>> redactor.clean({"user": "ada", "password": "hunter2", "note": "x" * 10}, )
    {'user': 'ada', 'password': '[REDACTED]', 'note': 'xxxxxxxxxx'}
    >>> redactor.clean("Authorization: Bearer abc.def.ghi")
    'Authorization: Bearer [REDACTED]'

Every string it returns, mapping keys included, is valid Unicode. A lone surrogate (UTF-8, and so
the ledger, cannot hold one; ``os.fsdecode`` makes one of each byte of a file name that is not
UTF-8) becomes U+FFFD, and the text ends with a marker saying how many were replaced::

    >>> name = b"caf\\xe9.txt".decode("utf-8", "surrogateescape")  # as os.fsdecode gives it
    >>> redactor.clean({"file": name, name: 1})
    {'file': 'caf�.txt[replaced 1 invalid chars]', 'caf�.txt[replaced 1 invalid chars]': 1}
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import itertools
import math
import re
import reprlib
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

REDACTED = "[REDACTED]"

# Key names whose values are never recorded, searched case-insensitively in the key as written
# and with camelCase split ("dbPassword" is also tried as "db_Password"). Short words count only
# as whole tokens, so "passenger_count", "compass_heading", "bypass_cache" and "tokenizer" stay
# visible while "pass", "user_pass" and "X-Auth-Token" do not.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    r"pass(?:word|wd|phrase)", r"(?<![a-z0-9])pass(?![a-z0-9])", r"token(?!i[sz])", r"secret",
    r"api[-_ ]?key", r"authori[sz]ation", r"(?<![a-z0-9])auth(?![a-z0-9])", r"cookie",
    r"credential", r"private[-_ ]?key", r"session[-_ ]?id",
)

# Secrets spotted inside free text (exception messages, tracebacks, repr of objects), in four
# shapes: an auth scheme and its credential ("Bearer abc..."); a secret-named key, optionally
# quoted as in JSON or a Python repr, then ":" or "=" and a value, optionally quoted; the password
# of a URL ("scheme://user:password@host"); an AWS access key id. Only the value is replaced, so
# quotes and closing brackets after it survive. Every repetition before the value is bounded and
# the text is cut to a window before matching, so the cost stays linear in a bounded length.
_SECRET_IN_TEXT = re.compile(
    r"(?P<scheme>\b(?:bearer|basic|token)\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}"
    r"|(?P<pair>(?<![\w-])\\?[\"']?[\w-]{0,64}?(?:" + "|".join(DEFAULT_SECRET_KEYS) + r")"
    r"[\w-]{0,32}"
    r"\\?[\"']?\s*(?:==?|:=?)\s*(?:(?:bearer|basic|token)\s+)?\\?(?P<quote>[\"'])?)"
    r"(?!\[REDACTED\])(?(quote)(?:\\(?!(?P=quote)).|(?!(?P=quote))[^\\\n])+|[^\s,;&'\")\]}>]+)"
    r"|(?P<url>\b[a-z][a-z0-9+.-]{0,30}://[^\s:/?#@]{0,256}:)(?!\[REDACTED\])[^\s/?#@]+(?=@)"
    r"|\bAKIA[0-9A-Z]{16}\b",
    re.IGNORECASE,
)
# Lone surrogates: a str holds them ("\ud800", os.fsdecode's escapes), UTF-8 and the ledger cannot.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MARGIN = 256  # characters matched beyond a cut, so a secret straddling it is still caught
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_KEY_CACHE_SIZE = 4096  # key names repeat; remembering verdicts keeps the hot path cheap

_SAFE_INTEGER = 2**53 - 1
_SIZED = (list, tuple, dict, set, frozenset, collections.deque, range, types.MappingProxyType)
# Values shown by their repr rather than walked: walking a class or module would record its
# whole namespace, and an exception reads best as its message.
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
           types.MethodType, BaseException)

# reprlib keeps the repr of a container key or set member short however large it is.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxstring = _SHORT_REPR.maxlong = _SHORT_REPR.maxother = 64
for _name in ("maxtuple", "maxlist", "maxarray", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_SHORT_REPR, _name, 8)


def _replace_secret(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("pair") or match.group("url") or "") + REDACTED


def _valid(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD and a marker saying how many.

    >>> _valid("ok"), _valid("\\ud800-\\udcff")
    ('ok', '�-�[replaced 2 invalid chars]')
    """
    if str.isascii(text):  # a flag lookup in CPython: most text pays for nothing more
        return text
    try:
        str.encode(text, "utf-8")
        return text
    except UnicodeEncodeError:
        fixed, count = _SURROGATE.subn("\ufffd", text)
        return f"{fixed}[replaced {count} invalid chars]"


def _truncate(text: str, limit: int) -> str:
    """Keep the start of ``text``; say how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[truncated {len(text) - limit} chars]"


@dataclass(frozen=True)
class Limits:
    """Bounds for one recorded value. Past each bound an explicit marker says what was cut."""

    max_string: int = 2048
    max_items: int = 64
    max_depth: int = 6
    # Budget shared by the whole value, in characters of its JSON form: every string, key,
    # number, separator and marker is charged, so shared sub-lists cannot multiply the output.
    max_total: int = 16384


@dataclass(frozen=True)
class Redactor:
    """Redacts secrets by key name and by pattern in text, and bounds every value."""

    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        pattern = re.compile("|".join(f"(?:{key})" for key in self.secret_keys), re.IGNORECASE)
        object.__setattr__(self, "_key_pattern", pattern)
        object.__setattr__(self, "_verdicts", {})

    def with_keys(self, extra: Iterable[str]) -> Redactor:
        """A redactor that also redacts keys matching the given regular expressions."""
        return Redactor(self.secret_keys + tuple(extra), self.limits)

    def is_secret_key(self, key: str) -> bool:
        verdicts: dict[str, bool] = self._verdicts  # type: ignore[attr-defined]
        verdict = verdicts.get(key)
        if verdict is None:
            search = self._key_pattern.search  # type: ignore[attr-defined]
            verdict = search(key) is not None or search(_CAMEL_HUMP.sub("_", key)) is not None
            if len(verdicts) >= _KEY_CACHE_SIZE:
                verdicts.clear()  # a crude bound; racing threads at worst recompute a verdict
            verdicts[key] = verdict
        return verdict

    def clean(self, value: Any) -> Any:
        """Return a JSON-safe, redacted, bounded copy of ``value``. Never raises."""
        return _Walk(self).value(value, 0)

    def clean_text(self, text: str, max_length: int | None = None) -> str:
        """Redact secrets in free text, bound its length (keeping the end, where a traceback
        puts the error) and make it valid Unicode."""
        try:
            text = text if type(text) is str else str(text)
            limit = max(max_length if max_length is not None else self.limits.max_string, 0)
            # Redact only a window at the end: the regex never sees more than it must.
            window = text[-(limit + _MARGIN):]
            dropped = len(text) - len(window)
            text = _SECRET_IN_TEXT.sub(_replace_secret, window)
            if len(text) > limit:
                dropped += len(text) - limit
                text = f"[truncated {dropped} chars]…" + text[len(text) - limit:]
            return _valid(text)
        except Exception:
            return "[unrecordable text]"

    def bound_name(self, text: str, limit: int = 256) -> str:
        """Bound a name (plan id, step or event name) to ``limit`` characters plus a marker, as
        valid Unicode. Never raises; names are identities, so they are cut but not redacted."""
        try:
            return _valid(_truncate(text if type(text) is str else str(text), max(int(limit), 0)))
        except Exception as error:
            return f"[unrecordable name: {type(error).__name__}]"

    def capture(self, names: Iterable[str], arguments: dict[str, Any]) -> dict[str, Any]:
        """Capture only the named arguments (opt-in per name), cleaned."""
        try:
            captured = {}
            for name in names:
                if name in arguments:
                    captured[name] = REDACTED if self.is_secret_key(name) else arguments[name]
        except Exception as error:
            return {"…": f"[unrecordable arguments: {type(error).__name__}]"}
        return self.clean(captured)


class _Walk:
    """One traversal with its own budget and cycle guard."""

    __slots__ = ("active", "budget", "limits", "redactor")

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.limits = redactor.limits
        self.budget = redactor.limits.max_total
        self.active: set[int] = set()

    def text(self, text: str) -> str:
        limit = min(self.limits.max_string, max(self.budget, 0))
        size = len(text)
        if size > limit:
            # Cut before matching: a 100 MB string must not reach the regex.
            text = _SECRET_IN_TEXT.sub(_replace_secret, text[: limit + _MARGIN])
            text = text[:limit] + f"…[truncated {size - limit} chars]"
        else:
            text = _SECRET_IN_TEXT.sub(_replace_secret, text)
        if not str.isascii(text):  # inline, not in _valid: this is the hot path
            text = _valid(text)  # after redaction, so the pattern cannot eat the marker
        self.budget -= len(text) + 2
        return text

    def note(self, marker: str) -> str:
        """A marker of our own: charged to the budget but never cut, so it always says why."""
        self.budget -= len(marker) + 2
        return marker

    def value(self, value: Any, depth: int) -> Any:
        try:
            return self.convert(value, depth)
        except Exception as error:  # a hostile __repr__, __iter__ or to_dict stays contained
            return self.note(f"[unrecordable {type(value).__name__}: {type(error).__name__}]")

    def convert(self, value: Any, depth: int) -> Any:
        kind = type(value)  # exact types first: the common case pays for no isinstance chain
        if kind is str:
            return self.text(value)
        if kind is int:
            return self.integer(value)
        if value is None or kind is bool:
            self.budget -= 5
            return value
        if kind is float:
            return self.real(value)
        if isinstance(value, enum.Enum):
            return self.value(value.value, depth)
        if isinstance(value, str):
            return self.text(str.__str__(value))
        if isinstance(value, int):
            return self.integer(int(value))
        if isinstance(value, float):
            return self.real(float(value))
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.text(f"<{len(value)} bytes>")
        if depth >= self.limits.max_depth:
            return self.note(f"[truncated: deeper than {self.limits.max_depth} levels]")
        identity = id(value)
        if identity in self.active:
            return self.note("[cycle]")
        self.active.add(identity)
        try:
            return self.structure(value, depth)
        finally:
            self.active.discard(identity)

    def integer(self, value: int) -> int | str:
        if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
            self.budget -= value.bit_length() // 3 + 3  # at least its digits, sign and separator
            return value
        # JCS numbers are IEEE doubles: larger integers are kept exactly, as text.
        try:
            return self.text(str(value))
        except ValueError:  # more digits than Python converts
            return self.note(f"[integer of {value.bit_length()} bits]")

    def real(self, value: float) -> float | str:
        text = repr(value)
        self.budget -= len(text) + 2
        return value if math.isfinite(value) else text

    def structure(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is dict:
            return self.mapping(value.items(), len(value), depth)
        if kind is list or kind is tuple:
            return self.sequence(value, len(value), depth)
        if isinstance(value, _OPAQUE):
            return self.text(_safe_repr(value))
        if isinstance(value, (set, frozenset)):
            return self.sequence(_ordered(value, self.limits.max_items + 1), len(value), depth)
        if isinstance(value, Mapping):
            return self.mapping(value.items(), _size(value), depth)
        for method in ("model_dump", "to_dict"):  # pydantic models, pandas and friends
            export = getattr(value, method, None)
            if callable(export):
                exported = export()
                if isinstance(exported, Mapping):
                    return self.mapping(exported.items(), _size(exported), depth)
                return self.value(exported, depth + 1)  # deeper, so a self-export terminates
        names = _field_names(value)
        if names is not None:
            pairs = ((name, getattr(value, name)) for name in names)
            return self.mapping(pairs, len(names), depth)
        if isinstance(value, Iterator):
            return self.text(_safe_repr(value))  # iterating would consume the caller's data
        if isinstance(value, Iterable):
            return self.sequence(value, _size(value), depth)
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            # Public attributes only; scan a bounded number, an object may hold thousands.
            scanned = itertools.islice(attributes.items(), 4 * self.limits.max_items)
            public = ((key, item) for key, item in scanned if not str(key).startswith("_"))
            first = next(public, None)
            if first is not None:
                self.budget -= len(type(value).__name__) + 16
                cleaned = {"__type__": type(value).__name__}
                return self.mapping(itertools.chain((first,), public), None, depth, cleaned)
        return self.text(_safe_repr(value))

    def key(self, key: Any) -> str:
        if type(key) is not str:
            key = key if isinstance(key, str) else _short_repr(key)
        key = _truncate(key, min(self.limits.max_string, max(self.budget, 1)))
        return key if str.isascii(key) else _valid(key)

    def mapping(self, pairs: Iterable[tuple[Any, Any]], total: int | None, depth: int,
                cleaned: dict[str, Any] | None = None) -> dict[str, Any]:
        cleaned = {} if cleaned is None else cleaned
        self.budget -= 2
        maximum = self.limits.max_items
        is_secret_key = self.redactor.is_secret_key
        for position, (key, item) in enumerate(itertools.islice(pairs, maximum + 1)):
            if position >= maximum or self.budget <= 0:
                cleaned[_unique("…", cleaned)] = self.cut(total, position)
                break
            name = self.key(key)
            secret = is_secret_key(name)
            if name in cleaned:  # {1: "a", "1": "b"}: both survive, the later one renamed
                name = _unique(name, cleaned)
            self.budget -= len(name) + 6
            if secret:
                self.budget -= len(REDACTED) + 2
                cleaned[name] = REDACTED
            else:
                cleaned[name] = self.value(item, depth + 1)
        return cleaned

    def sequence(self, items: Iterable[Any], total: int | None, depth: int) -> list[Any]:
        cleaned = []
        self.budget -= 2
        maximum = self.limits.max_items
        # islice, never len() or a full copy: the value may be a deque of ten million items.
        for position, item in enumerate(itertools.islice(items, maximum + 1)):
            if position >= maximum or self.budget <= 0:
                cleaned.append(self.cut(total, position))
                break
            self.budget -= 2
            cleaned.append(self.value(item, depth + 1))
        return cleaned

    def cut(self, total: int | None, position: int) -> str:
        count = f"{total - position} items" if total is not None else "more items"
        reason = "" if position >= self.limits.max_items else ": size limit reached"
        return self.note(f"[truncated {count}{reason}]")


def _size(value: Any) -> int | None:
    """The length of a built-in container; None for others, whose len() may lie or be slow."""
    return len(value) if isinstance(value, _SIZED) else None


def _ordered(value: Any, count: int) -> list[Any]:
    """Up to ``count`` members of a set, in a stable order. Sorts only what is kept."""
    members = list(itertools.islice(value, count))
    try:
        members.sort()
    except Exception:  # mixed or unorderable members: order by a short, never-raising repr
        members.sort(key=lambda member: (type(member).__name__, _short_repr(member)))
    return members


def _field_names(value: Any) -> list[str] | None:
    """Field names of a dataclass or attrs instance, including those with __slots__."""
    if dataclasses.is_dataclass(value):
        return [item.name for item in dataclasses.fields(value)]
    attributes = getattr(type(value), "__attrs_attrs__", None)
    if isinstance(attributes, tuple):
        return [item.name for item in attributes]
    return None


def _unique(name: str, taken: dict[str, Any]) -> str:
    if name not in taken:
        return name
    number = 2
    while f"{name} ({number})" in taken:
        number += 1
    return f"{name} ({number})"


def _short_repr(value: Any) -> str:
    try:
        text = _SHORT_REPR.repr(value)
    except Exception as error:
        return f"<unrepresentable {type(value).__name__}: {type(error).__name__}>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as error:
        return f"<unrepresentable {type(value).__name__}: {type(error).__name__}>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"
