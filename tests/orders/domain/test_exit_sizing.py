"""How much of the brackets' position the broker does not hold (orders.domain.exit_sizing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orders.domain.exit_sizing import (
    broker_shortfalls,
    held_toward,
    lowered_shortfall,
    protectable,
    read_is_current,
)


def test_what_the_broker_holds_toward_long_and_short_brackets():
    assert held_toward(4, "BUY") == 4
    assert held_toward(4, "SELL") == 0
    assert held_toward(-3, "BUY") == 0
    assert held_toward(-3, "SELL") == 3
    assert held_toward(0, "BUY") == 0


def test_brackets_held_the_other_way_are_netted_by_the_broker():
    # Desk long 10 and short 5: the broker's net 5 holds all of both.
    assert held_toward(5, "BUY", opposite=5) == 10
    assert held_toward(5, "SELL", opposite=10) == 5
    # After a sale of 6 in the broker's terminal (net -1): the long side is short of 6.
    assert held_toward(-1, "BUY", opposite=5) == 4
    assert held_toward(-1, "SELL", opposite=10) == 11


def test_the_newest_brackets_take_the_shortfall_first():
    # Oldest first: 10 then 5; the broker holds 12 of the 15.
    assert broker_shortfalls([(1, 10), (2, 5)], 12) == {1: 0, 2: 3}
    assert broker_shortfalls([(1, 10), (2, 5)], 4) == {1: 6, 2: 5}
    assert broker_shortfalls([(1, 10), (2, 5)], 0) == {1: 10, 2: 5}


def test_no_shortfall_when_the_broker_holds_all_or_more():
    assert broker_shortfalls([(1, 10)], 10) == {1: 0}
    assert broker_shortfalls([(1, 10)], 25) == {1: 0}
    assert broker_shortfalls([], 5) == {}


def test_what_may_be_covered_is_never_negative():
    assert protectable(10, 6) == 4
    assert protectable(6, 10) == 0


def test_a_cycle_only_lowers_a_recorded_shortfall():
    # Recorded 6: the broker holds 6 more now (a buy back), or 2 more.
    assert lowered_shortfall(6, 0) == 0
    assert lowered_shortfall(6, 4) == 4
    # Held as before, or less (a read lagging the order book): left as recorded.
    assert lowered_shortfall(6, 6) is None
    assert lowered_shortfall(6, 8) is None
    assert lowered_shortfall(0, 0) is None
    assert lowered_shortfall(6, -2) == 0


def test_a_positions_read_lowers_only_after_the_legs_settled():
    read_at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    margin = timedelta(seconds=5)
    # No leg changed, or the last change came well before the read.
    assert read_is_current(read_at, None, margin)
    assert read_is_current(read_at, read_at - timedelta(minutes=1), margin)
    # A change (a fill, a status) at or after the read began, or just before it: the
    # broker's positions may not hold it yet.
    assert not read_is_current(read_at, read_at + timedelta(seconds=1), margin)
    assert not read_is_current(read_at, read_at, margin)
    assert not read_is_current(read_at, read_at - timedelta(seconds=2), margin)
    assert not read_is_current(read_at, read_at - margin, margin)
    assert read_is_current(read_at, read_at - margin - timedelta(microseconds=1), margin)
