"""Our XTS interactive stream client (orders.brokers.xts.stream) against the XTS simulator's
stream over a real socket: events, logout, refused tokens, reconnects, backoff, renewal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync

from accounts.models import BrokerSession
from orders.brokers.events import BrokerEventKind
from orders.brokers.sessions import broker_client, connect_account
from orders.brokers.streams.supervisor import load_stream_session
from orders.brokers.xts import socketio_v2 as sio
from orders.brokers.xts.simulator import XtsSimulator, parse_users, serve_in_thread
from orders.brokers.xts.stream import (
    Backoff,
    StreamSession,
    StreamStatus,
    XtsStream,
    mark_stream_session_ended,
)
from orders.domain.vocabulary import LegStatus
from tests.factories import limit_modify_request, make_xts_account, order_request
from tests.servers import SIM_USERS, SimulatorHandle, wait_for

D = Decimal


class RunningStream:
    """An XtsStream on its own event loop in a thread; what it emits, recorded."""

    def __init__(self, session, **options):
        self.events = []
        self.ended = []
        self.loop = asyncio.new_event_loop()

        async def sink(event):
            self.events.append(event)

        async def ended(session, reason):
            self.ended.append((session.token, reason))
            await mark_stream_session_ended(session, reason)

        options.setdefault("backoff", Backoff(base=0.05, cap=0.2, rng=random.Random(7)))
        self.stream = XtsStream(session, on_event=sink, on_session_ended=ended, **options)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.stream.run())
        self.loop.run_forever()

    def update_session(self, session):
        self.loop.call_soon_threadsafe(self.stream.update_session, session)

    def stop(self):
        async def halt():
            await self.stream.stop()
            await asyncio.wait_for(self.task, 10)

        asyncio.run_coroutine_threadsafe(halt(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def kinds(self, kind):
        return [e for e in self.events if e.kind == kind]

    def connected(self):
        return self.kinds(BrokerEventKind.CONNECTED)


@pytest.fixture
def streams():
    running = []

    def start(session, **options):
        stream = RunningStream(session, **options)
        running.append(stream)
        return stream

    yield start
    for stream in running:
        stream.stop()


def _connected_account(simulator, **kwargs):
    account = make_xts_account(simulator.base_url, **kwargs)
    connect_account(account)
    return account, load_stream_session(account.pk)


def test_the_url_is_the_sdk_s_root_path_and_query_plus_engine_io_3():
    url = sio.stream_url("https://ttblaze.iifl.com", token="a.b.c", user_id="IIFL01")
    assert url == (
        "wss://ttblaze.iifl.com/interactive/socket.io/?token=a.b.c&userID=IIFL01"
        "&apiType=INTERACTIVE&EIO=3&transport=websocket"
    )


def test_an_order_that_fills_arrives_as_order_rows_and_a_trade(simulator, instrument, streams):
    account, session = _connected_account(simulator)
    stream = streams(session)
    wait_for(lambda: stream.connected())
    ack = async_to_sync(broker_client(account).place_order)(
        order_request(instrument, "uid-stream-1")
    )

    orders = wait_for(
        lambda: [
            e for e in stream.kinds(BrokerEventKind.ORDER) if e.order.status == LegStatus.FILLED
        ]
    )
    trades = wait_for(lambda: stream.kinds(BrokerEventKind.TRADE))
    [filled] = orders
    assert filled.source == "xts-stream" and filled.account_id == account.pk
    assert filled.order.broker_order_id == ack.broker_order_id
    assert filled.order.unique_identifier == "uid-stream-1"
    assert filled.order.filled_quantity == 5 and filled.order.average_price is not None
    [trade] = trades
    assert trade.trade.broker_order_id == ack.broker_order_id
    assert trade.trade.quantity == 5 and trade.trade.price == filled.order.average_price
    # every state the order passed through, in order: accepted, then filled
    statuses = [e.order.raw_status for e in stream.kinds(BrokerEventKind.ORDER)]
    assert statuses == ["PendingNew", "New", "Filled"]
    # the stream's rows are the REST book's rows (the history's time of the fill aside)
    [book_row] = async_to_sync(broker_client(account).order_book)()
    assert replace(book_row, updated_at=None) == replace(filled.order, updated_at=None)


def test_modify_cancel_and_an_rms_reject_each_arrive_as_an_order_event(
    simulator, instrument, streams
):
    account, session = _connected_account(simulator)
    stream = streams(session)
    wait_for(lambda: stream.connected())
    client = broker_client(account)
    resting = async_to_sync(client.place_order)(
        order_request(instrument, "uid-rest", order_type="LIMIT", limit=D("1500.00"))
    )
    async_to_sync(client.modify_order)(
        limit_modify_request(resting.broker_order_id, "uid-rest", quantity=7, limit=D("1501.00"))
    )
    async_to_sync(client.cancel_order)(resting.broker_order_id, "uid-rest")
    # a margin breach is accepted, then shows Rejected (as at real brokers)
    async_to_sync(client.place_order)(order_request(instrument, "uid-huge", quantity=9000))

    def statuses():
        return [
            (e.order.unique_identifier, e.order.raw_status)
            for e in stream.kinds(BrokerEventKind.ORDER)
        ]

    wait_for(lambda: ("uid-huge", "Rejected") in statuses())
    wait_for(lambda: ("uid-rest", "Cancelled") in statuses())
    rest = [s for uid, s in statuses() if uid == "uid-rest"]
    assert rest == ["PendingNew", "New", "Replaced", "Cancelled"]
    replaced = [
        e.order for e in stream.kinds(BrokerEventKind.ORDER) if e.order.raw_status == "Replaced"
    ][0]
    assert replaced.quantity == 7 and replaced.limit_price == D("1501.00")
    rejected = [
        e.order for e in stream.kinds(BrokerEventKind.ORDER) if e.order.raw_status == "Rejected"
    ][0]
    assert rejected.status == LegStatus.REJECTED and rejected.reject_reason


def test_a_logout_marks_the_session_replaced_and_the_stream_waits_without_logging_in(
    simulator, streams
):
    account, session = _connected_account(simulator)
    stream = streams(session)
    wait_for(lambda: stream.connected())
    logins_before = simulator.stats()["logins"]
    simulator.log_in_elsewhere()

    wait_for(lambda: stream.kinds(BrokerEventKind.LOGOUT))
    wait_for(lambda: stream.stream.status == StreamStatus.WAITING)
    row = BrokerSession.objects.get(account=account)
    assert row.invalidated_at is not None and "logout" in row.last_error
    time.sleep(1.5)
    # no login storm: the stream neither logs in nor hammers the broker with the dead token
    stats = simulator.stats()
    assert stats["logins"] == logins_before + 1  # the other program's login only
    assert stats["streams"]["connects"] == 1
    assert len(stream.connected()) == 1

    # A fresh session through the sessions module (the next cycle's step 1, or Connect):
    connect_account(account)
    stream.update_session(load_stream_session(account.pk))
    wait_for(lambda: len(stream.connected()) == 2)
    assert stream.stream.status == StreamStatus.CONNECTED
    assert simulator.stats()["streams"]["open"] == {"inv-app": 1}


def test_a_dead_token_is_refused_and_the_session_marked_invalid(simulator, streams):
    account, session = _connected_account(simulator)
    simulator.expire_sessions()
    stream = streams(session)
    wait_for(lambda: stream.stream.status == StreamStatus.WAITING)
    assert stream.connected() == []
    assert "Invalid Token" in stream.ended[0][1]
    assert BrokerSession.objects.get(account=account).invalidated_at is not None
    assert simulator.stats()["streams"]["refused"] == 1


# What a `44` may carry. XTS's own refusal of a dead token is `44"Invalid Token"`; the codes
# are those of its REST envelopes (shared/XTS.md "Session"): e-session-*/e-token-* a dead token.
TOKEN_REFUSALS = [
    {"type": "error", "code": "e-session-0007", "description": "Invalid Token"},
    {
        "type": "error",
        "code": "e-token-0002",
        "description": "Please Provide token to Authenticate",
    },
    "jwt expired",
]
OTHER_REFUSALS = [
    "User already connected",
    "Internal Server Error",
    {"message": "Too many connections"},
    {"type": "error", "code": "e-apirl-0004", "description": "Too many requests for this token"},
    {"type": "error", "code": "e-simulator-0001", "description": "Internal Server Error"},
]


@pytest.mark.parametrize("refusal", OTHER_REFUSALS, ids=json.dumps)
def test_a_refusal_for_another_reason_than_the_token_keeps_the_session_and_retries(
    simulator, streams, refusal
):
    # Every `44` ended the session: the stored session was marked invalid, so the trader
    # had to log in again (and the next cycle logged in anew) for a token that was fine.
    account, session = _connected_account(simulator)
    logins = simulator.stats()["logins"]
    simulator.set_faults(stream_refusal=json.dumps(refusal))
    stream = streams(session, backoff=Backoff(base=0.02, cap=0.1, rng=random.Random(3)))
    # Between two refusals it is CONNECTING again a moment: wait for a moment it is waiting
    # out its backoff after one (a token refusal leaves it WAITING for a new session).
    wait_for(
        lambda: (
            simulator.stats()["streams"]["refused"] >= 3
            and stream.stream.status == StreamStatus.RECONNECTING
            and "refused the stream" in stream.stream.detail
        )
    )
    assert stream.ended == [] and stream.connected() == []
    assert len(stream.stream.delays) >= 2  # retried with the backoff, not at once
    assert all(d <= 0.1 for d in stream.stream.delays)
    assert BrokerSession.objects.get(account=account).invalidated_at is None
    simulator.set_faults(stream_refusal="")  # the broker takes the stream again
    wait_for(lambda: stream.connected())
    assert stream.stream.session.token == session.token  # the same session, no new login
    assert simulator.stats()["logins"] == logins
    assert BrokerSession.objects.get(account=account).invalidated_at is None


@pytest.mark.parametrize("refusal", TOKEN_REFUSALS, ids=json.dumps)
def test_a_refusal_of_the_token_ends_the_session(simulator, streams, refusal):
    account, session = _connected_account(simulator)
    simulator.set_faults(stream_refusal=json.dumps(refusal))
    stream = streams(session)
    wait_for(lambda: stream.stream.status == StreamStatus.WAITING)
    assert stream.connected() == [] and len(stream.ended) == 1
    assert BrokerSession.objects.get(account=account).invalidated_at is not None
    time.sleep(0.3)
    assert simulator.stats()["streams"]["refused"] == 1  # it waits for a new session


def test_a_refusal_of_an_old_token_leaves_a_newer_stored_session_alone(simulator, streams):
    account, old_session = _connected_account(simulator)
    connect_account(account)  # a newer login: the old token is dead at the broker
    stream = streams(old_session)
    wait_for(lambda: stream.stream.status == StreamStatus.WAITING)
    assert BrokerSession.objects.get(account=account).invalidated_at is None


def test_after_the_broker_drops_the_connection_it_reconnects_and_emits_connected_again(
    simulator, streams
):
    _account_, session = _connected_account(simulator)
    stream = streams(session)
    wait_for(lambda: stream.connected())
    for expected in (2, 3):
        httpx.post(f"{simulator.base_url}/_sim/drop-streams", timeout=5).raise_for_status()
        wait_for(lambda: len(stream.connected()) == expected)  # noqa: B023
    assert stream.stream.reconnects == 2
    assert simulator.stats()["streams"]["connects"] == 3
    assert simulator.stats()["streams"]["max_open"] == {"inv-app": 1}


def test_backoff_grows_with_full_jitter_and_stays_under_its_cap(simulator, streams):
    _account_, session = _connected_account(simulator)
    simulator.set_faults(stream_refuse=True)  # the broker's socket refuses every handshake
    stream = streams(session, backoff=Backoff(base=0.02, cap=0.16, rng=random.Random(3)))
    wait_for(lambda: len(stream.stream.delays) >= 12, timeout=15)
    delays = list(stream.stream.delays)
    ceilings = [min(0.16, 0.02 * 2**n) for n in range(len(delays))]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=False))
    assert max(delays) <= 0.16
    assert max(delays[6:]) > 0.04  # it grew past the first ceilings
    assert stream.connected() == []
    refused_so_far = simulator.stats()["streams"]["refused"]
    assert refused_so_far >= 12
    simulator.set_faults(stream_refuse=False)
    wait_for(lambda: stream.connected())


def test_a_connection_that_does_not_stay_up_does_not_reset_the_backoff(simulator, streams):
    _account_, session = _connected_account(simulator)
    stream = streams(session, backoff=Backoff(base=0.05, cap=0.4, rng=random.Random(5)))
    wait_for(lambda: stream.connected())
    for expected in (2, 3, 4):
        httpx.post(f"{simulator.base_url}/_sim/drop-streams", timeout=5)
        wait_for(lambda: len(stream.connected()) == expected)  # noqa: B023
    # the connections lasted far less than stable_after (30 s): attempts 0, 1, 2
    ceilings = [min(0.4, 0.05 * 2**n) for n in range(3)]
    assert all(d <= c for d, c in zip(stream.stream.delays, ceilings, strict=True))


def test_a_renewed_session_reconnects_with_the_new_token(simulator, streams):
    account, session = _connected_account(simulator)
    stream = streams(session)
    wait_for(lambda: stream.connected())
    connect_account(account)  # the ahead-of-expiry refresh logs in again
    renewed = load_stream_session(account.pk)
    assert renewed.token != session.token
    stream.update_session(renewed)
    wait_for(lambda: len(stream.connected()) == 2)
    assert stream.stream.session.token == renewed.token
    # our own re-login's logout did not leave the new session invalid
    time.sleep(0.5)
    assert BrokerSession.objects.get(account=account).invalidated_at is None
    assert simulator.stats()["streams"]["open"] == {"inv-app": 1}


def test_a_silent_broker_is_dropped_by_the_ping_timeout(transactional_db, streams):
    # A simulator that answers pings slowly: pingInterval 0.3 s, pingTimeout 0.3 s.
    running = serve_in_thread(
        XtsSimulator(
            users=parse_users(SIM_USERS), seed=1, stream_ping_interval=0.3, stream_ping_timeout=0.3
        )
    )
    try:
        simulator = SimulatorHandle(running)
        _account_, session = _connected_account(simulator)
        stream = streams(session)
        wait_for(lambda: stream.connected())
        time.sleep(1.5)  # several ping rounds: answered, so the connection stays
        assert len(stream.connected()) == 1
    finally:
        running.stop()
    # the server is gone: the stream notices and keeps trying (bounded backoff)
    wait_for(lambda: stream.stream.status == StreamStatus.RECONNECTING, timeout=5)


def test_a_dealer_stream_keeps_only_the_account_s_client_code(simulator, instrument, streams):
    account7, session7 = _connected_account(
        simulator, app_key="dealer-app", secret="dealer-secret", client_id="CLIENT7"
    )
    stream = streams(session7)
    wait_for(lambda: stream.connected())
    # the same dealer login acting for CLIENT8 (an order the account does not own)
    simulator.place_order(session7.token, "uid-client8", orderQuantity=3, clientID="CLIENT8")
    async_to_sync(broker_client(account7).place_order)(order_request(instrument, "uid-client7"))
    wait_for(lambda: stream.kinds(BrokerEventKind.TRADE))
    time.sleep(0.5)
    uids = {e.order.unique_identifier for e in stream.kinds(BrokerEventKind.ORDER)}
    assert uids == {"uid-client7"}
    assert simulator.stats()["streams"]["events_sent"]["trade"] == 2  # both were streamed


def _against_scripted_broker(broker, until, *, must=True, timeout=10.0, client_id=""):
    """An XtsStream against `broker` (a websockets handler scripted frame by frame) until
    `until(events)` (or `timeout`: a failure when `must`); (the stopped stream, its events)."""
    events = []

    async def main():
        async with websockets.serve(broker, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]

            async def sink(event):
                events.append(event)

            stream = XtsStream(
                StreamSession(1, f"http://127.0.0.1:{port}", "tok", "U1", client_id=client_id),
                on_event=sink,
                backoff=Backoff(base=0.01, cap=0.05),
            )
            task = asyncio.ensure_future(stream.run())
            deadline = time.monotonic() + timeout
            while not until(events):
                if time.monotonic() > deadline:
                    assert not must, events
                    break
                await asyncio.sleep(0.02)
            await stream.stop()
            await asyncio.wait_for(task, 5)
            return stream

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main()), events
    finally:
        loop.close()


def test_every_xts_event_kind_over_a_scripted_socket_io_v2_server():
    """A broker scripted frame by frame: positions are events too, joined / tradeConversion
    / error are not acted on, an unreadable row is skipped, a namespace disconnect (`41`)
    means reconnect, and the client's pings are answered."""
    position = {
        "AccountID": "C1",
        "TradingSymbol": "INFY",
        "ExchangeSegment": "NSECM",
        "ExchangeInstrumentID": "1594",
        "ProductType": "MIS",
        "Quantity": "5",
        "OpenBuyQuantity": "5",
        "OpenSellQuantity": "0",
        "BuyAveragePrice": "1,545.00",
    }
    order = {
        "AppOrderID": 7,
        "OrderUniqueIdentifier": "u7",
        "ExchangeSegment": "NSECM",
        "ExchangeInstrumentID": 1594,
        "OrderSide": "Buy",
        "OrderType": "Limit",
        "ProductType": "MIS",
        "OrderQuantity": 5,
        "CumulativeQuantity": 0,
        "OrderStatus": "New",
        "ClientID": "C1",
    }
    pings = []

    async def broker(websocket):
        await websocket.send(sio.encode_open("sid1", ping_interval=0.2, ping_timeout=1))
        await websocket.send(sio.CONNECT_FRAME)
        await websocket.send(sio.encode_event("joined", "welcome"))
        await websocket.send(sio.encode_event("position", json.dumps(position)))
        await websocket.send(sio.encode_event("tradeConversion", "{}"))
        await websocket.send(sio.encode_event("error", "something"))
        await websocket.send(
            sio.encode_event("order", json.dumps({**order, "ExchangeInstrumentID": "NaN"}))
        )
        await websocket.send(sio.encode_event("order", order))  # an object, not a string
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # answer pings for a while
            try:
                frame = await asyncio.wait_for(websocket.recv(), 0.1)
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:
                return  # the client stopped first (it had what it waited for)
            if frame == sio.EIO_PING:
                pings.append(frame)
                await websocket.send(sio.EIO_PONG)
        with contextlib.suppress(websockets.ConnectionClosed):
            await websocket.send(sio.DISCONNECT_FRAME)
        await asyncio.sleep(1)

    def reconnected(events):
        return len([e for e in events if e.kind == BrokerEventKind.CONNECTED]) >= 2

    stream, events = _against_scripted_broker(broker, reconnected, client_id="C1")
    kinds = [e.kind for e in events]
    assert kinds[:3] == [BrokerEventKind.CONNECTED, BrokerEventKind.POSITION, BrokerEventKind.ORDER]
    assert kinds[3] == BrokerEventKind.CONNECTED  # after `41`, reconnected
    assert events[1].position.net_qty == 5 and events[1].position.buy_avg_price == D("1545.00")
    assert events[2].order.broker_order_id == "7" and events[2].order.status == LegStatus.OPEN
    assert len(pings) >= 3  # every pingInterval (0.2 s) for a second
    assert stream.reconnects == 1


