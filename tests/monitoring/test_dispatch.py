"""Who is monitored, when, and the duplicate-delivery guarantees (SPEC 8); the runs API."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import OperationalError

from monitoring import presence
from monitoring import services as monitoring_services
from monitoring.models import MonitoringRun
from monitoring.services import cycle_batches, cycle_key_for, monitored_user_ids, run_user_cycle
from monitoring.tasks import (
    dispatch_monitoring_cycles,
    queue_cycles,
    run_monitoring_cycle,
    run_monitoring_cycles,
)
from tests.factories import (
    api_client_for,
    make_account,
    make_priced_instrument,
    make_user,
    place_bracket,
)
from trading_site.celery import app as celery_app

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


def test_users_are_batched_in_order_by_the_configured_size(settings):
    settings.MONITOR_USERS_PER_TASK = 10
    assert cycle_batches(list(range(1, 26))) == [
        list(range(1, 11)),
        list(range(11, 21)),
        list(range(21, 26)),
    ]
    assert cycle_batches([]) == []
    settings.MONITOR_USERS_PER_TASK = 1
    assert cycle_batches([7, 8]) == [[7], [8]]


@pytest.fixture
def eager_celery():
    """Tasks run where they are queued (as in the embedded default), so a dispatch's
    batches run in the test."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_the_dispatch_runs_every_monitored_users_cycle_once_in_batches(settings, eager_celery):
    settings.MONITOR_USERS_PER_TASK = 2
    users = [make_user() for _ in range(5)]
    for user in users:
        make_account(user=user)
        presence.mark_connected(user.pk, "tab")
    slot_before = cycle_key_for()
    assert dispatch_monitoring_cycles() == 5
    # One slot's key for every user's run: the slot the dispatch began in (or, on a slow
    # machine, the next one, if it ended there).
    keys = set(MonitoringRun.objects.values_list("cycle_key", flat=True))
    assert len(keys) == 1 and keys <= {slot_before, cycle_key_for()}
    [key] = keys
    runs = MonitoringRun.objects.filter(cycle_key=key)
    assert sorted(runs.values_list("user_id", flat=True)) == sorted(u.pk for u in users)
    assert {run.status for run in runs} == {MonitoringRun.Status.OK}
    # The slot queued again (a redelivered batch): three tasks of at most two users, and
    # nobody's cycle runs twice.
    assert queue_cycles([u.pk for u in users], key, "test") == 3
    assert run_monitoring_cycles.apply(args=([u.pk for u in users], key)).get() == 0
    assert MonitoringRun.objects.filter(cycle_key=key).count() == 5


def test_one_users_failure_does_not_cost_the_rest_of_the_batch_their_cycle(monkeypatch):
    first, broken, last = make_user(), make_user(), make_user()
    for user in (first, broken, last):
        make_account(user=user)
    real_cycle = monitoring_services.run_user_cycle

    def cycle(*, user_id, cycle_key, trigger):
        if user_id == broken.pk:  # a fault in this one user's cycle (say, the database)
            raise OperationalError("lost connection to the database during the query")
        return real_cycle(user_id=user_id, cycle_key=cycle_key, trigger=trigger)

    monkeypatch.setattr(monitoring_services, "run_user_cycle", cycle)
    ran = run_monitoring_cycles.apply(args=([first.pk, broken.pk, last.pk], "k")).get()
    assert ran == 2
    assert sorted(
        MonitoringRun.objects.filter(cycle_key="k").values_list("user_id", flat=True)
    ) == [
        first.pk,
        last.pk,
    ]
