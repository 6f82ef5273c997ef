"""Monitoring step 1 persistence: broker snapshots upserted by key, balances written."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from orders.brokers.base import BrokerBalance, BrokerOrderRow, BrokerPositionRow, BrokerTradeRow
from orders.brokers.xts.wire import balance_from_xts
from orders.models import BrokerOrder, BrokerPosition, BrokerTrade, Order
from orders.services import place_single_order, store_broker_snapshots, sync_account_orders
from tests.factories import broker_order_row, broker_trade_row, make_fair_price, single_request

D = Decimal
NOW = datetime(2025, 1, 2, 4, 0, tzinfo=UTC)


def _row(broker_id: str, status: str, filled: int, uid: str = "") -> BrokerOrderRow:
    return broker_order_row(
        broker_order_id=broker_id, status=status, filled=filled, uid=uid, side="Buy"
    )


def _position(instrument_id: int, net: int) -> BrokerPositionRow:
    return BrokerPositionRow(
        exchange_segment="NSECM",
        exchange_instrument_id=instrument_id,
        trading_symbol="X",
        product_type="MIS",
        net_qty=net,
        buy_qty=max(net, 0),
        sell_qty=max(-net, 0),
    )


def _trade(execution_id: str, broker_order_id: str, **changes) -> BrokerTradeRow:
    """A buy of 5 at 99 (NSECM, instrument 1) at NOW unless told."""
    changes.setdefault("traded_at", NOW)
    return broker_trade_row(execution_id=execution_id, broker_order_id=broker_order_id, **changes)


def test_snapshots_are_upserted_by_key_and_gone_positions_deleted(account):
    trade = _trade("E1", "1")
    store_broker_snapshots(
        account=account,
        order_book=[_row("1", "PARTIALLY_FILLED", 5)],
        trades=[trade],
        positions=[_position(1, 5), _position(2, -3)],
        balance=BrokerBalance(D("1000.00"), D("200.00"), D("800.00")),
    )
    store_broker_snapshots(
        account=account,
        order_book=[_row("1", "FILLED", 10), _row("2", "OPEN", 0)],
        trades=[trade],
        positions=[_position(1, 10)],
        balance=BrokerBalance(D("900.00"), D("300.00"), D("600.00")),
    )
    assert dict(BrokerOrder.objects.values_list("broker_order_id", "cumulative_quantity")) == {
        "1": 10,
        "2": 0,
    }
    assert BrokerOrder.objects.get(broker_order_id="1").side == "BUY"
    assert BrokerTrade.objects.count() == 1
    assert list(BrokerPosition.objects.values_list("exchange_instrument_id", "net_qty")) == [
        (1, 10)
    ]
    account.refresh_from_db()
    assert (account.cash_available, account.margin_utilized, account.net_margin) == (
        D("900.00"),
        D("300.00"),
        D("600.00"),
    )
    assert account.last_synced_at is not None


def test_sync_copies_fills_onto_legs_and_fair_prices_onto_live_orders(trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    leg = order.legs.get()
    make_fair_price(instrument, "101.00")
    changed = sync_account_orders(
        account=account,
        order_book=[_row(leg.broker_order_id, "PARTIALLY_FILLED", 4, leg.unique_identifier)],
    )
    order.refresh_from_db()
    leg.refresh_from_db()
    assert changed == [order.pk]
    assert (leg.status, leg.filled_quantity, leg.average_price) == ("PARTIALLY_FILLED", 4, D("99"))
    assert (order.status, order.filled_quantity) == (Order.Status.PARTIALLY_FILLED, 4)
    assert order.ltp == D("101.00") and order.buy_fair_price == D("101.00")
    assert order.events.filter(kind="leg_synced").exists()


def test_a_stale_open_row_never_reopens_a_cancelled_leg(trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    leg = order.legs.get()
    leg.status = "CANCELLED"
    leg.save()
    sync_account_orders(
        account=account, order_book=[_row(leg.broker_order_id, "OPEN", 0, leg.unique_identifier)]
    )
    leg.refresh_from_db()
    assert leg.status == "CANCELLED"


def test_a_figure_too_big_for_its_column_is_left_out_not_the_whole_sync(account):
    """An RMS "unlimited" (999999999999999) or a double's maximum in a broker's answer
    failed the write with DataError, and with it the account's every sync (orders, fills,
    positions): such a figure is left out as an unreadable one is, the rest is stored."""
    balance = balance_from_xts(
        {"BalanceList": [{"limitObject": {"RMSSubLimits": {
            "cashAvailable": "1000000000",
            "marginUtilized": "20163.6",
            "netMarginAvailable": "999999999999999",
        }}}]}
    )  # fmt: skip
    net_margin_before = account.net_margin
    position = replace(_position(1, 5), mtm=D("1.79769313486232E+308"), buy_amount=D("500.00"))
    problems = store_broker_snapshots(
        account=account,
        order_book=[replace(_row("1", "OPEN", 0), limit_price=D("1E+20"))],
        trades=[_trade("E9", "1", price=D("1E+20"))],
        positions=[position],
        balance=balance,
    )
    account.refresh_from_db()
    assert (account.cash_available, account.margin_utilized) == (D("1000000000"), D("20163.60"))
    assert account.net_margin == net_margin_before  # the broker's figure left out
    assert problems == [
        "trade E9 of order 1: the broker's price is unreadable; left out until it is"
    ]
    assert not BrokerTrade.objects.filter(account=account).exists()
    stored = BrokerPosition.objects.get(account=account)
    assert (stored.net_qty, stored.buy_amount, stored.mtm) == (5, D("500.00"), None)
    assert BrokerOrder.objects.get(account=account).order_price is None


def test_an_average_price_too_big_for_the_leg_is_left_out_not_the_legs_sync(
    trader, account, instrument
):
    """The leg took the row's average as it came: its save failed (DataError) and with it
    the account's sync of every leg, each cycle, while the fill itself was readable."""
    order = place_single_order(user=trader, request=single_request(account)).order
    leg = order.legs.get()
    row = replace(
        _row(leg.broker_order_id, "PARTIALLY_FILLED", 4, leg.unique_identifier),
        average_price=D("1E+20"),
    )
    assert sync_account_orders(account=account, order_book=[row]) == [order.pk]
    leg.refresh_from_db()
    assert (leg.status, leg.filled_quantity, leg.average_price) == ("PARTIALLY_FILLED", 4, None)


