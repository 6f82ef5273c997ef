"""The simulator's interactive stream driven by an independent client: python-socketio 4.6.1
with python-engineio 3.14.2, the Socket.IO v2 / Engine.IO 3 client the official XTS SDK
uses (test-only dependencies), connected exactly as the SDK's InteractiveSocketClient does:
the root URL with `?token=&userID=&apiType=INTERACTIVE`, `transports="websocket"`,
`socketio_path="/interactive/socket.io"`."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import httpx
import pytest
import socketio
import websockets.sync.client

from tests.factories import record_price
from tests.servers import wait_for

D = Decimal
EVENTS = ("joined", "order", "trade", "position", "tradeConversion", "logout", "error")


def _login(simulator, app_key="inv-app", secret="inv-secret"):
    answer = httpx.post(
        f"{simulator.base_url}/interactive/user/session",
        data={"appKey": app_key, "secretKey": secret, "source": "WEBAPI"},  # the SDK's form
        timeout=5,
    ).json()["result"]
    return answer["token"], answer["userID"]


class SdkSocket:
    """The official SDK's InteractiveSocketClient, reduced to what it does on the wire."""

    def __init__(self, root, token, user_id):
        self.received: list[tuple[str, tuple]] = []
        self.errors: list = []
        self.lock = threading.Lock()
        self.sid = socketio.Client(reconnection=False, logger=False, engineio_logger=False)
        for name in EVENTS:
            self.sid.on(name, self._recorder(name))
        self.sid.on("connect", lambda: self._record("connect", ()))
        self.sid.on("disconnect", lambda: self._record("disconnect", ()))
        self.sid.on("connect_error", lambda *args: self.errors.append(args))
        self.url = f"{root}/?token={token}&userID={user_id}&apiType=INTERACTIVE"

    def _recorder(self, name):
        return lambda *args: self._record(name, args)

    def _record(self, name, args):
        with self.lock:
            self.received.append((name, args))

    def connect(self):
        self.sid.connect(
            self.url, headers={}, transports="websocket", socketio_path="/interactive/socket.io"
        )

    def rows(self, name):
        with self.lock:
            return [json.loads(args[0]) for n, args in self.received if n == name]

    def names(self):
        with self.lock:
            return [n for n, _ in self.received]

    def close(self):
        if self.sid.connected:
            self.sid.disconnect()


@pytest.fixture
def sdk_sockets():
    made = []

    def make(*args):
        client = SdkSocket(*args)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _joined(sdk_sockets, simulator, token, user_id):
    """An SDK socket for the session, connected and past the server's "joined"."""
    client = sdk_sockets(simulator.base_url, token, user_id)
    client.connect()
    wait_for(lambda: "joined" in client.names())
    return client


def _get(simulator, token, path, **params):
    return httpx.get(
        f"{simulator.base_url}{path}",
        params=params,
        headers={"Content-Type": "application/json", "Authorization": token},
        timeout=5,
    ).json()["result"]


def test_the_sdk_s_client_connects_joins_and_receives_order_and_trade_rows(
    simulator, instrument, sdk_sockets
):
    token, user_id = _login(simulator)
    client = _joined(sdk_sockets, simulator, token, user_id)
    assert client.names()[:2] == ["connect", "joined"]

    app_order_id = simulator.place_order(token, "sdk-stream-1")
    wait_for(lambda: client.rows("trade"))
    wait_for(lambda: [r for r in client.rows("order") if r["OrderStatus"] == "Filled"])
    orders = client.rows("order")
    assert [r["OrderStatus"] for r in orders] == ["PendingNew", "New", "Filled"]
    # The rows are JSON strings carrying exactly the REST answers' rows.
    history = _get(simulator, token, "/interactive/orders", appOrderID=app_order_id)
    assert orders == history
    [trade] = client.rows("trade")
    [book_trade] = _get(simulator, token, "/interactive/orders/trades")
    assert trade == book_trade
    assert trade["AppOrderID"] == app_order_id and trade["LastTradedQuantity"] == 4
    assert set(trade) >= {"ExecutionID", "LastTradedPrice", "LastExecutionTransactTime"}


def test_modified_cancelled_and_rejected_orders_are_streamed(simulator, instrument, sdk_sockets):
    token, user_id = _login(simulator)
    client = _joined(sdk_sockets, simulator, token, user_id)
    resting = simulator.place_order(token, "sdk-rest", orderType="LIMIT", limitPrice=1500)
    httpx.put(
        f"{simulator.base_url}/interactive/orders",
        content=json.dumps(
            {
                "appOrderID": resting,
                "modifiedProductType": "MIS",
                "modifiedOrderType": "LIMIT",
                "modifiedOrderQuantity": 6,
                "modifiedDisclosedQuantity": 0,
                "modifiedLimitPrice": 1502,
                "modifiedStopPrice": 0,
                "modifiedTimeInForce": "DAY",
                "orderUniqueIdentifier": "sdk-rest",
            }
        ),
        headers={"Content-Type": "application/json", "Authorization": token},
        timeout=5,
    ).raise_for_status()
    httpx.delete(
        f"{simulator.base_url}/interactive/orders",
        params={"appOrderID": resting},
        headers={"Authorization": token},
        timeout=5,
    ).raise_for_status()
    simulator.place_order(token, "sdk-huge", orderQuantity=9000)  # breaks the margin: Rejected

    def statuses():
        return [(r["OrderUniqueIdentifier"], r["OrderStatus"]) for r in client.rows("order")]

    wait_for(lambda: ("sdk-huge", "Rejected") in statuses())
    wait_for(lambda: ("sdk-rest", "Cancelled") in statuses())
    assert [s for uid, s in statuses() if uid == "sdk-rest"] == [
        "PendingNew",
        "New",
        "Replaced",
        "Cancelled",
    ]
    rejected = [r for r in client.rows("order") if r["OrderStatus"] == "Rejected"][0]
    assert rejected["CancelRejectReason"]
    assert client.rows("trade") == []


