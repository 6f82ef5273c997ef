"""The PnL under faults, now that it runs under the account's exclusion (a Redis lease).

Redis unreachable (the cache pointed at a closed port, as in the rate limiter's test): the
lease degrades to this process, the run computes and commits, and every caller (the PnL API
read, the admin recompute, the broker events' finish) answers the fresh figures instead of
a 500. The account busy past the wait (its exclusion held by another thread, a real Redis
lease): the admin recompute says so in a message, not a 500, and writes nothing.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import BrokerAccount
from monitoring.events import finish_broker_events, handle_broker_events
from monitoring.services import run_user_cycle
from orders.models import BrokerOrder, OrderLeg
from orders.services.exclusion import account_exclusion
from pnl.models import PnlInstrumentState, PnlLot
from pnl.services import compute_account_pnl
from tests import factories
from tests.factories import (
    api_client_for,
    broker_event,
    legs_of,
    make_account,
    make_desk,
    make_instrument,
    make_trades,
    paper_order_row,
    place_bracket_near_1000,
    set_price_and_match,
)

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}


def _account_with_a_round_trip() -> BrokerAccount:
    account = make_account()
    now = timezone.now()
    make_trades(
        account=account,
        instrument=make_instrument(symbol="TCS"),
        fills=[
            ("E1", "BUY", 5, "10", now - timedelta(minutes=5)),
            ("X1", "SELL", 5, "12", now - timedelta(minutes=4)),
        ],
    )
    return account


def _synced_after_the_last_run(account: BrokerAccount) -> None:
    """The stored PnL predates the last sync: the API read recomputes."""
    BrokerAccount.objects.filter(pk=account.pk).update(
        last_synced_at=timezone.now() + timedelta(seconds=1)
    )


def test_with_redis_down_the_pnl_read_admin_and_events_finish_compute_and_answer(settings):
    account = _account_with_a_round_trip()
    compute_account_pnl(account=account)  # a stored result, which the read finds stale
    PnlLot.objects.filter(account=account).delete()
    PnlInstrumentState.objects.filter(account=account).update(fingerprint="")
    _synced_after_the_last_run(account)
    settings.CACHES = DEAD_REDIS

    response = api_client_for(account.user).get("/api/pnl/summary", {"account_id": account.pk})
    assert response.status_code == 200, response.content
    assert PnlLot.objects.filter(account=account).count() == 1  # computed, not stored only
    assert BrokerAccount.objects.get(pk=account.pk).realized_mtm == D("10.00")

    PnlLot.objects.filter(account=account).delete()
    state = PnlInstrumentState.objects.get(account=account)
    response = factories.staff_client().post(
        "/admin/pnl/pnlinstrumentstate/",
        {"action": "recompute_accounts", "_selected_action": [state.pk]},
    )
    assert response.status_code == 302
    assert PnlLot.objects.filter(account=account).count() == 1

    PnlLot.objects.filter(account=account).delete()
    PnlInstrumentState.objects.filter(account=account).delete()
    finish_broker_events(account.pk, frozenset({"pnl"}))
    assert PnlLot.objects.filter(account=account).count() == 1


def test_admin_recompute_of_a_busy_account_says_so_instead_of_a_500(settings):
    settings.ACCOUNT_LOCK_WAIT_SECONDS = 0.2
    account = _account_with_a_round_trip()
    compute_account_pnl(account=account)
    state = PnlInstrumentState.objects.get(account=account)
    PnlLot.objects.filter(account=account).delete()
    held, release = threading.Event(), threading.Event()

    def hold():  # a cycle or an event's work on the account, in another thread
        try:
            with account_exclusion(account.pk, purpose="test"):
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        response = factories.staff_client().post(
            "/admin/pnl/pnlinstrumentstate/",
            {"action": "recompute_accounts", "_selected_action": [state.pk]},
            follow=True,
        )
    finally:
        release.set()
        holder.join(30)
    assert response.status_code == 200
    assert "Busy with another change, try again" in response.content.decode()
    assert not PnlLot.objects.filter(account=account).exists()  # nothing written meanwhile


def test_with_redis_down_a_burst_with_an_unknown_order_still_fills_protects_and_computes(
    settings,
):
    """The broker events' whole path with Redis unreachable: the exclusion degrades to this
    process; an order the desk did not place (typed at the broker's terminal) in the same
    run is stored and noted, and must not roll back the fill of ours beside it."""
    _user, account, instrument = make_desk(symbol="LT")
    order = place_bracket_near_1000(account=account, instrument=instrument)
    [entry] = legs_of(order, OrderLeg.Role.ENTRY)
    set_price_and_match(instrument, "994")
    ours = paper_order_row(account, entry)
    theirs = dataclasses.replace(ours, broker_order_id="990001", unique_identifier="")
    settings.CACHES = DEAD_REDIS

    handle_broker_events([broker_event(account, order=theirs), broker_event(account, order=ours)])

    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", 10)
    assert len(legs_of(order, OrderLeg.Role.STOP_LOSS)) == 1  # protected
    assert BrokerOrder.objects.filter(account=account, broker_order_id="990001").exists()


def test_with_redis_down_a_cycle_already_running_still_computes_pnl_and_syncs(settings):
    """A cycle that Celery started just before Redis went away: its PnL step computes (the
    unchanged-inputs fingerprint cannot be read: computed, not failed) and the cycle goes
    on to the sync, instead of stopping at step 2 for every account."""
    user, account, instrument = make_desk(symbol="TITAN")
    place_bracket_near_1000(account=account, instrument=instrument)
    settings.CACHES = DEAD_REDIS

    run = run_user_cycle(user_id=user.pk, cycle_key="redis-down", trigger="test")

    steps = {step["name"]: step["outcome"] for step in run.steps}
    assert steps["compute_pnl"] == "ok", run.steps
    assert steps["sync_orders"] == "ok", run.steps
    assert steps["place_protective_legs"] == "ok", run.steps
