"""Request bodies are parsed strictly: bounded nesting and unique keys (issue 12, hostile bodies)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_contract import json_body

SCALARS = st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\,:', max_size=8)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(DOCUMENTS)
def test_nesting_depth_is_the_documents_depth_whatever_brackets_its_strings_hold(document):
    assert json_body.nesting_depth(json.dumps(document)) == depth_of(document)


@given(DOCUMENTS)
def test_any_document_within_the_bound_parses_to_what_json_reads(document):
    text = json.dumps(document)
    assert json_body.parse(text) == json.loads(text)
    assert json_body.parse(text.encode("utf-16")) == json.loads(text)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
@pytest.mark.parametrize("depth", [json_body.MAX_DEPTH + 1, 5_000, 100_000])
def test_nesting_past_the_bound_is_refused_without_recursing(opener, depth):
    closer = "]" if opener == "[" else "}"
    with pytest.raises(json_body.BodyError, match=f"deeper than {json_body.MAX_DEPTH} levels"):
        json_body.parse(opener * depth + "1" + closer * depth)
    assert json_body.parse(opener * json_body.MAX_DEPTH + "1" + closer * json_body.MAX_DEPTH) is not None


@pytest.mark.parametrize(
    "text",
    ['{"amount": "1.00", "amount": "9.00"}', '{"card": {"token": "tok_abcdefgh", "token": "tok_other123"}}'],
)
def test_a_repeated_key_at_any_level_is_refused_naming_it(text):
    with pytest.raises(json_body.BodyError, match="repeats the key"):
        json_body.parse(text)
    assert json_body.parse(text, unique_keys=False) == json.loads(text)  # what the edge passes on


@pytest.mark.parametrize("text", ["", "{", '{"a": 1', b"\xff\xfe\xff", "[1,]"])
def test_invalid_json_is_a_body_error_not_a_crash(text):
    with pytest.raises(json_body.BodyError, match="not valid JSON"):
        json_body.parse(text)