def test_a_fill_by_a_price_move_in_another_process_is_pushed(simulator, instrument, sdk_sockets):
    token, user_id = _login(simulator)
    client = _joined(sdk_sockets, simulator, token, user_id)
    simulator.place_order(token, "sdk-dip", orderType="LIMIT", limitPrice=1530)
    wait_for(lambda: len(client.rows("order")) == 2)
    # The price moves through the limit: matching runs where the price is written (here,
    # the test's process), not in the simulator's.
    record_price(instrument, "1525")
    wait_for(lambda: client.rows("trade"))
    assert client.rows("order")[-1]["OrderStatus"] == "Filled"


def test_a_new_login_for_the_same_app_key_sends_logout_to_the_old_stream(simulator, sdk_sockets):
    token, user_id = _login(simulator)
    client = _joined(sdk_sockets, simulator, token, user_id)
    _login(simulator)  # another session for the appKey
    wait_for(lambda: "logout" in client.names())
    wait_for(lambda: "disconnect" in client.names())
    assert simulator.stats()["streams"]["open"] == {}


def test_a_dead_token_is_refused(simulator, sdk_sockets):
    token, user_id = _login(simulator)
    simulator.expire_sessions()
    client = sdk_sockets(simulator.base_url, token, user_id)
    client.connect()  # the Engine.IO handshake succeeds; the Socket.IO connect is refused
    wait_for(lambda: client.errors)
    assert client.errors == [("Invalid Token",)]
    wait_for(lambda: not client.sid.connected)
    assert "joined" not in client.names() and "connect" not in client.names()
    assert simulator.stats()["streams"]["refused"] == 1


def test_a_token_with_someone_else_s_user_id_is_refused(simulator, sdk_sockets):
    token, _user_id = _login(simulator)
    client = sdk_sockets(simulator.base_url, token, "SOMEONE-ELSE")
    client.connect()
    wait_for(lambda: client.errors)
    assert client.errors == [("Invalid Token",)]
    assert simulator.stats()["streams"]["open"] == {}


def test_an_engine_io_4_client_is_not_served(simulator):
    token, user_id = _login(simulator)
    url = (
        simulator.base_url.replace("http://", "ws://")
        + f"/interactive/socket.io/?token={token}&userID={user_id}&EIO=4&transport=websocket"
    )
    with pytest.raises(websockets.exceptions.InvalidStatus):
        websockets.sync.client.connect(url, open_timeout=5)


def test_a_dealer_stream_carries_every_client_code(simulator, instrument, sdk_sockets):
    token, user_id = _login(simulator, "dealer-app", "dealer-secret")
    client = _joined(sdk_sockets, simulator, token, user_id)
    simulator.place_order(token, "for-client7", clientID="CLIENT7")
    simulator.place_order(token, "for-client8", clientID="CLIENT8")
    wait_for(lambda: len(client.rows("trade")) == 2)
    assert {r["ClientID"] for r in client.rows("trade")} == {"CLIENT7", "CLIENT8"}


def test_a_partial_fill_then_the_rest_each_stream_an_order_row_and_a_trade(
    simulator, instrument, sdk_sockets, settings
):
    settings.PAPER_FILL_CAP = 2  # at most 2 per matching tick
    token, user_id = _login(simulator)
    client = _joined(sdk_sockets, simulator, token, user_id)
    simulator.place_order(token, "sdk-partial", orderQuantity=4)
    wait_for(lambda: len(client.rows("trade")) == 1)
    record_price(instrument, "1545")  # the next tick fills the rest
    wait_for(lambda: len(client.rows("trade")) == 2)
    wait_for(lambda: client.rows("order")[-1]["OrderStatus"] == "Filled")
    orders = client.rows("order")
    assert [r["OrderStatus"] for r in orders] == ["PendingNew", "New", "PartiallyFilled", "Filled"]
    assert [r["CumulativeQuantity"] for r in orders] == [0, 0, 2, 4]
    assert [t["LastTradedQuantity"] for t in client.rows("trade")] == [2, 2]


def test_an_old_order_filled_later_streams_only_its_new_steps(
    simulator, instrument, sdk_sockets, monkeypatch
):
    from datetime import timedelta

    from orders.brokers.xts import simulator as simulator_module

    # The watcher's memory of sent steps is short here, so it has long forgotten the order's
    # first steps when it fills.
    monkeypatch.setattr(simulator_module, "_STREAM_LOOKBACK", timedelta(seconds=0.3))
    token, user_id = _login(simulator)
    client = _joined(sdk_sockets, simulator, token, user_id)
    simulator.place_order(token, "sdk-old", orderType="LIMIT", limitPrice=1530)
    wait_for(lambda: len(client.rows("order")) == 2)
    time.sleep(1.5)  # past 3 lookbacks: the sent steps are forgotten
    record_price(instrument, "1525")
    wait_for(lambda: client.rows("trade"))
    time.sleep(0.5)
    assert [r["OrderStatus"] for r in client.rows("order")] == ["PendingNew", "New", "Filled"]
