"""Pure rules for steps 5 and 6: when a stop-limit leg is stuck, its new limit, and trailing
stop-loss moves. No Django; Decimal in, Decimal out.

A stop-limit leg is "stuck" when the fair price has gone through its stop (so it has
triggered) but not filled, because the market ran past its limit. For a BUY leg (a long
entry, or the stop-loss of a short) that is buy fair price >= stop price; for a SELL leg (a
short entry, or the stop-loss of a long) sell fair price <= stop price. The limit is then
moved to the fair price, but never further from the old limit than the strategy's
`max_slippage_pct`, and onto the instrument's tick grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from orders.domain.vocabulary import Side

BUY, SELL = Side.BUY, Side.SELL
# The Strategy model's default, for orders placed without a strategy.
DEFAULT_MAX_SLIPPAGE_PCT = Decimal("1")


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    if tick <= 0:
        return price
    return (price / tick).to_integral_value(rounding=rounding) * tick


def is_stuck(
    *, side: str, stop_price: Decimal | None, buy_fair: Decimal | None, sell_fair: Decimal | None
) -> bool:
    """Has the fair price gone through this leg's stop?"""
    if stop_price is None:
        return False
    if side == BUY:
        return buy_fair is not None and buy_fair >= stop_price
    return sell_fair is not None and sell_fair <= stop_price


def repriced_limit(
    *,
    side: str,
    stop_price: Decimal | None,
    limit_price: Decimal | None,
    buy_fair: Decimal | None,
    sell_fair: Decimal | None,
    max_slippage_pct: Decimal,
    tick_size: Decimal,
    anchor_price: Decimal | None = None,
) -> Decimal | None:
    """The new limit for a stuck stop-limit leg, or None when it needs no change. The bound
    is measured from `anchor_price` (the limit before re-pricing began: cycle after cycle
    the limit never runs further than the bound from it), else from the current limit."""
    if limit_price is None or not is_stuck(
        side=side, stop_price=stop_price, buy_fair=buy_fair, sell_fair=sell_fair
    ):
        return None
    anchor = limit_price if anchor_price is None else anchor_price
    bound = anchor * max_slippage_pct / Decimal(100)
    if side == BUY:
        assert buy_fair is not None  # is_stuck needs it
        # Round towards filling (up), but never past the slippage bound.
        target = _to_tick(buy_fair, tick_size, ROUND_CEILING)
        cap = anchor + bound
        new = target if target <= cap else _to_tick(cap, tick_size, ROUND_FLOOR)
        return new if new > limit_price else None
    assert sell_fair is not None  # is_stuck needs it
    target = _to_tick(sell_fair, tick_size, ROUND_FLOOR)
    floor = anchor - bound
    new = target if target >= floor else _to_tick(floor, tick_size, ROUND_CEILING)
    return new if new < limit_price and new > 0 else None


@dataclass(frozen=True)
class TrailMove:
    """A trailing stop-loss move: new stop and limit, and the new reference price."""

    stop_price: Decimal
    limit_price: Decimal | None
    reference_price: Decimal


def trailing_move(
    *,
    sl_side: str,
    reference_price: Decimal,
    stop_price: Decimal,
    limit_price: Decimal | None,
    fair_price: Decimal,
    trigger: Decimal,
    step: Decimal,
    tick_size: Decimal,
) -> TrailMove | None:
    """Move the stop (and the limit by as much, keeping the gap) by `step` for every full
    `trigger` the price has run in the position's favour since the reference. A SELL stop
    protects a long (price rising is favourable); a BUY stop protects a short. The move is
    a whole number of ticks (a strategy's step is one number for instruments of every tick
    size): rounded down, never further than the steps asked; less than a tick is no move."""
    if trigger <= 0 or step <= 0:
        return None
    favourable = fair_price - reference_price if sl_side == SELL else reference_price - fair_price
    if favourable < trigger:
        return None
    times = (favourable / trigger).to_integral_value(rounding=ROUND_FLOOR)
    shift = _to_tick(step * times, tick_size, ROUND_FLOOR)
    if shift <= 0:
        return None
    direction = 1 if sl_side == SELL else -1
    new_stop = stop_price + direction * shift
    # A stop never crosses the price it protects against.
    if (sl_side == SELL and new_stop >= fair_price) or (sl_side == BUY and new_stop <= fair_price):
        return None
    return TrailMove(
        stop_price=new_stop,
        limit_price=None if limit_price is None else limit_price + direction * shift,
        reference_price=reference_price + direction * trigger * times,
    )
