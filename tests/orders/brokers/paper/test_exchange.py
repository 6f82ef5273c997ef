"""The PAPER broker's exchange: orders persisted, matched on price writes and on reads."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
from asgiref.sync import async_to_sync

from accounts.models import BrokerSession
from orders.brokers.base import OrderRejected
from orders.brokers.paper import book as paper_book
from orders.brokers.paper import exchange as paper_exchange
from orders.brokers.paper.models import PaperOrder, PaperTrade
from orders.brokers.sessions import broker_client, connect_account
from orders.domain.vocabulary import LegStatus
from orders.market.services import record_fair_prices
from tests.factories import (
    limit_modify_request,
    make_account,
    make_fair_price,
    make_instrument,
    make_xts_account,
    order_request,
)

pytestmark = pytest.mark.django_db

D = Decimal


# A market order of 10 (uid UID1) unless told.
_request = partial(order_request, uid="UID1", quantity=10)


@pytest.fixture
def move_price(django_capture_on_commit_callbacks):
    """Write a new price the way the feed does; its after-commit matching runs."""

    def move(instrument, price, spread="0"):
        price = D(price)
        half = D(spread) / 2
        with django_capture_on_commit_callbacks(execute=True):
            record_fair_prices(
                rows=[
                    {
                        "instrument_id": instrument.pk,
                        "buy_fair_price": price + half,
                        "sell_fair_price": price - half,
                        "avg_fair_price": price,
                        "last_traded_price": price,
                    }
                ],
                source="test",
            )

    return move


@pytest.fixture
def after_move(move_price, instrument):
    """Move the instrument's price; the order then re-read as the exchange left it."""

    def move(order, price):
        move_price(instrument, price)
        order.refresh_from_db()
        return order

    return move


@pytest.fixture
def book():
    return paper_book.book_for_account(make_account().pk)


def _submit(book, instrument, **fields):
    """`_request(instrument, **fields)` submitted to the book's exchange."""
    return paper_exchange.submit_order(book=book, request=_request(instrument, **fields))


def test_market_buy_fills_at_once_at_the_buy_fair_price(book, instrument):
    order = _submit(book, instrument, side="BUY")
    assert order.status == LegStatus.FILLED
    assert order.average_price == D("1300.0500")
    assert PaperTrade.objects.get(order=order).quantity == 10


def test_market_sell_fills_at_once_at_the_sell_fair_price(book, instrument):
    order = _submit(book, instrument, side="SELL")
    assert (order.status, order.average_price) == (LegStatus.FILLED, D("1299.9500"))


def test_market_orders_pay_the_configured_slippage(book, instrument, settings):
    settings.PAPER_SLIPPAGE_BPS = "10"  # 0.1 %: 1300.05 * 1.001 = 1301.35 (snapped up)
    buy = _submit(book, instrument, side="BUY", uid="B")
    sell = _submit(book, instrument, side="SELL", uid="S")
    assert buy.average_price == D("1301.4000")
    assert sell.average_price == D("1298.6500")


def test_limit_buy_waits_until_the_price_falls_to_the_limit(after_move, book, instrument):
    order = _submit(book, instrument, order_type="LIMIT", limit=D("1290.00"))
    assert order.status == LegStatus.OPEN
    after_move(order, "1295.00")
    assert order.status == LegStatus.OPEN
    after_move(order, "1288.00")
    assert (order.status, order.average_price) == (LegStatus.FILLED, D("1288.0000"))


def test_limit_sell_fills_when_the_price_rises_to_the_limit_at_the_limit_or_better(
    after_move, book, instrument
):
    order = _submit(book, instrument, side="SELL", order_type="LIMIT", limit=D("1310.00"))
    assert order.status == LegStatus.OPEN
    after_move(order, "1312.50")
    assert (order.status, order.average_price) == (LegStatus.FILLED, D("1312.5000"))


