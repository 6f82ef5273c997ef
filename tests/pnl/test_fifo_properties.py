"""Properties of `pnl.fifo.match_fills`, checked with hypothesis against a unit-lot oracle.

Sign conventions (as in pnl/fifo.py): realized is (exit - entry) x qty for long lots and
(entry - exit) x qty for short lots; cash flow = sells x price - buys x price; open value =
long open qty x entry price - short open qty x entry price.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pnl.fifo import BUY, SELL, Fill, match_fills, merged_lots

T0 = datetime(2025, 1, 6, 4, 0, tzinfo=UTC)


@st.composite
def fill_sequences(draw, max_fills: int = 25) -> list[Fill]:
    """Time-ordered fills with few order ids and equal times, so merging keys collide."""
    count = draw(st.integers(min_value=0, max_value=max_fills))
    fills = []
    moment = T0
    for n in range(count):
        moment += timedelta(seconds=draw(st.integers(min_value=0, max_value=2)))
        ticks = draw(st.integers(min_value=1, max_value=3_000_000))
        fills.append(
            Fill(
                fill_id=f"F{n}",
                order_id=f"O{draw(st.integers(min_value=0, max_value=6))}",
                side=draw(st.sampled_from([BUY, SELL])),
                quantity=draw(st.integers(min_value=1, max_value=12)),
                price=Decimal(ticks) / 10_000,
                time=moment,
            )
        )
    return fills


def unit_lot_oracle(fills: list[Fill]):
    """Brute force: every fill becomes `quantity` unit lots, matched one unit at a time."""
    open_units: deque[Fill] = deque()
    matched: Counter = Counter()
    realized = Decimal(0)
    for fill in fills:
        for _ in range(fill.quantity):
            if open_units and open_units[0].side != fill.side:
                entry = open_units.popleft()
                matched[(entry.fill_id, fill.fill_id)] += 1
                move = fill.price - entry.price
                realized += move if entry.side == BUY else -move
            else:
                open_units.append(fill)
    open_by_fill = Counter(unit.fill_id for unit in open_units)
    signed_open = sum(1 if unit.side == BUY else -1 for unit in open_units)
    return matched, open_by_fill, realized, signed_open


def split_into_partial_fills(fills: list[Fill], data) -> list[Fill]:
    """Replace each fill by consecutive partial fills (same order, side, price, time)."""
    out = []
    for fill in fills:
        cuts = data.draw(
            st.lists(st.integers(min_value=1, max_value=fill.quantity - 1), unique=True)
            if fill.quantity > 1
            else st.just([])
        )
        bounds = [0, *sorted(cuts), fill.quantity]
        for part, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False)):
            out.append(
                Fill(
                    f"{fill.fill_id}.{part}",
                    fill.order_id,
                    fill.side,
                    high - low,
                    fill.price,
                    fill.time,
                )
            )
    return out


@settings(max_examples=300, deadline=None)
@given(fill_sequences())
def test_fifo_equals_the_unit_lot_oracle(fills):
    result = match_fills(fills)
    matched, open_by_fill, realized, signed_open = unit_lot_oracle(fills)

    got_matched: Counter = Counter()
    for lot in result.matched:
        got_matched[(lot.entry.fill_id, lot.exit.fill_id)] += lot.quantity
        move = (lot.exit_price - lot.entry_price) * lot.quantity
        assert lot.realized_pnl == (move if lot.entry_side == BUY else -move)
    assert got_matched == matched
    assert Counter({lot.entry.fill_id: lot.quantity for lot in result.open_lots}) == open_by_fill
    assert result.realized == realized
    assert result.open_quantity == signed_open


@settings(max_examples=300, deadline=None)
@given(fill_sequences(), st.data())
def test_splitting_fills_into_partial_fills_changes_no_total(fills, data):
    whole = match_fills(fills)
    split = match_fills(split_into_partial_fills(fills, data))

    assert split.realized == whole.realized
    assert split.open_quantity == whole.open_quantity
    assert split.open_cost == whole.open_cost
    assert split.cash_flow == whole.cash_flow


@settings(max_examples=200, deadline=None)
@given(fill_sequences(), st.data())
def test_splitting_fills_changes_no_lot_once_rows_are_merged_without_fill_ids(fills, data):
    whole = match_fills(fills)
    split = match_fills(split_into_partial_fills(fills, data))

    assert merged_lots(split) == merged_lots(whole)


@settings(max_examples=300, deadline=None)
@given(fill_sequences())
def test_realized_equals_cash_flow_plus_the_open_position_at_entry_prices(fills):
    result = match_fills(fills)
    cash_flow = sum(
        (f.price * f.quantity if f.side == SELL else -f.price * f.quantity for f in fills),
        Decimal(0),
    )
    open_value = sum(
        (
            lot.entry_price * lot.quantity * (1 if lot.entry_side == BUY else -1)
            for lot in result.open_lots
        ),
        Decimal(0),
    )

    assert result.cash_flow == cash_flow
    assert result.realized == cash_flow + open_value


@settings(max_examples=200, deadline=None)
@given(fill_sequences())
def test_open_lots_are_all_on_one_side_and_sum_to_the_open_quantity(fills):
    result = match_fills(fills)

    assert len({lot.entry_side for lot in result.open_lots}) <= 1
    signed = sum(
        lot.quantity if lot.entry_side == BUY else -lot.quantity for lot in result.open_lots
    )
    assert signed == result.open_quantity == result.buy_quantity - result.sell_quantity


@settings(max_examples=200, deadline=None)
@given(fill_sequences(), st.sampled_from([2, 10, 100, 1000]))
def test_a_multiplier_scales_every_money_figure_and_nothing_else(fills, multiplier):
    plain = match_fills(fills)
    scaled = match_fills(fills, multiplier=multiplier)

    assert [lot.realized_pnl for lot in scaled.matched] == [
        lot.realized_pnl * multiplier for lot in plain.matched
    ]
    assert scaled.realized == plain.realized * multiplier
    assert scaled.open_cost == plain.open_cost * multiplier
    assert scaled.cash_flow == plain.cash_flow * multiplier
    assert [(lot.entry.fill_id, lot.quantity) for lot in scaled.matched] == [
        (lot.entry.fill_id, lot.quantity) for lot in plain.matched
    ]
    assert (scaled.open_quantity, scaled.buy_quantity, scaled.sell_quantity) == (
        plain.open_quantity,
        plain.buy_quantity,
        plain.sell_quantity,
    )
