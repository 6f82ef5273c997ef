"""Scheduled orders: placed once per trading day at their Asia/Kolkata time (SPEC 8), and the
/api/scheduled-orders CRUD."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.db.models.signals import post_save

from accounts.models import BrokerAccount
from monitoring.models import TradingHoliday
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import connect_account
from orders.models import Order, OrderLeg, ScheduledOrder, ScheduledOrderRun
from orders.scheduled.services import place_due_scheduled_orders
from tests.concurrency import in_threads
from tests.factories import (
    api_client_for,
    make_desk,
    make_instrument,
    make_schedule,
    make_user,
    make_xts_account,
    set_price_and_match,
)
from tests.servers import (
    SIM_ORDER_POST,
    free_port,
    held_by_another_worker,
    short_lock_waits,
)

pytestmark = pytest.mark.django_db

IST = ZoneInfo("Asia/Kolkata")
THU, FRI = datetime(2026, 11, 26, tzinfo=IST), datetime(2026, 11, 27, tzinfo=IST)


def at(day: datetime, hh: int, mm: int) -> datetime:
    return day.replace(hour=hh, minute=mm)


@pytest.fixture
def schedule(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.SCHEDULED_ORDER_GRACE_MINUTES = 5
    user, account, instrument = make_desk(symbol="SBIN", price="800")
    return make_schedule(user=user, account=account, instrument=instrument)


def test_not_placed_before_its_time(schedule):
    assert place_due_scheduled_orders(now=at(THU, 9, 29)) == []
    assert not Order.objects.filter(source=Order.Source.SCHEDULED).exists()


def test_placed_once_at_its_time_and_not_again_the_same_day(schedule):
    [run] = place_due_scheduled_orders(now=at(THU, 9, 30))
    assert run.status == "PLACED"
    order = Order.objects.get(pk=run.order_id)
    assert order.source == Order.Source.SCHEDULED and order.quantity == 5
    assert order.status == Order.Status.OPEN
    assert place_due_scheduled_orders(now=at(THU, 9, 31)) == []
    assert place_due_scheduled_orders(now=at(THU, 14, 0)) == []
    assert Order.objects.filter(user=schedule.user).count() == 1


def test_placed_again_the_next_trading_day(schedule):
    place_due_scheduled_orders(now=at(THU, 9, 30))
    [run] = place_due_scheduled_orders(now=at(FRI, 9, 31))
    assert run.trading_date == FRI.date() and run.status == "PLACED"
    assert Order.objects.filter(user=schedule.user).count() == 2


def test_skipped_on_a_holiday_and_on_weekends(schedule):
    TradingHoliday.objects.create(date=THU.date(), description="holiday")
    assert place_due_scheduled_orders(now=at(THU, 9, 30)) == []
    saturday = datetime(2026, 11, 28, tzinfo=IST)
    assert place_due_scheduled_orders(now=at(saturday, 9, 30)) == []


def test_too_late_is_recorded_missed_not_placed(schedule):
    [run] = place_due_scheduled_orders(now=at(THU, 11, 0))
    assert run.status == "MISSED"
    assert not Order.objects.filter(user=schedule.user).exists()
    assert place_due_scheduled_orders(now=at(THU, 11, 1)) == []


def test_a_little_late_is_still_placed(schedule):
    [run] = place_due_scheduled_orders(now=at(THU, 9, 34))
    assert run.status == "PLACED"


def test_disabled_schedule_is_not_placed(schedule):
    schedule.enabled = False
    schedule.save()
    assert place_due_scheduled_orders(now=at(THU, 9, 30)) == []


def test_invalid_template_is_recorded_as_failed_once(schedule):
    ScheduledOrder.objects.filter(pk=schedule.pk).update(
        template={**schedule.template, "order_quantity": 0}
    )
    [run] = place_due_scheduled_orders(now=at(THU, 9, 30))
    assert run.status == "FAILED" and run.error
    assert ScheduledOrderRun.objects.filter(schedule=schedule).count() == 1


def test_a_schedule_of_a_deactivated_account_records_why_once_a_day(schedule):
    # Skipped without a run: the schedule showed enabled and the trader never learnt why
    # nothing was placed.
    BrokerAccount.objects.filter(pk=schedule.account_id).update(is_active=False)
    [run] = place_due_scheduled_orders(now=at(THU, 9, 30))
    assert (run.status, run.order_id) == ("FAILED", None) and "inactive" in run.error
    assert place_due_scheduled_orders(now=at(THU, 9, 31)) == []
    assert not Order.objects.filter(user=schedule.user).exists()
    BrokerAccount.objects.filter(pk=schedule.account_id).update(is_active=True)
    [next_day] = place_due_scheduled_orders(now=at(FRI, 9, 30))  # still enabled: placed again
    assert next_day.status == "PLACED"


# ---- API --------------------------------------------------------------------------------------


def _body(schedule, **overrides):
    body = {
        "name": "api schedule",
        "account_id": schedule.account_id,
        "kind": "SINGLE",
        "template": schedule.template,
        "time_of_day": "10:15:00",
        "weekdays": [0, 2, 4],
    }
    body.update(overrides)
    return body


def test_api_creates_lists_updates_and_deletes_a_schedule(schedule):
    client = api_client_for(schedule.user)
    created = client.post("/api/scheduled-orders", _body(schedule), format="json")
    assert created.status_code == 201, created.json()
    schedule_id = created.json()["scheduled_order"]["id"]
    listed = client.get("/api/scheduled-orders").json()["scheduled_orders"]
    assert {s["id"] for s in listed} == {schedule.pk, schedule_id}
    patched = client.patch(
        f"/api/scheduled-orders/{schedule_id}", {"enabled": False}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["scheduled_order"]["enabled"] is False
    assert client.delete(f"/api/scheduled-orders/{schedule_id}").status_code == 204
    assert not ScheduledOrder.objects.filter(pk=schedule_id).exists()


def test_api_rejects_an_invalid_template_and_writes_nothing(schedule):
    client = api_client_for(schedule.user)
    bad = _body(schedule, template={**schedule.template, "order_quantity": -3})
    response = client.post("/api/scheduled-orders", bad, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    unknown = client.post(
        "/api/scheduled-orders", _body(schedule, template={"bogus": 1}), format="json"
    )
    assert unknown.status_code == 400
    assert ScheduledOrder.objects.count() == 1


@pytest.mark.parametrize("instrument_id", ["\u00b2", "1\u2460"])
def test_a_template_instrument_id_int_cannot_read_is_a_400(schedule, instrument_id):
    # A digit to str.isdigit that int() refuses: it was a ValueError, a 500.
    template = {**schedule.template, "exchange_instrument_id": instrument_id}
    response = api_client_for(schedule.user).post(
        "/api/scheduled-orders", _body(schedule, template=template), format="json"
    )
    assert response.status_code == 400
    assert response.json()["details"]["exchange_instrument_id"]
    assert ScheduledOrder.objects.count() == 1


def test_another_users_schedule_is_a_404(schedule):
    stranger = api_client_for(make_user())
    assert stranger.get(f"/api/scheduled-orders/{schedule.pk}").status_code == 404
    assert stranger.delete(f"/api/scheduled-orders/{schedule.pk}").status_code == 404
    created = stranger.post("/api/scheduled-orders", _body(schedule), format="json")
    assert created.status_code == 404  # the account is not theirs
    assert ScheduledOrder.objects.filter(pk=schedule.pk).exists()


# ---- hostile input, and firing under faults -------------------------------------------------


@pytest.mark.parametrize("targets", [5, True, 1.5])
def test_a_bracket_template_whose_targets_are_not_a_list_is_a_400(schedule, targets):
    # Iterating 5 or true was a TypeError: a 500.
    template = {
        "exchange_segment": "NSECM",
        "trading_symbol": "SBIN",
        "order_side": "BUY",
        "no_of_lots": 1,
        "entry_price": "800",
        "sl_price": "790",
        "targets": targets,
    }
    response = api_client_for(schedule.user).post(
        "/api/scheduled-orders", _body(schedule, kind="BRACKET", template=template), format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["details"]["targets"]
    assert ScheduledOrder.objects.count() == 1


@pytest.mark.parametrize("external_id", ["x" * 65, "morning\x00buy"])
def test_a_template_external_id_no_order_can_store_is_a_400(schedule, external_id):
    # It was stored, then failed every day at its time (the order's column is 64 characters).
    template = {**schedule.template, "external_id": external_id}
    client = api_client_for(schedule.user)
    created = client.post(
        "/api/scheduled-orders", _body(schedule, template=template), format="json"
    )
    assert created.status_code == 400, created.content
    assert created.json()["details"]["external_id"]
    patched = client.patch(
        f"/api/scheduled-orders/{schedule.pk}", {"template": template}, format="json"
    )
    assert patched.status_code == 400
    assert ScheduledOrder.objects.get().template == schedule.template


@pytest.mark.parametrize("given", ["04:00:00Z", "03:30:00-00:30"])
def test_a_time_given_with_an_offset_is_that_moment_in_ist(schedule, given):
    # The offset was dropped: "04:00Z" (09:30 IST) was stored as 04:00 IST.
    response = api_client_for(schedule.user).post(
        "/api/scheduled-orders", _body(schedule, time_of_day=given), format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["scheduled_order"]["time_of_day"] == "09:30:00"
    created = ScheduledOrder.objects.get(pk=response.json()["scheduled_order"]["id"])
    assert created.time_of_day == time(9, 30)


def _sibling(schedule: ScheduledOrder, name: str, **fields) -> ScheduledOrder:
    """Another schedule of the same trader and account placing the same order at 09:30."""
    return ScheduledOrder.objects.create(
        user=schedule.user,
        account=schedule.account,
        name=name,
        template=schedule.template,
        **{"time_of_day": time(9, 30), **fields},
    )


def _beat_while(schedule: ScheduledOrder, meanwhile) -> list[ScheduledOrderRun]:
    """The 09:30 beat, with `meanwhile()` run the moment it has claimed `schedule`'s day."""

    def claimed(sender, instance, created, **kwargs):
        if created and instance.schedule_id == schedule.pk:
            meanwhile()

    post_save.connect(claimed, sender=ScheduledOrderRun)
    try:
        return place_due_scheduled_orders(now=at(THU, 9, 30))
    finally:
        post_save.disconnect(claimed, sender=ScheduledOrderRun)


