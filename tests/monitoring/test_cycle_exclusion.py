"""Overlapping cycles and abandoned runs (issue 10 items 12 and 13).

A slow broker once made one user's cycles overlap (the cycle lock expired at 0.9 x the
interval and was never renewed) and send the same cancel twice with a false error; a cycle
killed mid-run stayed RUNNING forever. Here: the XTS simulator with its latency knob, a real
worker process killed with SIGKILL, and the runs as the API, the monitoring page and the
admin show them."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest
from django.test import Client

from monitoring.models import MonitoringRun
from monitoring.services import abandon_dead_runs, cycle_lease_name, run_user_cycle
from monitoring.tasks import mark_abandoned_runs
from tests.factories import (
    api_client_for,
    make_account,
    make_priced_instrument,
    make_user,
    make_xts_account,
    place_bracket_near_1000,
    set_price_and_match,
    staff_client,
)
from tests.monitoring.support import assert_closed_by_one_cancel
from tests.servers import held_by_another_worker, python_process, subprocess_env
from trading_site.core import leases

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_slow_cycle_keeps_its_lease_so_the_next_never_overlaps_nor_cancels_twice(
    simulator, settings
):
    # A 2-second interval: the old lock lived 1 s, far less than this cycle takes.
    settings.MONITOR_INTERVAL_SECONDS = 2
    settings.MONITOR_LOCK_TTL_SECONDS = None
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    instrument = make_priced_instrument(symbol="TCS")
    order = place_bracket_near_1000(account=account, instrument=instrument)
    set_price_and_match(instrument, "994")
    assert run_user_cycle(user_id=user.pk, cycle_key="protect", trigger="test").status == "OK"
    set_price_and_match(instrument, "979.5")  # the stop-loss fills: the target must go
    simulator.set_faults(latency_ms=1500)

    first: list = []
    slow = threading.Thread(
        target=lambda: first.append(
            run_user_cycle(user_id=user.pk, cycle_key="slow", trigger="test")
        )
    )
    slow.start()
    time.sleep(3.0)  # past the lease's 2 s ttl: only its heartbeat keeps it
    assert slow.is_alive()
    second = run_user_cycle(user_id=user.pk, cycle_key="next", trigger="test")
    slow.join(60)

    assert second is None  # skipped: the slow cycle still runs
    assert not MonitoringRun.objects.filter(user=user, cycle_key="next").exists()
    [run] = first
    assert run.status == "OK", (run.errors, run.steps)
    assert_closed_by_one_cancel(order, simulator)


def test_a_lease_held_past_its_ttl_by_a_live_holder_is_not_taken(settings):
    name = "test:renewed"
    with leases.held(name, ttl=0.5):
        time.sleep(1.6)  # three ttls
        taken: list = []

        def other():
            try:
                taken.append(leases.acquire(name, ttl=0.5, wait=0.3))
            except leases.LeaseBusy:
                taken.append(None)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(5)
        assert taken == [None]
    assert not leases.is_held(name)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_cycle_whose_worker_is_killed_is_marked_abandoned_in_api_page_and_admin(
    simulator, settings
):
    settings.MONITOR_LOCK_TTL_SECONDS = 2
    user = make_user()
    make_xts_account(simulator.base_url, user=user)
    simulator.set_faults(latency_ms=30000)  # step 1 hangs: the worker dies mid-run
    code = (
        "import django; django.setup()\n"
        "from monitoring.services import run_user_cycle\n"
        f"run_user_cycle(user_id={user.pk}, cycle_key='killed', trigger='test')\n"
    )
    worker = python_process(
        ["-c", code],
        env=subprocess_env(
            DJANGO_SETTINGS_MODULE="trading_site.settings", MONITOR_LOCK_TTL_SECONDS="2"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        run = _wait_for(
            lambda: MonitoringRun.objects.filter(user=user, cycle_key="killed").first(),
            30,
            "the worker's run",
        )
        assert run.status == "RUNNING"
        time.sleep(2.5)  # the worker's heartbeat keeps its lease past the ttl
        assert leases.is_held(cycle_lease_name(user.pk))
        assert abandon_dead_runs() == 0  # a live worker's run is left alone
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)

    # Its lease lapses within the ttl; the housekeeping task then marks the run.
    _wait_for(lambda: not leases.is_held(cycle_lease_name(user.pk)), 5, "the lease to lapse")
    assert mark_abandoned_runs() == 1
    run.refresh_from_db()
    assert run.status == "ABANDONED" and run.finished_at is not None
    assert "abandoned" in run.errors[-1]

    body = api_client_for(user).get("/api/monitoring/runs").json()
    assert [(r["cycle_key"], r["status"]) for r in body["runs"]] == [("killed", "ABANDONED")]
    page = Client()
    page.force_login(user)
    html = page.get("/monitoring/").content.decode()
    assert "status-abandoned" in html and "Abandoned (worker died)" in html
    admin = staff_client()
    listing = admin.get("/admin/monitoring/monitoringrun/?status__exact=ABANDONED")
    assert listing.status_code == 200 and "Abandoned (worker died)" in listing.content.decode()


def test_the_next_cycle_of_the_user_marks_a_dead_run_abandoned():
    user = make_user()
    make_account(user=user)
    dead = MonitoringRun.objects.create(user=user, cycle_key="dead", trigger="beat")

    run = run_user_cycle(user_id=user.pk, cycle_key="next", trigger="test")

    assert run.status == "OK"
    dead.refresh_from_db()
    assert dead.status == MonitoringRun.Status.ABANDONED


def test_housekeeping_leaves_a_run_whose_lease_is_held_alone(settings):
    settings.MONITOR_LOCK_TTL_SECONDS = 0.2
    user = make_user()
    run = MonitoringRun.objects.create(user=user, cycle_key="alive", trigger="beat")
    MonitoringRun.objects.filter(pk=run.pk).update(started_at=run.started_at.replace(year=2020))
    with held_by_another_worker(lambda: leases.held(cycle_lease_name(user.pk), ttl=5)):
        assert abandon_dead_runs() == 0
    assert abandon_dead_runs() == 1
    run.refresh_from_db()
    assert run.status == "ABANDONED"
