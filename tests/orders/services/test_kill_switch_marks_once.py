"""A kill switch marks a bracket exit-requested once: a second one (pressed again while the
first's exit is still closing the position), or one after a trader's position exit, leaves
the mark as it is and writes no second event for it. Both once marked every such bracket
again, with another audit event each.

Over the XTS simulator, whose MARKET exit stays working until the next sync: the bracket is
still live, exit-requested, when the second run locks it."""

from __future__ import annotations

import pytest

from orders.models import Order, OrderEvent
from orders.positions.services import exit_positions
from orders.services.kill_switch import kill_switch
from tests.factories import legs_of

pytestmark = pytest.mark.django_db(transaction=True)


def _mark(bracket: Order) -> tuple:
    row = Order.objects.get(pk=bracket.pk)
    return row.exit_requested_at, row.exit_requested_entry_filled


def _marks(bracket: Order) -> list[str]:
    kinds = ("kill_switch", "position_exit")
    return list(
        OrderEvent.objects.filter(order=bracket, kind__in=kinds)
        .order_by("id")
        .values_list("kind", flat=True)
    )


@pytest.mark.parametrize(
    ("first_exit", "marked_by"),
    [(kill_switch, "kill_switch"), (exit_positions, "position_exit")],
    ids=["after-a-kill-switch", "after-a-position-exit"],
)
def test_a_kill_switch_marks_no_bracket_twice(simulator, protected_bracket, first_exit, marked_by):
    user, account, _stock, bracket = protected_bracket
    first_exit(account=account, actor=f"user:{user.pk}")
    assert [leg.status for leg in legs_of(bracket, "EXIT")] == ["OPEN"]
    first = _mark(bracket)
    assert first[0] is not None

    kill_switch(account=account, actor=f"user:{user.pk}")

    assert _mark(bracket) == first
    assert _marks(bracket) == [marked_by]
