"""Step 1 against the XTS simulator over a real socket: an expired broker session stops the
cycle, is reported, and is logged in again before the next cycle."""

from __future__ import annotations

import pytest

from accounts.models import BrokerSession
from monitoring.models import MonitoringRun
from monitoring.services import run_user_cycle
from orders.brokers.xts.simulator import XtsSimulator, parse_users, serve_in_thread
from tests.factories import make_user, make_xts_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def simulator():
    running = serve_in_thread(
        XtsSimulator(users=parse_users("h5-app:h5-secret:H5USER:investor"), seed=1)
    )
    yield running
    running.stop()


def test_expired_session_stops_the_cycle_and_the_next_cycle_logs_in_again(simulator, listen):
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user, app_key="h5-app", secret="h5-secret")
    listener = listen(user.pk)
    # Every token dies at once, even the one a re-login gets: the client's single retry fails.
    simulator.app.faults.update({"token_ttl_seconds": 0})
    run = run_user_cycle(user_id=user.pk, cycle_key="c1", trigger="test")
    assert run.status == MonitoringRun.Status.FAILED
    assert [s["outcome"] for s in run.steps] == ["failed"] + ["skipped"] * 8 + ["ok"]
    assert "session expired" in run.errors[0]
    assert BrokerSession.objects.get(account=account).invalidated_at is not None
    [errors] = listener.of_type("monitoring_errors")
    assert errors["cycle"] == "c1" and "session expired" in errors["errors"][0]

    simulator.app.faults.update({"token_ttl_seconds": 3600})
    logins_before = simulator.app.logins
    run = run_user_cycle(user_id=user.pk, cycle_key="c2", trigger="test")
    assert run.status == MonitoringRun.Status.OK, run.steps
    assert simulator.app.logins > logins_before
    session = BrokerSession.objects.get(account=account)
    assert session.invalidated_at is None


def test_broker_5xx_on_reads_fails_step_one_without_marking_the_session(simulator, listen):
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user, app_key="h5-app", secret="h5-secret")
    simulator.app.faults.update({"error_rate": 1.0})
    run = run_user_cycle(user_id=user.pk, cycle_key="c1", trigger="test")
    assert run.steps[0]["outcome"] == "failed"
    assert "unavailable" in run.errors[0]
    assert BrokerSession.objects.get(account=account).invalidated_at is None
