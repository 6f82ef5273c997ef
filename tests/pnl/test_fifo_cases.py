"""Hand-worked FIFO cases (SPEC 7): no database, pure `pnl.fifo`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pnl.fifo import (
    BUY,
    SELL,
    Fill,
    Quote,
    fingerprint_fills,
    lot_unrealized_pnl,
    match_changed_instruments,
    match_fills,
    match_instruments,
    value_open_lots,
)

T0 = datetime(2025, 1, 6, 4, 0, tzinfo=UTC)
D = Decimal


def fills(*rows: tuple[str, str, int, str]) -> list[Fill]:
    """(order id, side, quantity, price) rows, one second apart, fill ids F1, F2..."""
    return [
        Fill(f"F{n}", order, side, quantity, D(price), T0 + timedelta(seconds=n))
        for n, (order, side, quantity, price) in enumerate(rows, start=1)
    ]


def lot_rows(result):
    return [
        (
            lot.entry_order_id,
            lot.exit_order_id,
            lot.quantity,
            lot.entry_price,
            lot.exit_price,
            lot.realized_pnl,
        )
        for lot in result.matched
    ]


def test_several_entries_then_one_exit_close_oldest_first_and_split_the_last():
    result = match_fills(
        fills(
            ("E1", BUY, 10, "100"),
            ("E2", BUY, 20, "102"),
            ("E3", BUY, 5, "104"),
            ("X", SELL, 30, "105"),
        )
    )
    assert lot_rows(result) == [
        ("E1", "X", 10, D("100"), D("105"), D("50")),
        ("E2", "X", 20, D("102"), D("105"), D("60")),
    ]
    assert [(lot.entry_order_id, lot.quantity) for lot in result.open_lots] == [("E3", 5)]
    assert result.realized == D("110")
    assert result.open_quantity == 5
    assert result.open_cost == D("520")


def test_one_entry_closed_by_split_exits_is_split_into_one_lot_per_target():
    result = match_fills(
        fills(
            ("E", BUY, 30, "100"),
            ("T1", SELL, 10, "101.5"),
            ("T2", SELL, 10, "102"),
            ("SL", SELL, 10, "99.25"),
        )
    )
    assert lot_rows(result) == [
        ("E", "T1", 10, D("100"), D("101.5"), D("15")),
        ("E", "T2", 10, D("100"), D("102"), D("20")),
        ("E", "SL", 10, D("100"), D("99.25"), D("-7.5")),
    ]
    assert result.open_lots == []
    assert result.open_quantity == 0
    assert result.realized == D("27.5")


def test_a_sell_larger_than_a_long_position_flips_it_short():
    result = match_fills(fills(("E", BUY, 10, "100"), ("X", SELL, 15, "110")))
    assert lot_rows(result) == [("E", "X", 10, D("100"), D("110"), D("100"))]
    [open_lot] = result.open_lots
    assert (open_lot.entry_side, open_lot.quantity, open_lot.entry_price) == (SELL, 5, D("110"))
    assert open_lot.entry_order_id == "X"
    assert result.open_quantity == -5


def test_short_lots_realize_entry_minus_exit():
    result = match_fills(fills(("E", BUY, 10, "100"), ("X", SELL, 15, "110"), ("C", BUY, 5, "100")))
    assert lot_rows(result)[-1] == ("X", "C", 5, D("110"), D("100"), D("50"))
    assert result.matched[-1].entry_side == SELL
    assert result.realized == D("150")
    assert result.open_quantity == 0


def test_a_buy_larger_than_a_short_position_closes_it_and_opens_a_long_lot():
    result = match_fills(fills(("S", SELL, 10, "50"), ("B", BUY, 25, "45")))
    assert lot_rows(result) == [("S", "B", 10, D("50"), D("45"), D("50"))]
    [open_lot] = result.open_lots
    assert (open_lot.entry_side, open_lot.quantity, open_lot.entry_order_id) == (BUY, 15, "B")
    assert result.open_quantity == 15


def test_an_exit_spanning_several_lots_and_flipping_records_every_piece():
    result = match_fills(
        fills(("A", BUY, 3, "10"), ("B", BUY, 4, "11"), ("X", SELL, 10, "12"), ("Y", BUY, 1, "13"))
    )
    assert lot_rows(result) == [
        ("A", "X", 3, D("10"), D("12"), D("6")),
        ("B", "X", 4, D("11"), D("12"), D("4")),
        ("X", "Y", 1, D("12"), D("13"), D("-1")),
    ]
    assert result.open_quantity == -2
    assert result.cash_flow == D("120") - D("30") - D("44") - D("13")


def test_results_keep_four_decimal_places_exactly():
    result = match_fills(fills(("E", BUY, 3, "0.0001"), ("X", SELL, 3, "0.0003")))
    assert result.realized == D("0.0006")
    assert result.matched[0].realized_pnl == D("0.0006")


def test_long_lots_are_marked_at_the_sell_fair_price_and_short_lots_at_the_buy_fair_price():
    quote = Quote(buy_fair_price=D("106"), sell_fair_price=D("104"), last_traded_price=D("105"))
    long_lots = match_fills(fills(("E", BUY, 10, "100"))).open_lots
    short_lots = match_fills(fills(("E", SELL, 10, "100"))).open_lots

    long_value = value_open_lots(long_lots, quote)
    short_value = value_open_lots(short_lots, quote)

    assert (long_value.lots[0].mark_price, long_value.unrealized) == (D("104"), D("40"))
    assert (short_value.lots[0].mark_price, short_value.unrealized) == (D("106"), D("-60"))


def test_unrealized_falls_back_to_the_ltp_when_the_fair_price_is_missing():
    lots = match_fills(fills(("E", SELL, 4, "100"))).open_lots
    quote = Quote(buy_fair_price=None, sell_fair_price=D("90"), last_traded_price=D("97.5"))

    valuation = value_open_lots(lots, quote)

    assert valuation.lots[0].mark_price == D("97.5")
    assert valuation.unrealized == D("10")


def test_open_lots_without_any_price_are_reported_unvalued():
    lots = match_fills(fills(("E", BUY, 4, "100"))).open_lots

    valuation = value_open_lots(lots, None)

    assert valuation.unrealized == 0
    assert valuation.unvalued_quantity == 4
    assert valuation.lots[0].mark_price is None


@pytest.mark.parametrize(
    "bad, message",
    [
        (Fill("F", "O", "HOLD", 1, D("1"), T0), "side"),
        (Fill("F", "O", BUY, 0, D("1"), T0), "quantity"),
        (Fill("F", "O", BUY, 1, D("1.00001"), T0), "finer"),
    ],
)
def test_invalid_fills_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        match_fills([bad])


def test_fills_out_of_time_order_are_rejected():
    early, late = fills(("A", BUY, 1, "1"), ("B", BUY, 1, "1"))
    with pytest.raises(ValueError, match="time order"):
        match_fills([late, early])


def test_fingerprint_ignores_how_a_price_is_written_but_sees_any_change():
    base = fills(("A", BUY, 1, "100.5"), ("B", SELL, 1, "101"))
    same = fills(("A", BUY, 1, "100.5000"), ("B", SELL, 1, "101.00"))
    changed = fills(("A", BUY, 2, "100.5"), ("B", SELL, 1, "101"))

    assert fingerprint_fills(base) == fingerprint_fills(same)
    assert fingerprint_fills(base) != fingerprint_fills(changed)
    assert fingerprint_fills(base) != fingerprint_fills(base, salt="legs")


def test_incremental_matching_recomputes_only_changed_instruments():
    first = {"A": fills(("A1", BUY, 1, "10")), "B": fills(("B1", SELL, 2, "20"))}
    earlier = match_changed_instruments(first, {})
    assert set(earlier.results) == {"A", "B"}

    second = {"A": first["A"], "B": fills(("B1", SELL, 2, "20"), ("B2", BUY, 2, "19"))}
    later = match_changed_instruments(second, earlier.fingerprints)

    assert set(later.results) == {"B"}
    assert later.unchanged == {"A"}
    assert later.results["B"].realized == D("2")

    gone = match_changed_instruments({"B": second["B"]}, later.fingerprints)
    assert gone.removed == {"A"}
    assert gone.unchanged == {"B"}


# ---- the contract multiplier: one unit is worth price x multiplier rupees -----------------


def test_one_unit_of_a_multiplier_10_contract_bought_at_100_and_sold_at_101_realizes_10():
    result = match_fills(fills(("E", BUY, 1, "100"), ("X", SELL, 1, "101")), multiplier=10)

    assert lot_rows(result) == [("E", "X", 1, D("100"), D("101"), D("10"))]
    assert (result.realized, result.cash_flow) == (D("10"), D("10"))


def test_the_multiplier_scales_money_but_never_quantities_or_prices():
    rows = fills(("E1", BUY, 3, "100"), ("E2", BUY, 2, "102.5"), ("X", SELL, 4, "101.25"))

    plain = match_fills(rows)
    scaled = match_fills(rows, multiplier=100)

    # 3 x 1.25 - 1 x 1.25 = 2.50 a unit of price; x 100.
    assert [lot.realized_pnl for lot in scaled.matched] == [D("375"), D("-125")]
    assert scaled.realized == plain.realized * 100 == D("250")
    assert scaled.open_cost == plain.open_cost * 100 == D("10250")  # 1 x 102.5 x 100
    assert scaled.cash_flow == plain.cash_flow * 100
    assert (scaled.open_quantity, scaled.buy_quantity, scaled.sell_quantity) == (1, 5, 4)
    assert [(lot.quantity, lot.entry_price) for lot in scaled.open_lots] == [(1, D("102.5"))]
    # The identity of the module docstring holds in rupees.
    assert scaled.realized == scaled.cash_flow + scaled.open_cost


def test_lots_with_recurring_amounts_each_carry_the_multiplied_pnl():
    # Equal tick amounts are converted once (a cache): every lot must still be x multiplier.
    rows = fills(
        ("E1", BUY, 2, "10"), ("X1", SELL, 2, "11"), ("E2", BUY, 2, "20"), ("X2", SELL, 2, "21")
    )

    result = match_fills(rows, multiplier=10)

    assert [lot.realized_pnl for lot in result.matched] == [D("20"), D("20")]
    assert result.realized == D("40")


def test_open_lots_are_valued_with_the_multiplier():
    quote = Quote(buy_fair_price=D("106"), sell_fair_price=D("104"), last_traded_price=D("105"))
    long_lots = match_fills(fills(("E", BUY, 3, "100")), multiplier=10).open_lots
    short_lots = match_fills(fills(("E", SELL, 3, "100")), multiplier=10).open_lots

    long_value = value_open_lots(long_lots, quote, multiplier=10)
    short_value = value_open_lots(short_lots, quote, multiplier=10)

    assert (long_value.lots[0].unrealized_pnl, long_value.unrealized) == (D("120"), D("120"))
    assert short_value.unrealized == D("-180")  # 3 x (100 - 106) x 10
    assert lot_unrealized_pnl(BUY, D("100"), 3, D("104"), multiplier=10) == D("120")


@pytest.mark.parametrize("bad", [0, -10, 1.5, D("10"), "10", True, None])
def test_a_multiplier_that_is_not_a_positive_int_is_rejected(bad):
    one = fills(("E", BUY, 1, "100"))
    with pytest.raises(ValueError, match="multiplier"):
        match_fills(one, multiplier=bad)
    with pytest.raises(ValueError, match="multiplier"):
        value_open_lots(match_fills(one).open_lots, None, multiplier=bad)


def test_the_fingerprint_sees_the_multiplier_and_one_leaves_it_as_it_was():
    rows = fills(("A", BUY, 1, "100"), ("B", SELL, 1, "101"))

    assert fingerprint_fills(rows, multiplier=1) == fingerprint_fills(rows)
    assert fingerprint_fills(rows, multiplier=10) != fingerprint_fills(rows)
    assert fingerprint_fills(rows, multiplier=10) != fingerprint_fills(rows, multiplier=100)


def test_a_changed_multiplier_rematches_the_instrument_with_it():
    book = {
        "MCX": fills(("A", BUY, 1, "100"), ("B", SELL, 1, "101")),
        "NSE": fills(("C", BUY, 1, "5")),
    }
    before = match_changed_instruments(book, {})  # the master did not know the contract yet
    assert before.results["MCX"].realized == D("1")

    after = match_changed_instruments(book, before.fingerprints, multipliers={"MCX": 10})

    assert set(after.results) == {"MCX"} and after.unchanged == {"NSE"}
    assert after.results["MCX"].realized == D("10")
    assert match_instruments(book, multipliers={"MCX": 10})["MCX"].realized == D("10")
