"""Steps 5 and 6: stuck stop-limit legs re-priced to the fair price within the slippage bound,
and trailing stop-loss moves (pure rules, no database)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from monitoring.repricing import is_stuck, repriced_limit, trailing_move

TICK = D("0.05")


def reprice(side, stop, limit, buy, sell, pct="1"):
    return repriced_limit(
        side=side,
        stop_price=D(stop),
        limit_price=D(limit),
        buy_fair=D(buy),
        sell_fair=D(sell),
        max_slippage_pct=D(pct),
        tick_size=TICK,
    )


def test_buy_entry_is_stuck_once_buy_fair_reaches_its_stop():
    assert is_stuck(side="BUY", stop_price=D("100"), buy_fair=D("100"), sell_fair=D("99.9"))
    assert not is_stuck(side="BUY", stop_price=D("100"), buy_fair=D("99.95"), sell_fair=D("99.9"))


def test_sell_leg_is_stuck_once_sell_fair_reaches_its_stop():
    assert is_stuck(side="SELL", stop_price=D("95"), buy_fair=D("95.1"), sell_fair=D("95"))
    assert not is_stuck(side="SELL", stop_price=D("95"), buy_fair=D("95.1"), sell_fair=D("95.05"))


def test_stuck_buy_limit_moves_up_to_the_buy_fair_price_on_the_tick_grid():
    assert reprice("BUY", "100", "100.10", "100.52", "100.40") == D("100.55")


def test_buy_limit_never_moves_more_than_the_slippage_bound():
    # 1 % of 100.10 = 1.001: capped at 101.101, floored to the tick.
    assert reprice("BUY", "100", "100.10", "103", "102.9") == D("101.10")


def test_buy_leg_whose_limit_is_already_above_fair_is_left_alone():
    assert reprice("BUY", "100", "101", "100.5", "100.4") is None


def test_untriggered_leg_is_left_alone():
    assert reprice("BUY", "100", "100.10", "99.5", "99.4") is None


def test_stuck_sell_stop_loss_moves_down_to_the_sell_fair_price():
    assert reprice("SELL", "95", "94.90", "94.6", "94.52") == D("94.50")


def test_sell_limit_never_moves_more_than_the_slippage_bound():
    # 0.5 % of 94.90 = 0.4745: floor 94.4255, raised to the tick 94.45.
    assert reprice("SELL", "95", "94.90", "90.1", "90", pct="0.5") == D("94.45")


def _trail(sl_side, reference, stop, limit, fair, trigger, step, tick="0.05"):
    return trailing_move(
        sl_side=sl_side,
        reference_price=D(reference),
        stop_price=D(stop),
        limit_price=None if limit is None else D(limit),
        fair_price=D(fair),
        trigger=D(trigger),
        step=D(step),
        tick_size=D(tick),
    )


@pytest.mark.parametrize(
    ("sl_side", "reference", "stop", "limit", "fair", "trigger", "step", "expected"),
    [
        ("SELL", "100", "95", "94.90", "104.10", "2", "1.5", ("98.0", "97.90", "104")),
        ("BUY", "100", "105", "105.10", "97", "3", "2", ("103", "103.10", "97")),
        # Steps of 0.03 on a 0.05 tick: two steps (0.06) move one tick, never off the grid.
        ("SELL", "100", "95", "94.90", "104.10", "2", "0.03", ("95.05", "94.95", "104")),
    ],
    ids=[
        "long_trailing_stop_moves_one_step_per_full_trigger",
        "short_trailing_stop_moves_down_as_the_price_falls",
        "trailing_moves_whole_ticks_only",
    ],
)
def test_trailing_stop_moves(sl_side, reference, stop, limit, fair, trigger, step, expected):
    move = _trail(sl_side, reference, stop, limit, fair, trigger, step)
    assert (move.stop_price, move.limit_price, move.reference_price) == tuple(
        D(value) for value in expected
    )


@pytest.mark.parametrize(
    ("sl_side", "reference", "stop", "limit", "fair", "trigger", "step"),
    [
        ("SELL", "100", "95", "94.9", "101.95", "2", "1"),
        ("SELL", "100", "99", None, "102", "1", "5"),
        ("SELL", "100", "95", "94.9", "102.5", "2", "0.03"),
    ],
    ids=[
        "trailing_stop_does_not_move_before_the_trigger",
        "trailing_never_puts_the_stop_through_the_price",
        "trailing_less_than_a_tick_is_no_move",
    ],
)
def test_trailing_stop_stays(sl_side, reference, stop, limit, fair, trigger, step):
    assert _trail(sl_side, reference, stop, limit, fair, trigger, step) is None
