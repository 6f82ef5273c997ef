"""A scheduled order places real orders every trading day: who created it, who changed its
template, time or switch, and who deleted it is on the audit trail (OrderEvent on the
schedule's account), with the schedule before and after, whichever door it came through
(the API, the settings pages, the admin)."""

from __future__ import annotations

import json
from datetime import time

import pytest
from django.urls import reverse

from orders.models import OrderEvent, ScheduledOrder
from tests import factories
from tests.factories import (
    api_client_for,
    events_of_kind,
    make_desk,
    make_schedule,
    schedule_template,
    web_client_for,
)

pytestmark = pytest.mark.django_db

CREATED, CHANGED, DELETED = "schedule_created", "schedule_changed", "schedule_deleted"


@pytest.fixture
def desk():
    return make_desk(symbol="SBIN", price="800")


@pytest.fixture
def schedule(desk):
    user, account, instrument = desk
    return make_schedule(user=user, account=account, instrument=instrument)


def _state(schedule: ScheduledOrder, **changed) -> dict:
    """The audited view of a schedule, as stored in before/after."""
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "account_id": schedule.account_id,
        "kind": schedule.kind,
        "template": schedule.template,
        "time_of_day": schedule.time_of_day.isoformat(),
        "weekdays": schedule.weekdays,
        "enabled": schedule.enabled,
        **changed,
    }


# ---- the API ------------------------------------------------------------------------------


