"""Write-ahead: a broker that times out leaves a pending leg that the next sync settles from
the order book by its unique identifier, without a second POST."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.utils import timezone

from orders.brokers.base import OrderAck, OrderRejected
from orders.brokers.sessions import broker_client, connect_account
from orders.brokers.xts.simulator import XtsSimulator, parse_users, serve_in_thread
from orders.models import Instrument, Order, OrderLeg
from orders.services import place_single_order, reconcile_pending_legs, sync_account_orders
from tests.factories import (
    api_client_for,
    make_reliance_at_100,
    make_user,
    make_xts_account,
    order_request,
    single_order_body,
    single_request,
)
from tests.servers import leases_of_a_millisecond, short_lock_waits

D = Decimal
ORDER_POST = "POST /interactive/orders"


@pytest.fixture
def simulator(transactional_db):
    running = serve_in_thread(XtsSimulator(users=parse_users("h4-app:h4-secret:H4USER"), seed=1))
    yield running
    running.stop()


def _faults(simulator, **knobs):
    httpx.post(f"{simulator.base_url}/_sim/faults", json=knobs, timeout=5).raise_for_status()


def _posts(simulator) -> dict:
    return httpx.get(f"{simulator.base_url}/_sim/stats", timeout=5).json()["order_posts_by_uid"]


@pytest.fixture
def iifl(simulator, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.BROKER_TIMEOUT_SECONDS = 0.5
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user, app_key="h4-app", secret="h4-secret")
    make_reliance_at_100()
    connect_account(account)
    return user, account


def test_a_timed_out_post_leaves_the_leg_pending_and_is_not_resent(simulator, iifl):
    user, account = iifl
    _faults(simulator, timeout_next=1, timeout_seconds=1.5, routes=[ORDER_POST])

    result = place_single_order(user=user, request=single_request(account))

    leg = OrderLeg.objects.get(order=result.order)
    assert result.outcome == "unknown"
    assert (result.order.status, leg.status) == (Order.Status.PENDING, "PENDING_SUBMIT")
    assert result.order.events.filter(kind="leg_submit_unknown").exists()
    assert _posts(simulator) == {leg.unique_identifier: 1}


def test_the_next_sync_settles_the_pending_leg_from_the_order_book(simulator, iifl):
    user, account = iifl
    _faults(simulator, timeout_next=1, timeout_seconds=1.5, routes=[ORDER_POST])
    order = place_single_order(user=user, request=single_request(account)).order

    book = async_to_sync(broker_client(account).order_book)()
    changed = sync_account_orders(account=account, order_book=book)

    leg = OrderLeg.objects.get(order=order)
    order.refresh_from_db()
    assert changed == [order.pk]
    assert (leg.status, order.status) == ("OPEN", Order.Status.OPEN)
    assert leg.broker_order_id
    assert order.events.filter(kind="leg_reconciled").exists()
    assert _posts(simulator) == {leg.unique_identifier: 1}


def test_the_api_answers_202_when_the_broker_does_not(simulator, iifl):
    user, account = iifl
    _faults(simulator, timeout_next=1, timeout_seconds=1.5, routes=[ORDER_POST])
    body = single_order_body(account)
    response = api_client_for(user).post("/api/orders", body, format="json")
    assert response.status_code == 202
    assert response.json()["order"]["order_status"] == "PENDING"


def test_a_5xx_on_the_post_is_pending_too_never_failed(simulator, iifl):
    user, account = iifl
    _faults(simulator, error_next=1, routes=[ORDER_POST])
    result = place_single_order(user=user, request=single_request(account))
    assert OrderLeg.objects.get(order=result.order).status == "PENDING_SUBMIT"


def test_a_pending_leg_the_broker_never_saw_is_rejected_after_the_grace_period(
    account, instrument, trader, settings
):
    settings.ORDER_PENDING_GRACE_SECONDS = 60
    order = place_single_order(user=trader, request=single_request(account)).order
    leg = OrderLeg.objects.get(order=order)
    OrderLeg.objects.filter(pk=leg.pk).update(
        status="PENDING_SUBMIT", broker_order_id=None, submitted_at=timezone.now()
    )

    assert reconcile_pending_legs(account=account, order_book=[]) == []
    assert OrderLeg.objects.get(pk=leg.pk).status == "PENDING_SUBMIT"

    OrderLeg.objects.filter(pk=leg.pk).update(submitted_at=timezone.now() - timedelta(minutes=5))
    assert reconcile_pending_legs(account=account, order_book=[]) == [order.pk]
    leg.refresh_from_db()
    order.refresh_from_db()
    assert leg.status == "REJECTED" and "not found in the broker's order book" in leg.reject_reason
    assert order.status == Order.Status.REJECTED


def test_xts_places_a_batch_one_post_per_leg_through_the_interface_default(simulator, iifl):
    """XTS has no bulk POST: the gateway interface's default posts each order once and keeps
    each answer on its own (a refusal does not cost the others)."""
    _user, account = iifl
    instrument = Instrument.objects.get(trading_symbol="RELIANCE")
    requests = [
        order_request(
            instrument,
            f"BULK{n}",
            order_type="LIMIT",
            quantity=1,
            limit=D("99.00"),
            product=product,
        )
        for n, product in enumerate(("MIS", "BRACKET", "NRML"))  # XTS refuses the second
    ]
    answers = async_to_sync(broker_client(account).place_orders)(requests)
    assert [type(answer) for answer in answers] == [OrderAck, OrderRejected, OrderAck]
    assert _posts(simulator) == {"BULK0": 1, "BULK1": 1, "BULK2": 1}


@contextmanager
def _the_new_leg_held_by_another_worker(*, seconds: float) -> Iterator[threading.Event]:
    """Another worker locks the new leg FOR UPDATE as soon as it is written ahead, for
    `seconds` (what a sync or a broker event of another process can do while Redis is down
    and the account's exclusion is per process): the recording of its answer waits for it.
    Yields an event set once the leg is held."""
    held = threading.Event()

    def hold() -> None:
        try:
            deadline = time.monotonic() + 10
            while not (
                leg_id := OrderLeg.objects.filter(status="PENDING_SUBMIT")
                .values_list("pk", flat=True)
                .first()
            ):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with transaction.atomic():
                list(OrderLeg.objects.select_for_update().filter(pk=leg_id))
                held.set()
                time.sleep(seconds)
        finally:
            connections.close_all()

    blocker = threading.Thread(target=hold)
    blocker.start()
    try:
        yield held
    finally:
        blocker.join()


def test_an_answer_whose_recording_loses_a_lock_conflict_is_recorded_on_another_try(
    simulator, iifl, settings, caplog
):
    """The broker accepted the order, then the transaction recording its answer lost a lock
    conflict (another worker held the leg past the lock wait) and was rolled back whole. The
    answer is recorded on another try: the leg OPEN with the broker's id, one acceptance in
    the audit, one POST, and no error for the trader (it was a 500)."""
    user, account = iifl
    settings.BROKER_TIMEOUT_SECONDS = 5
    _faults(simulator, latency_ms=500, routes=[ORDER_POST])
    # Held past the answer (0.5 s) and one lock wait (1 s).
    with _the_new_leg_held_by_another_worker(seconds=2) as held, short_lock_waits():
        result = place_single_order(user=user, request=single_request(account))

    assert held.is_set()
    assert "recording broker answers lost a lock conflict" in caplog.text
    _assert_accepted_once(simulator, result)


def _assert_accepted_once(simulator, result) -> None:
    leg = OrderLeg.objects.get(order=result.order)
    assert result.outcome == "accepted"
    assert (leg.status, bool(leg.broker_order_id)) == ("OPEN", True)
    assert result.order.events.filter(kind="leg_accepted").count() == 1
    assert Order.objects.get(pk=result.order.pk).status == Order.Status.OPEN
    assert _posts(simulator) == {leg.unique_identifier: 1}


def test_an_answer_whose_exclusion_ends_while_it_is_recorded_is_recorded_without_it(
    simulator, iifl, settings, caplog
):
    """The broker accepted the order; the account's lease taken to record its answer ended
    before the record was written (Redis lost it, or a stall past its ttl: here a ttl of a
    millisecond, and the leg held by another worker until 0.5 s past the broker's answer, so
    the heartbeat finds the lease gone). The fence rolled the record back; it is written again without
    the exclusion, as when the exclusion is busy. Before, the trader got a 500 for an order
    the broker holds, and the leg stayed pending until a sync."""
    user, account = iifl
    settings.BROKER_TIMEOUT_SECONDS = 5
    _faults(simulator, latency_ms=500, routes=[ORDER_POST])
    with (
        _the_new_leg_held_by_another_worker(seconds=1) as held,
        leases_of_a_millisecond(settings),
    ):
        result = place_single_order(user=user, request=single_request(account))

    assert held.is_set()
    assert "exclusion ended while recording broker answers" in caplog.text
    _assert_accepted_once(simulator, result)