def test_buy_stop_limit_triggers_at_the_stop_then_fills_as_a_limit(after_move, book, instrument):
    order = _submit(book, instrument, order_type="STOPLIMIT", stop=D("1320.00"), limit=D("1322.00"))
    after_move(order, "1319.00")
    assert (order.status, order.triggered) == (LegStatus.OPEN, False)
    after_move(order, "1325.00")  # triggers, but above the limit: rests as a limit
    assert (order.status, order.triggered) == (LegStatus.OPEN, True)
    after_move(order, "1321.00")
    assert (order.status, order.average_price) == (LegStatus.FILLED, D("1321.0000"))


def test_sell_stop_limit_triggers_when_the_price_falls_to_the_stop(after_move, book, instrument):
    order = _submit(
        book, instrument, side="SELL", order_type="STOPLIMIT", stop=D("1280.00"), limit=D("1278.00")
    )
    after_move(order, "1281.00")
    assert order.status == LegStatus.OPEN
    after_move(order, "1279.00")
    assert (order.status, order.average_price) == (LegStatus.FILLED, D("1279.0000"))


def test_buy_stop_market_fills_at_the_market_once_triggered(after_move, book, instrument):
    order = _submit(book, instrument, order_type="STOPMARKET", stop=D("1350.00"))
    assert order.status == LegStatus.OPEN
    after_move(order, "1352.00")
    assert (order.status, order.average_price, order.triggered) == (
        LegStatus.FILLED,
        D("1352.0000"),
        True,
    )


def test_sell_stop_market_fills_at_the_market_once_triggered(after_move, book, instrument):
    order = _submit(book, instrument, side="SELL", order_type="STOPMARKET", stop=D("1250.00"))
    after_move(order, "1260.00")
    assert order.status == LegStatus.OPEN
    after_move(order, "1249.00")
    assert (order.status, order.average_price) == (LegStatus.FILLED, D("1249.0000"))


def test_fill_cap_gives_partial_fills_one_per_price_tick(after_move, book, instrument, settings):
    settings.PAPER_FILL_CAP = 4
    order = _submit(book, instrument, quantity=10)
    assert (order.status, order.filled_quantity) == (LegStatus.PARTIALLY_FILLED, 4)
    after_move(order, "1301.00")
    assert (order.status, order.filled_quantity) == (LegStatus.PARTIALLY_FILLED, 8)
    after_move(order, "1302.00")
    assert (order.status, order.filled_quantity) == (LegStatus.FILLED, 10)
    assert list(order.trades.order_by("id").values_list("quantity", flat=True)) == [4, 4, 2]
    # average of 4 @ 1300.05, 4 @ 1301.00, 2 @ 1302.00
    assert order.average_price == D("1300.8200")


@pytest.mark.parametrize(
    ("overrides", "reason_part"),
    [
        ({"order_type": "LIMIT", "limit": D("1700.00")}, "outside the price band"),
        ({"order_type": "LIMIT", "limit": D("900.00")}, "outside the price band"),
        ({"order_type": "LIMIT", "limit": D("1300.03")}, "tick size"),
        ({"quantity": 20000}, "freeze quantity"),
        ({"quantity": 0}, "must be positive"),
    ],
)
def test_placement_rules_reject_at_once_and_keep_the_rejected_order(
    book, instrument, overrides, reason_part
):
    with pytest.raises(OrderRejected) as caught:
        _submit(book, instrument, **overrides)
    assert reason_part in caught.value.message
    stored = PaperOrder.objects.get(book=book)
    assert stored.status == LegStatus.REJECTED and reason_part in stored.reject_reason


def test_quantity_not_a_lot_multiple_is_rejected(book):
    future = make_instrument(symbol="NIFTYFUT", segment="NSEFO", lot_size=65, freeze_quantity=1755)
    make_fair_price(future, "26000.00")
    with pytest.raises(OrderRejected, match="lot size 65"):
        _submit(book, future, quantity=100)


