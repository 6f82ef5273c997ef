"""Who is monitored, when, and the duplicate-delivery guarantees (SPEC 8); the runs API."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitoring import presence
from monitoring.models import MonitoringRun
from monitoring.services import cycle_key_for, monitored_user_ids, run_user_cycle
from monitoring.tasks import dispatch_monitoring_cycles, run_monitoring_cycle
from tests.factories import (
    api_client_for,
    make_account,
    make_priced_instrument,
    make_user,
    place_bracket,
)

pytestmark = pytest.mark.django_db
IST = ZoneInfo("Asia/Kolkata")


def test_cycle_key_is_the_kolkata_minute_slot(settings):
    settings.MONITOR_INTERVAL_SECONDS = 60
    moment = datetime(2026, 11, 26, 5, 1, 42, tzinfo=ZoneInfo("UTC"))  # 10:31:42 IST
    assert cycle_key_for(moment) == "2026-11-26T10:31"
    settings.MONITOR_INTERVAL_SECONDS = 15
    assert cycle_key_for(moment) == "2026-11-26T10:31:30"


def test_connected_users_and_users_with_open_orders_are_monitored(settings):
    settings.MONITOR_OPEN_ORDER_USERS = True
    connected, with_orders, idle = make_user(), make_user(), make_user()
    for user in (connected, with_orders, idle):
        make_account(user=user)
    presence.mark_connected(connected.pk, "tab")
    instrument = make_priced_instrument()
    account = with_orders.broker_accounts.get()
    place_bracket(
        user=with_orders, account=account, instrument=instrument, entry="900", sl="890", tp="950"
    )
    assert monitored_user_ids() == sorted([connected.pk, with_orders.pk])
    settings.MONITOR_OPEN_ORDER_USERS = False
    assert monitored_user_ids() == [connected.pk]


def test_a_connected_user_without_an_active_account_is_not_monitored():
    user = make_user()
    make_account(user=user, is_active=False)
    presence.mark_connected(user.pk, "tab")
    assert monitored_user_ids() == []


def test_presence_expires_without_refresh(settings):
    settings.PRESENCE_TTL_SECONDS = 0
    user = make_user()
    presence.mark_connected(user.pk, "tab")
    assert not presence.is_user_connected(user.pk)


def test_nothing_is_dispatched_outside_the_window(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = []
    user = make_user()
    make_account(user=user)
    presence.mark_connected(user.pk, "tab")
    assert dispatch_monitoring_cycles() == 0


def test_a_task_delivered_twice_runs_the_cycle_once():
    user = make_user()
    make_account(user=user)
    first = run_monitoring_cycle.apply(args=(user.pk, "2026-11-26T10:31")).get()
    second = run_monitoring_cycle.apply(args=(user.pk, "2026-11-26T10:31")).get()
    assert first is not None and second is None
    assert MonitoringRun.objects.filter(user=user).count() == 1


def test_runs_api_lists_own_cycles_newest_first_with_step_outcomes():
    user, other = make_user(), make_user()
    for u in (user, other):
        make_account(user=u)
    for key in ("k1", "k2"):
        run_user_cycle(user_id=user.pk, cycle_key=key, trigger="test")
    run_user_cycle(user_id=other.pk, cycle_key="k1", trigger="test")
    response = api_client_for(user).get("/api/monitoring/runs?limit=1")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2 and body["limit"] == 1
    [latest] = body["runs"]
    assert latest["cycle_key"] == "k2"
    assert [s["outcome"] for s in latest["steps"]][:2] == ["ok", "ok"]
    assert len(latest["steps"]) == 10
