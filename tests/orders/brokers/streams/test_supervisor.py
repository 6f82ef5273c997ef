"""The stream supervisor in one process: which accounts get a stream, what reaches the
handler, health; the embedded shape (in memory) and the full stack's paper partitions in
Redis; leases that cannot be renewed close their stream in time."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio
from asgiref.sync import async_to_sync
from django.core.cache import cache

from accounts.models import Broker, BrokerSession
from monitoring.tasks import beat_heartbeat
from orders.brokers.events import BrokerEventKind
from orders.brokers.paper import events as paper_events
from orders.brokers.sessions import broker_client, connect_account, mark_session_invalid
from orders.brokers.streams import health
from orders.brokers.streams.dispatch import Dispatcher, resolve_handlers
from orders.brokers.streams.leases import LocalLeases, RedisLeases, lease_key
from orders.brokers.streams.runner import build_supervisor
from orders.brokers.streams.supervisor import (
    StreamSupervisor,
    _finish,
    cancel_until_done,
    fair_share,
    to_hand_back,
)
from orders.domain.vocabulary import LegStatus
from tests.factories import (
    make_account,
    make_infy_as_the_simulator_lists_it,
    make_xts_account,
    order_request,
)
from tests.orders.brokers.streams.harness import RunningSupervisor
from tests.servers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instrument():
    return make_infy_as_the_simulator_lists_it()


@pytest.fixture
def fast(settings):
    settings.BROKER_STREAMS_SCAN_SECONDS = 0.2
    settings.BROKER_STREAM_LEASE_SECONDS = 3
    settings.BROKER_STREAM_BACKOFF_BASE_SECONDS = 0.05
    settings.BROKER_STREAM_BACKOFF_CAP_SECONDS = 0.5


def _xts_account(simulator, app_key="inv-app", secret="inv-secret"):
    account = make_xts_account(simulator.base_url, app_key=app_key, secret=secret)
    connect_account(account)
    return account


def test_an_xts_session_gets_one_stream_whose_events_and_resyncs_reach_the_handler(
    simulator, instrument, recording, fast, supervisors
):
    account = _xts_account(simulator)
    idle = make_account(broker=Broker.IIFL, credentials={"base_url": simulator.base_url})
    running = supervisors(build_supervisor(in_process=True))
    wait_for(lambda: recording.events(account.pk, BrokerEventKind.CONNECTED))
    wait_for(lambda: recording.resyncs(account.pk))
    ack = async_to_sync(broker_client(account).place_order)(order_request(instrument, "sup-1"))
    filled = wait_for(
        lambda: [
            e
            for e in recording.events(account.pk, BrokerEventKind.ORDER)
            if e.order.status == LegStatus.FILLED
        ]
    )
    assert filled[0].order.broker_order_id == ack.broker_order_id
    wait_for(lambda: recording.events(account.pk, BrokerEventKind.TRADE))
    assert simulator.stats()["streams"]["open"] == {"inv-app": 1}
    # an account without a live session has no stream
    assert recording.events(idle.pk) == []
    wait_for(lambda: health.health_of([account])[account.pk].last_event_at)
    states = health.health_of([account, idle])
    assert states[account.pk].state == health.CONNECTED
    assert states[idle.pk].state == health.NO_SESSION
    xts_units = {unit for unit in running.supervisor.units if unit.startswith("xts:")}
    assert xts_units == {f"xts:{account.pk}"}


def test_a_session_that_ends_stops_its_stream_and_a_new_login_starts_it_again(
    simulator, recording, fast, supervisors
):
    account = _xts_account(simulator)
    supervisors(build_supervisor(in_process=True))
    wait_for(lambda: simulator.stats()["streams"]["open"] == {"inv-app": 1})
    mark_session_invalid(account_id=account.pk, reason="test: the session ended")
    wait_for(lambda: simulator.stats()["streams"]["open"] == {})
    assert health.health_of([account])[account.pk].state == health.NO_SESSION
    connect_account(account)
    wait_for(lambda: len(recording.events(account.pk, BrokerEventKind.CONNECTED)) == 2)
    wait_for(lambda: len(recording.resyncs(account.pk)) == 2)
    assert simulator.stats()["streams"]["max_open"] == {"inv-app": 1}


def test_a_session_renewed_while_streaming_moves_the_stream_to_the_new_token(
    simulator, recording, fast, supervisors
):
    account = _xts_account(simulator)
    supervisors(build_supervisor(in_process=True))
    wait_for(lambda: recording.events(account.pk, BrokerEventKind.CONNECTED))
    connect_account(account)  # the ahead-of-expiry refresh: a new login, a new token
    wait_for(lambda: len(recording.events(account.pk, BrokerEventKind.CONNECTED)) == 2)
    wait_for(lambda: simulator.stats()["streams"]["open"] == {"inv-app": 1})
    assert BrokerSession.objects.get(account=account).invalidated_at is None
    assert simulator.stats()["streams"]["max_open"] == {"inv-app": 1}
    wait_for(lambda: len(recording.resyncs(account.pk)) == 2)


def test_the_other_program_s_login_ends_the_stream_until_a_fresh_session(
    simulator, recording, fast, supervisors
):
    account = _xts_account(simulator)
    supervisors(build_supervisor(in_process=True))
    wait_for(lambda: recording.events(account.pk, BrokerEventKind.CONNECTED))
    logins = simulator.stats()["logins"]
    simulator.log_in_elsewhere()
    wait_for(lambda: recording.events(account.pk, BrokerEventKind.LOGOUT))
    wait_for(lambda: BrokerSession.objects.get(account=account).invalidated_at is not None)
    time.sleep(1.0)
    assert simulator.stats()["logins"] == logins + 1  # the streams never log in
    assert simulator.stats()["streams"]["open"] == {}


def test_embedded_shape_paper_events_reach_the_handler_in_process(
    instrument, recording, fast, settings, supervisors
):
    settings.PAPER_EVENTS_TRANSPORT = "memory"
    account = make_account()
    supervisors(build_supervisor(in_process=True))
    wait_for(lambda: paper_events.memory_bus.attached)
    ack = async_to_sync(broker_client(account).place_order)(order_request(instrument, "emb-1"))
    events = wait_for(lambda: recording.events(account.pk))
    wait_for(lambda: len(recording.events(account.pk)) == 2)
    kinds = [e.kind for e in recording.events(account.pk)]
    assert kinds == [BrokerEventKind.ORDER, BrokerEventKind.TRADE]
    assert events[0].order.broker_order_id == ack.broker_order_id
    state = wait_for(lambda: health.health_of([account])[account.pk].last_event_at)
    assert state
    assert health.health_of([account])[account.pk].state == health.CONNECTED


def test_full_stack_paper_events_are_read_from_redis_once_even_across_restarts(
    instrument, recording, fast, settings, supervisors
):
    settings.PAPER_EVENT_PARTITIONS = 2
    account, other = make_account(), make_account()
    # published while no reader runs: kept for the reader to come
    async_to_sync(broker_client(account).place_order)(order_request(instrument, "fs-1"))
    first = supervisors(build_supervisor(in_process=False))
    wait_for(lambda: len(recording.events(account.pk)) == 2, timeout=20)
    async_to_sync(broker_client(other).place_order)(order_request(instrument, "fs-2"))
    wait_for(lambda: len(recording.events(other.pk)) == 2, timeout=20)
    first.stop()
    async_to_sync(broker_client(account).place_order)(order_request(instrument, "fs-3"))
    supervisors(build_supervisor(in_process=False))
    wait_for(lambda: len(recording.events(account.pk)) == 4, timeout=20)
    time.sleep(1.0)
    uids = [(e.order or e.trade).unique_identifier for e in recording.events(account.pk)]
    assert uids == ["fs-1", "fs-1", "fs-3", "fs-3"]  # each once, in order
    assert len(recording.events(other.pk)) == 2


def test_an_owner_that_cannot_renew_stops_its_stream_before_the_lease_can_expire(
    simulator, recording, settings
):
    settings.BROKER_STREAMS_SCAN_SECONDS = 0.2
    account = _xts_account(simulator)
    leases = RedisLeases()
    supervisor = StreamSupervisor(
        leases=leases, dispatcher=Dispatcher(resolve_handlers()), lease_seconds=3
    )
    handle = RunningSupervisor(supervisor)
    try:
        wait_for(lambda: simulator.stats()["streams"]["open"] == {"inv-app": 1})
        key = lease_key(f"xts:{account.pk}")
        cut_at = time.monotonic()

        # Redis becomes unreachable for this process (a network partition).
        dead = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        handle.loop.call_soon_threadsafe(leases.bind, dead)
        wait_for(lambda: simulator.stats()["streams"]["open"] == {}, timeout=6)
        stopped_after = time.monotonic() - cut_at
        # closed while its lease still stood: nobody else could have taken it yet
        assert cache.client.get_client().pttl(key) > 0
        assert stopped_after < 3
    finally:
        handle.stop()


def test_local_leases_grant_everything_in_one_process():
    leases = LocalLeases()

    async def run():
        acquired, taken = await leases.acquire(["a", "b"], ttl=1)
        again, _ = await leases.acquire(["a", "c"], ttl=1)
        renewed = await leases.renew(["a", "b", "z"], ttl=1)
        return acquired, taken, again, renewed

    acquired, taken, again, renewed = asyncio.run(run())
    assert acquired == ["a", "b"] and taken == [] and again == ["c"]
    assert renewed == {"a", "b"}


def test_readiness_reports_each_streaming_account(
    simulator, recording, fast, settings, supervisors, client
):
    settings.PAPER_EVENTS_TRANSPORT = "memory"
    beat_heartbeat()
    xts = _xts_account(simulator)
    paper = make_account()
    supervisors(build_supervisor(in_process=True))
    wait_for(lambda: health.health_of([xts])[xts.pk].state == health.CONNECTED)
    wait_for(lambda: health.health_of([paper])[paper.pk].state == health.CONNECTED)
    body = client.get("/readyz").json()
    streams = body["checks"]["streams"]
    assert streams["status"] == "ok"
    assert streams["accounts"][str(xts.pk)]["state"] == "connected"
    assert streams["accounts"][str(paper.pk)]["state"] == "connected"
    assert body["status"] == "ok"


def test_readiness_reports_a_stream_down_when_its_process_is_gone(simulator, settings, client):
    settings.BROKER_STREAM_HEALTH_TTL_SECONDS = 2
    xts = _xts_account(simulator)
    # a stream process wrote its health, then died: its record expires
    health.write({health.account_key(xts.pk): health.StreamHealth(state=health.CONNECTED)})
    assert client.get("/readyz").json()["checks"]["streams"]["accounts"][str(xts.pk)]["state"] == (
        "connected"
    )
    time.sleep(2.2)
    body = client.get("/readyz").json()
    assert body["checks"]["streams"]["accounts"][str(xts.pk)]["state"] == "down"
    assert body["checks"]["streams"]["status"] == "degraded"
    assert body["status"] == "degraded"


def test_a_supervisor_cancelled_while_it_stops_a_unit_is_cancelled_and_so_is_the_unit():
    """Shutting down while a scan stops a unit: the cancellation reaches the scan (it was
    swallowed before, and the supervisor's loop ran on past its shutdown), the unit's task is
    cancelled, not left running."""

    async def run():
        unit = asyncio.ensure_future(asyncio.sleep(30))
        stopping = asyncio.ensure_future(_finish(unit, grace=5.0))
        await asyncio.sleep(0.05)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        await asyncio.sleep(0)
        return unit

    unit = asyncio.run(run())
    assert unit.cancelled()


def test_a_unit_that_fails_or_ignores_its_grace_is_finished_without_raising():
    async def run():
        async def fails():
            raise RuntimeError("the unit's own problem")

        failed = asyncio.ensure_future(fails())
        slow = asyncio.ensure_future(asyncio.sleep(30))
        started = time.monotonic()
        await _finish(failed, grace=1.0)
        await _finish(slow, grace=0.1)
        return failed, slow, time.monotonic() - started

    failed, slow, took = asyncio.run(run())
    assert isinstance(failed.exception(), RuntimeError)
    assert slow.cancelled() and took < 2


def test_a_step_that_swallows_its_cancellation_is_cancelled_again_until_it_ends():
    # Seen in CI: a supervisor whose step caught the shutdown's cancellation (while waiting
    # for a thread) went on sleeping and scanning, and never stopped.
    async def stubborn(log):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            log.append("swallowed")
        await asyncio.sleep(60)  # goes on as if nothing happened

    async def run():
        log: list[str] = []
        task = asyncio.ensure_future(stubborn(log))
        await asyncio.sleep(0)
        started = time.monotonic()
        await cancel_until_done([task], every=0.1)
        return log, task, time.monotonic() - started

    log, task, elapsed = asyncio.run(run())
    assert log == ["swallowed"] and task.cancelled() and elapsed < 2


@pytest.mark.parametrize(
    ("total", "live", "capacity", "share"),
    [(100, 1, 500, 100), (100, 2, 500, 50), (101, 2, 500, 51), (4, 3, 500, 2), (100, 2, 30, 30)],
)
def test_a_process_aims_at_an_even_part_of_the_units_within_its_capacity(
    total, live, capacity, share
):
    assert fair_share(total, live, capacity) == share


@pytest.mark.parametrize(
    ("held", "share", "slack", "released"),
    [
        (100, 50, 1, 5),  # a tenth of the share per scan: 50 handed over in ten scans
        (52, 50, 1, 2),
        (51, 50, 1, 0),  # within the slack: an XTS stream is not moved for one unit
        (4, 2, 0, 1),  # paper partitions: no slack, one at a time
        (3, 2, 0, 1),
        (2, 2, 0, 0),
        (10, 50, 1, 0),  # below the share: nothing to give
    ],
)
def test_a_process_above_its_share_hands_back_part_of_the_excess_per_scan(
    held, share, slack, released
):
    assert to_hand_back(held, share, slack=slack) == released