def test_insufficient_margin_is_rejected(book, instrument, settings):
    settings.PAPER_MARGIN_RATE = "1"  # cash: 10 lakh; 1000 x 1300 needs 13 lakh
    with pytest.raises(OrderRejected, match="Insufficient margin"):
        _submit(book, instrument, quantity=1000)


def test_closing_a_position_needs_no_margin(book, instrument, settings):
    settings.PAPER_MARGIN_RATE = "1"
    _submit(book, instrument, quantity=700, uid="OPEN")
    closing = _submit(book, instrument, side="SELL", quantity=700, uid="CLOSE")
    assert closing.status == LegStatus.FILLED


def test_unknown_instrument_is_rejected(book, instrument):
    with pytest.raises(OrderRejected, match="not found"):
        _submit(book, ("NSECM", 999999999), uid="X", quantity=1)


def test_reject_rate_accepts_then_shows_the_order_rejected_in_the_book(book, instrument, settings):
    settings.PAPER_REJECT_RATE = "1"
    order = _submit(book, instrument)
    rows = paper_book.order_rows(book)
    assert order.status == LegStatus.REJECTED
    assert rows[0].status == LegStatus.REJECTED and "simulated" in rows[0].reject_reason


def test_same_seed_rejects_the_same_orders(instrument, settings):
    settings.PAPER_REJECT_RATE = "0.5"
    settings.PAPER_SEED = 7
    uids = [f"D{n}" for n in range(20)]

    def fates():
        book = paper_book.book_for_account(make_account().pk)
        return [_submit(book, instrument, quantity=1, uid=u).status for u in uids]

    first, second = fates(), fates()
    assert first == second
    assert LegStatus.REJECTED in first and LegStatus.FILLED in first
    settings.PAPER_SEED = 8
    assert fates() != first


def test_modify_moves_the_limit_and_fills_when_marketable(book, instrument):
    order = _submit(book, instrument, order_type="LIMIT", limit=D("1280.00"))
    paper_exchange.modify_order(
        book=book,
        request=limit_modify_request(
            str(order.app_order_id), order.unique_identifier, quantity=10, limit=D("1305.00")
        ),
    )
    order.refresh_from_db()
    assert (order.status, order.limit_price) == (LegStatus.FILLED, D("1305.0000"))


def test_cancel_closes_an_open_order_and_a_second_cancel_is_rejected(book, instrument):
    order = _submit(book, instrument, order_type="LIMIT", limit=D("1200.00"))
    paper_exchange.cancel_order(book=book, broker_order_id=str(order.app_order_id))
    with pytest.raises(OrderRejected, match="CANCELLED"):
        paper_exchange.cancel_order(book=book, broker_order_id=str(order.app_order_id))


def test_positions_and_balance_follow_the_fills(move_price, book, instrument):
    _submit(book, instrument, quantity=10, uid="A")  # buy 10 @ 1300.05
    _submit(book, instrument, side="SELL", quantity=4, uid="B")  # sell 4 @ 1299.95
    move_price(instrument, "1310.00")
    (position,) = paper_book.position_rows(book)
    assert (position.net_qty, position.buy_qty, position.sell_qty) == (6, 10, 4)
    assert position.realized_mtm == D("-0.40")
    assert position.unrealized_mtm == D("59.70")
    balance = paper_book.compute_balance(book)
    assert balance.cash_available == D("1000059.30")
    assert balance.margin_utilized == D("1572.00")  # 6 x 1310 x 0.2
    assert balance.net_margin == balance.cash_available - balance.margin_utilized


@pytest.fixture
def crude(db):
    """CRUDEOILM of the MCX, one unit of quantity worth 10 x its price, at 100 (no spread)."""
    contract = make_instrument(symbol="CRUDEOILM", segment="MCXFO", multiplier=10)
    make_fair_price(contract, "100.00")
    return contract


