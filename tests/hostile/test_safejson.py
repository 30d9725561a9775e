"""The bounded JSON reader: each limit is enforced and named; valid JSON of ordinary shape parses as json.loads does."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from shared import safejson
from shared.safejson import JsonLimitError


@pytest.mark.parametrize("raw,limit,fragment", [
    (b"[" * 5000 + b"]" * 5000, "depth", "nested deeper than 32"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "depth", "nested deeper"),
    (b'{"n": ' + b"9" * 5000 + b"}", "number-length", "longer than 64"),
    (b'{"n": 1' + b"0" * 5000 + b'.5}', "number-length", "longer than 64"),
    (b'{"hours": 1e309}', "number-range", "out of range"),
    (b'{"hours": -1e309}', "number-range", "out of range"),
    (b"[NaN]", "number-range", "NaN"),
    (b"[Infinity]", "number-range", "Infinity"),
    (b'{"id": "\\ud800"}', "string", "lone UTF-16 surrogate"),
    (b'{"\\udfff": 1}', "string", "lone UTF-16 surrogate"),
    (b"\xff\xfe{}", "encoding", "not valid UTF-8"),
    (b"{not json", "syntax", "not valid JSON"),
    (b"   ", "empty", "empty body"),
    (b"[" + b" " * 2000 + b"]", "size", "larger than 1000 bytes"),
    (b"[" + b"0," * 100_001 + b"0]", "items", "more than 100000"),
])
def test_each_limit_is_refused_and_named(raw, limit, fragment):
    with pytest.raises(JsonLimitError) as err:
        safejson.loads(raw, 1000 if limit == "size" else 1024 * 1024)
    assert err.value.limit == limit and fragment in err.value.reason
    assert err.value.status == (413 if limit == "size" else 400)


def test_brackets_inside_strings_and_escaped_quotes_do_not_count_as_depth():
    assert safejson.loads(b'{"a": "[[[[{{{{\\"]]]]" }') == {"a": '[[[[{{{{"]]]]'}
    assert safejson.nesting_depth(b'[[["\\\\"]]]') == 3


def test_a_surrogate_pair_and_a_bom_are_fine():
    assert safejson.loads(b'\xef\xbb\xbf["\\ud83d\\ude00"]') == ["\N{GRINNING FACE}"]


def test_check_value_applies_the_limits_to_decoded_data():
    deep: list = []
    cur = deep
    for _ in range(100):
        cur.append([])
        cur = cur[0]
    for value, limit in ((deep, "depth"), ({"x": float("inf")}, "number-range"), ({"x": 10 ** 400}, "number-length"),
                         ({"x": "\udc00"}, "string"), ({1: "a"}, "key")):
        with pytest.raises(JsonLimitError) as err:
            safejson.check_value(value)
        assert err.value.limit == limit
    safejson.check_value({"data": {"a": [1, 2.5, None, True, "x"]}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 18, 10 ** 18) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_ordinary_json_parses_exactly_as_json_loads(value):
    raw = json.dumps(value).encode()
    assert safejson.loads(raw) == json.loads(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet='[]{}",:\\0123456789.eE+-ntrufals \ud800', max_size=300))
def test_arbitrary_bytes_either_parse_or_raise_a_named_limit(raw):
    try:
        safejson.loads(raw)
    except JsonLimitError as exc:
        assert exc.limit and exc.reason
