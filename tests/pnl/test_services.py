"""compute_account_pnl against MariaDB: lots, daily rows, order attribution, account MTM."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.models import BrokerAccount
from orders.models import BrokerOrder, BrokerTrade, Instrument, Order
from orders.services.exclusion import AccountBusy, account_exclusion
from pnl import services
from pnl.models import PnlDaily, PnlInstrumentState, PnlLot
from pnl.services import compute_account_pnl
from tests.factories import (
    FillSpec,
    make_account,
    make_broker_orders,
    make_fair_price,
    make_instrument,
    make_leg,
    make_order,
    make_trades,
    make_user,
)

pytestmark = pytest.mark.django_db

D = Decimal
# 10:00 Asia/Kolkata on a Monday; the trading day runs from 18:30 UTC the day before.
NOW = datetime(2025, 1, 6, 4, 30, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


def filled_order(account: BrokerAccount, instrument: Instrument, **fields) -> Order:
    return make_order(account=account, instrument=instrument, status=Order.Status.FILLED, **fields)


@dataclass(frozen=True)
class BrokerBooks:
    """The account's books at the broker for one instrument, filled in as a test tells:
    `fills` go to its trade book, `orders` to its order book."""

    account: BrokerAccount
    instrument: Instrument

    def fills(self, *fills: FillSpec) -> list[BrokerTrade]:
        return make_trades(account=self.account, instrument=self.instrument, fills=fills)

    def orders(self, *rows: FillSpec) -> list[BrokerOrder]:
        return make_broker_orders(account=self.account, instrument=self.instrument, rows=rows)


@pytest.fixture
def account() -> BrokerAccount:
    return make_account()


@pytest.fixture
def instrument() -> Instrument:
    return make_instrument()


@pytest.fixture
def books(account, instrument) -> BrokerBooks:
    """Most tests here: one account trading one instrument."""
    return BrokerBooks(account, instrument)


def test_recomputing_one_account_replaces_its_lots_and_leaves_another_accounts_untouched(
    instrument,
):
    mine, other = make_account(), make_account()
    for account in (mine, other):
        BrokerBooks(account, instrument).fills(
            ("B1", "BUY", 10, "100", at(30)), ("S1", "SELL", 4, "101", at(20))
        )
    compute_account_pnl(account=mine, now=NOW)
    compute_account_pnl(account=other, now=NOW)
    others_lots = list(PnlLot.objects.filter(account=other).values_list("id", "quantity"))

    BrokerBooks(mine, instrument).fills(("S2", "SELL", 6, "102", at(10)))
    compute_account_pnl(account=mine, now=NOW)

    assert list(PnlLot.objects.filter(account=other).values_list("id", "quantity")) == others_lots
    mine_lots = PnlLot.objects.filter(account=mine).order_by("exit_time")
    assert [(lot.kind, lot.quantity, lot.exit_order_id, lot.realized_pnl) for lot in mine_lots] == [
        (PnlLot.Kind.MATCHED, 4, "S1", D("4")),
        (PnlLot.Kind.MATCHED, 6, "S2", D("12")),
    ]


def test_open_lots_store_the_mark_and_unrealized_pnl(account, instrument, books):
    make_fair_price(instrument, "105", spread="2")  # buy 106, sell 104
    books.fills(("B1", "BUY", 10, "100", at(30)))

    compute_account_pnl(account=account, now=NOW)

    lot = PnlLot.objects.get(account=account)
    assert (lot.kind, lot.entry_side, lot.fair_price_used, lot.unrealized_pnl) == (
        PnlLot.Kind.OPEN,
        "BUY",
        D("104"),
        D("40"),
    )


def test_daily_row_counts_todays_fills_and_realized_of_lots_exited_today(
    account, instrument, books
):
    make_fair_price(instrument, "103")
    yesterday = NOW - timedelta(days=1)
    books.fills(
        ("B1", "BUY", 10, "100", yesterday),
        ("S0", "SELL", 2, "99", yesterday + timedelta(minutes=5)),
        ("S1", "SELL", 5, "102", at(15)),
    )

    result = compute_account_pnl(account=account, now=NOW)

    day = PnlDaily.objects.get(account=account)
    assert day.trading_date == datetime(2025, 1, 6).date()
    assert day.realized == D("10.00")  # only today's exit: 5 x (102 - 100)
    assert day.unrealized == D("9.00")  # 3 open at 103
    assert day.turnover == D("510.00")
    assert day.fills == 1
    assert result.realized == D("8.00")  # the whole book: -2 + 10


def test_daily_row_is_updated_in_place_on_the_next_run(account, books):
    books.fills(("B1", "BUY", 1, "10", at(5)))
    compute_account_pnl(account=account, now=NOW)
    books.fills(("S1", "SELL", 1, "12", at(1)))

    compute_account_pnl(account=account, now=NOW + timedelta(minutes=1))

    day = PnlDaily.objects.get(account=account)
    assert (day.realized, day.fills, day.turnover) == (D("2.00"), 2, D("22.00"))


def test_order_pnl_and_open_position_come_from_lots_whose_entry_leg_is_theirs(
    account, instrument, books
):
    make_fair_price(instrument, "105")
    bracket = filled_order(account, instrument, kind=Order.Kind.BRACKET, entry_broker_order_id="E1")
    make_leg(order=bracket, broker_order_id="T1", role="TAKE_PROFIT", side="SELL", quantity=4)
    manual_exit = filled_order(account, instrument, side="SELL", quantity=2, entry_leg=False)
    make_leg(order=manual_exit, broker_order_id="X1", role="EXIT")
    untouched = filled_order(account, instrument, pnl=D("9.99"), open_position=3, entry_leg=False)
    books.fills(
        ("E1", "BUY", 10, "100", at(30)),
        ("T1", "SELL", 4, "110", at(20)),
        ("X1", "SELL", 2, "95", at(10)),
    )

    compute_account_pnl(account=account, now=NOW)

    bracket.refresh_from_db()
    manual_exit.refresh_from_db()
    untouched.refresh_from_db()
    # realized 4 x 10 + 2 x (-5) = 30, unrealized 4 x 5 = 20, all owned by the entry's order
    assert (bracket.pnl, bracket.open_position) == (D("50.00"), 4)
    assert (manual_exit.pnl, manual_exit.open_position) == (D("0.00"), 0)
    assert (untouched.pnl, untouched.open_position) == (D("0.00"), 0)
    lots = PnlLot.objects.filter(account=account, kind=PnlLot.Kind.MATCHED).order_by("exit_time")
    assert [(lot.entry_leg.order_id, lot.exit_leg.order_id) for lot in lots] == [
        (bracket.pk, bracket.pk),
        (bracket.pk, manual_exit.pk),
    ]


def test_a_short_open_lot_gives_its_order_a_negative_open_position(account, instrument, books):
    make_fair_price(instrument, "48")
    order = filled_order(account, instrument, side="SELL", quantity=5, entry_broker_order_id="S1")
    books.fills(("S1", "SELL", 5, "50", at(5)))

    compute_account_pnl(account=account, now=NOW)

    order.refresh_from_db()
    assert (order.pnl, order.open_position) == (D("10.00"), -5)


def test_account_mtm_is_written_quantized_and_total_is_the_sum_of_the_parts(
    account, instrument, books
):
    make_fair_price(instrument, "100.0050")
    books.fills(("B1", "BUY", 3, "100.0011", at(10)), ("S1", "SELL", 1, "100.0016", at(5)))

    result = compute_account_pnl(account=account, now=NOW)

    account.refresh_from_db()
    # realized 0.0005 -> 0.00; unrealized 2 x 0.0039 = 0.0078 -> 0.01
    quantized = (D("0.00"), D("0.01"), D("0.01"))
    assert (account.realized_mtm, account.unrealized_mtm, account.total_mtm) == quantized
    assert (result.realized, result.unrealized, result.total) == quantized


def test_unchanged_instruments_are_not_rematched_but_are_revalued(account):
    first, second = make_instrument(), make_instrument()
    fair = make_fair_price(second, "20")
    make_trades(account=account, instrument=first, fills=[("A1", "BUY", 1, "10", at(30))])
    make_trades(account=account, instrument=second, fills=[("B1", "BUY", 2, "15", at(30))])
    compute_account_pnl(account=account, now=NOW)
    kept_lot_ids = set(
        PnlLot.objects.filter(
            account=account, exchange_instrument_id=second.exchange_instrument_id
        ).values_list("id", flat=True)
    )

    make_trades(account=account, instrument=first, fills=[("A2", "SELL", 1, "11", at(5))])
    fair.sell_fair_price = D("21")
    fair.save()
    later = NOW + timedelta(minutes=1)
    result = compute_account_pnl(account=account, now=later)

    assert result.rematched_instruments == [(first.exchange_segment, first.exchange_instrument_id)]
    states = {
        s.exchange_instrument_id: s for s in PnlInstrumentState.objects.filter(account=account)
    }
    assert states[first.exchange_instrument_id].matched_at == later
    assert states[second.exchange_instrument_id].matched_at == NOW
    assert states[second.exchange_instrument_id].computed_at == later
    assert states[second.exchange_instrument_id].unrealized == D("12")
    second_lots = PnlLot.objects.filter(
        account=account, exchange_instrument_id=second.exchange_instrument_id
    )
    assert set(second_lots.values_list("id", flat=True)) == kept_lot_ids
    assert second_lots.get().unrealized_pnl == D("12")
    assert result.unrealized == D("12.00")
    assert result.realized == D("1.00")


def test_a_second_run_with_nothing_changed_rematches_nothing(account, books):
    books.fills(("A1", "BUY", 1, "10", at(30)))
    compute_account_pnl(account=account, now=NOW)

    result = compute_account_pnl(account=account, now=NOW + timedelta(minutes=1))

    assert result.rematched_instruments == []
    assert result.lots_written == 0
    assert PnlLot.objects.filter(account=account).count() == 1


def test_a_leg_learning_its_broker_order_id_later_relinks_the_stored_lots(
    account, instrument, books
):
    order = filled_order(account, instrument, entry_leg=False)
    leg = make_leg(order=order, broker_order_id=None)
    books.fills(("E9", "BUY", 10, "100", at(30)))
    compute_account_pnl(account=account, now=NOW)
    assert PnlLot.objects.get(account=account).entry_leg_id is None

    leg.broker_order_id = "E9"
    leg.save()
    compute_account_pnl(account=account, now=NOW + timedelta(minutes=1))

    assert PnlLot.objects.get(account=account).entry_leg_id == leg.pk
    order.refresh_from_db()
    assert order.open_position == 10


def test_an_instrument_whose_fills_disappear_loses_its_lots_and_state(account, books):
    [trade] = books.fills(("A1", "BUY", 1, "10", at(30)))
    compute_account_pnl(account=account, now=NOW)
    trade.delete()

    compute_account_pnl(account=account, now=NOW + timedelta(minutes=1))

    assert not PnlLot.objects.filter(account=account).exists()
    assert not PnlInstrumentState.objects.filter(account=account).exists()


def test_without_a_trade_book_each_traded_order_is_one_fill_at_its_average_price(account, books):
    books.orders(
        ("B1", "BUY", 10, "100.5", at(30)),
        ("S1", "SELL", 4, "101", at(20)),
        ("S2", "SELL", 5, None, at(10)),  # still open: no fill to count
    )

    result = compute_account_pnl(account=account, now=NOW)

    matched = PnlLot.objects.get(account=account, kind=PnlLot.Kind.MATCHED)
    assert (matched.entry_order_id, matched.exit_order_id, matched.quantity) == ("B1", "S1", 4)
    assert matched.realized_pnl == D("2")
    assert result.realized == D("2.00")
    assert PnlLot.objects.get(account=account, kind=PnlLot.Kind.OPEN).quantity == 6


def test_an_account_without_fills_gets_zero_mtm_and_an_empty_day():
    account = make_account(realized_mtm=D("5.00"), total_mtm=D("5.00"))

    result = compute_account_pnl(account=account, now=NOW)

    account = BrokerAccount.objects.get(pk=account.pk)
    assert (account.realized_mtm, account.total_mtm) == (D("0.00"), D("0.00"))
    assert result.instruments == []
    assert PnlDaily.objects.get(account=account).fills == 0


def test_other_users_orders_are_never_attributed(account, instrument, books):
    stranger_account = make_account(user=make_user())
    foreign = filled_order(stranger_account, instrument, entry_broker_order_id="E1")
    books.fills(("E1", "BUY", 10, "100", at(30)))

    compute_account_pnl(account=account, now=NOW)

    foreign.refresh_from_db()
    assert foreign.open_position == 0
    assert PnlLot.objects.get(account=account).entry_leg_id is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_for_one_account_never_duplicate_lots(account, books):
    import threading

    from django.db import connection

    books.fills(
        *[(f"O{n}", "BUY" if n % 2 == 0 else "SELL", 3, "100", at(30 - n)) for n in range(6)]
    )
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run():
        try:
            start.wait()
            compute_account_pnl(account=account, now=NOW)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert PnlLot.objects.filter(account=account).count() == 3
    assert PnlInstrumentState.objects.filter(account=account).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_pnl_run_holds_the_accounts_exclusion_and_a_busy_read_answers_the_stored_figures(
    account, books, monkeypatch, settings
):
    # Every PnL run holds the account's exclusion, as every writer of its orders and legs
    # (orders.services.account_lock): beside a cycle or a broker event at work it waits;
    # a read waits a moment, then answers what is stored.
    settings.ACCOUNT_LOCK_WAIT_SECONDS = 0.2
    monkeypatch.setattr(services, "PNL_READ_WAIT_SECONDS", 0.2)
    books.fills(("O1", "BUY", 3, "100", at(5)))
    held, release = threading.Event(), threading.Event()

    def hold():
        with account_exclusion(account.pk, purpose="a cycle in the test"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with pytest.raises(AccountBusy):
            compute_account_pnl(account=account)
        assert services.refresh_account_pnl_if_stale(account=account) is None
        assert not PnlLot.objects.filter(account=account).exists()
    finally:
        release.set()
        holder.join(10)
    assert services.refresh_account_pnl_if_stale(account=account) is not None
    assert PnlLot.objects.filter(account=account).count() == 1


def test_a_contracts_multiplier_scales_its_lots_day_orders_and_account_but_not_others(account):
    crude = BrokerBooks(account, make_instrument(segment="MCXFO", multiplier=100))
    shares = BrokerBooks(account, make_instrument())
    make_fair_price(crude.instrument, "5010")
    buy = filled_order(account, crude.instrument, quantity=3, entry_broker_order_id="B1")
    crude.fills(("B1", "BUY", 3, "5000", at(30)), ("S1", "SELL", 1, "5004.5", at(20)))
    shares.fills(("B2", "BUY", 1, "10", at(30)), ("S2", "SELL", 1, "11", at(20)))

    result = compute_account_pnl(account=account, now=NOW)

    # Crude: 1 x 4.5 x 100 realized, 2 x 10 x 100 open; the shares 1 x 1.
    lots = PnlLot.objects.filter(
        account=account, exchange_instrument_id=crude.instrument.exchange_instrument_id
    )
    assert lots.get(kind=PnlLot.Kind.MATCHED).realized_pnl == D("450")
    assert lots.get(kind=PnlLot.Kind.OPEN).unrealized_pnl == D("2000")
    assert (result.realized, result.unrealized, result.total) == (
        D("451.00"),
        D("2000.00"),
        D("2451.00"),
    )
    day = PnlDaily.objects.get(account=account)
    assert day.turnover == D("2000450.00") + D("21")  # (3 x 5000 + 5004.5) x 100, + 10 + 11
    buy.refresh_from_db()
    assert (buy.pnl, buy.open_position) == (D("2450.00"), 2)


def test_a_multiplier_learned_after_the_fills_were_matched_rematches_them_with_it(account):
    # The contract traded before the instrument master gave its multiplier (or gave 1): the
    # stored result must not outlive the master's correction.
    crude = BrokerBooks(account, make_instrument(segment="MCXFO"))
    make_fair_price(crude.instrument, "102")
    crude.fills(("B1", "BUY", 2, "100", at(30)), ("S1", "SELL", 1, "101", at(20)))
    assert compute_account_pnl(account=account, now=NOW).realized == D("1.00")

    Instrument.objects.filter(pk=crude.instrument.pk).update(multiplier=10)
    result = compute_account_pnl(account=account, now=NOW + timedelta(minutes=1))

    key = (crude.instrument.exchange_segment, crude.instrument.exchange_instrument_id)
    assert result.rematched_instruments == [key]
    assert (result.realized, result.unrealized) == (D("10.00"), D("20.00"))
    assert PnlLot.objects.get(account=account, kind=PnlLot.Kind.MATCHED).realized_pnl == D("10")
    assert PnlInstrumentState.objects.get(account=account).realized == D("10")


def test_without_a_trade_book_the_order_books_fills_use_the_multiplier_too(account):
    crude = BrokerBooks(account, make_instrument(segment="MCXFO", multiplier=10))
    crude.orders(("B1", "BUY", 1, "100", at(30)), ("S1", "SELL", 1, "101", at(20)))

    result = compute_account_pnl(account=account, now=NOW)

    assert result.realized == D("10.00")
    assert PnlDaily.objects.get(account=account).turnover == D("2010.00")
