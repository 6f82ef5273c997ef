"""The account's exclusion (issue 10 item 12, issue 12 item 4) and the desk's own actions
knowing the order's new state at once (issue 12 item 5)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.test import Client
from django_redis import get_redis_connection

from orders.brokers.paper.exchange import match_open_orders
from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent, OrderLeg
from orders.services import (
    cancel_order,
    place_single_order,
)
from orders.services.exclusion import ExclusionLost, account_exclusion, lease_name
from orders.services.kill_switch import kill_switch
from tests.factories import (
    legs_of,
    make_fair_price,
    place_protected_bracket,
    single_request,
)
from tests.servers import held_by_another_worker, leases_of_a_millisecond
from trading_site.core import leases
from trading_site.core.realtime import flush_notifications

D = Decimal
pytestmark = pytest.mark.django_db(transaction=True)


def _held_by_another_worker(account_id: int):
    """Another worker holds the account's exclusion for the block (or until the yielded
    event is set)."""
    return held_by_another_worker(lambda: account_exclusion(account_id, purpose="test holder"))


@pytest.mark.parametrize("obstacle, words", [("busy", "busy"), ("lease ended", "try again")])
def test_a_cancel_that_cannot_hold_the_account_answers_409_and_changes_nothing(
    client, trader, account, instrument, settings, obstacle, words
):
    """Another worker holds the account past the wait; or the lease the cancel took ends
    before it acts, and the fence stops it (that was a 500). Either way a 409 to try again,
    and nothing sent or recorded."""
    order = place_single_order(user=trader, request=single_request(account)).order
    settings.ACCOUNT_LOCK_WAIT_SECONDS = 0.3
    with (
        _held_by_another_worker(account.pk)
        if obstacle == "busy"
        else leases_of_a_millisecond(settings)
    ):
        response = client.post(f"/api/orders/{order.pk}/cancel")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "CONFLICT" and words in body["error"]
    (leg,) = legs_of(order)
    assert leg.status == "OPEN"
    assert PaperOrder.objects.get(unique_identifier=leg.unique_identifier).status == "OPEN"
    assert not order.events.filter(kind__startswith="leg_cancelled").exists()
    # Once the obstacle is gone, the same cancel goes through.
    assert client.post(f"/api/orders/{order.pk}/cancel").status_code == 200


def test_a_cancel_waits_for_the_holder_and_then_acts_on_what_it_left(
    trader, account, instrument, settings
):
    order = place_single_order(user=trader, request=single_request(account)).order
    finished = threading.Event()

    def cancel():
        cancel_order(order=Order.objects.get(pk=order.pk), actor="test")
        finished.set()

    with _held_by_another_worker(account.pk) as release:
        threading.Timer(0.5, release.set).start()
        canceller = threading.Thread(target=cancel)
        canceller.start()
        assert not finished.wait(0.3)  # waiting for the holder
        canceller.join(10)
    assert finished.is_set()
    assert legs_of(order)[0].status == "CANCELLED"


def test_a_holder_whose_lease_ended_meanwhile_sends_and_writes_nothing(trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    with account_exclusion(account.pk, purpose="a stalled holder"):
        # It stalled past its ttl and the lease went (to someone else, perhaps).
        get_redis_connection("default").delete(f"td:lease:{lease_name(account.pk)}")
        with pytest.raises(ExclusionLost):
            cancel_order(order=order, actor="stale")
    (leg,) = legs_of(order)
    assert leg.status == "OPEN"
    assert PaperOrder.objects.get(unique_identifier=leg.unique_identifier).status == "OPEN"
    assert not order.events.filter(kind__startswith="leg_cancelled").exists()


def test_embedded_leases_are_process_local_locks(settings):
    settings.EMBEDDED = True
    name = "test:embedded"
    lease = leases.acquire(name, ttl=1)
    assert lease.backend == leases.LOCAL
    assert leases.is_held(name)
    assert leases.acquire(name, ttl=1) is lease  # re-entrant in its own thread
    outcome: list = []

    def other():
        try:
            outcome.append(leases.acquire(name, ttl=1, wait=0.2))
        except leases.LeaseBusy:
            outcome.append("busy")

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert outcome == ["busy"]
    leases.release(lease)
    assert leases.is_held(name)  # still held once: acquired twice
    leases.release(lease)
    assert not leases.is_held(name)


def test_a_release_never_deletes_the_next_holders_lease():
    name = "test:expired"
    first = leases.acquire(name, ttl=5)
    redis = get_redis_connection("default")
    redis.set(f"td:lease:{name}", "next-holder", px=5000)  # ours lapsed, someone took it
    leases.release(first)
    assert redis.get(f"td:lease:{name}") == b"next-holder"


def test_a_lease_wakes_the_heartbeat_only_when_due_before_it_looks_again():
    """Every placement takes its account's lease (ttl 15 s): waking the heartbeat thread
    for each cost a thread switch per order. Only a lease due for renewal before the
    thread's next look wakes it, and that one is renewed in time."""
    redis = get_redis_connection("default")
    with leases.held("test:long", ttl=15):
        time.sleep(0.6)  # the thread has seen it and sleeps for a while (ttl / 6)
        wake = leases._heartbeat.wake
        woken: list[str] = []
        wake.set = lambda: (woken.append("set"), threading.Event.set(wake))[1]  # type: ignore[method-assign]
        try:
            with leases.held("test:long-too", ttl=15):
                assert woken == []
            with leases.held("test:short", ttl=0.3) as short:
                assert woken == ["set"]
                time.sleep(0.9)  # three ttls: only its renewals keep it
                assert redis.get("td:lease:test:short") == short.token.encode()
        finally:
            del wake.set
    assert not leases.is_held("test:long")