def test_api_create_records_who_created_the_schedule_and_what_it_places(desk):
    user, account, instrument = desk
    response = api_client_for(user).post(
        "/api/scheduled-orders",
        {
            "name": "open bell",
            "account_id": account.pk,
            "kind": "SINGLE",
            "template": schedule_template(instrument),
            "time_of_day": "09:15:00",
            "weekdays": [4, 0],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    schedule = ScheduledOrder.objects.get(pk=response.json()["scheduled_order"]["id"])
    [event] = events_of_kind(CREATED)
    assert (event.account_id, event.user_id, event.order_id) == (account.pk, user.pk, None)
    assert event.actor == f"user:{user.pk}"
    assert event.before is None
    assert event.after == _state(schedule)
    assert event.after["weekdays"] == [0, 4] and event.after["time_of_day"] == "09:15:00"
    assert "open bell" in event.message


def test_api_disabling_a_schedule_records_the_switch_before_and_after(schedule):
    before = _state(schedule)
    response = api_client_for(schedule.user).patch(
        f"/api/scheduled-orders/{schedule.pk}", {"enabled": False}, format="json"
    )
    assert response.status_code == 200, response.json()
    [event] = events_of_kind(CHANGED)
    assert event.actor == f"user:{schedule.user_id}"
    assert event.account_id == schedule.account_id
    assert event.before == before
    assert event.after == {**before, "enabled": False}


def test_api_change_of_template_and_time_records_both_templates(schedule, desk):
    _, _, instrument = desk
    new_template = schedule_template(instrument, order_quantity=7, limit_price="780")
    response = api_client_for(schedule.user).patch(
        f"/api/scheduled-orders/{schedule.pk}",
        {"template": new_template, "time_of_day": "11:00:00"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    [event] = events_of_kind(CHANGED)
    assert event.before["template"] == schedule_template(instrument)
    assert event.before["time_of_day"] == "09:30:00"
    assert event.after["template"] == new_template
    assert event.after["time_of_day"] == "11:00:00"


def test_api_delete_records_the_schedule_that_is_gone(schedule):
    before = _state(schedule)
    response = api_client_for(schedule.user).delete(f"/api/scheduled-orders/{schedule.pk}")
    assert response.status_code == 204
    assert not ScheduledOrder.objects.filter(pk=before["id"]).exists()
    [event] = events_of_kind(DELETED)
    assert event.actor == f"user:{schedule.user_id}"
    assert (event.account_id, event.user_id) == (schedule.account_id, schedule.user_id)
    assert event.before == before and event.after is None


def test_a_refused_change_writes_no_audit_row(schedule, desk):
    _, _, instrument = desk
    response = api_client_for(schedule.user).patch(
        f"/api/scheduled-orders/{schedule.pk}",
        {"template": schedule_template(instrument, order_quantity=-3)},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert not OrderEvent.objects.exists()
    schedule.refresh_from_db()
    assert schedule.template["order_quantity"] == 5


# ---- the settings pages -------------------------------------------------------------------


def _web_form(account, **overrides) -> dict:
    return {
        "name": "web bell",
        "account_id": account.pk,
        "kind": "SINGLE",
        "time_of_day": "09:45",
        "weekdays": [1, 3],
        "enabled": "on",
        "symbol": "SBIN",
        "order_side": "BUY",
        "order_type": "MARKET",
        "order_quantity": 2,
        "product_type": "MIS",
        **overrides,
    }


def test_web_form_create_edit_and_delete_are_each_recorded(desk):
    user, account, _ = desk
    web = web_client_for(user)
    assert web.post(reverse("scheduled_create"), _web_form(account)).status_code == 302
    schedule = ScheduledOrder.objects.get(user=user)
    [created] = events_of_kind(CREATED)
    assert created.actor == f"user:{user.pk}" and created.account_id == account.pk
    assert created.before is None and created.after == _state(schedule)
    assert created.after["template"]["order_quantity"] == 2

    edited = web.post(
        reverse("scheduled_edit", args=[schedule.pk]),
        _web_form(account, order_quantity=4, time_of_day="10:00", enabled=""),
    )
    assert edited.status_code == 302
    [changed] = events_of_kind(CHANGED)
    assert changed.actor == f"user:{user.pk}"
    assert changed.before == created.after
    assert changed.after["template"]["order_quantity"] == 4
    assert changed.after["time_of_day"] == "10:00:00" and changed.after["enabled"] is False

    assert web.post(reverse("scheduled_delete", args=[schedule.pk])).status_code == 302
    assert not ScheduledOrder.objects.filter(pk=schedule.pk).exists()
    [deleted] = events_of_kind(DELETED)
    assert deleted.actor == f"user:{user.pk}"
    assert deleted.before == changed.after and deleted.after is None


# ---- the admin ----------------------------------------------------------------------------


def _admin_form(schedule_or_desk, **overrides) -> dict:
    user, account, instrument = schedule_or_desk
    return {
        "user": user.pk,
        "account": account.pk,
        "name": "admin bell",
        "kind": "SINGLE",
        "template": json.dumps(schedule_template(instrument)),
        "time_of_day": "09:20:00",
        "weekdays": "[0, 1]",
        "enabled": "on",
        # The runs inline (read-only, but its management form is posted).
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "1000",
        **overrides,
    }


def test_admin_add_change_and_delete_are_recorded_as_the_admin(desk, schedule):
    staff = factories.make_user(is_staff=True, is_superuser=True)
    admin = factories.staff_client(staff)
    user, account, instrument = desk

    added = admin.post("/admin/orders/scheduledorder/add/", _admin_form(desk))
    assert added.status_code == 302, added.content.decode()[:2000]
    new = ScheduledOrder.objects.get(name="admin bell")
    [created] = events_of_kind(CREATED)
    assert created.actor == f"admin:{staff.pk}"
    assert (created.account_id, created.user_id) == (account.pk, user.pk)
    assert created.before is None and created.after == _state(new)

    before = _state(schedule)
    changed_template = schedule_template(instrument, order_quantity=9)
    response = admin.post(
        f"/admin/orders/scheduledorder/{schedule.pk}/change/",
        _admin_form(
            desk,
            name=schedule.name,
            template=json.dumps(changed_template),
            time_of_day="09:30:00",
            weekdays="[0, 1, 2, 3, 4]",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    [changed] = events_of_kind(CHANGED)
    assert changed.actor == f"admin:{staff.pk}"
    assert changed.before == before
    assert changed.after == {**before, "template": changed_template}

    deleted = admin.post(f"/admin/orders/scheduledorder/{new.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    [gone] = events_of_kind(DELETED)
    assert gone.actor == f"admin:{staff.pk}"
    assert gone.before == created.after and gone.after is None


def test_admin_bulk_delete_records_each_schedule(desk, schedule):
    staff = factories.make_user(is_staff=True, is_superuser=True)
    user, account, _ = desk
    other = ScheduledOrder.objects.create(
        user=user,
        account=account,
        name="evening sell",
        template=schedule.template,
        time_of_day=time(15, 0),
        weekdays=[],
    )
    states = [_state(schedule), _state(other)]
    response = factories.staff_client(staff).post(
        "/admin/orders/scheduledorder/",
        {
            "action": "delete_selected",
            "_selected_action": [schedule.pk, other.pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not ScheduledOrder.objects.exists()
    events = events_of_kind(DELETED)
    assert [e.before for e in events] == states
    assert {e.actor for e in events} == {f"admin:{staff.pk}"}
    assert {e.account_id for e in events} == {account.pk}


@pytest.mark.parametrize("weekdays", ["5", '"0,1"', "[7]", '["mon"]', "[true]", "[1.5]"])
def test_admin_refuses_weekdays_that_are_not_days(desk, weekdays):
    staff = factories.make_user(is_staff=True, is_superuser=True)
    admin = factories.staff_client(staff)
    added = admin.post("/admin/orders/scheduledorder/add/", _admin_form(desk, weekdays=weekdays))
    assert added.status_code == 200, added.status_code
    assert "weekdays" in added.context["adminform"].form.errors
    assert not ScheduledOrder.objects.filter(name="admin bell").exists()
