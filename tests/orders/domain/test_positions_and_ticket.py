"""A position's live MTM (orders.domain.positions) and the ticket's figures
(orders.domain.ticket): pure, hand-worked."""

from __future__ import annotations

from decimal import Decimal

from orders.domain.positions import PositionFigures, average_price, live_mtm
from orders.domain.ticket import (
    EQUITY,
    FUTURES,
    OPTIONS,
    OTHER,
    TicketFacts,
    TicketTarget,
    estimate,
    instrument_class,
)

D = Decimal


def figures(**kw):
    base = dict(
        net_qty=0,
        buy_qty=0,
        sell_qty=0,
        buy_avg_price=None,
        sell_avg_price=None,
        buy_amount=None,
        sell_amount=None,
        broker_mtm=None,
    )
    base.update(kw)
    return PositionFigures(**base)


def test_a_long_position_moves_with_the_ltp():
    long = figures(
        net_qty=2, buy_qty=2, buy_avg_price=D("99.5"), buy_amount=D("199"), sell_amount=D("0")
    )
    assert live_mtm(long, ltp=D("104")) == D("9.00")
    assert live_mtm(long, ltp=D("98")) == D("-3.00")
    assert average_price(long) == D("99.5")


def test_a_short_position_gains_when_the_price_falls():
    short = figures(
        net_qty=-3, sell_qty=3, sell_avg_price=D("100"), sell_amount=D("300"), buy_amount=D("0")
    )
    assert live_mtm(short, ltp=D("98")) == D("6.00")
    assert average_price(short) == D("100")


def test_a_closed_position_keeps_its_realized_mtm_whatever_the_price():
    closed = figures(net_qty=0, buy_qty=2, sell_qty=2, buy_amount=D("200"), sell_amount=D("210"))
    assert live_mtm(closed, ltp=D("1")) == D("10.00")
    assert average_price(closed) is None


def test_without_amounts_the_averages_stand_in_and_without_a_price_the_broker_figure():
    averaged = figures(
        net_qty=1,
        buy_qty=3,
        sell_qty=2,
        buy_avg_price=D("10"),
        sell_avg_price=D("11"),
        broker_mtm=D("7.77"),
    )
    assert live_mtm(averaged, ltp=D("12")) == D("4.00")  # 22 - 30 + 12
    assert live_mtm(averaged, ltp=None) == D("7.77")


def test_a_multiplier_contract_moves_multiplier_rupees_a_point_on_the_brokers_amounts():
    # XTS reports amounts already x multiplier: 1 unit of a x10 contract bought at 100.
    long = figures(
        net_qty=1, buy_qty=1, buy_avg_price=D("100"), buy_amount=D("1000"), sell_amount=D("0")
    )
    assert live_mtm(long, ltp=D("101"), multiplier=10) == D("10.00")


def test_without_amounts_the_averages_stand_in_at_the_contract_multiplier():
    averaged = figures(
        net_qty=1, buy_qty=3, sell_qty=2, buy_avg_price=D("10"), sell_avg_price=D("11")
    )
    # (22 - 30 + 12) x 10: every rupee figure, not only the open quantity's, x multiplier.
    assert live_mtm(averaged, ltp=D("12"), multiplier=10) == D("40.00")
    flat = figures(
        net_qty=0, buy_qty=1, sell_qty=1, buy_avg_price=D("100"), sell_avg_price=D("101")
    )
    assert live_mtm(flat, ltp=None, multiplier=10) == D("10.00")


def test_instrument_classes_follow_segment_and_type():
    assert instrument_class(segment="NSECM", instrument_type="8") == EQUITY
    assert instrument_class(segment="NSEFO", instrument_type="2", series="FUTIDX") == FUTURES
    assert instrument_class(segment="NSEFO", instrument_type="3", series="OPTIDX") == OPTIONS
    assert instrument_class(segment="NSEFO", option_type="CE") == OPTIONS
    assert instrument_class(segment="MCXFO") == OTHER


def test_ticket_value_margin_risk_and_reward_of_an_intraday_bracket():
    got = estimate(
        facts=TicketFacts(instrument_class=EQUITY, ltp=D("101")),
        side="BUY",
        product="MIS",
        order_type="LIMIT",
        quantity=10,
        limit_price=D("100"),
        sl_price=D("95"),
        targets=(TicketTarget(D("110"), 5), TicketTarget(D("120"), 5)),
    )
    assert (got.value, got.margin, got.risk, got.reward) == (
        D("1000.00"),
        D("200.00"),
        D("50.00"),
        D("150.00"),
    )


def test_a_market_order_is_valued_at_the_ltp_and_a_paper_account_at_its_own_rate():
    got = estimate(
        facts=TicketFacts(instrument_class=FUTURES, ltp=D("24000"), paper_margin_rate=D("0.2")),
        side="SELL",
        product="NRML",
        order_type="MARKET",
        quantity=65,
    )
    assert (got.value, got.margin, got.risk) == (D("1560000.00"), D("312000.00"), None)


def test_a_sold_option_is_margined_on_its_strike_and_a_bought_one_costs_its_premium():
    facts = TicketFacts(instrument_class=OPTIONS, strike=D("26000"))

    def sixty_five_at_100(side):
        return estimate(
            facts=facts,
            side=side,
            product="NRML",
            order_type="LIMIT",
            quantity=65,
            limit_price=D("100"),
        )

    sold = sixty_five_at_100("SELL")
    assert (sold.value, sold.margin) == (D("6500.00"), D("253500.00"))
    assert sixty_five_at_100("BUY").margin == D("6500.00")