# ---- the desk's own actions know the new state at once ----------------------------------------


def test_a_market_order_the_paper_exchange_fills_at_once_is_filled_in_answer_page_and_update(
    client, trader, account, instrument, listen
):
    listener = listen(trader.pk)
    response = client.post(
        "/api/orders",
        {
            "account_id": account.pk,
            "symbol": "RELIANCE",
            "exchange_segment": "NSECM",
            "product_type": "MIS",
            "order_side": "BUY",
            "order_quantity": 10,
            "order_type": "MARKET",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()["order"]
    assert body["order_status"] == "FILLED"
    order = Order.objects.get(pk=body["id"])
    assert (order.status, order.filled_quantity) == ("FILLED", 10)
    (leg,) = legs_of(order)
    assert (leg.status, leg.filled_quantity) == ("FILLED", 10)
    assert leg.average_price is not None
    web = Client()
    web.force_login(trader)
    page = web.get(f"/orders/{order.pk}/").content.decode()
    assert 'data-testid="order-status">Filled<' in page
    flush_notifications()
    updates = [m for m in listener.drain() if m.get("type") == "order_update"]
    assert updates and updates[-1]["status"] == "FILLED"


def test_a_modification_the_paper_exchange_fills_at_once_is_filled_at_once(
    client, trader, account, instrument
):
    order = place_single_order(user=trader, request=single_request(account)).order
    response = client.patch(f"/api/orders/{order.pk}", {"limit_price": "100.10"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["order_status"] == "FILLED"
    (leg,) = legs_of(order)
    assert (leg.status, leg.filled_quantity) == ("FILLED", 10)


def test_the_kill_switch_reads_the_broker_first_and_never_cancels_a_filled_stop_loss(
    trader, account, instrument
):
    bracket = place_protected_bracket(user=trader, account=account, instrument=instrument)
    (sl,) = legs_of(bracket, "STOP_LOSS")
    # The stop-loss fills at the broker; the desk has not synced since.
    make_fair_price(instrument, "95.20")
    match_open_orders()
    assert PaperOrder.objects.get(unique_identifier=sl.unique_identifier).status == "FILLED"
    sl.refresh_from_db()
    assert sl.status == "OPEN"  # stale until something reads the broker

    result = kill_switch(account=account, actor="test")

    assert result.complete, result.errors
    assert sl.unique_identifier not in result.cancelled_legs
    assert not OrderEvent.objects.filter(kind="kill_switch_cancel_failed").exists()
    sl.refresh_from_db()
    assert sl.status == "FILLED"
    # The stop-loss closed the position: nothing left to square off.
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    assert not Order.objects.filter(account=account, source="KILL_SWITCH").exists()
