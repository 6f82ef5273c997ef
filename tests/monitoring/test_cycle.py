"""run_user_cycle on real parts: the paper broker, MariaDB, Redis (lock, channel layer)."""

from __future__ import annotations

import pytest

from accounts.models import Broker
from monitoring.models import MonitoringRun
from monitoring.services import cycle_lease_name, cycle_lease_ttl, run_user_cycle
from tests.factories import (
    make_account,
    make_desk,
    make_user,
    place_bracket_the_broker_rejects,
)
from tests.servers import held_by_another_worker
from trading_site.core import leases, metrics

pytestmark = pytest.mark.django_db

OUTCOMES = lambda run: [s["outcome"] for s in run.steps]  # noqa: E731


def test_quiet_paper_cycle_runs_steps_one_to_seven_and_skips_regeneration(listen):
    user = make_user()
    make_account(user=user)
    listener = listen(user.pk)
    run = run_user_cycle(user_id=user.pk, cycle_key="2026-11-26T10:31", trigger="test")
    assert run.status == MonitoringRun.Status.OK, run.steps
    assert OUTCOMES(run) == ["ok"] * 7 + ["skipped"] * 3
    assert "not enabled" in run.steps[7]["reason"]
    [complete] = listener.of_type("cycle_complete")
    assert complete["cycle"] == "2026-11-26T10:31"
    assert complete["status"] == "OK"
    assert [s["outcome"] for s in complete["steps"]] == OUTCOMES(run)
    assert listener.of_type("monitoring_errors") == []
    assert len(listener.of_type("pnl_update")) == 1


def test_same_cycle_key_runs_once():
    user = make_user()
    make_account(user=user)
    first = run_user_cycle(user_id=user.pk, cycle_key="k1", trigger="test")
    second = run_user_cycle(user_id=user.pk, cycle_key="k1", trigger="test")
    assert first is not None and second is None
    assert MonitoringRun.objects.filter(user=user, cycle_key="k1").count() == 1


def test_a_cycle_still_holding_the_users_lock_blocks_another():
    user = make_user()
    make_account(user=user)
    # Another worker's cycle holds the user's lease.
    with held_by_another_worker(
        lambda: leases.held(cycle_lease_name(user.pk), ttl=cycle_lease_ttl())
    ):
        metrics.reset_metrics()
        assert run_user_cycle(user_id=user.pk, cycle_key="k2", trigger="test") is None
    assert not MonitoringRun.objects.filter(user=user).exists()
    # The saturation signal on /metrics: the workers are behind the interval.
    assert "cycles_skipped_total 1" in metrics.render_prometheus()


def test_unreachable_broker_fails_step_one_stops_the_cycle_and_sends_errors(listen):
    user = make_user()
    make_account(
        user=user,
        broker=Broker.IIFL,
        credentials={
            "app_key": "k",
            "secret_key": "s",
            "user_id": "U1",
            "base_url": "http://127.0.0.1:9",  # nothing listens on the discard port
        },
    )
    listener = listen(user.pk)
    run = run_user_cycle(user_id=user.pk, cycle_key="k3", trigger="test")
    assert run.status == MonitoringRun.Status.FAILED
    assert OUTCOMES(run) == ["failed"] + ["skipped"] * 8 + ["ok"]
    assert run.steps[1]["reason"] == "cycle stopped after step 1 failed"
    [errors] = listener.of_type("monitoring_errors")
    assert errors["cycle"] == "k3"
    assert (
        errors["errors"] == run.errors and "login failed" in errors["errors"][0] or errors["errors"]
    )
    assert listener.of_type("pnl_update") == []


@pytest.mark.django_db(transaction=True)  # order_update is sent on commit
def test_with_permission_a_cycle_archives_stages_and_replaces_a_rejected_order(settings, listen):
    from accounts.models import EntryRegeneratePermission
    from orders.models import Order
    from tests.factories import make_strategy

    user, account, instrument = make_desk()
    strategy = make_strategy(user=user, allow_regeneration=True, max_regenerations=1)
    permission = EntryRegeneratePermission.objects.create(user=user, enabled=True)
    permission.strategies.set([strategy])
    rejected = place_bracket_the_broker_rejects(
        settings, account=account, instrument=instrument, strategy=strategy
    )
    listener = listen(user.pk)

    run = run_user_cycle(user_id=user.pk, cycle_key="r1", trigger="test")
    assert OUTCOMES(run) == ["ok"] * 9 + ["skipped"], run.steps
    assert run.steps[6]["details"] == {"archived": 1}
    assert run.steps[7]["details"] == {"staged": 1}
    assert run.steps[8]["details"] == {"placed": 1}
    rejected.refresh_from_db()
    assert rejected.status == Order.Status.REJECTED and rejected.archived_at is not None
    again = Order.objects.get(regenerated_from=rejected)
    assert again.source == Order.Source.REGENERATED and again.status == Order.Status.OPEN
    updates = listener.of_type("order_update")
    assert {u["order_id"] for u in updates} >= {rejected.pk, again.pk}
