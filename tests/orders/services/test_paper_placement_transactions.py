"""A paper placement is two transactions (issue 15): the write-ahead, committed before the
paper exchange sees the order, then the exchange's placement and our record of its answer
together. Counted with MariaDB's own commit counter on a real (non-test-wrapped) connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest
from django.db import connection, connections, transaction

from accounts.models import BrokerSession
from orders.brokers.paper import exchange as paper_exchange
from orders.brokers.paper import gateway as paper_gateway
from orders.brokers.paper.models import PaperBook, PaperOrder
from orders.models import Order, OrderLeg
from orders.services import broker_calls, place_single_order
from tests.factories import (
    make_account,
    make_reliance_at_100,
    make_user,
    single_request,
)
from tests.servers import held_by_another_worker, leases_of_a_millisecond, short_lock_waits

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def desk():
    user = make_user()
    account = make_account(user=user)
    make_reliance_at_100()
    return user, account


def _commits() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Com_commit'")
        return int(cursor.fetchone()[1])


def _on_another_connection(sql: str, *params):
    """Run one statement as another process would (a new connection, autocommit): a read's
    first row, None for a write."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(sql, list(params))
            return cursor.fetchone() if cursor.description else None
    finally:
        other.close()


def test_a_steady_paper_placement_commits_twice(desk):
    user, account = desk
    place_single_order(user=user, request=single_request(account))  # logs in, opens the book
    before = _commits()
    result = place_single_order(user=user, request=single_request(account))
    assert _commits() - before == 2
    assert result.outcome == "accepted"
    leg = OrderLeg.objects.get(order=result.order)
    assert leg.status == "OPEN"
    assert PaperOrder.objects.get(unique_identifier=leg.unique_identifier).app_order_id == int(
        leg.broker_order_id
    )


def test_the_write_ahead_is_committed_before_the_exchange_sees_the_order(desk, monkeypatch):
    user, account = desk
    place_single_order(user=user, request=single_request(account))
    seen = {}
    submit = paper_gateway.submit_orders

    def spying_submit(*, book, requests, **options):
        # What another process (a new connection) sees while the exchange places it.
        seen["status"] = _on_another_connection(
            "SELECT status FROM order_legs WHERE unique_identifier = %s",
            requests[0].unique_identifier,
        )
        return submit(book=book, requests=requests, **options)

    monkeypatch.setattr(paper_gateway, "submit_orders", spying_submit)
    result = place_single_order(user=user, request=single_request(account))
    assert seen["status"] == ("PENDING_SUBMIT",)
    assert Order.objects.get(pk=result.order.pk).status == "OPEN"


def test_a_leg_changed_before_the_answer_is_recorded_is_decided_from_its_row(desk, monkeypatch):
    """The answer is saved onto the leg by an UPDATE that applies only while the row still
    holds what memory held (issue 15: no lock's read first); a leg another writer changed
    meanwhile (here rejected, between the write-ahead and the exchange's answer) is locked
    and read, and the answer goes through the lifecycle from what the row holds: refused,
    not written over it."""
    user, account = desk
    place_single_order(user=user, request=single_request(account))
    submit = paper_gateway.submit_orders

    def rejected_meanwhile(*, book, requests, **options):
        _on_another_connection(
            "UPDATE order_legs SET status = 'REJECTED' WHERE unique_identifier = %s",
            requests[0].unique_identifier,
        )
        return submit(book=book, requests=requests, **options)

    monkeypatch.setattr(paper_gateway, "submit_orders", rejected_meanwhile)
    result = place_single_order(user=user, request=single_request(account))

    leg = OrderLeg.objects.get(order=result.order)
    assert leg.status == "REJECTED"
    assert leg.broker_order_id in ("", None)
    kinds = [e.kind for e in result.order.events.order_by("pk")]
    assert kinds == ["order_created", "illegal_transition"]


def test_a_remembered_paper_book_that_is_gone_is_looked_up_again(desk):
    user, account = desk
    place_single_order(user=user, request=single_request(account))
    paper_gateway._book_ids[account.pk] = 987654321  # a book that does not exist
    result = place_single_order(user=user, request=single_request(account))
    assert result.outcome == "accepted"
    assert paper_gateway._book_ids[account.pk] != 987654321


def test_an_accounts_first_placement_logs_in_then_places_with_its_record_at_once(desk, monkeypatch):
    """No broker session yet: the paper login runs first, then the exchange's placement and
    our record of its answer are one transaction as on every later placement (not the event
    loop's path, whose placement commits on its own)."""
    user, account = desk
    assert not BrokerSession.objects.filter(account=account).exists()

    def no_event_loop_path(*args, **kwargs):
        raise AssertionError("placed through the event loop's path")

    monkeypatch.setattr(broker_calls, "send_new_legs", no_event_loop_path)
    result = place_single_order(user=user, request=single_request(account))

    assert result.outcome == "accepted"
    assert BrokerSession.objects.filter(account=account).exists()
    leg = OrderLeg.objects.get(order=result.order)
    assert leg.status == "OPEN"
    assert PaperOrder.objects.get(unique_identifier=leg.unique_identifier).app_order_id == int(
        leg.broker_order_id
    )


