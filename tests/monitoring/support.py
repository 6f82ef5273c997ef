"""What several monitoring tests check at the XTS simulator."""

from __future__ import annotations

from orders.models import Order, OrderEvent


def cancels_sent(simulator) -> int:
    """How many cancels (DELETE /interactive/orders) the simulator has been sent."""
    return simulator.stats()["requests"].get("DELETE /interactive/orders", 0)


def assert_closed_by_one_cancel(order: Order, simulator) -> None:
    """The bracket's stop-loss filled and ended it: the order is COMPLETED, its target was
    cancelled at the broker exactly once, and no exit was recorded as failed."""
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert cancels_sent(simulator) == 1
    assert not OrderEvent.objects.filter(kind="exit_reduce_failed").exists()
