"""The API's renderer writes exactly what DRF's JSONRenderer writes, byte for byte, for any
answer the API can give; where orjson cannot, DRF's own path answers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer

from trading_site.core.api.renderers import FastJSONRenderer

fast, drf = FastJSONRenderer(), JSONRenderer()

# Everything but floats, whose shortest spelling orjson and `repr` may choose differently.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(),  # every code point but lone surrogates: U+2028, U+2029, controls, emoji
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))])),
    st.dates(),
    st.times(),
    st.uuids(),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
        st.dictionaries(st.integers(), inner, max_size=3),
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_the_same_bytes_as_drf_for_any_document(document):
    assert fast.render(document) == drf.render(document)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=10))
def test_floats_read_back_as_the_same_numbers(numbers):
    assert json.loads(fast.render({"figures": numbers})) == json.loads(
        drf.render({"figures": numbers})
    )


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "document",
    [
        {"line": "a\u2028b\u2029c"},  # escaped, so the answer stays a JavaScript subset
        {"when": datetime(2026, 12, 2, 9, 15, 0, 123456, tzinfo=UTC)},  # "Z", as DRF spells it
        {"price": Decimal("101.2500"), "qty": Decimal("-0")},
        {"lazy": gettext_lazy("Not found.")},
        {"tags": {"b"}, "pair": ("x", 1), "span": timedelta(seconds=90)},
        {"huge": 2**70, "nested": [[[[1]]]]},  # past orjson's 64 bits: DRF's way
        {1: "int key", None: "none key", 2.5: "float key"},
        {"id": uuid.UUID(int=7), "day": date(2026, 12, 2), "at": time(9, 15)},
        {},
        [],
        "",
    ],
)
def test_the_same_bytes_as_drf_for_the_awkward_values(document):
    assert fast.render(document) == drf.render(document)


def test_what_neither_can_write_fails_the_same_way():
    with pytest.raises(TypeError):
        drf.render({"point": Point(1)})  # a dataclass is no JSON to DRF
    with pytest.raises(TypeError):
        fast.render({"point": Point(1)})  # nor here (orjson alone would write an object)
    with pytest.raises(UnicodeEncodeError):
        drf.render({"s": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        fast.render({"s": "\ud800"})


def test_nothing_is_an_empty_body_and_indent_is_drfs_own():
    assert fast.render(None) == b""
    document = {"a": [1, {"b": "c"}]}
    indented = fast.render(document, "application/json; indent=4")
    assert indented == drf.render(document, "application/json; indent=4")
    assert indented.startswith(b"{\n    ")


def test_a_non_finite_float_is_null_where_drf_failed():
    with pytest.raises(ValueError, match="Out of range float"):
        drf.render({"ratio": float("nan")})
    assert fast.render({"ratio": float("nan"), "top": float("inf")}) == b'{"ratio":null,"top":null}'


def test_the_api_answers_through_it(client):
    response = client.get("/api/orders")  # no credentials: the error envelope
    assert response.status_code == 401
    assert isinstance(response.accepted_renderer, FastJSONRenderer)
    assert response.content == drf.render(response.data)
