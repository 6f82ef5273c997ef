"""The monitoring loop's step 2 skips the FIFO recompute when nothing it depends on moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orders.models import Instrument
from pnl.models import PnlLot
from pnl.selectors import pnl_is_stale
from pnl.services import compute_account_pnl_if_changed
from tests.factories import (
    broker_trade_row,
    make_account,
    make_fair_price,
    make_instrument,
    make_trades,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 1, 6, 4, 30, tzinfo=UTC)  # 10:00 Asia/Kolkata, a Monday


@pytest.fixture
def traded_account():
    instrument = make_instrument()
    make_fair_price(instrument, "105")
    account = make_account()
    [trade] = make_trades(
        account=account,
        instrument=instrument,
        fills=[("B1", "BUY", 10, "100", NOW - timedelta(minutes=30))],
    )
    row = broker_trade_row(
        execution_id=trade.execution_id,
        broker_order_id="B1",
        traded_at=trade.traded_at,
        instrument=instrument,
        quantity=10,
        price=Decimal("100"),
    )
    return account, instrument, [row]


def test_the_same_broker_answer_twice_computes_once_and_keeps_the_lots(traded_account):
    account, _instrument, trades = traded_account
    first = compute_account_pnl_if_changed(account=account, order_book=[], trades=trades, now=NOW)
    lots = list(PnlLot.objects.filter(account=account).values_list("id", "unrealized_pnl"))

    second = compute_account_pnl_if_changed(
        account=account, order_book=[], trades=trades, now=NOW + timedelta(minutes=1)
    )

    assert first is not None and first.unrealized == Decimal("50.00")
    assert second is None
    assert list(PnlLot.objects.filter(account=account).values_list("id", "unrealized_pnl")) == lots


def test_a_fair_price_move_recomputes(traded_account):
    account, instrument, trades = traded_account
    compute_account_pnl_if_changed(account=account, order_book=[], trades=trades, now=NOW)
    make_fair_price(instrument, "103")

    again = compute_account_pnl_if_changed(
        account=account, order_book=[], trades=trades, now=NOW + timedelta(minutes=1)
    )

    assert again is not None and again.unrealized == Decimal("30.00")


def test_a_skipped_recompute_still_counts_as_fresh_for_readers(traded_account):
    account, _instrument, trades = traded_account
    compute_account_pnl_if_changed(account=account, order_book=[], trades=trades, now=NOW)
    # The next cycle's step 1 syncs the account, then step 2 finds nothing changed.
    account.last_synced_at = NOW + timedelta(minutes=1)
    account.save(update_fields=["last_synced_at"])
    skipped = compute_account_pnl_if_changed(
        account=account, order_book=[], trades=trades, now=NOW + timedelta(minutes=2)
    )

    assert skipped is None
    assert pnl_is_stale(account=account) is False


def test_a_changed_contract_multiplier_recomputes(traded_account):
    account, instrument, trades = traded_account
    compute_account_pnl_if_changed(account=account, order_book=[], trades=trades, now=NOW)
    Instrument.objects.filter(pk=instrument.pk).update(multiplier=10)

    again = compute_account_pnl_if_changed(
        account=account, order_book=[], trades=trades, now=NOW + timedelta(minutes=1)
    )

    assert again is not None and again.unrealized == Decimal("500.00")  # 10 x 5 x 10
