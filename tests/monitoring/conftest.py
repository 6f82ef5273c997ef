"""Helpers for the monitoring tests: a channel-layer listener on a user's group (what every
WebSocket tab of the user would receive), and paper-broker order set-up."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from trading_site.realtime import user_group


class GroupListener:
    """Subscribed to a user's group on the real (Redis) channel layer."""

    def __init__(self, user_id: int):
        self.layer = get_channel_layer()
        # One loop for every call: channels_redis binds a channel's receive buffer to the
        # loop that first received on it.
        self.loop = asyncio.new_event_loop()
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(user_group(user_id), self.channel))
        self.received: list[dict] = []

    def drain(self, *, quiet_seconds: float = 0.3) -> list[dict]:
        """Everything that arrived, waiting until nothing more comes for `quiet_seconds`."""

        async def collect():
            while True:
                try:
                    event = await asyncio.wait_for(self.layer.receive(self.channel), quiet_seconds)
                except TimeoutError:
                    return
                self.received.append(event["message"])

        self.loop.run_until_complete(collect())
        return self.received

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.drain() if m.get("type") == kind]


@pytest.fixture
def listen():
    listeners: list[GroupListener] = []

    def make(user_id: int) -> GroupListener:
        listeners.append(GroupListener(user_id))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.loop.close()


@pytest.fixture(autouse=True)
def _monitoring_settings(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"
    settings.PAPER_FILL_CAP = 0


def place_bracket(
    *,
    user,
    account,
    instrument,
    entry,
    stop=None,
    sl,
    sl_stop=None,
    tp,
    lots=10,
    side="BUY",
    strategy=None,
):
    """A bracket through the real placement service (write-ahead, paper broker)."""
    from decimal import Decimal

    from orders.services import place_bracket_order
    from orders.validation import BracketOrderRequest, TargetSpec

    def d(value):
        return None if value is None else Decimal(str(value))

    request = BracketOrderRequest(
        account_id=account.pk,
        no_of_lots=lots,
        entry_price=d(entry),
        entry_stop_price=d(stop),
        sl_price=d(sl),
        sl_stop_price=d(sl_stop),
        order_side=side,
        exchange_token=instrument.exchange_instrument_id,
        exchange_segment=instrument.exchange_segment,
        targets=[TargetSpec(price=d(tp), percent=Decimal("100"))],
        strategy_name=strategy.name if strategy else "",
    )
    return place_bracket_order(user=user, request=request).order


def sync_from_broker(account) -> list[int]:
    """Steps 1 and 3 by hand: read the broker's book and sync our legs from it."""
    from asgiref.sync import async_to_sync

    from orders.brokers.sessions import broker_client
    from orders.services import sync_account_orders

    rows = async_to_sync(broker_client(account).order_book)()
    return sync_account_orders(account=account, order_book=rows)


def set_price(instrument, price, spread="0.10"):
    """A new fair price, and the paper exchange's matching tick for it."""
    from orders.market_services import match_paper_orders
    from tests.factories import make_fair_price

    make_fair_price(instrument, price, spread=spread)
    match_paper_orders(instrument_ids=[instrument.pk])


# ---- a real daphne serving trading_site.asgi (for tests where the wire is the point) ----------

import json as _json  # noqa: E402
import os as _os  # noqa: E402
import socket as _socket  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402
import threading as _threading  # noqa: E402
import time as _time  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

REPO = _Path(__file__).resolve().parents[2]


def free_port() -> int:
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """The environment of a server or worker process sharing this test's database and Redis."""
    from django.conf import settings
    from django.db import connection

    env = dict(_os.environ)
    env.update(
        DATABASE_URL=f"mysql://root@127.0.0.1:3306/{connection.settings_dict['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,
        FERNET_KEYS=",".join(settings.FERNET_KEYS),
        TRADING_WINDOW_ALWAYS_OPEN="1",
        BROKER_ALLOW_PRIVATE_HOSTS="1",
        LOG_LEVEL="WARNING",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class DaphneServer:
    def __init__(self, **env):
        self.port = free_port()
        self.process = _subprocess.Popen(
            [_sys.executable, "manage.py", "serve_web", "--port", str(self.port)],
            cwd=REPO,
            env=subprocess_env(**env),
            stdout=_subprocess.DEVNULL,
            stderr=_subprocess.PIPE,
        )
        deadline = _time.monotonic() + 30
        while True:
            try:
                with _socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.process.poll() is not None or _time.monotonic() > deadline:
                    raise RuntimeError(self.process.stderr.read().decode()[-2000:]) from None
                _time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except _subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def daphne_server(transactional_db):
    server = DaphneServer()
    yield server
    server.stop()


class WsClient:
    """A WebSocket client in a thread, recording every message until the socket closes."""

    def __init__(self, url: str, **kwargs):
        from websockets.sync.client import connect

        self.ws = connect(url, open_timeout=10, **kwargs)
        self.messages: list[dict] = []
        self.close_code: int | None = None
        self._thread = _threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        from websockets.exceptions import ConnectionClosed

        try:
            for raw in self.ws:
                self.messages.append(_json.loads(raw))
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    def wait_for(self, predicate, timeout: float = 10.0) -> dict:
        deadline = _time.monotonic() + timeout
        while _time.monotonic() < deadline:
            for message in list(self.messages):
                if predicate(message):
                    return message
            _time.sleep(0.02)
        raise AssertionError(f"no matching message; got {self.messages}")

    def wait_closed(self, timeout: float = 10.0) -> int | None:
        self._thread.join(timeout)
        return self.close_code

    def close(self):
        self.ws.close()
        self._thread.join(5)
