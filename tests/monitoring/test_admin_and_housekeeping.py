"""The admin's "run a user's cycle now", the monitoring admin pages, and housekeeping tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.utils import timezone

from accounts.models import BrokerSession, User
from monitoring.models import Heartbeat, MonitoringRun
from monitoring.services import run_user_cycle
from monitoring.tasks import beat_heartbeat, refresh_broker_sessions
from orders.brokers.sessions import connect_account
from tests import factories
from tests.factories import make_account, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():
    from trading_site.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_user_admin_action_runs_a_cycle_now_even_after_this_slots_cycle(eager_celery, rf):
    from monitoring.admin_actions import run_cycle_now

    user = make_user()
    make_account(user=user)
    run_user_cycle(user_id=user.pk, cycle_key="2026-11-26T10:31", trigger="beat")
    admin_user = make_user(is_staff=True, is_superuser=True)
    request = rf.post("/admin/accounts/user/")
    request.user = admin_user
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    user_admin = site.get_model_admin(User)
    assert run_cycle_now in user_admin.actions
    run_cycle_now(user_admin, request, User.objects.filter(pk=user.pk))
    admin_run = MonitoringRun.objects.get(user=user, trigger="admin")
    assert admin_run.cycle_key.startswith("admin-") and admin_run.status == "OK"


def test_monitoring_run_admin_shows_steps_readably_and_is_read_only():
    user = make_user()
    make_account(user=user)
    run = run_user_cycle(user_id=user.pk, cycle_key="k1", trigger="test")
    client = factories.staff_client()
    page = client.get(f"/admin/monitoring/monitoringrun/{run.pk}/change/")
    assert page.status_code == 200
    assert b"fetch_broker_data: <strong>ok</strong>" in page.content
    assert client.get("/admin/monitoring/monitoringrun/add/").status_code == 403
    assert client.get("/admin/monitoring/tradingholiday/add/").status_code == 200


def test_beat_heartbeat_is_recorded():
    beat_heartbeat()
    assert timezone.now() - Heartbeat.objects.get(name="beat").beat_at < timedelta(seconds=5)


def test_broker_sessions_near_expiry_are_refreshed_and_others_left_alone():
    soon, later = make_account(), make_account()
    for account in (soon, later):
        connect_account(account)
    BrokerSession.objects.filter(account=soon).update(
        expires_at=timezone.now() + timedelta(seconds=60)
    )
    far = BrokerSession.objects.get(account=later).expires_at
    assert refresh_broker_sessions() == 1
    assert BrokerSession.objects.get(account=soon).expires_at > timezone.now() + timedelta(hours=1)
    assert BrokerSession.objects.get(account=later).expires_at == far
