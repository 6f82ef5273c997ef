"""Where the streams run, as real processes: two `manage.py run_broker_streams` sharing the
XTS sessions and paper partitions by leases in Redis (exactly one stream per session at any
moment, counted at the simulator; kill -9 one and the other takes over), and the embedded
server running them inside its own event loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django_redis import get_redis_connection

from orders.brokers.events import BrokerEventKind
from orders.brokers.sessions import broker_client, connect_account
from orders.brokers.streams.leases import lease_key
from orders.brokers.xts.simulator import XtsSimulator, parse_users, serve_in_thread
from tests.factories import (
    make_account,
    make_fair_price,
    make_instrument,
    make_xts_account,
    order_request,
)
from tests.servers import REPO, free_port, subprocess_env, wait_for
from trading_site.core import metrics

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

D = Decimal
RECORDER = "tests.orders.brokers.streams.recorder"
APP_KEYS = [f"app{n}" for n in range(1, 5)]


def _stream_process(log_path, **env) -> subprocess.Popen:
    # The log goes to a file: a pipe nobody reads fills up and freezes the process.
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_broker_streams"],
        cwd=REPO,
        env=subprocess_env(
            BROKER_EVENT_HANDLER=f"{RECORDER}.record_event",
            BROKER_RESYNC_HANDLER=f"{RECORDER}.record_resync",
            BROKER_STREAM_LEASE_SECONDS="2",
            BROKER_STREAMS_SCAN_SECONDS="0.25",
            BROKER_STREAM_BACKOFF_CAP_SECONDS="1",
            PAPER_EVENT_PARTITIONS="2",
            **env,
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "w"),
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _owners(accounts) -> dict[int, str]:
    client = get_redis_connection("default")
    values = client.mget([lease_key(f"xts:{a.pk}") for a in accounts])
    return {a.pk: v.decode() for a, v in zip(accounts, values, strict=True) if v is not None}


def _partition_owners() -> dict[int, int]:
    """Paper partition -> the pid of the process holding its lease."""
    client = get_redis_connection("default")
    values = client.mget([lease_key(f"paper:{p}") for p in range(2)])
    return {p: _pid(v.decode()) for p, v in enumerate(values) if v is not None}


def _pid(owner: str) -> int:
    return int(owner.split(":")[1])


@pytest.fixture
def simulator4(transactional_db):
    users = ",".join(f"{key}:secret-{key}:U{key}:investor" for key in APP_KEYS)
    running = serve_in_thread(XtsSimulator(users=parse_users(users), seed=1))
    yield running
    running.stop()


def test_two_processes_run_one_stream_per_session_and_take_over_a_killed_one(
    simulator4, recording, settings, tmp_path
):
    settings.PAPER_EVENT_PARTITIONS = 2  # as the stream processes are told
    metrics.reset_metrics()
    streams = simulator4.app.streams
    accounts = []
    for key in APP_KEYS:
        account = make_xts_account(simulator4.base_url, app_key=key, secret=f"secret-{key}")
        connect_account(account)
        accounts.append(account)
    paper = make_account()
    instrument = make_instrument(symbol="TCS", band=(D("100"), D("10000")))
    make_fair_price(instrument, "3500.00", spread="0.10")

    def all_open():
        return streams.stats()["open"] == dict.fromkeys(APP_KEYS, 1)

    first = _stream_process(tmp_path / "first.log")
    second = None
    try:
        wait_for(all_open, timeout=30)
        second = _stream_process(tmp_path / "second.log")
        # The second process joins and takes its share: both run some of the streams, and
        # one paper partition each (paper accounts' events are not all left to the first).
        wait_for(lambda: len({_pid(o) for o in _owners(accounts).values()}) == 2, timeout=30)
        wait_for(lambda: sorted(_partition_owners().values()) == sorted([first.pid, second.pid]))
        wait_for(all_open, timeout=10)
        owners = _owners(accounts)
        victim = second if _pid(owners[accounts[-1].pk]) == second.pid else first
        survivor = first if victim is second else second
        victims = [a for a in accounts if _pid(owners[a.pk]) == victim.pid]
        assert victims

        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(timeout=5)
        wait_for(lambda: not all_open(), timeout=5)  # the kernel closed its sockets
        wait_for(all_open, timeout=15)
        takeover = time.monotonic() - killed_at
        print(f"\ntakeover of {len(victims)} sessions after kill -9: {takeover:.2f} s")
        assert takeover < 8
        assert {_pid(o) for o in _owners(accounts).values()} == {survivor.pid}

        # Exactly one stream per session at every moment, counted by the broker.
        assert streams.stats()["max_open"] == dict.fromkeys(APP_KEYS, 1)
        # Every (re)connect was followed by a resync of that account.
        for account in accounts:
            connects = recording.events(account.pk, BrokerEventKind.CONNECTED)
            wait_for(lambda: len(recording.resyncs(account.pk)) == len(connects))  # noqa: B023
        for account in victims:
            assert len(recording.events(account.pk, BrokerEventKind.CONNECTED)) >= 2
        text = metrics.render_prometheus()
        assert "broker_stream_lease_takeovers_total" in text

        # The survivor also reads the paper partitions now: an order's events, once each.
        async_to_sync(broker_client(paper).place_order)(
            order_request(instrument, "proc-paper", quantity=3)
        )
        try:
            wait_for(lambda: len(recording.events(paper.pk)) == 2, timeout=15)
        except AssertionError:
            for name in ("first.log", "second.log"):
                print(name, (tmp_path / name).read_text()[-3000:])
            raise
        time.sleep(1)
        handled = [e for e in recording.recorded() if e["event"].account_id == paper.pk]
        assert len(handled) == 2 and {e["pid"] for e in handled} == {survivor.pid}
    finally:
        _stop(first)
        if second is not None:
            _stop(second)
    # stopped cleanly: leases released at once, no stream left open
    assert _owners(accounts) == {}
    wait_for(lambda: streams.stats()["open"] == {}, timeout=5)


def test_run_broker_streams_refuses_to_start_without_its_handler(transactional_db):
    result = subprocess.run(
        [sys.executable, "manage.py", "run_broker_streams"],
        cwd=REPO,
        env=subprocess_env(BROKER_EVENT_HANDLER="orders.services.no_such_module.handle"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "BROKER_EVENT_HANDLER" in result.stderr and "does not import" in result.stderr


def test_the_embedded_server_hands_paper_events_to_the_handler_in_its_loop(tmp_path, recording):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        VAR_DIR=str(tmp_path / "var"),
        BROKER_EVENT_HANDLER=f"{RECORDER}.record_event",
        BROKER_RESYNC_HANDLER=f"{RECORDER}.record_resync",
        TEST_RECORDER_REDIS_URL=settings.REDIS_URL,
        PRICE_FEED_ENABLED="0",
        MONITOR_INTERVAL_SECONDS="3600",
        LOG_LEVEL="WARNING",
    )
    log_path = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "manage.py", "start_embedded", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(log_path, "w"),
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        banner = [server.stdout.readline() for _ in range(3)]  # printed once serving
        assert "running at" in banner[0], log_path.read_text()[-3000:]
        assert "broker event streams in process" in banner[2]
        login = httpx.post(
            f"{base}/api/login",
            json={"username": settings.DEMO_USERNAME, "password": settings.DEMO_PASSWORD},
            timeout=10,
        ).json()
        headers = {"Authorization": f"Bearer {login['session_token']}"}
        [account] = httpx.get(f"{base}/api/accounts", headers=headers, timeout=10).json()[
            "accounts"
        ]
        placed = httpx.post(
            f"{base}/api/orders",
            json={
                "account_id": account["id"],
                "symbol": "TCS",
                "exchange_segment": "NSECM",
                "order_side": "BUY",
                "order_type": "MARKET",
                "order_quantity": 2,
            },
            headers=headers,
            timeout=10,
        )
        assert placed.status_code == 201, placed.text
        events = wait_for(
            lambda: len(recording.events(account["id"])) >= 2 and recording.events(account["id"])
        )
        assert [e.kind for e in events][:2] == [BrokerEventKind.ORDER, BrokerEventKind.TRADE]
        assert events[0].source == "paper"

        def stream_state():
            body = httpx.get(f"{base}/readyz", timeout=10).json()
            state = body["checks"]["streams"]["accounts"].get(str(account["id"]))
            return state if state and state["last_event_at"] else None

        ready = wait_for(stream_state)
        assert ready["state"] == "connected"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
