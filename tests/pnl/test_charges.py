"""Estimated Indian charges (pnl.charges): hand-worked contract-note examples per segment.

Each expected figure below is worked out by hand from the rates in pnl.charges (cited
there): every line rounded to the paisa, GST 18 % on brokerage + exchange + SEBI lines."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pnl.charges import (
    BrokeragePlan,
    Charges,
    ExecutedOrder,
    RatesError,
    charges_of,
    rates_with,
    total_charges,
)

D = Decimal
FLAT_20 = BrokeragePlan(mode="FLAT", flat_per_order=D("20"))
PCT_CAPPED = BrokeragePlan(mode="PERCENT", percent=D("0.03"), cap_per_order=D("20"))


def order(cls, side, turnover, *, product="MIS", exchange="NSE"):
    return ExecutedOrder(
        instrument_class=cls, exchange=exchange, side=side, product=product, turnover=D(turnover)
    )


def test_equity_intraday_buy_pays_stamp_duty_and_no_stt():
    # 100 shares at 1,000: brokerage 20; exchange 1,00,000 x 0.00297 % = 2.97; SEBI 0.10;
    # stamp 0.003 % = 3.00; GST 18 % of 23.07 = 4.1526 -> 4.15.
    got = charges_of(order("EQUITY", "BUY", "100000"), plan=FLAT_20)
    assert got == Charges(
        brokerage=D("20"),
        stt=D("0"),
        exchange=D("2.97"),
        sebi=D("0.10"),
        stamp=D("3.00"),
        gst=D("4.15"),
    )
    assert got.total == D("30.22")


def test_equity_intraday_sell_pays_stt_and_no_stamp_duty():
    # 100 at 1,010: STT 0.025 % of 1,01,000 = 25.25; exchange 2.9997 -> 3.00; SEBI 0.101 ->
    # 0.10; GST 18 % of 23.10 = 4.158 -> 4.16.
    got = charges_of(order("EQUITY", "SELL", "101000"), plan=FLAT_20)
    assert (got.stt, got.exchange, got.sebi, got.stamp, got.gst) == (
        D("25.25"),
        D("3.00"),
        D("0.10"),
        D("0"),
        D("4.16"),
    )
    assert got.total == D("52.51")


def test_equity_delivery_taxes_both_sides_and_a_free_delivery_plan_charges_no_brokerage():
    plan = BrokeragePlan(mode="FLAT", flat_per_order=D("20"), delivery_free=True)
    # 50 at 2,000 = 1,00,000 CNC: STT 0.1 % = 100; exchange 2.97; SEBI 0.10; stamp 0.015 %
    # = 15.00; GST 18 % of (0 + 2.97 + 0.10) = 0.5526 -> 0.55.
    buy = charges_of(order("EQUITY", "BUY", "100000", product="CNC"), plan=plan)
    assert (buy.brokerage, buy.stt, buy.stamp, buy.gst, buy.total) == (
        D("0"),
        D("100.00"),
        D("15.00"),
        D("0.55"),
        D("118.62"),
    )
    sell = charges_of(order("EQUITY", "SELL", "100000", product="CNC"), plan=plan)
    assert (sell.stt, sell.stamp, sell.total) == (D("100.00"), D("0"), D("103.62"))


def test_futures_percentage_brokerage_is_capped_per_order():
    # NIFTY future, 65 x 24,000 = 15,60,000: 0.03 % = 468 -> capped at 20; STT 0.02 % on the
    # sell = 312; exchange 0.00173 % = 26.988 -> 26.99; SEBI 1.56; GST 18 % of 48.55 = 8.739
    # -> 8.74.
    sell = charges_of(order("FUTURES", "SELL", "1560000", product="NRML"), plan=PCT_CAPPED)
    assert sell == Charges(
        brokerage=D("20"),
        stt=D("312.00"),
        exchange=D("26.99"),
        sebi=D("1.56"),
        stamp=D("0"),
        gst=D("8.74"),
    )
    assert sell.total == D("369.29")
    # The buy: no STT; stamp 0.002 % = 31.20.
    buy = charges_of(order("FUTURES", "BUY", "1560000", product="NRML"), plan=PCT_CAPPED)
    assert (buy.stt, buy.stamp, buy.total) == (D("0"), D("31.20"), D("88.49"))


def test_percentage_brokerage_under_the_cap_is_the_percentage():
    got = charges_of(order("EQUITY", "BUY", "10000"), plan=PCT_CAPPED)
    assert got.brokerage == D("3.00")


def test_options_are_charged_on_the_premium():
    # Buy 65 at a premium of 100 = 6,500: exchange 0.03503 % = 2.27695 -> 2.28; SEBI 0.0065
    # -> 0.01; stamp 0.003 % = 0.195 -> 0.20; GST 18 % of 22.29 = 4.0122 -> 4.01.
    buy = charges_of(order("OPTIONS", "BUY", "6500", product="NRML"), plan=FLAT_20)
    assert (buy.stt, buy.exchange, buy.sebi, buy.stamp, buy.gst, buy.total) == (
        D("0"),
        D("2.28"),
        D("0.01"),
        D("0.20"),
        D("4.01"),
        D("26.50"),
    )
    # Sell 65 at 120 = 7,800: STT 0.1 % = 7.80; exchange 2.73234 -> 2.73; GST of 22.74 = 4.09.
    sell = charges_of(order("OPTIONS", "SELL", "7800", product="NRML"), plan=FLAT_20)
    assert (sell.stt, sell.exchange, sell.gst, sell.total) == (
        D("7.80"),
        D("2.73"),
        D("4.09"),
        D("34.63"),
    )


def test_bse_cash_has_its_own_exchange_rate():
    # 0.00375 % of 1,00,000 = 3.75; GST 18 % of 23.85 = 4.293 -> 4.29.
    got = charges_of(order("EQUITY", "BUY", "100000", exchange="BSE"), plan=FLAT_20)
    assert (got.exchange, got.gst, got.total) == (D("3.75"), D("4.29"), D("31.14"))


def test_currency_and_commodity_are_not_estimated_and_counted_apart():
    assert charges_of(order("OTHER", "BUY", "1000"), plan=FLAT_20) is None
    summary = total_charges(
        [
            order("EQUITY", "BUY", "100000"),
            order("EQUITY", "SELL", "101000"),
            order("OTHER", "SELL", "5000"),
        ],
        plan=FLAT_20,
    )
    assert (summary.orders, summary.not_estimated) == (2, 1)
    assert summary.charges.total == D("82.73")  # 30.22 + 52.51


def test_a_rate_override_from_settings_changes_only_that_rate():
    rates = rates_with({"EQUITY_INTRADAY": {"stt_sell": "0.0005"}, "gst": "0.18"})
    got = charges_of(order("EQUITY", "SELL", "100000"), plan=FLAT_20, rates=rates)
    assert got.stt == D("50.00")
    assert got.exchange == D("2.97")


@pytest.mark.parametrize(
    "overrides",
    [
        {"NO_SUCH_SEGMENT": {}},
        {"FUTURES": {"stt_everything": "0.1"}},
        {"gst": "18"},
        {"gst": "abc"},
        {"FUTURES": {"stt_sell": "-0.1"}},
    ],
)
def test_a_bad_rate_override_is_refused(overrides):
    with pytest.raises(RatesError):
        rates_with(overrides)