def test_fills_of_two_orders_with_the_same_exchange_trade_number_are_both_kept(account):
    """XTS's ExecutionID is the exchange's trade number ("30901451" NSEFO, "2177829" NSECM
    in the real answers): unique within a segment's day, not across segments or days, while
    the trade book keeps every day. A fill whose number an earlier fill of the account had
    was taken for that fill and dropped: the FIFO PnL missed it. A fill is its order's
    (AppOrderID, unique at the broker) trade number."""

    def fill(broker_order_id, segment, day, quantity):
        traded_at = datetime(2024, 12, day, 5, 0, tzinfo=UTC)
        return _trade(
            "2177829",
            broker_order_id,
            exchange_segment=segment,
            exchange_instrument_id=335,
            quantity=quantity,
            price=D("100"),
            traded_at=traded_at,
        )

    yesterday = fill("1110027100", "NSECM", 26, 3)
    store_broker_snapshots(
        account=account, order_book=None, trades=[yesterday], positions=None, balance=None
    )
    today = [fill("1110027235", "NSECM", 27, 5), fill("1110027236", "NSEFO", 27, 75)]
    store_broker_snapshots(
        account=account, order_book=None, trades=[yesterday, *today], positions=None, balance=None
    )
    stored = BrokerTrade.objects.filter(account=account).order_by("broker_order_id")
    assert [(t.broker_order_id, t.quantity) for t in stored] == [
        ("1110027100", 3),
        ("1110027235", 5),
        ("1110027236", 75),
    ]