def test_a_schedule_deleted_while_it_fires_keeps_its_order_and_the_next_still_runs(schedule):
    later = _sibling(schedule, "second")
    # The trader deletes the schedule the moment the beat has claimed its day.
    client = api_client_for(schedule.user)
    runs = _beat_while(  # raised DatabaseError
        schedule, lambda: client.delete(f"/api/scheduled-orders/{schedule.pk}")
    )
    assert [run.status for run in runs] == ["PLACED", "PLACED"]
    assert not ScheduledOrder.objects.filter(pk=schedule.pk).exists()
    assert ScheduledOrderRun.objects.get().schedule_id == later.pk
    assert Order.objects.filter(user=schedule.user, source="SCHEDULED").count() == 2


def test_a_schedule_switched_off_while_the_beat_places_the_one_before_it_is_not_placed(
    schedule,
):
    later = _sibling(schedule, "second")
    # While the beat places the first schedule, the trader switches the second off.
    client = api_client_for(schedule.user)
    runs = _beat_while(
        schedule,
        lambda: client.patch(f"/api/scheduled-orders/{later.pk}", {"enabled": False}, "json"),
    )
    assert not ScheduledOrder.objects.get(pk=later.pk).enabled
    assert [run.schedule_id for run in runs] == [schedule.pk]  # the second was placed too
    assert Order.objects.filter(user=schedule.user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_beats_on_two_workers_at_once_place_each_schedule_once(schedule):
    for n in range(2):
        _sibling(schedule, f"more {n}")
    results = in_threads(4, lambda _: place_due_scheduled_orders(now=at(THU, 9, 30)))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(run.schedule_id for runs in results for run in runs) == sorted(
        ScheduledOrder.objects.values_list("pk", flat=True)
    )
    assert Order.objects.filter(user=schedule.user).count() == 3
    assert PaperOrder.objects.filter(book__account=schedule.account).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_schedule_another_transaction_holds_waits_a_beat_and_the_rest_still_run(schedule):
    # The schedule's row locked (a change being saved) past MariaDB's lock wait: the claim's
    # lock wait timeout (1205) raised out of the beat, and no later schedule was placed.
    later = _sibling(schedule, "second")

    @contextmanager
    def row_locked() -> Iterator[None]:
        with transaction.atomic():
            list(ScheduledOrder.objects.select_for_update().filter(pk=schedule.pk))
            yield

    with held_by_another_worker(row_locked), short_lock_waits():
        runs = place_due_scheduled_orders(now=at(THU, 9, 30))
    assert [(run.schedule_id, run.status) for run in runs] == [(later.pk, "PLACED")]
    [next_beat] = place_due_scheduled_orders(now=at(THU, 9, 31))
    assert (next_beat.schedule_id, next_beat.status) == (schedule.pk, "PLACED")
    assert Order.objects.filter(user=schedule.user).count() == 2


def test_a_run_whose_worker_stopped_is_placed_by_the_next_beat_once(schedule):
    # A worker killed between claiming the day and writing the order left the run STARTED:
    # nothing was ever placed, and no later beat looked at it again.
    stale = ScheduledOrderRun.objects.create(
        schedule=schedule, trading_date=THU.date(), status="STARTED"
    )
    ScheduledOrderRun.objects.filter(pk=stale.pk).update(
        created_at=at(THU, 9, 30) - timedelta(minutes=3)
    )
    [run] = place_due_scheduled_orders(now=at(THU, 9, 33))
    assert run.pk == stale.pk and run.status == "PLACED"
    assert place_due_scheduled_orders(now=at(THU, 9, 34)) == []
    [order] = Order.objects.filter(user=schedule.user)
    assert ScheduledOrderRun.objects.get().order_id == order.pk


def test_a_stopped_workers_order_is_linked_not_placed_again(schedule):
    [first] = place_due_scheduled_orders(now=at(THU, 9, 30))
    # As if the worker stopped after placing, before it wrote the run's outcome.
    ScheduledOrderRun.objects.filter(pk=first.pk).update(
        status="STARTED", order=None, created_at=at(THU, 9, 30) - timedelta(minutes=3)
    )
    [again] = place_due_scheduled_orders(now=at(THU, 9, 40))  # past the grace: linked
    assert again.status == "PLACED" and again.order_id == first.order_id
    assert Order.objects.filter(user=schedule.user).count() == 1


def _market_buy_schedule(user, account) -> ScheduledOrder:
    """A schedule of `account` buying 1 RELIANCE at market at 09:30 (priced at 100)."""
    stock = make_instrument(symbol="RELIANCE")
    set_price_and_match(stock, "100.00")
    return make_schedule(
        user=user,
        account=account,
        instrument=stock,
        template={
            "symbol": "RELIANCE",
            "order_side": "BUY",
            "order_type": "MARKET",
            "order_quantity": 1,
        },
    )


def test_a_run_not_sent_is_tried_again_at_the_next_beat_and_placed_once(simulator, settings):
    # The broker's login unreachable at 09:30 (nothing sent): the day's run was REJECTED for
    # good, though sending again was safe and the grace had minutes to go.
    settings.TRADING_WINDOW_ALWAYS_OPEN = True  # a live account places inside the window
    settings.SCHEDULED_ORDER_GRACE_MINUTES = 5
    user = make_user()
    account = make_xts_account(f"http://127.0.0.1:{free_port()}", user=user)
    _market_buy_schedule(user, account)
    [refused] = place_due_scheduled_orders(now=at(THU, 9, 30))
    assert refused.status == "STARTED" and "not sent" in refused.error
    assert Order.objects.get(pk=refused.order_id).status == Order.Status.REJECTED

    account.credentials = {**account.credentials, "base_url": simulator.base_url}
    account.save()
    connect_account(account)
    [placed] = place_due_scheduled_orders(now=at(THU, 9, 31))
    assert placed.pk == refused.pk and placed.status == "PLACED", placed.error
    assert place_due_scheduled_orders(now=at(THU, 9, 32)) == []
    live = Order.objects.exclude(status=Order.Status.REJECTED).filter(user=user)
    assert [o.pk for o in live] == [placed.order_id]
    [entry] = OrderLeg.objects.filter(order_id=placed.order_id)
    assert simulator.stats()["order_posts_by_uid"] == {entry.unique_identifier: 1}


def test_a_run_not_sent_till_its_grace_ends_is_missed_and_keeps_its_order(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.SCHEDULED_ORDER_GRACE_MINUTES = 5
    user, _, instrument = make_desk(symbol="INFY", price="800")
    account = make_xts_account(f"http://127.0.0.1:{free_port()}", user=user)
    schedule = make_schedule(user=user, account=account, instrument=instrument)
    [refused] = place_due_scheduled_orders(now=at(THU, 9, 30))
    [missed] = place_due_scheduled_orders(now=at(THU, 9, 40))
    assert missed.pk == refused.pk and missed.status == "MISSED"
    assert "not sent" in missed.error and missed.order_id == refused.order_id
    assert place_due_scheduled_orders(now=at(THU, 9, 41)) == []
    assert Order.objects.filter(user=schedule.user).count() == 1


def test_an_order_written_before_the_run_failed_is_linked_to_the_run(
    simulator, settings, monkeypatch
):
    # The broker took the order, then writing its answer lost every lock conflict (the leg
    # held by another worker): the run was FAILED with no order, and the trader, seeing
    # nothing placed, could place it again by hand.
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    connect_account(account)
    schedule = _market_buy_schedule(user, account)

    @contextmanager
    def leg_locked() -> Iterator[None]:
        with transaction.atomic():
            list(OrderLeg.objects.select_for_update().filter(account=account))
            yield

    with ExitStack() as held:
        simulator.after_answering(
            SIM_ORDER_POST,
            lambda: held.enter_context(held_by_another_worker(leg_locked)),
            monkeypatch=monkeypatch,
        )
        with short_lock_waits():
            [run] = place_due_scheduled_orders(now=at(THU, 9, 30))
    [order] = Order.objects.filter(user=user)
    assert (run.status, run.order_id) == ("PLACED", order.pk)
    assert "OperationalError" in run.error  # what went wrong, kept
    assert ScheduledOrderRun.objects.get().order_id == order.pk
    assert place_due_scheduled_orders(now=at(THU, 9, 31)) == []
    [listed] = api_client_for(user).get("/api/scheduled-orders").json()["scheduled_orders"]
    assert listed["id"] == schedule.pk
    assert [run["order_id"] for run in listed["recent_runs"]] == [order.pk]  # the trader sees it
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == 1


def test_a_live_accounts_schedule_outside_the_trading_window_is_a_400(schedule):
    # Stored, it failed "market closed" every day it ran.
    live = make_xts_account("https://developers.symphonyfintech.in", user=schedule.user)
    client = api_client_for(schedule.user)
    early = client.post(
        "/api/scheduled-orders",
        _body(schedule, account_id=live.pk, time_of_day="08:00"),
        format="json",
    )
    assert early.status_code == 400, early.content
    assert early.json()["details"]["time_of_day"]
    assert not ScheduledOrder.objects.filter(account=live).exists()
    inside = client.post(
        "/api/scheduled-orders", _body(schedule, account_id=live.pk), format="json"
    )
    assert inside.status_code == 201, inside.content
    moved = client.patch(
        f"/api/scheduled-orders/{schedule.pk}",
        {"account_id": live.pk, "time_of_day": "15:45"},
        format="json",
    )
    assert moved.status_code == 400
    assert ScheduledOrder.objects.get(pk=schedule.pk).account_id == schedule.account_id
    # A schedule stored before this rule can still be switched off.
    ScheduledOrder.objects.filter(pk=schedule.pk).update(account=live, time_of_day=time(8, 0))
    off = client.patch(f"/api/scheduled-orders/{schedule.pk}", {"enabled": False}, format="json")
    assert off.status_code == 200, off.content


def test_a_stored_schedule_whose_weekdays_are_not_days_fails_alone(schedule):
    # Weekdays "0,1" (stored through the admin) made the beat raise: no schedule after it
    # in the beat's order was placed, for any user, all day.
    _sibling(schedule, "broken", weekdays="0,1", time_of_day=time(9, 0))
    runs = place_due_scheduled_orders(now=at(THU, 9, 30))
    assert [(run.schedule.name, run.status) for run in runs] == [
        ("broken", "FAILED"),
        ("morning buy", "PLACED"),
    ]
    assert "weekdays" in runs[0].error
    assert place_due_scheduled_orders(now=at(THU, 9, 31)) == []
    assert Order.objects.filter(user=schedule.user).count() == 1
