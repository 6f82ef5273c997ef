"""A strategy's automation (re-placing rejected entries, the trailing stop-loss, the slippage
bound) and the entry-regenerate permission decide what the desk does with a trader's money
unasked: who created, changed or deleted them is on the audit trail (a user's OrderEvent, of
no account), with the settings before and after, whichever door it came through (the API,
the settings pages, the admin)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import audit
from accounts.models import EntryRegeneratePermission, Strategy
from orders.domain.vocabulary import EventKind
from orders.models import OrderEvent
from tests import factories
from tests.factories import (
    STRATEGY_DEFAULT_SETTINGS,
    api_client_for,
    events_of_kind,
    make_strategy,
    make_user,
    web_client_for,
)

pytestmark = pytest.mark.django_db

CREATED, CHANGED, DELETED = "strategy_created", "strategy_changed", "strategy_deleted"
PERMISSION = "regenerate_permission_changed"

DEFAULTS = STRATEGY_DEFAULT_SETTINGS


def _state(strategy: Strategy, **settings) -> dict:
    """A strategy as the audit trail keeps it: money and percentages at their stored places."""
    return {"id": strategy.pk, "name": strategy.name, **DEFAULTS, **settings}


# ---- the API ------------------------------------------------------------------------------


def test_api_create_records_who_set_the_strategy_up_and_its_automation():
    trader = make_user()
    response = api_client_for(trader).post(
        "/api/strategies",
        {"name": "Momentum", "allow_regeneration": True, "max_slippage_pct": "0.5"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    strategy = Strategy.objects.get(user=trader)
    [event] = events_of_kind(CREATED)
    assert (event.user_id, event.account_id, event.order_id) == (trader.pk, None, None)
    assert event.actor == f"user:{trader.pk}"
    assert event.before is None
    assert event.after == _state(strategy, allow_regeneration=True, max_slippage_pct="0.5000")
    assert "Momentum" in event.message


def test_api_turning_on_regeneration_and_the_trailing_stop_records_before_and_after():
    trader = make_user()
    strategy = make_strategy(user=trader, name="Breakout")
    response = api_client_for(trader).patch(
        f"/api/strategies/{strategy.pk}",
        {"allow_regeneration": True, "trailing_sl_enabled": True, "trailing_sl_trigger": "2.5"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    [event] = events_of_kind(CHANGED)
    assert event.actor == f"user:{trader.pk}"
    assert (event.user_id, event.account_id) == (trader.pk, None)
    assert event.before == _state(strategy)
    assert event.after == _state(
        strategy, allow_regeneration=True, trailing_sl_enabled=True, trailing_sl_trigger="2.5000"
    )


def test_api_put_records_the_whole_strategy_replaced():
    trader = make_user()
    strategy = make_strategy(user=trader, name="Old", allow_regeneration=True)
    body = {"name": "New", "max_regenerations": 3, "max_slippage_pct": "2"}
    response = api_client_for(trader).put(f"/api/strategies/{strategy.pk}", body, format="json")
    assert response.status_code == 200, response.json()
    [event] = events_of_kind(CHANGED)
    assert event.before == _state(strategy, allow_regeneration=True)
    assert event.after == {
        **_state(strategy, allow_regeneration=True),
        "name": "New",
        "max_regenerations": 3,
        "max_slippage_pct": "2.0000",
    }


def test_api_delete_records_the_strategy_that_is_gone():
    trader = make_user()
    strategy = make_strategy(user=trader, name="Gone", trailing_sl_enabled=True)
    before = _state(strategy, trailing_sl_enabled=True)
    assert api_client_for(trader).delete(f"/api/strategies/{strategy.pk}").status_code == 204
    assert not Strategy.objects.filter(pk=before["id"]).exists()
    [event] = events_of_kind(DELETED)
    assert event.actor == f"user:{trader.pk}" and event.user_id == trader.pk
    assert event.before == before and event.after is None


def test_api_regenerate_permission_put_and_patch_record_the_switch_and_its_strategies():
    trader = make_user()
    first, second = make_strategy(user=trader, name="A"), make_strategy(user=trader, name="B")
    client = api_client_for(trader)
    response = client.put(
        "/api/entry-regenerate-permission",
        {"enabled": True, "strategy_ids": [second.pk, first.pk]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    both = [{"id": first.pk, "name": "A"}, {"id": second.pk, "name": "B"}]
    [granted] = events_of_kind(PERMISSION)
    assert granted.actor == f"user:{trader.pk}"
    assert (granted.user_id, granted.account_id) == (trader.pk, None)
    assert granted.before == {"enabled": False, "strategies": []}
    assert granted.after == {"enabled": True, "strategies": both}

    assert (
        client.patch("/api/entry-regenerate-permission", {"enabled": False}, format="json").json()[
            "enabled"
        ]
        is False
    )
    [_, switched_off] = events_of_kind(PERMISSION)
    assert switched_off.before == granted.after
    assert switched_off.after == {"enabled": False, "strategies": both}


def test_refused_changes_write_no_audit_row():
    trader = make_user()
    mine = make_strategy(user=trader, name="Mine")
    theirs = make_strategy(user=make_user(), name="Theirs")
    client = api_client_for(trader)
    duplicate = client.post("/api/strategies", {"name": "Mine"}, format="json")
    assert duplicate.status_code == 400
    foreign = client.put(
        "/api/entry-regenerate-permission",
        {"enabled": True, "strategy_ids": [mine.pk, theirs.pk]},
        format="json",
    )
    assert foreign.status_code == 400
    assert not OrderEvent.objects.exists()
    assert not EntryRegeneratePermission.objects.filter(user=trader, enabled=True).exists()


# ---- the settings pages -------------------------------------------------------------------


def _strategy_form(**overrides) -> dict:
    return {
        "name": "Web",
        "max_regenerations": 1,
        "trailing_sl_trigger": "0",
        "trailing_sl_step": "0",
        "max_slippage_pct": "1",
        **overrides,
    }


def test_web_strategy_create_edit_delete_and_permission_are_each_recorded():
    trader = make_user()
    web = web_client_for(trader)
    assert web.post(reverse("strategy_create"), _strategy_form()).status_code == 302
    strategy = Strategy.objects.get(user=trader)
    [created] = events_of_kind(CREATED)
    assert created.actor == f"user:{trader.pk}" and created.user_id == trader.pk
    assert created.before is None and created.after == _state(strategy)

    edited = web.post(
        reverse("strategy_edit", args=[strategy.pk]),
        _strategy_form(allow_regeneration="on", max_regenerations=2, max_slippage_pct="0.25"),
    )
    assert edited.status_code == 302
    [changed] = events_of_kind(CHANGED)
    assert changed.before == created.after
    assert changed.after == _state(
        strategy, allow_regeneration=True, max_regenerations=2, max_slippage_pct="0.2500"
    )

    web.post(reverse("regenerate_permission"), {"enabled": "on", "strategies": [strategy.pk]})
    [granted] = events_of_kind(PERMISSION)
    assert granted.actor == f"user:{trader.pk}"
    assert granted.after == {"enabled": True, "strategies": [{"id": strategy.pk, "name": "Web"}]}

    assert web.post(reverse("strategy_delete", args=[strategy.pk])).status_code == 302
    [deleted] = events_of_kind(DELETED)
    assert deleted.actor == f"user:{trader.pk}"
    assert deleted.before == changed.after and deleted.after is None


# ---- the admin ----------------------------------------------------------------------------


@pytest.fixture
def staff():
    return make_user(is_staff=True, is_superuser=True)


def test_admin_strategy_add_change_and_delete_are_recorded_as_the_admin(staff):
    trader = make_user()
    admin = factories.staff_client(staff)
    added = admin.post(
        "/admin/accounts/strategy/add/", {"user": trader.pk, **_strategy_form(name="Desk")}
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    strategy = Strategy.objects.get(user=trader)
    [created] = events_of_kind(CREATED)
    assert created.actor == f"admin:{staff.pk}"
    assert (created.user_id, created.account_id) == (trader.pk, None)
    assert created.before is None and created.after == _state(strategy)

    changed_page = admin.post(
        f"/admin/accounts/strategy/{strategy.pk}/change/",
        {"user": trader.pk, **_strategy_form(name="Desk", allow_regeneration="on")},
    )
    assert changed_page.status_code == 302, changed_page.content.decode()[:2000]
    [changed] = events_of_kind(CHANGED)
    assert changed.actor == f"admin:{staff.pk}"
    assert changed.before == _state(strategy)
    assert changed.after == _state(strategy, allow_regeneration=True)

    deleted = admin.post(f"/admin/accounts/strategy/{strategy.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    [gone] = events_of_kind(DELETED)
    assert gone.actor == f"admin:{staff.pk}" and gone.user_id == trader.pk
    assert gone.before == changed.after and gone.after is None


def test_admin_bulk_delete_records_each_strategy(staff):
    trader = make_user()
    strategies = [make_strategy(user=trader, name=name) for name in ("One", "Two")]
    response = factories.staff_client(staff).post(
        "/admin/accounts/strategy/",
        {
            "action": "delete_selected",
            "_selected_action": [s.pk for s in strategies],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not Strategy.objects.exists()
    events = events_of_kind(DELETED)
    assert [e.before for e in events] == [_state(s) for s in strategies]
    assert {e.actor for e in events} == {f"admin:{staff.pk}"}


def test_admin_regenerate_permission_change_is_recorded_as_the_admin(staff):
    trader = make_user()
    strategy = make_strategy(user=trader, name="Regen")
    permission = EntryRegeneratePermission.objects.create(user=trader)
    response = factories.staff_client(staff).post(
        f"/admin/accounts/entryregeneratepermission/{permission.pk}/change/",
        {"user": trader.pk, "enabled": "on", "strategies": [strategy.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    [event] = events_of_kind(PERMISSION)
    assert event.actor == f"admin:{staff.pk}"
    assert (event.user_id, event.account_id) == (trader.pk, None)
    assert event.before == {"enabled": False, "strategies": []}
    assert event.after == {"enabled": True, "strategies": [{"id": strategy.pk, "name": "Regen"}]}


def test_admin_deleting_the_regenerate_permission_records_what_it_allowed(staff):
    trader = make_user()
    strategy = make_strategy(user=trader, name="Regen")
    permission = EntryRegeneratePermission.objects.create(user=trader, enabled=True)
    permission.strategies.set([strategy])
    response = factories.staff_client(staff).post(
        f"/admin/accounts/entryregeneratepermission/{permission.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not EntryRegeneratePermission.objects.filter(user=trader).exists()
    [event] = events_of_kind(PERMISSION)
    assert event.actor == f"admin:{staff.pk}" and event.user_id == trader.pk
    assert event.before == {"enabled": True, "strategies": [{"id": strategy.pk, "name": "Regen"}]}
    assert event.after is None


def test_the_kinds_accounts_records_are_in_the_one_vocabulary():
    # accounts may not import orders' EventKind; the recorder refuses any other kind.
    kinds = {
        audit.STRATEGY_CREATED,
        audit.STRATEGY_CHANGED,
        audit.STRATEGY_DELETED,
        audit.REGENERATE_PERMISSION_CHANGED,
    }
    assert kinds <= set(EventKind.values)
