"""Orders silently dropped while Redis is down (issue 10, item 11): during a Redis outage, 39
of 100 orders to an XTS account were answered 202 ("the broker did not answer, do not place
it again") but never sent, because the outbound limiter and the broker-login lock failed
closed on Redis and the error was read as "outcome unknown".

Now, against the real parts (a private redis-server this test stops and starts, a daphne
serving the product over HTTP, the XTS simulator, MariaDB): every order is either placed
exactly once (the simulator's exchange holds it once) or answered 503 BROKER_UNAVAILABLE with Retry-After and
nothing sent; none is answered 202; while Redis is down orders still go out under the
per-process fallback limit, and a login needed meanwhile happens once; after Redis returns,
a retry with the same Idempotency-Key places each missing order exactly once."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import BrokerLoginLease, BrokerSession
from accounts.services import create_auth_session
from orders.alerts.services import save_webhook
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import connect_account
from orders.models import Order, OrderEvent, OrderLeg
from tests.factories import (
    DEFAULT_PASSWORD,
    api_client_for,
    hold_outbound_limit,
    make_reliance_at_100,
    make_strategy,
    make_user,
    make_xts_account,
    release_outbound_limit,
    single_order_body,
    single_ticket_form,
)
from tests.servers import DaphneServer, free_port

ORDERS = 100
STOP_AFTER = 30


class PrivateRedis:
    """A redis-server of this test alone (never the machine's shared one), on its own port,
    without persistence: stop() is an outage, start() an empty Redis coming back."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class ProductServer(DaphneServer):
    """The product over HTTP, on the test database and the private Redis: up once /healthz
    answers; its log goes to a file (a full pipe would stall the server)."""

    def __init__(self, log_path: Path, **env):
        self.log_path = log_path
        self.log = log_path.open("wb")
        self._serve(stderr=self.log, **env)

    def _is_up(self) -> bool:
        try:
            httpx.get(self.url("/healthz"), timeout=1).raise_for_status()
        except httpx.HTTPError:
            return False
        return True

    def _errors(self) -> str:
        return self.log_path.read_text()[-3000:]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        super().stop()
        self.log.close()


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def xts_account(simulator):
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    make_reliance_at_100()
    connect_account(account)
    token, _ = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="outage test")
    return user, account, token


def _server(tmp_path, private_redis, name: str, **env) -> ProductServer:
    return ProductServer(
        tmp_path / f"{name}.log",
        REDIS_URL=private_redis.url,
        CHANNEL_LAYER_PREFIX=f"td-outage-{private_redis.port}",
        RATE_LIMIT_ORDERS="1000/1000",
        **env,
    )


def _key(index: int) -> str:
    return f"outage-key-{index}"


def _body(account, index: int) -> dict:
    return single_order_body(account, order_quantity=1, external_id=f"outage-{index}")