def test_an_x10_contracts_amounts_mtm_and_margin_are_in_rupees_as_a_broker_reports_them(
    move_price, book, crude
):
    """Buy 2 at 100, sell 1 at 101, the price then at 103: 2,000 bought and 1,010 sold,
    realized (101 - 100) x 1 x 10, the open unit (103 - 100) x 1 x 10; the averages stay
    prices. The monitoring snapshot (its own sums over the loaded rows) says the same."""
    _submit(book, crude, quantity=2, uid="A")
    move_price(crude, "101.00")
    _submit(book, crude, side="SELL", quantity=1, uid="B")
    _submit(book, crude, order_type="LIMIT", limit=D("95.00"), quantity=1, uid="REST")
    move_price(crude, "103.00")

    (position,) = paper_book.position_rows(book)
    assert (position.net_qty, position.buy_qty, position.sell_qty) == (1, 2, 1)
    assert (position.buy_avg_price, position.sell_avg_price) == (D("100"), D("101"))
    amounts = (position.buy_amount, position.sell_amount, position.net_amount)
    assert amounts == (D("2000.00"), D("1010.00"), D("-990.00"))
    mtm = (position.realized_mtm, position.unrealized_mtm, position.mtm)
    assert mtm == (D("10.00"), D("30.00"), D("40.00"))
    balance = paper_book.compute_balance(book)
    assert balance.cash_available == D("1000040.00")
    # (the open unit at 103 + the resting buy of 1 at 95) x 10 x the 0.2 margin rate
    assert balance.margin_utilized == D("396.00")
    _orders, _trades, positions, snapshot_balance = paper_exchange.book_snapshot(book)
    assert (positions, snapshot_balance) == ([position], balance)


def test_an_x10_contract_needs_ten_times_the_margin_of_an_x1_at_the_same_price(
    book, crude, settings
):
    settings.PAPER_MARGIN_RATE = "1"  # cash: 10 lakh
    share = make_instrument(symbol="ONEX")
    make_fair_price(share, "100.00")
    _submit(book, share, order_type="LIMIT", limit=D("99.00"), quantity=100, uid="S1")
    assert paper_book.compute_balance(book).margin_utilized == D("9900.00")
    resting = _submit(book, crude, order_type="LIMIT", limit=D("99.00"), quantity=100, uid="C1")
    assert paper_book.compute_balance(book).margin_utilized == D("108900.00")  # + 99,000

    # 8,91,100 free: 900 of the contract at 100 need 9 lakh, 900 of the share 90,000.
    with pytest.raises(OrderRejected, match="required 900000.00, available 891100.00"):
        _submit(book, crude, quantity=900, uid="C2")
    assert _submit(book, share, quantity=900, uid="S2").status == LegStatus.FILLED
    # The share's 900 held at its mark: 8,01,100 free, plus the 99,000 the resting order
    # holds when it is changed.
    grow = limit_modify_request(
        str(resting.app_order_id), resting.unique_identifier, quantity=910, limit=D("99.00")
    )
    with pytest.raises(OrderRejected, match="required 900900.00, available 900100.00"):
        paper_exchange.modify_order(book=book, request=grow)
    within = limit_modify_request(
        str(resting.app_order_id), resting.unique_identifier, quantity=900, limit=D("99.00")
    )
    assert paper_exchange.modify_order(book=book, request=within).quantity == 900