def test_a_paper_exchange_that_fails_mid_placement_leaves_none_of_its_rows(desk, monkeypatch):
    """The exchange opens no savepoint of its own in our transaction (issue 15): when it
    raises after writing its order, the unit is rolled back whole (its order with it) and
    the answer its error gives (unknown: the leg stays pending, never re-sent) is recorded
    in a transaction of its own."""
    user, account = desk
    place_single_order(user=user, request=single_request(account))

    def failing_publish(**kwargs):
        raise RuntimeError("the exchange failed after writing its order")

    monkeypatch.setattr(paper_exchange, "publish_on_commit", failing_publish)
    result = place_single_order(user=user, request=single_request(account))

    assert result.outcome == "unknown"
    leg = OrderLeg.objects.get(order=result.order)
    assert leg.status == "PENDING_SUBMIT"
    assert not PaperOrder.objects.filter(unique_identifier=leg.unique_identifier).exists()
    kinds = [e.kind for e in result.order.events.order_by("pk")]
    assert kinds == ["order_created", "leg_submit_unknown"]


# ---- a lock conflict rolls the unit back whole: run again, or recorded not sent -----------


@contextmanager
def _book_locked(account) -> Iterator[None]:
    with transaction.atomic():
        PaperBook.objects.select_for_update().get(account=account)
        yield


@contextmanager
def _book_held_by_another_worker(account, *, seconds: float) -> Iterator[None]:
    """The account's paper book locked FOR UPDATE by another worker for `seconds` at most
    (what a fill or a sync of another process does while Redis is down), with this
    connection's lock wait at 1 s: the placement's transaction loses the conflict and is
    rolled back."""
    with held_by_another_worker(lambda: _book_locked(account)) as release, short_lock_waits():
        timer = threading.Timer(seconds, release.set)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


@pytest.mark.parametrize(
    "obstacle, logged",
    [
        ("lock conflict", "placing on the paper exchange lost a lock conflict"),
        ("lease ended", "exclusion ended while recording broker answers"),
    ],
)
def test_a_paper_placement_that_meets_an_obstacle_is_placed_on_another_try(
    desk, settings, caplog, obstacle, logged
):
    """The book held by another worker past one lock wait; or the account's lease ending
    while the placement held it (the fence rolled the unit back whole, the exchange's order
    with it: that was a 500, the leg left pending and nothing placed). Either way the whole
    unit runs again (after a lost lease, without the exclusion, as when it is busy from the
    start: the row locks keep it atomic) and the order is placed once."""
    user, account = desk
    place_single_order(user=user, request=single_request(account))  # logs in, opens the book
    # A lease of a millisecond, and the book held meanwhile for 0.3 s (within one lock
    # wait), so the heartbeat finds the lease gone before the fence asks.
    with (
        _book_held_by_another_worker(account, seconds=1.6 if obstacle == "lock conflict" else 0.3),
        leases_of_a_millisecond(settings) if obstacle == "lease ended" else nullcontext(),
    ):
        result = place_single_order(user=user, request=single_request(account))

    assert logged in caplog.text
    assert result.outcome == "accepted"
    leg = OrderLeg.objects.get(order=result.order)
    assert leg.status == "OPEN"
    assert PaperOrder.objects.filter(unique_identifier=leg.unique_identifier).count() == 1
    assert [e.kind for e in result.order.events.order_by("pk")] == ["order_created", "leg_accepted"]


def test_a_paper_placement_that_loses_every_try_is_not_sent_and_its_key_is_free(desk):
    """Before, the first conflict answered "unknown" (the exchange's lock wait read as a
    broker failure) or a 500 (a deadlock): the leg stayed pending though nothing was placed."""
    user, account = desk
    place_single_order(user=user, request=single_request(account))
    request = single_request(account, client_order_id="busy-book-1")
    with _book_held_by_another_worker(account, seconds=6):
        result = place_single_order(user=user, request=request)

    assert result.outcome == "not_sent"
    leg = OrderLeg.objects.get(order=result.order)
    assert leg.status == "REJECTED"
    assert leg.reject_reason == "not sent: " + broker_calls.PAPER_BUSY_REASON
    assert not PaperOrder.objects.filter(unique_identifier=leg.unique_identifier).exists()
    assert Order.objects.get(pk=result.order.pk).client_order_id is None
    again = place_single_order(user=user, request=request)
    assert (again.outcome, again.created) == ("accepted", True)
