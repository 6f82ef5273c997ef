"""The dispatcher: the handler by dotted path (refusing to start without it), one account at a
time and in order, the resync after every CONNECTED, a failing handler contained."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from monitoring.events import handle_broker_event, resync_account
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.brokers.streams.dispatch import Dispatcher, resolve_handlers
from tests.factories import broker_order_row
from trading_site.core import metrics


def _order_event(account_id: int, n: int) -> BrokerEvent:
    row = broker_order_row(
        broker_order_id=str(1000 + n),
        uid=f"uid-{n}",
        status="OPEN",
        raw_status="New",
        quantity=n,
        symbol="INFY",
        instrument_id=1594,
        limit=None,
    )
    return BrokerEvent(account_id, BrokerEventKind.ORDER, "paper", datetime.now(tz=UTC), order=row)


def _connected(account_id: int) -> BrokerEvent:
    return BrokerEvent(
        account_id, BrokerEventKind.CONNECTED, "xts-stream", datetime.now(tz=UTC), detail="#1"
    )


def test_a_handler_that_does_not_import_stops_the_runner_from_starting(settings):
    settings.BROKER_EVENT_HANDLER = "orders.services.no_such_module.handle_broker_event"
    with pytest.raises(ImproperlyConfigured, match="BROKER_EVENT_HANDLER"):
        resolve_handlers()
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.record_event"
    settings.BROKER_RESYNC_HANDLER = "tests.orders.brokers.streams.recorder.no_such_function"
    with pytest.raises(ImproperlyConfigured, match="BROKER_RESYNC_HANDLER"):
        resolve_handlers()


def test_the_default_handlers_are_the_desk_s_and_they_resolve():
    handlers = resolve_handlers()
    assert handlers.handle_event is handle_broker_event
    assert handlers.resync_account is resync_account
    # the desk's handler splits a run: protection at once, the PnL after the burst
    assert handlers.act is not None and handlers.finish is not None


def test_what_runs_leave_is_finished_once_per_account_after_its_burst_on_its_own_thread(
    recording, settings, monkeypatch
):
    # Account 5 gets a burst (its first run is slow, four more events queue behind it);
    # account 6 one event. Each account's `finish` runs once, after all of its events, with
    # what its runs left, in the finish pool (one thread, behind the event handlers).
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.record_event_split"
    monkeypatch.setenv("TEST_RECORDER_DELAY", "0.2")
    dispatcher = Dispatcher(resolve_handlers(), threads=2)

    async def run():
        first = dispatcher.submit(_order_event(5, 1))
        await asyncio.sleep(0.05)  # the first is in the handler now
        rest = [dispatcher.submit(_order_event(5, n)) for n in range(2, 6)]
        await asyncio.gather(first, *rest, dispatcher.submit(_order_event(6, 1)))
        assert await dispatcher.drain(10)

    asyncio.run(run())
    dispatcher.close()
    assert recording.runs().count(["order"] * 4) == 1  # the queued four as one run
    finishes = {f["account_id"]: f for f in recording.finishes()}
    assert len(recording.finishes()) == 2 and set(finishes) == {5, 6}
    for account_id in (5, 6):
        assert finishes[account_id]["left"] == ["pnl"]
        assert finishes[account_id]["thread"].startswith("broker-events-finish")
        last_event_at = max(
            e["at"] for e in recording.recorded() if e["event"].account_id == account_id
        )
        assert finishes[account_id]["at"] >= last_event_at


def test_events_of_one_account_run_one_at_a_time_in_order_accounts_in_parallel(
    recording, monkeypatch
):
    monkeypatch.setenv("TEST_RECORDER_DELAY", "0.1")
    dispatcher = Dispatcher(resolve_handlers(), threads=4)

    async def run():
        futures = [
            dispatcher.submit(_order_event(account, n)) for n in range(1, 5) for account in (1, 2)
        ]
        started = time.monotonic()
        await asyncio.gather(*futures)
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    dispatcher.close()
    for account in (1, 2):
        quantities = [e.order.quantity for e in recording.events(account)]
        assert quantities == [1, 2, 3, 4]
    assert recording.overlaps == []
    # 2 accounts x 4 events x 0.1 s each: each account's events do not overlap (0.4 s at
    # least), the two accounts' do. Every handler call ends 0.1 s after it starts, so two
    # calls overlapped when they ended less than 0.1 s apart; one at a time, no two end
    # that close. (Read from the calls' own times, not from a bound on the wall time, which
    # a slow moment on a shared machine stretches.)
    assert 0.4 <= elapsed
    ends = {
        account: [e["at"] for e in recording.recorded() if e["event"].account_id == account]
        for account in (1, 2)
    }
    assert any(abs(first - second) < 0.09 for first in ends[1] for second in ends[2])


def test_connected_is_followed_by_the_resync_of_that_account(recording):
    dispatcher = Dispatcher(resolve_handlers(), threads=2)

    async def run():
        await asyncio.gather(
            dispatcher.submit(_connected(7)),
            dispatcher.submit(_order_event(7, 1)),
            dispatcher.submit(_order_event(8, 1)),
        )

    asyncio.run(run())
    dispatcher.close()
    [resync] = recording.resyncs()
    assert resync["account_id"] == 7 and "xts-stream connected" in resync["reason"]
    kinds = [e.kind for e in recording.events(7)]
    assert kinds == [BrokerEventKind.CONNECTED, BrokerEventKind.ORDER]
    # the resync ran before the order that came after the connect was handled
    order_at = [e["at"] for e in recording.recorded() if e["event"].account_id == 7][1]
    assert resync["at"] <= order_at


def _position_event(account_id: int) -> BrokerEvent:
    return BrokerEvent(account_id, BrokerEventKind.POSITION, "paper", datetime.now(tz=UTC))


def test_events_queued_behind_a_running_handler_go_to_its_many_as_one_run_in_order(
    recording, settings, monkeypatch
):
    # A burst: the first event is being handled (slowly) while the rest arrive; they queue
    # and go to `many` together, in order; a CONNECTED never joins a run (its resync follows
    # it alone), and a handler without `many` gets every event alone (the test above).
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.record_event_runs"
    monkeypatch.setenv("TEST_RECORDER_DELAY", "0.2")
    handlers = resolve_handlers()
    assert handlers.handle_events is not None
    dispatcher = Dispatcher(handlers, threads=2)

    async def run():
        first = dispatcher.submit(_order_event(5, 1))
        await asyncio.sleep(0.05)  # the first is in the handler now
        rest = [
            dispatcher.submit(_order_event(5, 2)),
            dispatcher.submit(_position_event(5)),
            dispatcher.submit(_order_event(5, 3)),
            dispatcher.submit(_connected(5)),
            dispatcher.submit(_order_event(5, 4)),
        ]
        await asyncio.gather(first, *rest)

    asyncio.run(run())
    dispatcher.close()
    assert recording.runs() == [["order", "position", "order"]]
    kinds = [(str(e.kind), e.order.quantity if e.order else None) for e in recording.events(5)]
    assert kinds == [
        ("order", 1),
        ("order", 2),
        ("position", None),
        ("order", 3),
        ("connected", None),
        ("order", 4),
    ]
    [resync] = recording.resyncs(5)
    assert dispatcher.handled == 6 and dispatcher.failed == 0 and recording.overlaps == []


def test_a_failing_handler_is_counted_and_the_next_events_still_run(recording, settings):
    metrics.reset_metrics()
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.fail_on_purpose"
    dispatcher = Dispatcher(resolve_handlers(), threads=1)

    async def run():
        await asyncio.gather(*(dispatcher.submit(_order_event(3, n)) for n in range(3)))

    asyncio.run(run())
    dispatcher.close()
    assert dispatcher.failed == 3
    text = metrics.render_prometheus()
    assert 'broker_event_handler_errors_total{kind="order",source="paper"} 3' in text
    assert 'broker_events_received_total{kind="order",source="paper"} 3' in text
    assert 'broker_event_handler_seconds_count{kind="order",source="paper"} 3' in text


def test_an_account_whose_events_never_stop_still_gets_its_finish_within_the_bound(
    recording, settings, monkeypatch
):
    # Events every 50 ms, each taking 50 ms to handle: the account's queue is never empty
    # when a run ends. Its finish (the PnL) still comes every `finish_within` seconds, not
    # only once the stream goes quiet.
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.record_event_split"
    monkeypatch.setenv("TEST_RECORDER_DELAY", "0.05")
    dispatcher = Dispatcher(resolve_handlers(), threads=2)
    dispatcher.finish_within = 0.4

    async def run():
        futures = []
        for n in range(1, 41):  # 2 s of events
            futures.append(dispatcher.submit(_order_event(5, n)))
            await asyncio.sleep(0.05)
        await asyncio.gather(*futures)
        assert await dispatcher.drain(10)

    asyncio.run(run())
    dispatcher.close()
    last_event_at = max(e["at"] for e in recording.recorded())
    during = [f for f in recording.finishes() if f["at"] < last_event_at]
    assert len(during) >= 2, recording.finishes()
    assert len(recording.events(5)) == 40  # none lost, none twice
