"""Real processes and sockets for the tests where the wire is the point: a daphne serving
trading_site.asgi (`manage.py serve_web`), a WebSocket client, a listener on the channel
layer, a handle on the XTS simulator, and the environment a server or worker process needs to
share the test's database and Redis; and a lock held by another worker (a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from trading_site.core.realtime import user_group

REPO = Path(__file__).resolve().parents[1]

# The environment of a fresh machine: none of the suite's service URLs or secrets.
_SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FERNET_KEYS", "DJANGO_DEBUG")


def fresh_machine_env(**overrides: str) -> dict[str, str]:
    """This process's environment without the suite's service URLs and secrets (a fresh
    machine's), with `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(overrides)
    return env


def run_manage(*args: str, env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess:
    """`manage.py *args` in a new process with `env`, its output captured."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def python_process(args: list[str], *, env: dict[str, str], **streams) -> subprocess.Popen:
    """`python *args` started in the repository with `env`; `streams` are Popen's (stdin,
    stdout, stderr, text)."""
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, **streams)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll `predicate()` until it returns something truthy (returned) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


@contextlib.contextmanager
def held_by_another_worker(hold):
    """`hold()` (a lease, an account's exclusion) entered in another thread, as another worker
    would hold it (both are re-entrant within their own thread), until the block ends or the
    yielded event is set."""
    holding, release = threading.Event(), threading.Event()

    def worker():
        with hold():
            holding.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert holding.wait(5)
        yield release
    finally:
        release.set()
        thread.join(5)


@contextlib.contextmanager
def short_lock_waits():
    """This thread's connection gives up a row lock after 1 s (MariaDB's 1205) until the
    block ends: a row `held_by_another_worker` makes its transaction lose the conflict."""
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")


@contextlib.contextmanager
def leases_of_a_millisecond(settings):
    """Every account lease taken in the block ends at once (no heartbeat keeps a ttl this
    short): what a stall past the ttl, or Redis losing the key, does to a holder."""
    settings.ACCOUNT_LOCK_TTL_SECONDS = 0.001
    try:
        yield
    finally:
        settings.ACCOUNT_LOCK_TTL_SECONDS = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """The environment of a server or worker process sharing this test's database and Redis."""
    env = dict(os.environ)
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
    """`manage.py serve_web` (daphne: HTTP and WebSocket) on a free port, sharing the test's
    database and Redis; up once it takes connections (its stderr is the error if not)."""

    def __init__(self, **env):
        self._serve(stderr=subprocess.PIPE, **env)

    def _serve(self, *, stderr, **env) -> None:
        self.port = free_port()
        self.process = python_process(
            ["manage.py", "serve_web", "--port", str(self.port)],
            env=subprocess_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        deadline = time.monotonic() + 30
        while not self._is_up():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(self._errors())
            time.sleep(0.1)

    def _is_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _errors(self) -> str:
        return self.process.stderr.read().decode()[-2000:]

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class WsClient:
    """A WebSocket client in a thread, recording every message until the socket closes."""

    def __init__(self, url: str, **kwargs):
        # websockets wants its connection used as a context manager (closed on exit).
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, open_timeout=10, **kwargs))
        self.messages: list[dict] = []
        self.close_code: int | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for raw in self.ws:
                self.messages.append(json.loads(raw))
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    def wait_for(self, predicate, timeout: float = 10.0, *, after: int = 0) -> dict:
        """The first message (from the `after`-th on) `predicate` accepts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages[after:]:
                if predicate(message):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no matching message; got {self.messages}")

    def send_ping(self) -> None:
        """A `ping` message (the application's, not a protocol ping frame)."""
        self.ws.send(json.dumps({"type": "ping"}))

    def ping(self) -> dict:
        """Send a `ping` message and wait for the `pong` that answers it: the socket is up
        and served."""
        before = len(self.messages)
        self.send_ping()
        return self.wait_for(lambda m: m["type"] == "pong", after=before)

    def wait_closed(self, timeout: float = 10.0) -> int | None:
        self._thread.join(timeout)
        return self.close_code

    def close(self):
        self._stack.close()
        self._thread.join(5)


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


# ---- the XTS simulator over a real socket (broker, market and order tests) ----

SIM_USERS = (
    "inv-app:inv-secret:INV001:investor,dealer-app:dealer-secret:DLR001:dealer:CLIENT7;CLIENT8"
)


# Routes as the simulator's fault knobs name them (`routes`).
SIM_POSITIONS_ROUTE = "GET /interactive/portfolio/positions"
SIM_ORDER_POST = "POST /interactive/orders"
SIM_CANCEL_ROUTE = "DELETE /interactive/orders"


class SimulatorHandle:
    def __init__(self, running):
        self.running = running
        self.app = running.app
        self.base_url = running.base_url

    def set_faults(self, **knobs):
        response = httpx.post(f"{self.base_url}/_sim/faults", json=knobs, timeout=5)
        response.raise_for_status()
        return response.json()

    def stats(self):
        return httpx.get(f"{self.base_url}/_sim/stats", timeout=5).json()

    def after_answering(self, name: str, then, *, monkeypatch) -> None:
        """`then()` runs (in a worker thread: it may use the database) right after the
        simulator first answered a request to route `name` (e.g. "GET /interactive/orders"):
        something that happens between two calls of the desk's."""
        app = self.app
        route = app._route
        done = []

        def run_then():
            try:
                then()
            finally:
                close_old_connections()

        async def and_then(method, path, route_name, query, headers, body):
            answer = await route(method, path, route_name, query, headers, body)
            if route_name == name and not done:
                done.append(route_name)
                await sync_to_async(run_then, thread_sensitive=False)()
            return answer

        monkeypatch.setattr(app, "_route", and_then)

    def hold_positions(self, *, monkeypatch) -> Callable[[], None]:
        """The broker's positions lag its order book: every positions answer from now on is
        the first one given after this call (read it at once), the fills since missing from
        it, until the function returned is called (the broker caught up)."""
        app = self.app
        route = app._route
        held: list[dict] = []

        async def held_positions(method, path, route_name, query, headers, body):
            answer = await route(method, path, route_name, query, headers, body)
            if route_name != SIM_POSITIONS_ROUTE:
                return answer
            if not held:
                held.append(answer)
            return copy.deepcopy(held[0])

        monkeypatch.setattr(app, "_route", held_positions)
        return lambda: monkeypatch.setattr(app, "_route", route)

    def fail_after_answering(self, name: str, *, failing: list[str], monkeypatch) -> None:
        """The routes `failing` (e.g. "GET /interactive/portfolio/positions") start failing
        (HTTP 500) right after the simulator answered a request to route `name` (a hiccup
        between two calls of the desk's)."""

        def fail():
            with self.app._lock:
                self.app.faults.update({"error_rate": 1.0, "routes": failing})

        self.after_answering(name, fail, monkeypatch=monkeypatch)

    def expire_sessions(self):
        httpx.post(f"{self.base_url}/_sim/expire-sessions", timeout=5).raise_for_status()

    def log_in_elsewhere(self, app_key: str = "inv-app", secret: str = "inv-secret") -> None:
        """Another program logs in with the same appKey: one session per appKey, so the
        session the desk holds ends."""
        httpx.post(
            f"{self.base_url}/interactive/user/session",
            json={"appKey": app_key, "secretKey": secret},
            timeout=5,
        ).raise_for_status()

    def place_order(self, token: str, uid: str, **overrides) -> str:
        """POST /interactive/orders as a client would: BUY 4 of NSECM 1594 at market unless
        told; the simulator's AppOrderID."""
        body = {
            "exchangeSegment": "NSECM",
            "exchangeInstrumentID": 1594,
            "productType": "MIS",
            "orderType": "MARKET",
            "orderSide": "BUY",
            "timeInForce": "DAY",
            "disclosedQuantity": 0,
            "orderQuantity": 4,
            "limitPrice": 0,
            "stopPrice": 0,
            "orderUniqueIdentifier": uid,
            **overrides,
        }
        answer = httpx.post(
            f"{self.base_url}/interactive/orders",
            content=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": token},
            timeout=5,
        )
        answer.raise_for_status()
        return answer.json()["result"]["AppOrderID"]
