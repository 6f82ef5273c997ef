"""The pure domain's vocabulary is the database's: every stored value, and no other."""

from __future__ import annotations

import pytest

from orders.domain import vocabulary
from orders.models import Order, OrderLeg


@pytest.mark.parametrize(
    ("domain_enum", "model_choices"),
    [
        (vocabulary.OrderKind, Order.Kind),
        (vocabulary.OrderStatus, Order.Status),
        (vocabulary.LegRole, OrderLeg.Role),
        (vocabulary.LegStatus, OrderLeg.Status),
    ],
)
def test_domain_values_are_exactly_the_model_choices(domain_enum, model_choices):
    assert [member.value for member in domain_enum] == list(model_choices.values)


def test_a_domain_status_equals_the_model_choice_and_the_stored_string():
    assert vocabulary.LegStatus.FILLED == OrderLeg.Status.FILLED == "FILLED"
    assert {vocabulary.OrderStatus.OPEN: 1}.get(Order.Status.OPEN) == 1
