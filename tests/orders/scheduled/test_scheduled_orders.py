"""Scheduled orders: placed once per trading day at their Asia/Kolkata time (SPEC 8), and the
/api/scheduled-orders CRUD."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitoring.models import TradingHoliday
from orders.models import Order, ScheduledOrder, ScheduledOrderRun
from orders.scheduled.services import place_due_scheduled_orders
from tests.factories import (
    api_client_for,
    make_desk,
    make_schedule,
    make_user,
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
