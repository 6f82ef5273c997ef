"""The paper exchange's pure matching rules (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.brokers.paper.matching import (
    InstrumentRules,
    NewOrder,
    OrderState,
    PaperConfig,
    Quote,
    is_randomly_rejected,
    match_order,
    required_margin,
    validate_new_order,
)
from orders.domain.vocabulary import LegStatus

D = Decimal
RULES = InstrumentRules(
    lot_size=1, tick_size=D("0.05"), freeze_quantity=500, band_low=D("90"), band_high=D("110")
)
CONFIG = PaperConfig()


def quote(buy, sell=None):
    return Quote(buy_price=D(buy), sell_price=D(sell if sell is not None else buy))


def state(side="BUY", order_type="LIMIT", quantity=10, **kw):
    return OrderState(side=side, order_type=order_type, quantity=quantity, **kw)


def test_market_buy_fills_in_full_at_the_buy_price():
    result = match_order(state(order_type="MARKET"), quote("100.10", "100.00"), RULES, CONFIG)
    assert (result.fill.quantity, result.fill.price, result.state.status) == (
        10,
        D("100.1000"),
        LegStatus.FILLED,
    )


def test_market_sell_with_slippage_is_snapped_down_to_the_tick():
    config = PaperConfig(slippage_bps=D("25"))  # 100 * 0.9975 = 99.75
    result = match_order(
        state(side="SELL", order_type="MARKET"), quote("100.02", "100.02"), RULES, config
    )
    assert result.fill.price == D("99.7500")


@pytest.mark.parametrize(
    ("side", "price", "fills"),
    [
        ("BUY", "99.95", False),
        ("BUY", "99.00", True),
        ("SELL", "100.05", False),
        ("SELL", "101", True),
    ],
)
def test_limit_orders_fill_only_once_the_price_crosses(side, price, fills):
    limit = D("99.00") if side == "BUY" else D("101.00")
    result = match_order(state(side=side, limit_price=limit), quote(price), RULES, CONFIG)
    assert (result.fill is not None) is fills


def test_limit_fill_is_at_the_limit_or_better():
    result = match_order(state(limit_price=D("100.00")), quote("98.50"), RULES, CONFIG)
    assert result.fill.price == D("98.5000")


@pytest.mark.parametrize(
    ("side", "untriggered", "triggered"), [("BUY", "104.95", "105.00"), ("SELL", "95.05", "95.00")]
)
def test_stop_market_triggers_when_the_price_reaches_the_stop(side, untriggered, triggered):
    stop = D("105.00") if side == "BUY" else D("95.00")
    order = state(side=side, order_type="STOPMARKET", stop_price=stop)
    waiting = match_order(order, quote(untriggered), RULES, CONFIG)
    assert (waiting.fill, waiting.state.triggered) == (None, False)
    fired = match_order(order, quote(triggered), RULES, CONFIG)
    assert fired.state.triggered and fired.state.status == LegStatus.FILLED


def test_triggered_stop_limit_rests_when_the_price_is_beyond_its_limit():
    order = state(order_type="STOPLIMIT", stop_price=D("105.00"), limit_price=D("105.50"))
    result = match_order(order, quote("106.00"), RULES, CONFIG)
    assert result.state.triggered and result.fill is None
    later = match_order(result.state, quote("105.20"), RULES, CONFIG)
    assert later.fill.price == D("105.2000")


def test_fill_cap_is_rounded_to_whole_lots():
    rules = InstrumentRules(lot_size=25, tick_size=D("0.05"))
    config = PaperConfig(fill_cap=60)  # 2 lots per tick
    result = match_order(state(order_type="MARKET", quantity=100), quote("100"), rules, config)
    assert (result.fill.quantity, result.state.status) == (50, LegStatus.PARTIALLY_FILLED)


def test_average_price_weights_partial_fills():
    order = state(order_type="MARKET", quantity=3, filled_quantity=1, average_price=D("100"))
    result = match_order(order, quote("103"), RULES, CONFIG)
    assert result.state.average_price == D("102.0000")


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (NewOrder("u", "BUY", "LIMIT", 10, limit_price=D("111")), "price band"),
        (NewOrder("u", "BUY", "LIMIT", 10, limit_price=D("100.01")), "tick size"),
        (NewOrder("u", "BUY", "MARKET", 501), "freeze quantity"),
        (NewOrder("u", "BUY", "LIMIT", 10), "needs a limit price"),
        (NewOrder("u", "BUY", "STOPMARKET", 10), "needs a stop price"),
        (
            NewOrder("u", "BUY", "STOPLIMIT", 10, limit_price=D("100"), stop_price=D("101")),
            "at or above its stop",
        ),
        (NewOrder("u", "HOLD", "MARKET", 10), "side"),
    ],
)
def test_placement_rules(order, reason):
    assert reason in validate_new_order(order, RULES, quote("100"))


def test_lot_multiple_rule():
    rules = InstrumentRules(lot_size=65)
    assert "lot size 65" in validate_new_order(
        NewOrder("u", "BUY", "MARKET", 100), rules, quote("1")
    )


def test_market_order_without_a_price_is_rejected():
    no_price = Quote(buy_price=None, sell_price=None)
    assert "No market price" in validate_new_order(
        NewOrder("u", "BUY", "MARKET", 1), RULES, no_price
    )


def test_margin_rule_counts_only_the_exposure_an_order_opens():
    config = PaperConfig(margin_rate=D("0.5"))
    opening = required_margin(
        side="BUY", quantity=10, price=D("100"), net_position=0, config=config
    )
    reducing = required_margin(
        side="BUY", quantity=10, price=D("100"), net_position=-6, config=config
    )
    assert (opening, reducing) == (D("500.00"), D("200.00"))
    reason = validate_new_order(
        NewOrder("u", "BUY", "MARKET", 10),
        RULES,
        quote("100"),
        margin_required=opening,
        margin_available=D("499.99"),
    )
    assert reason.startswith("Insufficient margin")


def test_reject_rate_is_deterministic_per_seed_and_order():
    config = PaperConfig(seed=3, reject_rate=D("0.5"))
    fates = [is_randomly_rejected(f"U{n}", config) for n in range(40)]
    assert fates == [is_randomly_rejected(f"U{n}", config) for n in range(40)]
    assert any(fates) and not all(fates)
    assert fates != [
        is_randomly_rejected(f"U{n}", PaperConfig(seed=4, reject_rate=D("0.5"))) for n in range(40)
    ]


def test_open_orders_without_a_price_wait():
    result = match_order(state(order_type="MARKET"), Quote(None, None), RULES, CONFIG)
    assert (result.fill, result.state.status) == (None, LegStatus.OPEN)


@pytest.mark.parametrize(
    ("side", "order_type", "price", "dealt"),
    [
        # 109.90 + 25 bps = 110.17: past the band's 110 high, where no trade happens.
        ("BUY", "MARKET", "109.90", "110"),
        ("SELL", "MARKET", "90.10", "90"),
        # A quote outside the band (a stale or bad print) deals at the edge, not beyond it.
        ("BUY", "LIMIT", "85.00", "90"),
        ("SELL", "LIMIT", "115.00", "110"),
    ],
)
def test_no_fill_is_dealt_outside_the_price_band(side, order_type, price, dealt):
    config = PaperConfig(slippage_bps=D("25"))
    limit = D("100") if order_type == "LIMIT" else None
    order = state(side=side, order_type=order_type, limit_price=limit)
    result = match_order(order, quote(price), RULES, config)
    assert result.fill.price == D(dealt)


def test_a_buy_limit_below_the_band_does_not_deal_above_its_limit():
    # The band moved above a resting buy limit: no price inside the band honours the limit.
    order = state(side="BUY", limit_price=D("85.00"))
    assert match_order(order, quote("84.00"), RULES, CONFIG).fill is None
