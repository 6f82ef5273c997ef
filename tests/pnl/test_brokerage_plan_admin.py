"""A brokerage plan added or changed in the admin is saved as the PnL page saves it: the
same audit row on the account, with the admin as the actor, none for a save that changes
nothing, and the page's checks (bad input gets the admin's form errors and changes nothing).
Driven through the real admin pages, logged in as a superuser."""

from __future__ import annotations

from typing import Any

import pytest

from orders.models import OrderEvent
from pnl.models import BrokeragePlanSetting
from tests import factories
from tests.factories import (
    BROKERAGE_PLAN_DEFAULT,
    PERCENT_PLAN_FORM,
    make_account,
    make_user,
)

pytestmark = pytest.mark.django_db

DEFAULT, PERCENT_PLAN = BROKERAGE_PLAN_DEFAULT, PERCENT_PLAN_FORM
PERCENT_AFTER = {
    "mode": "PERCENT",
    "flat_per_order": "20.00",
    "percent": "0.0500",
    "cap_per_order": None,
    "delivery_free": False,
}
ADMIN = "/admin/pnl/brokerageplansetting"


@pytest.fixture
def admin_user():
    return make_user(is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client_(admin_user):
    return factories.staff_client(admin_user)


def _plan_events(account) -> list[OrderEvent]:
    return list(
        OrderEvent.objects.filter(account=account, kind="brokerage_plan_changed").order_by("id")
    )


def _add(client, account, plan: dict[str, Any]):
    return client.post(f"{ADMIN}/add/", {"account": account.pk, **plan, "_save": "Save"})


def _change(client, row: BrokeragePlanSetting, plan: dict[str, Any]):
    return client.post(f"{ADMIN}/{row.pk}/change/", {**plan, "_save": "Save"})


def test_a_plan_added_in_the_admin_is_audited_with_the_admin_as_actor(admin_client_, admin_user):
    account = make_account()

    answer = _add(admin_client_, account, PERCENT_PLAN)

    assert answer.status_code == 302, answer.content.decode()
    row = BrokeragePlanSetting.objects.get(account=account)
    assert answer["Location"] == f"{ADMIN}/"
    assert row.mode == "PERCENT" and row.cap_per_order is None
    (event,) = _plan_events(account)
    assert event.actor == f"admin:{admin_user.pk}"
    assert event.user_id == account.user_id and event.order_id is None
    assert event.before == DEFAULT
    assert event.after == PERCENT_AFTER
    assert event.message == "brokerage plan changed (mode, percent, cap_per_order)"


def test_a_plan_changed_in_the_admin_is_audited_once_per_real_change(admin_client_, admin_user):
    account = make_account()
    assert _add(admin_client_, account, PERCENT_PLAN).status_code == 302
    row = BrokeragePlanSetting.objects.get(account=account)

    answer = _change(admin_client_, row, {**PERCENT_PLAN, "delivery_free": "on"})

    assert answer.status_code == 302, answer.content.decode()
    first, second = _plan_events(account)
    assert second.actor == f"admin:{admin_user.pk}"
    assert second.before == first.after == PERCENT_AFTER
    assert second.after == {**PERCENT_AFTER, "delivery_free": True}
    assert second.message == "brokerage plan changed (delivery_free)"

    # The same plan again, written otherwise: nothing changes, no row.
    again = _change(
        admin_client_, row, {**PERCENT_PLAN, "percent": "0.0500", "delivery_free": "on"}
    )
    assert again.status_code == 302
    assert len(_plan_events(account)) == 2
    assert BrokeragePlanSetting.objects.filter(account=account).count() == 1


def test_a_default_plan_added_in_the_admin_changes_nothing_and_is_not_audited(admin_client_):
    account = make_account()

    answer = _add(admin_client_, account, {**DEFAULT, "delivery_free": ""})

    assert answer.status_code == 302
    assert BrokeragePlanSetting.objects.filter(account=account).exists()
    assert _plan_events(account) == []

    # The next save that does change it is the first row, from the default plan.
    row = BrokeragePlanSetting.objects.get(account=account)
    assert _change(admin_client_, row, PERCENT_PLAN).status_code == 302
    (event,) = _plan_events(account)
    assert event.before == DEFAULT and event.after == PERCENT_AFTER


def test_bad_input_in_the_admin_gets_form_errors_and_changes_nothing(admin_client_):
    account = make_account()
    assert _add(admin_client_, account, PERCENT_PLAN).status_code == 302
    row = BrokeragePlanSetting.objects.get(account=account)

    answer = _change(admin_client_, row, {**PERCENT_PLAN, "flat_per_order": "-5", "percent": "9"})

    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert errors["flat_per_order"] == ["must not be negative"]
    assert errors["percent"] == ["more than 5 % of turnover is not a brokerage plan"]
    row.refresh_from_db()
    assert str(row.flat_per_order) == "20.00" and str(row.percent) == "0.0500"
    assert len(_plan_events(account)) == 1

    # A second plan for an account that has one: the form says so, nothing is written.
    twice = _add(admin_client_, account, {**PERCENT_PLAN, "percent": "1"})
    assert twice.status_code == 200
    assert "account" in twice.context["adminform"].form.errors
    assert len(_plan_events(account)) == 1


def test_a_plan_stays_with_its_account_in_the_admin(admin_client_):
    account, other = make_account(), make_account()
    assert _add(admin_client_, account, PERCENT_PLAN).status_code == 302
    row = BrokeragePlanSetting.objects.get(account=account)

    answer = _change(
        admin_client_, row, {**PERCENT_PLAN, "account": other.pk, "delivery_free": "on"}
    )

    assert answer.status_code == 302
    row.refresh_from_db()
    assert row.account_id == account.pk and row.delivery_free is True
    assert not BrokeragePlanSetting.objects.filter(account=other).exists()
    assert _plan_events(other) == []


def _delete_selected(client, rows: list[BrokeragePlanSetting]):
    return client.post(
        f"{ADMIN}/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in rows], "post": "yes"},
    )


def test_a_plan_deleted_in_the_admin_is_audited_and_the_default_plan_applies(
    admin_client_, admin_user
):
    account = make_account()
    assert _add(admin_client_, account, PERCENT_PLAN).status_code == 302
    row = BrokeragePlanSetting.objects.get(account=account)

    answer = admin_client_.post(f"{ADMIN}/{row.pk}/delete/", {"post": "yes"})

    assert answer.status_code == 302, answer.content.decode()
    assert not BrokeragePlanSetting.objects.filter(account=account).exists()
    _, deleted = _plan_events(account)
    assert deleted.actor == f"admin:{admin_user.pk}"
    assert deleted.user_id == account.user_id and deleted.order_id is None
    assert deleted.before == PERCENT_AFTER
    assert deleted.after == DEFAULT
    assert deleted.message == (
        "brokerage plan deleted: the default plan applies, changed (mode, percent, cap_per_order)"
    )


def test_delete_selected_in_the_admin_audits_each_plan(admin_client_, admin_user):
    percent, default = make_account(), make_account()
    assert _add(admin_client_, percent, PERCENT_PLAN).status_code == 302
    # A row of the default terms (its save recorded nothing): its delete is recorded still.
    assert _add(admin_client_, default, {**DEFAULT, "delivery_free": ""}).status_code == 302
    rows = list(BrokeragePlanSetting.objects.filter(account__in=[percent, default]))

    answer = _delete_selected(admin_client_, rows)

    assert answer.status_code == 302, answer.content.decode()
    assert not BrokeragePlanSetting.objects.exists()
    _, percent_deleted = _plan_events(percent)
    (default_deleted,) = _plan_events(default)
    assert (percent_deleted.before, percent_deleted.after) == (PERCENT_AFTER, DEFAULT)
    assert (default_deleted.before, default_deleted.after) == (DEFAULT, DEFAULT)
    assert default_deleted.message == "brokerage plan deleted: the default plan applies"
    assert {percent_deleted.actor, default_deleted.actor} == {f"admin:{admin_user.pk}"}
