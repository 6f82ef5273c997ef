"""The loop in its production shape: a real Celery worker and TWO celery beats (a duplicate
beat, the failure SPEC 8 names) against this test's MariaDB database and Redis."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest

from monitoring import presence
from monitoring.models import Heartbeat, MonitoringRun
from tests.factories import make_account, make_user
from tests.servers import python_process, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

INTERVAL = 2


def _celery(*args, env, tmp_path, name):
    log = open(tmp_path / f"{name}.log", "w")
    return python_process(
        ["-m", "celery", "-A", "trading_site", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _json_lines(path):
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_two_beats_and_a_worker_run_each_users_cycle_once_per_slot(tmp_path, settings):
    connected = make_user()
    make_account(user=connected)
    presence.mark_connected(connected.pk, "tab-1")
    idle = make_user()  # no connection, no open orders: not monitored
    make_account(user=idle)

    env = subprocess_env(
        MONITOR_INTERVAL_SECONDS=INTERVAL, PRESENCE_TTL_SECONDS=120, LOG_LEVEL="INFO"
    )
    worker = _celery(
        "worker",
        "--pool=prefork",
        "-c",
        "2",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
        env=env,
        tmp_path=tmp_path,
        name="worker",
    )
    beats = [
        _celery(
            "beat",
            "-s",
            str(tmp_path / f"beat{i}.db"),
            "-l",
            "WARNING",
            env=env,
            tmp_path=tmp_path,
            name=f"beat{i}",
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while MonitoringRun.objects.filter(user=connected).count() < 3:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        for beat in beats:
            _stop(beat)
        time.sleep(2 * INTERVAL)  # let the worker finish what the beats queued
        _stop(worker)

    runs = list(MonitoringRun.objects.filter(user=connected).order_by("cycle_key"))
    keys = [run.cycle_key for run in runs]
    assert Counter(keys).most_common(1)[0][1] == 1  # no slot ran twice
    # The two beats did dispatch the same slots twice (the worker logged each dispatch)...
    dispatched = Counter(
        entry["cycle"]
        for entry in _json_lines(tmp_path / "worker.log")
        if entry.get("message") == "cycles dispatched" and entry.get("users")
    )
    doubled = [key for key, times in dispatched.items() if times >= 2]
    assert doubled, dispatched
    # ... and every slot that ran, ran once, to the end.
    assert set(keys) <= set(dispatched)
    assert all(run.status == MonitoringRun.Status.OK for run in runs), [r.steps for r in runs]
    assert all(run.trigger == "beat" for run in runs)
    assert not MonitoringRun.objects.filter(user=idle).exists()
    assert Heartbeat.objects.filter(name="beat").exists()