def test_a_row_nested_past_the_json_parsers_depth_is_skipped_on_the_same_connection():
    """json.loads raises RecursionError (no ValueError) on a row of 100,000 brackets: it
    escaped the row check and dropped the connection (a reconnect and a full resync per such
    row). It is an unreadable row like any other; the next event comes on the same socket."""
    order = {
        "AppOrderID": 8,
        "OrderUniqueIdentifier": "u8",
        "ExchangeSegment": "NSECM",
        "ExchangeInstrumentID": 1594,
        "OrderSide": "Buy",
        "OrderQuantity": 5,
        "CumulativeQuantity": 0,
        "OrderStatus": "New",
    }

    async def broker(websocket):
        await websocket.send(sio.encode_open("sid1", ping_interval=5, ping_timeout=5))
        await websocket.send(sio.CONNECT_FRAME)
        await websocket.send(sio.encode_event("order", "[" * 100_000))
        await websocket.send(sio.encode_event("order", json.dumps(order)))
        with contextlib.suppress(websockets.ConnectionClosed):
            await websocket.wait_closed()

    def ordered(events):
        return any(e.kind == BrokerEventKind.ORDER for e in events)

    stream, events = _against_scripted_broker(broker, ordered, must=False, timeout=5)
    assert [e.kind for e in events] == [BrokerEventKind.CONNECTED, BrokerEventKind.ORDER]
    assert events[1].order.unique_identifier == "u8"
    assert stream.reconnects == 0