def test_the_snapshot_sums_its_loaded_trades_as_the_grouped_query_does(
    move_price, book, instrument
):
    """The monitoring read (`book_snapshot`) sums the positions from the trades it loads;
    every other read sums them in SQL: both must give the same rows, to the paisa."""
    other = make_instrument(symbol="TCS", band=(D("3000.00"), D("4000.00")))
    make_fair_price(other, "3500.00", spread="0.10")
    _submit(book, instrument, quantity=10, uid="A")
    _submit(book, instrument, side="SELL", quantity=3, uid="B")
    _submit(book, instrument, quantity=7, uid="C", product="CNC")
    move_price(instrument, "1307.35", spread="0.30")
    _submit(book, instrument, quantity=5, uid="D")
    _submit(book, instrument, side="SELL", quantity=12, uid="E")
    _submit(book, other, side="SELL", quantity=4, uid="F")
    move_price(instrument, "1311.10")

    _orders, _trades, positions, balance = paper_exchange.book_snapshot(book)

    assert positions == paper_book.position_rows(book)
    assert balance == paper_book.compute_balance(book)
    assert [(p.trading_symbol, p.product_type, p.net_qty) for p in positions] == [
        ("RELIANCE", "CNC", 7),
        ("RELIANCE", "MIS", 0),
        ("TCS", "MIS", -4),
    ]


def test_the_snapshots_plain_rows_read_as_the_order_models_do(move_price, book, instrument):
    """The monitoring read loads a book's orders as plain values (`LoadedOrder`), which the
    snapshot's functions read as they read a `PaperOrder`: every column, `pk`,
    `leaves_quantity`, the instrument's rules and its fair prices (or none) must equal the
    model's, for orders of every kind and state, and the book must be the book."""
    unpriced = make_instrument(symbol="UNPRICED", band=(D("10.00"), D("20.00")))
    _submit(book, instrument, quantity=4, uid="FILLED")
    _submit(book, instrument, order_type="LIMIT", limit=D("1250.00"), uid="RESTING")
    _submit(
        book,
        instrument,
        side="SELL",
        order_type="STOPLIMIT",
        limit=D("1240.00"),
        stop=D("1245.00"),
        uid="STOP",
    )
    with pytest.raises(OrderRejected):
        _submit(book, instrument, order_type="LIMIT", limit=D("9.00"), uid="BAND")
    _submit(book, unpriced, order_type="LIMIT", limit=D("15.00"), uid="NOPRICE")
    move_price(instrument, "1301.10", spread="0.20")

    loaded_book, loaded = paper_book.account_book_and_orders(book.account_id)
    models = paper_book.book_orders(book)

    assert loaded_book == book
    for name in ("id", "name", "account_id", "starting_cash", "created_at"):
        assert getattr(loaded_book, name) == getattr(book, name)
    assert [o.unique_identifier for o in loaded] == ["FILLED", "RESTING", "STOP", "BAND", "NOPRICE"]
    assert len(loaded) == len(models)
    for plain, model in zip(loaded, models, strict=True):
        for name in plain._fields:
            if name != "instrument":
                assert getattr(plain, name) == getattr(model, name), name
        assert (plain.pk, plain.leaves_quantity) == (model.pk, model.leaves_quantity)
        assert paper_book.order_row(plain) == paper_book.order_row(model)
        assert paper_book.order_state_of(plain) == paper_book.order_state_of(model)
        assert paper_book.rules_of(plain.instrument) == paper_book.rules_of(model.instrument)
        assert paper_book.quote_of(plain.instrument) == paper_book.quote_of(model.instrument)
        assert paper_book.mark_price_of(plain.instrument) == paper_book.mark_price_of(
            model.instrument
        )
        assert paper_book.resting_exposure(plain, plain.instrument) == (
            paper_book.resting_exposure(model, model.instrument)
        )
    by_uid = {o.unique_identifier: o for o in loaded}
    assert by_uid["NOPRICE"].instrument.fair_price is None
    assert by_uid["RESTING"].leaves_quantity == 10 and by_uid["FILLED"].leaves_quantity == 0
    assert by_uid["BAND"].reject_reason
    config = paper_book.paper_config()
    assert paper_book.snapshot_of(book, loaded, config) == paper_book.snapshot_of(
        book, models, config
    )


