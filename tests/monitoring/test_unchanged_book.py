"""The cycle's shortcut for an unchanged book (orders.services.sync): a cycle that reads the
same four books as the last complete sync and finds the legs as that sync left them skips
storing and applying them; anything that changed on either side makes it a full sync. Real
parts: the paper broker, MariaDB, Redis."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import BrokerAccount
from monitoring.models import MonitoringRun
from monitoring.services import run_user_cycle
from orders.domain.vocabulary import EventKind, LegStatus
from orders.models import BrokerPosition, OrderEvent, OrderLeg
from tests.factories import (
    buy_at_market,
    make_desk,
    make_leg,
    make_order,
    place_bracket_near_1000,
    set_price_and_match,
)

pytestmark = pytest.mark.django_db
_keys = count(1)


def cycle(user) -> tuple[MonitoringRun, int]:
    """One cycle of `user` under a new key: the run and the queries it sent."""
    with CaptureQueriesContext(connection) as queries:
        run = run_user_cycle(user_id=user.pk, cycle_key=f"k{next(_keys)}", trigger="test")
    assert run is not None and run.status == MonitoringRun.Status.OK, run and run.steps
    return run, len(queries)


def entry_of(order) -> OrderLeg:
    return order.legs.get(role=OrderLeg.Role.ENTRY)


@pytest.fixture
def open_bracket():
    """A bracket whose entry rests at the paper exchange (995 under a price of 1000), after
    one cycle: the book and the legs have been synced once."""
    user, account, instrument = make_desk()
    order = place_bracket_near_1000(account=account, instrument=instrument)
    cycle(user)
    account.refresh_from_db()
    assert account.synced_book_digest and account.synced_legs_digest
    return user, account, instrument, order


def test_a_cycle_with_nothing_new_skips_storing_and_applying_the_book(open_bracket):
    user, account, _instrument, order = open_bracket
    _run, quiet = cycle(user)
    BrokerAccount.objects.filter(pk=account.pk).update(synced_book_digest="")
    _run, full = cycle(user)  # the same book, but no record of having synced it
    print("queries: unchanged", quiet, "full", full)
    assert quiet <= full - 5
    assert entry_of(order).status == LegStatus.OPEN
    account.refresh_from_db()
    assert account.last_synced_at is not None


def test_a_leg_changed_here_while_the_book_stayed_the_same_is_synced_again(open_bracket):
    """A modification whose answer never came left the entry UNKNOWN here; the broker's book
    did not change. The next cycle must still bring the leg back in line with the book."""
    user, _account, _instrument, order = open_bracket
    cycle(user)  # the shortcut's cycle
    entry = entry_of(order)
    # A bare UPDATE, as any writer might: updated_at is not touched.
    OrderLeg.objects.filter(pk=entry.pk).update(status=LegStatus.UNKNOWN)
    cycle(user)
    entry.refresh_from_db()
    assert entry.status == LegStatus.OPEN
    assert OrderEvent.objects.filter(leg=entry, kind=EventKind.LEG_SYNCED).exists()


def test_a_fill_at_the_broker_after_a_quiet_cycle_is_applied(open_bracket):
    user, _account, instrument, order = open_bracket
    cycle(user)
    set_price_and_match(instrument, "994")
    cycle(user)
    assert entry_of(order).status == LegStatus.FILLED
    order.refresh_from_db()
    assert order.filled_quantity == entry_of(order).quantity


def test_a_pending_leg_is_still_settled_when_its_grace_runs_out_on_an_unchanged_book(
    settings, open_bracket
):
    """A leg written ahead whose answer never came stays PENDING_SUBMIT within the grace
    period; once the grace is over the cycle rejects it, although neither the book nor the
    leg changed since the cycle that left it pending."""
    user, account, instrument, _order = open_bracket
    stray = make_order(account=account, instrument=instrument, entry_leg=False)
    pending = make_leg(order=stray, broker_order_id=None, status=LegStatus.PENDING_SUBMIT)
    settings.ORDER_PENDING_GRACE_SECONDS = 3600
    cycle(user)  # within the grace: left pending, the digests now include it
    cycle(user)
    pending.refresh_from_db()
    assert pending.status == LegStatus.PENDING_SUBMIT
    settings.ORDER_PENDING_GRACE_SECONDS = 0
    cycle(user)
    pending.refresh_from_db()
    assert pending.status == LegStatus.REJECTED
    assert "not found in the broker's order book" in pending.reject_reason


def test_the_prices_shown_on_live_orders_follow_the_market_on_an_unchanged_book(open_bracket):
    user, _account, instrument, order = open_bracket
    cycle(user)
    set_price_and_match(instrument, "1003")  # above the entry: nothing fills
    cycle(user)
    order.refresh_from_db()
    assert order.ltp == Decimal("1003")
    assert entry_of(order).status == LegStatus.OPEN


def test_positions_and_figures_follow_the_market_on_unchanged_books(settings):
    """An open position's books do not change while the price moves; its marks do, and the
    cycle stores them every time."""
    settings.PAPER_SLIPPAGE_BPS = "0"
    user, account, instrument = make_desk()
    buy_at_market(account, instrument, 10)
    cycle(user)
    cycle(user)
    before = BrokerPosition.objects.get(account=account)
    set_price_and_match(instrument, "1010")
    cycle(user)
    after = BrokerPosition.objects.get(account=account)
    assert after.net_qty == before.net_qty == 10
    assert after.mtm is not None and before.mtm is not None
    assert after.mtm - before.mtm == Decimal("100.00")
    account.refresh_from_db()
    assert account.synced_book_digest  # the books were unchanged: the shortcut's cycle
