"""canonical_bytes is RFC 8785 (checked against the reference implementation) and fast."""

from __future__ import annotations

import enum
import hashlib
import math
import uuid
from collections import OrderedDict
from types import MappingProxyType

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_execaudit.ledger.canonical import (
    GENESIS_PREV,
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    canonical_bytes,
    leaf_hash,
    leaf_hash_hex,
)

safe_integers = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
# Characters chosen to hit every place where orjson and JCS could disagree: control characters,
# quote and backslash, DEL, U+2028, the U+E000..U+FFFF block and astral characters.
tricky_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "\ue000", "\uffff", "\U0001f600"]),
    ),
    max_size=12,
)
scalars = st.none() | st.booleans() | safe_integers | finite_floats | tricky_text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(tricky_text, children, max_size=5),
    max_leaves=30,
)
float_free_values = st.recursive(
    st.none() | st.booleans() | safe_integers | tricky_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(tricky_text, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_matches_reference_for_any_json_value(value):
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(tricky_text, float_free_values, max_size=8))
def test_fast_path_objects_match_reference(value):
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=MAX_SAFE_INTEGER + 1, max_value=2**200), st.booleans())
def test_large_integers_become_decimal_strings(magnitude, negative):
    number = -magnitude if negative else magnitude
    assert canonical_bytes({"n": number}) == rfc8785.dumps({"n": str(number)})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 2, "a": 1}, b'{"a":1,"b":2}'),
        ({"x": 1.0}, b'{"x":1}'),
        ({"x": -0.0}, b'{"x":0}'),
        ({"x": 1e-05}, b'{"x":0.00001}'),
        ({"x": 1e-07}, b'{"x":1e-7}'),
        ({"x": 1e20}, b'{"x":100000000000000000000}'),
        ({"x": 1e21}, b'{"x":1e+21}'),
        ({"x": 2**53 - 1}, b'{"x":9007199254740991}'),
        ({"x": 2**53}, b'{"x":"9007199254740992"}'),
        ({"x": -(2**64)}, b'{"x":"-18446744073709551616"}'),
        ({"s": "\x00\x08\t\n\x0b\x0c\r\x1f\x7f"}, b'{"s":"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\x7f"}'),
        ({"s": 'quote " backslash \\ slash /'}, b'{"s":"quote \\" backslash \\\\ slash /"}'),
        ({"s": "\u20ac\u2028"}, '{"s":"\u20ac\u2028"}'.encode()),
        # UTF-16 order: U+1F600 (D83D DE00) sorts before U+E000 although its code point is larger.
        ({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}'.encode()),
        ({"t": (1, [True, False, None])}, b'{"t":[1,[true,false,null]]}'),
        (OrderedDict([("b", 1), ("a", 2)]), b'{"a":2,"b":1}'),
        (MappingProxyType({"b": {"d": 1}, "a": []}), b'{"a":[],"b":{"d":1}}'),
    ],
)
def test_known_vectors(value, expected):
    assert canonical_bytes(value) == expected


def test_rfc8785_appendix_b_numbers():
    # A selection of RFC 8785 Appendix B (IEEE 754 bit pattern -> expected JCS text).
    vectors = {
        "0000000000000000": "0",
        "8000000000000000": "0",
        "0000000000000001": "5e-324",
        "7fefffffffffffff": "1.7976931348623157e+308",
        "4340000000000000": "9007199254740992",
        "444b1ae4d6e2ef50": "1e+21",
        "3eb0c6f7a0b5ed8d": "0.000001",
        "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
        "41b3de4355555555": "333333333.3333333",
    }
    for bits, text in vectors.items():
        number = float.fromhex(_bits_to_hex_float(bits))
        assert canonical_bytes([number]) == f"[{text}]".encode()


def _bits_to_hex_float(bits: str) -> str:
    import struct

    return float.hex(struct.unpack(">d", bytes.fromhex(bits))[0])


def test_int_and_str_enums_serialise_as_their_values():
    class Colour(enum.IntEnum):
        RED = 7

    class Mode(str, enum.Enum):
        LIVE = "live"

    assert canonical_bytes({"c": Colour.RED, "m": Mode.LIVE}) == b'{"c":7,"m":"live"}'


@pytest.mark.parametrize(
    "value",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": "\ud800"},
        {"\udfff": 1},
        {1: "non-str key"},
        {"x": b"bytes"},
        {"x": uuid.UUID(int=1)},
        {"x": {1, 2}},
        {"x": enum.Enum("Plain", "A").A},
    ],
)
def test_rejects_values_outside_the_json_model(value):
    with pytest.raises(CanonicalizationError):
        canonical_bytes(value)


def test_leaf_hash_is_rfc6962():
    # RFC 6962 empty-leaf hash, also the 1-leaf root in shared/vectors/README.md.
    assert leaf_hash_hex(b"") == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert leaf_hash_hex(b"abc") == leaf_hash(b"abc").hex()
    assert GENESIS_PREV == "0" * 64