def test_no_order_is_answered_pending_without_being_sent_while_redis_is_down(
    simulator, private_redis, xts_account, tmp_path
):
    user, account, token = xts_account
    server = _server(
        tmp_path,
        private_redis,
        "outage",
        # A tight outbound limit, so both answers happen: sent, and refused before sending.
        BROKER_ORDERS_PER_SECOND="10",
        BROKER_RATE_LIMIT_PROCESSES="2",
        BROKER_RATE_LIMIT_MAX_WAIT_SECONDS="0.3",
    )
    headers = {"Authorization": f"Bearer {token}"}
    answers: dict[str, tuple[int, dict, dict, float]] = {}
    answered = threading.Semaphore(0)
    stopped_at: list[float] = []

    def send(index: int, *, timeout: float) -> httpx.Response:
        """Order `index`, under its own Idempotency-Key."""
        return httpx.post(
            server.url("/api/orders"),
            json=_body(account, index),
            headers=headers | {"Idempotency-Key": _key(index)},
            timeout=timeout,
        )

    def place(index: int) -> None:
        key = _key(index)
        started = time.monotonic()
        response = send(index, timeout=60)
        answers[key] = (response.status_code, response.json(), dict(response.headers), started)
        answered.release()

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(place, i) for i in range(ORDERS)]
            for _ in range(STOP_AFTER):
                assert answered.acquire(timeout=60)
            private_redis.stop()
            stopped_at.append(time.monotonic())
            # The broker session ends during the outage: the next orders need a new login,
            # under the login lock, with Redis gone.
            simulator.expire_sessions()
            for future in futures:
                future.result()

        statuses = {key: answer[0] for key, answer in answers.items()}
        assert len(statuses) == ORDERS
        assert 202 not in statuses.values(), _unexpected(answers, 202)
        assert set(statuses.values()) <= {201, 503}, _unexpected(answers, None)

        for key, (status, body, response_headers, _started) in answers.items():
            order = Order.objects.get(
                pk=body["order"]["id"] if status == 201 else body["details"]["order_id"]
            )
            uid = OrderLeg.objects.get(order=order).unique_identifier
            if status == 201:
                assert _placed_at_the_broker(uid) == 1, key  # placed exactly once
                assert order.client_order_id == key
            else:
                assert body["code"] == "BROKER_UNAVAILABLE"
                assert body["details"]["sent"] is False and body["details"]["retryable"]
                assert int(response_headers["retry-after"]) >= 1
                assert _placed_at_the_broker(uid) == 0, key  # "not sent": really not placed
                assert order.status == Order.Status.REJECTED
                assert order.client_order_id is None  # the key is free for the retry
                assert OrderEvent.objects.filter(order=order, kind="key_released").exists()
        during_outage = [a for a in answers.values() if a[3] > stopped_at[0]]
        assert during_outage, "no order was placed while Redis was down"
        # Orders still went out while Redis was down (the per-process fallback limit)...
        assert any(status == 201 for status, *_ in during_outage)
        # ... and the login the expired session needed happened once, Redis or not.
        assert simulator.stats()["logins"] == 2

        # Redis returns: a retry with the same key places each missing order exactly once.
        private_redis.start()
        missing = [key for key, status in statuses.items() if status == 503]
        for _round in range(30):
            if not missing:
                break
            still = []
            for key in missing:
                response = send(int(key.rsplit("-", 1)[1]), timeout=30)
                assert response.status_code in (201, 503), response.text
                if response.status_code == 503:
                    still.append(key)
                    time.sleep(int(response.headers["Retry-After"]))
            missing = still
        assert not missing

        # Every key again: the placed order, nothing new sent.
        for key in statuses:
            replay = send(int(key.rsplit("-", 1)[1]), timeout=30)
            assert replay.status_code == 200, replay.text
    finally:
        server.stop()

    placed = Order.objects.filter(account=account, client_order_id__startswith="outage-key-")
    assert placed.count() == ORDERS
    uids = set(
        OrderLeg.objects.filter(order__in=placed).values_list("unique_identifier", flat=True)
    )
    assert len(uids) == ORDERS
    # The simulator holds exactly the 100 orders, each once, and nothing else.
    assert sorted(PaperOrder.objects.values_list("unique_identifier", flat=True)) == sorted(uids)
    assert not BrokerLoginLease.objects.exclude(owner="").exists()


