"""The batch's outer serializer: each item any JSON object, taken as DictField() takes it."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from orders.api.serializers import AnyObjectField, BatchSerializer

ITEMS = [
    {"external_id": "a", "no_of_lots": 2, "targets": [{"price": "1"}], "x": None, "y": ""},
    {},
    {"nested": {"deep": [1, 2.5, True, None]}},
]


@pytest.mark.parametrize("item", ITEMS)
def test_an_item_is_read_as_dict_field_reads_it(item):
    assert AnyObjectField().run_validation(item) == serializers.DictField().run_validation(item)


@pytest.mark.parametrize("item", [[1, 2], "text", 3, None])
def test_an_item_that_is_not_an_object_fails_as_with_dict_field(item):
    plain = BatchSerializer(data={"account_id": 1, "orders": [item]})
    expected = serializers.Serializer()
    expected.fields["account_id"] = serializers.IntegerField()
    expected.fields["orders"] = serializers.ListField(
        child=serializers.DictField(), allow_empty=False, max_length=500
    )
    expected.initial_data = {"account_id": 1, "orders": [item]}

    assert not plain.is_valid()
    assert not expected.is_valid()
    assert plain.errors == expected.errors