def test_broker_client_places_and_reads_a_paper_account(instrument):
    account = make_account()
    client = broker_client(account)
    ack = async_to_sync(client.place_order)(_request(instrument, quantity=5, uid="PAPER1"))
    (row,) = async_to_sync(client.order_book)()
    (trade,) = async_to_sync(client.trade_book)()
    assert row.broker_order_id == ack.broker_order_id and row.status == LegStatus.FILLED
    assert trade.quantity == 5 and trade.unique_identifier == "PAPER1"
    assert account.broker_session.expires_at is not None


def test_reading_the_book_matches_against_a_price_written_without_the_service(instrument):
    account = make_account()
    client = broker_client(account)
    async_to_sync(client.place_order)(
        _request(instrument, order_type="LIMIT", limit=D("1250.00"), uid="LATE")
    )
    make_fair_price(instrument, "1249.00")  # e.g. an admin edit: no matching trigger ran
    (row,) = async_to_sync(client.order_book)()
    assert row.status == LegStatus.FILLED


def test_a_paper_snapshot_is_read_in_the_callers_thread_as_the_event_loop_reads_it(instrument):
    """The monitoring cycle reads a paper book in its own thread (`snapshot_here`, no event
    loop; the book and its orders in one query): the same four answers as the four
    ordinary reads, each of its own."""
    account = make_account()
    async_to_sync(broker_client(account).place_order)(_request(instrument, quantity=5, uid="H1"))
    async_to_sync(broker_client(account).place_order)(
        _request(instrument, order_type="LIMIT", limit=D("1200.00"), uid="H2")
    )

    here = broker_client(account).snapshot_here()
    client = broker_client(account)
    one_by_one = [
        async_to_sync(read)()
        for read in (client.order_book, client.trade_book, client.positions, client.balance)
    ]

    assert here is not None and here.errors == {}
    assert [here.order_book, here.trades, here.positions, here.balance] == one_by_one
    assert [row.unique_identifier for row in here.order_book] == ["H1", "H2"]
    assert len(here.trades) == 1 and len(here.positions) == 1


def test_a_snapshot_here_needs_a_usable_session_and_a_broker_in_our_database(instrument, simulator):
    """Without a usable stored session `snapshot_here` answers None (and logs nobody in):
    the caller goes the ordinary way, which logs in. A broker elsewhere is never read here."""
    account = make_account()
    assert broker_client(account).snapshot_here() is None
    assert not BrokerSession.objects.filter(account=account).exists()
    assert async_to_sync(broker_client(account).snapshot)().errors == {}
    # A book with no orders yet: read (created) on its own.
    empty = broker_client(account).snapshot_here()
    assert empty is not None and empty.errors == {} and empty.order_book == []
    assert empty.balance.cash_available == D("1000000.00")

    xts = make_xts_account(simulator.base_url)
    connect_account(xts)
    assert broker_client(xts).snapshot_here() is None


def test_a_modify_beyond_the_margin_is_rejected_and_changes_nothing(book, instrument, settings):
    # A real broker checks the margin of a modification as of a new order: the paper
    # exchange took a resting buy of 10 grown to 1,000 (12.8 lakh against 10 lakh of cash).
    settings.PAPER_MARGIN_RATE = "1"
    order = _submit(book, instrument, order_type="LIMIT", limit=D("1280.00"))
    grow = limit_modify_request(
        str(order.app_order_id), order.unique_identifier, quantity=1000, limit=D("1280.00")
    )
    with pytest.raises(OrderRejected, match="Insufficient margin"):
        paper_exchange.modify_order(book=book, request=grow)
    order.refresh_from_db()
    assert (order.quantity, order.status) == (10, LegStatus.OPEN)
    # Within the margin (its own 12,800 counts as available again), the same order grows.
    within = limit_modify_request(
        str(order.app_order_id), order.unique_identifier, quantity=780, limit=D("1280.00")
    )
    assert paper_exchange.modify_order(book=book, request=within).quantity == 780