def test_two_processes_log_one_account_in_once_while_redis_is_down(
    simulator, private_redis, xts_account, tmp_path
):
    """The login lock holds across processes without Redis (an XTS login kills the other
    process's token): two servers asked to connect the account at the same moment."""
    user, account, token = xts_account
    first = _server(tmp_path, private_redis, "first")
    second = _server(tmp_path, private_redis, "second")
    try:
        private_redis.stop()
        simulator.set_faults(latency_ms=400)  # a slow login: the other one arrives meanwhile
        logins_before = simulator.stats()["logins"]
        barrier = threading.Barrier(2)

        def connect(server: ProductServer) -> int:
            barrier.wait()
            return httpx.post(
                server.url(f"/api/accounts/{account.pk}/connect"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = list(pool.map(connect, [first, second]))
    finally:
        first.stop()
        second.stop()

    assert statuses == [200, 200]
    assert simulator.stats()["logins"] == logins_before + 1


def _placed_at_the_broker(unique_identifier: str) -> int:
    """How many orders the simulator's exchange holds under this identifier."""
    return PaperOrder.objects.filter(unique_identifier=unique_identifier).count()


def _unexpected(answers: dict, status: int | None) -> list:
    return [
        (key, answer[0], answer[1])
        for key, answer in answers.items()
        if (answer[0] == status if status is not None else answer[0] not in (201, 503))
    ][:3]


# ---- the answers one by one, in process ---------------------------------------------------


@pytest.fixture
def one_order_a_second(settings):
    """An outbound limit of one order a second that never waits: the second order within a
    second is refused before it is sent."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.BROKER_ORDERS_PER_SECOND = 1
    settings.BROKER_RATE_LIMIT_MAX_WAIT_SECONDS = 0


def _api_order(client, account, key: str, index: int = 0):
    return client.post(
        "/api/orders", _body(account, index), format="json", HTTP_IDEMPOTENCY_KEY=key
    )


@pytest.mark.usefixtures("one_order_a_second")
def test_concurrent_retries_of_a_key_not_sent_place_the_order_exactly_once(
    simulator, xts_account, settings
):
    user, account, _token = xts_account
    client = api_client_for(user)
    assert _api_order(client, account, "first", 1).status_code == 201
    hold_outbound_limit(account.pk)
    refused = _api_order(client, account, "second", 2)  # over our own outbound limit
    assert refused.status_code == 503, refused.content
    assert refused.json()["details"]["sent"] is False
    first_try = OrderLeg.objects.get(order_id=refused.json()["details"]["order_id"])
    release_outbound_limit(account.pk)

    def retry(_):
        try:
            return _api_order(api_client_for(user), account, "second", 2).status_code
        finally:
            connection.close()

    settings.BROKER_RATE_LIMIT_MAX_WAIT_SECONDS = 5
    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = sorted(pool.map(retry, range(5)))

    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201}, statuses
    [placed] = Order.objects.filter(client_order_id="second")
    uid = OrderLeg.objects.get(order=placed).unique_identifier
    assert _placed_at_the_broker(uid) == 1
    assert _placed_at_the_broker(first_try.unique_identifier) == 0
    assert first_try.reject_reason.startswith("not sent: ")


def test_a_login_that_fails_before_the_order_is_sent_is_not_sent_not_pending(
    simulator, xts_account, settings
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user, account, _token = xts_account
    settings.BROKER_TIMEOUT_SECONDS = 0.3
    settings.BROKER_READ_RETRIES = 0
    simulator.expire_sessions()
    BrokerSession.objects.filter(account=account).update(invalidated_at=timezone.now())
    simulator.set_faults(latency_ms=1000)  # the login times out: the order never leaves

    response = _api_order(api_client_for(user), account, "login-fails")

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "BROKER_UNAVAILABLE" and body["details"]["sent"] is False
    assert "Retry-After" in response
    assert simulator.stats()["order_posts_by_uid"] == {}


def test_a_broker_that_refuses_the_connection_is_answered_not_sent(
    simulator, xts_account, settings
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user, account, _token = xts_account
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    account.credentials = {**account.credentials, "base_url": closed}
    account.save(update_fields=["credentials"])

    response = _api_order(api_client_for(user), account, "refused")

    assert response.status_code == 503, response.content
    order = Order.objects.get(pk=response.json()["details"]["order_id"])
    assert order.status == Order.Status.REJECTED
    assert OrderLeg.objects.get(order=order).reject_reason.startswith("not sent: ")


@pytest.mark.usefixtures("one_order_a_second")
def test_the_web_form_says_when_an_order_was_not_sent(simulator, xts_account):
    user, account, _token = xts_account
    browser = Client()
    assert browser.login(username=user.username, password=DEFAULT_PASSWORD)
    # A live account: the trader said yes on the confirmation step.
    form = single_ticket_form(account, confirm_live="yes")
    assert browser.post(reverse("place_order"), form).status_code == 302  # placed

    response = browser.post(reverse("place_order"), form)  # over the outbound limit

    assert response.status_code == 503
    assert "was not sent to the broker, nothing was placed" in response.content.decode()
    assert len(simulator.stats()["order_posts_by_uid"]) == 1


@pytest.mark.usefixtures("one_order_a_second")
def test_an_alert_not_sent_is_answered_retryable_and_its_id_places_once_later(
    simulator, xts_account
):
    user, account, _token = xts_account
    webhook = save_webhook(actor="test", strategy=make_strategy(user=user), account=account)

    def alert(alert_id: str):
        return Client().post(
            f"/hooks/alerts/{webhook.public_id}/{webhook.secret}",
            data=json.dumps({"id": alert_id, "symbol": "RELIANCE", "action": "BUY", "quantity": 1}),
            content_type="application/json",
        )

    assert alert("a-1").status_code == 201
    hold_outbound_limit(account.pk)
    refused = alert("a-2")  # over the outbound limit: not sent
    assert refused.status_code == 503, refused.content
    assert refused.json()["details"]["sent"] is False
    assert int(refused["Retry-After"]) >= 1
    first_try = OrderLeg.objects.get(order_id=refused.json()["order_id"])
    release_outbound_limit(account.pk)

    again = alert("a-2")

    assert again.status_code == 201, again.content
    assert alert("a-2").status_code == 200  # and only once
    placed = OrderLeg.objects.get(order_id=again.json()["order_id"])
    assert _placed_at_the_broker(placed.unique_identifier) == 1
    assert _placed_at_the_broker(first_try.unique_identifier) == 0
