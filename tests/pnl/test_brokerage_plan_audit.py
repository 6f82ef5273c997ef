"""Saving an account's brokerage plan (the PnL page's estimated charges) leaves an audit row
on the account, as its other standing settings do: who saved it and the plan before and
after, one row per real change, none for a save that changes nothing. Before its first
save an account has the default plan (flat Rs 20 an order), which that save changes.

The plan is saved from the web page only (/pnl/brokerage/<account>/); the API has no
endpoint that writes it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from orders.models import OrderEvent
from pnl.models import BrokeragePlanSetting
from tests.concurrency import in_threads, posted_from_tabs_at_once
from tests.factories import (
    BROKERAGE_PLAN_DEFAULT,
    PERCENT_PLAN_FORM,
    make_account,
    make_user,
)

DEFAULT, PERCENT_PLAN = BROKERAGE_PLAN_DEFAULT, PERCENT_PLAN_FORM


def _stored(account) -> dict[str, Any]:
    """The account's plan row as the audit shows it (amounts as stored, in text)."""
    row = BrokeragePlanSetting.objects.get(account=account)
    values = {name: getattr(row, name) for name in DEFAULT}
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def _web(user) -> Client:
    web = Client()
    web.force_login(user)
    return web


def _plan_events(account) -> list[OrderEvent]:
    return list(
        OrderEvent.objects.filter(account=account, kind="brokerage_plan_changed").order_by("id")
    )


def _post(web: Client, account, plan: dict[str, Any]) -> None:
    answer = web.post(f"/pnl/brokerage/{account.pk}/", plan)
    assert answer.status_code == 302, answer.content


@pytest.mark.django_db
def test_a_changed_plan_saved_on_the_web_page_is_audited_with_who_and_before_after():
    user = make_user()
    account = make_account(user=user)
    web = _web(user)

    _post(web, account, PERCENT_PLAN)

    (first,) = _plan_events(account)
    assert first.actor == f"user:{user.pk}"
    assert first.user_id == user.pk and first.order_id is None
    assert first.before == DEFAULT
    assert first.after == {
        "mode": "PERCENT",
        "flat_per_order": "20.00",
        "percent": "0.0500",
        "cap_per_order": None,
        "delivery_free": False,
    }
    assert first.message == "brokerage plan changed (mode, percent, cap_per_order)"

    _post(web, account, {**PERCENT_PLAN, "delivery_free": "on"})

    first_again, second = _plan_events(account)
    assert first_again == first
    assert second.before == first.after
    assert second.after == {**first.after, "delivery_free": True}
    assert second.message == "brokerage plan changed (delivery_free)"


@pytest.mark.django_db
def test_a_save_that_changes_nothing_is_not_audited():
    user = make_user()
    account = make_account(user=user)
    web = _web(user)

    # The default plan's own terms, the first time: the charges do not change.
    _post(web, account, {**DEFAULT, "delivery_free": ""})
    assert BrokeragePlanSetting.objects.filter(account=account).exists()
    assert _plan_events(account) == []

    _post(web, account, PERCENT_PLAN)
    _post(web, account, {**PERCENT_PLAN, "percent": "0.0500"})  # the same, written otherwise
    assert len(_plan_events(account)) == 1


@pytest.mark.django_db(transaction=True)
def test_plans_saved_from_several_tabs_at_once_leave_a_trail_that_adds_up():
    """Four tabs post four different plans at one moment, the account's first save: each
    changes the plan that the one before it left, so the trail has four rows, each one's
    before the previous one's after, from the default plan to the plan stored."""
    user = make_user()
    account = make_account(user=user)
    plans = [{**PERCENT_PLAN, "flat_per_order": str(11 + tab)} for tab in range(4)]
    clients = [_web(user) for _ in plans]

    answers = in_threads(
        len(plans),
        lambda tab: clients[tab].post(f"/pnl/brokerage/{account.pk}/", plans[tab]).status_code,
    )

    assert answers == [302] * len(plans)
    events = _plan_events(account)
    assert len(events) == len(plans)
    assert events[0].before == DEFAULT
    for earlier, later in zip(events, events[1:], strict=False):
        assert later.before == earlier.after
    assert events[-1].after == _stored(account)
    assert sorted(e.after["flat_per_order"] for e in events) == [
        "11.00",
        "12.00",
        "13.00",
        "14.00",
    ]
    assert {e.actor for e in events} == {f"user:{user.pk}"}


@pytest.mark.django_db(transaction=True)
def test_one_plan_saved_from_several_tabs_at_once_is_audited_once():
    user = make_user()
    account = make_account(user=user)

    answers = posted_from_tabs_at_once(user, f"/pnl/brokerage/{account.pk}/", PERCENT_PLAN)

    assert answers == [302] * 4
    (event,) = _plan_events(account)
    assert event.before == DEFAULT
    assert event.after == _stored(account)
