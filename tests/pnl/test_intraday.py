"""Live MTM on price ticks: a tick values the positions holding the instrument, keeps one
curve point per account and minute, and pushes positions_update to their owners only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.positions.selectors import position_book
from pnl.intraday import record_samples, revalue_and_push
from pnl.models import MtmSample
from pnl.selectors import mtm_curve
from tests.factories import (
    buy_and_sync,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
    record_price,
)
from trading_site.core import realtime

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """A price write; its after-commit work (matching, live MTM) runs as after a commit."""

    def write(instrument, price: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            record_price(instrument, price)

    return write


@pytest.fixture
def holder():
    user = make_user()
    account = make_account(user=user)
    instrument = make_instrument(symbol="TICKER")
    make_fair_price(instrument, "100")
    buy_and_sync(account, instrument, 10)
    MtmSample.objects.all().delete()
    return user, account, instrument


def test_a_tick_pushes_the_new_mtm_to_the_holder_and_keeps_a_curve_point(holder, tick, listen):
    user, account, instrument = holder
    bystander = make_user()
    make_account(user=bystander)
    mine, theirs = listen(user.pk), listen(bystander.pk)
    tick(instrument, "103")
    assert realtime.flush_notifications(timeout=10)
    pushed = [m for m in mine.drain(quiet_seconds=1.0) if m["type"] == "positions_update"]
    assert len(pushed) == 1
    message = pushed[0]
    assert message["account_id"] == account.pk and message["money"] == "paper"
    assert D(message["mtm"]) == D("30.00")
    [row] = message["positions"]
    assert D(row["ltp"]) == D("103") and row["net_qty"] == 10
    assert [m for m in theirs.drain(quiet_seconds=0.3) if m["type"] == "positions_update"] == []
    [sample] = MtmSample.objects.filter(account=account)
    assert sample.mtm == D("30.00")


def test_a_tick_of_an_instrument_nobody_holds_writes_nothing(holder, tick):
    _user, _account, _instrument = holder
    tick(make_instrument(symbol="NOBODY"), "10")
    assert not MtmSample.objects.exists()


def test_ticks_in_one_minute_keep_one_point_with_the_last_value(holder, tick):
    _user, account, instrument = holder
    book = position_book(accounts=[account])
    at = timezone.now().replace(second=5)
    record_samples(book.accounts, at=at)
    tick(instrument, "99")
    book = position_book(accounts=[account])
    record_samples(book.accounts, at=at.replace(second=50))
    [sample] = MtmSample.objects.filter(account=account, minute=at.replace(second=0, microsecond=0))
    assert sample.mtm == D("-10.00")


def test_points_older_than_the_retention_are_pruned_on_a_new_day(holder, settings):
    _user, account, _instrument = holder
    settings.MTM_SAMPLE_RETENTION_DAYS = 5
    old = timezone.now() - timedelta(days=9)
    MtmSample.objects.create(
        account=account, trading_date=old.date(), minute=old.replace(second=0), mtm=D("1")
    )
    revalue_and_push([account])
    assert not MtmSample.objects.filter(trading_date=old.date()).exists()
    assert MtmSample.objects.filter(account=account).count() == 1


def test_the_curve_of_several_accounts_is_their_sum(holder, tick):
    user, account, instrument = holder
    second = make_account(user=user)
    buy_and_sync(second, instrument, 5)
    tick(instrument, "102")  # account 20.00, second 10.00
    day = MtmSample.objects.first().trading_date
    [(minute, total)] = mtm_curve(accounts=[account, second], day=day)
    assert total == D("30.00")


def test_a_cycle_keeps_no_point_for_an_account_without_positions(holder):
    user, account, _instrument = holder
    empty = make_account(user=user)
    revalue_and_push([account, empty])
    assert MtmSample.objects.filter(account=account).count() == 1
    assert not MtmSample.objects.filter(account=empty).exists()
