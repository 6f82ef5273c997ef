"""Server-side request forgery through a live account's `base_url` (issue 10, item 1).

A trader chooses the base URL, and every login POSTs the app and secret keys there. Only
broker hosts from settings may be called; loopback and private addresses only when the
operator allows them; the rule holds at input (API, web form, admin) and at call time (a
stored URL from before the rule, a DNS name pointing at 127.0.0.1, a redirect); and what a
foreign server says never reaches the trader. The "foreign server" here is a real HTTP
server on a real socket that records every request it gets.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from accounts.models import BrokerAccount
from orders.brokers.host_policy import BrokerHostNotAllowed, validate_base_url
from tests import factories
from tests.factories import (
    DEFAULT_PASSWORD,
    api_client_for,
    make_user,
    make_xts_account,
)

BANNER = "SSH-2.0-OpenSSH_9.6 internal-redis-6379 secret banner"


class ForeignServer:
    """A real HTTP server answering every request with one canned answer, counting them."""

    def __init__(self, *, status=400, body=None, headers=None):
        self.requests: list[tuple[str, str, str]] = []
        server_self = self
        payload = body if body is not None else {"type": "error", "description": BANNER}
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                server_self.requests.append(
                    (self.command, self.path, self.rfile.read(length).decode("latin1"))
                )
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def foreign():
    servers: list[ForeignServer] = []

    def make(**kwargs) -> ForeignServer:
        servers.append(ForeignServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def full_stack_policy(settings):
    """The production rule: the brokers' own hosts over https, no private addresses."""
    settings.BROKER_ALLOW_PRIVATE_HOSTS = False
    settings.BROKER_REQUIRE_HTTPS = True
    settings.BROKER_ALLOWED_HOSTS = list(settings.XTS_BASE_URLS.values())
    settings.BROKER_RETRY_BACKOFF_SECONDS = 0.01


def _xts_account(base_url: str, **extra) -> BrokerAccount:
    """Written straight to the database, as a row from before the rule would be."""
    return make_xts_account(base_url, app_key="app-key-1", secret="secret-key-1", **extra)


SSRF_TARGETS = [
    "http://127.0.0.1:6379",  # the local Redis
    "http://localhost:3306",  # a name for loopback
    "http://[::1]:8000/",
    "http://10.0.0.5",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://0.0.0.0:22",
    "http://[::ffff:127.0.0.1]:6379",
    "https://evil.example.com",  # not a broker host
    "https://ttblaze.iifl.com.evil.example.com",
    "http://ttblaze.iifl.com",  # a broker host, but not over https
    "https://ttblaze.iifl.com:8443",  # a broker host on another port
    "https://user:pw@ttblaze.iifl.com",
    "https://ttblaze.iifl.com/?next=http://127.0.0.1",
    "file:///etc/passwd",
]


@pytest.mark.django_db
@pytest.mark.parametrize("target", SSRF_TARGETS)
def test_api_refuses_an_ssrf_base_url_and_creates_nothing(full_stack_policy, target):
    user = make_user()
    response = api_client_for(user).post(
        "/api/accounts",
        {
            "account_name": "probe",
            "broker": "IIFL",
            "credentials": {"app_key": "a", "secret_key": "b", "base_url": target},
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "base_url" in json.dumps(body["details"])
    assert not BrokerAccount.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_api_accepts_the_brokers_own_hosts(full_stack_policy):
    user = make_user()
    for n, url in enumerate(
        [
            "https://ttblaze.iifl.com",
            "https://trade.wisdomcapital.in/",
            "https://xts.nirmalbang.com",
        ]
    ):
        response = api_client_for(user).post(
            "/api/accounts",
            {
                "account_name": f"live {n}",
                "broker": "IIFL",
                "credentials": {"app_key": "a", "secret_key": "b", "base_url": url},
            },
            format="json",
        )
        assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_api_patch_cannot_point_an_account_at_loopback(full_stack_policy):
    account = _xts_account("https://ttblaze.iifl.com")
    response = api_client_for(account.user).patch(
        f"/api/accounts/{account.pk}",
        {"credentials": {"base_url": "http://127.0.0.1:6379"}},
        format="json",
    )
    assert response.status_code == 400
    account.refresh_from_db()
    assert account.credentials["base_url"] == "https://ttblaze.iifl.com"


@pytest.mark.django_db
def test_web_form_refuses_a_loopback_base_url(full_stack_policy):
    user = make_user()
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    response = web.post(
        "/settings/accounts/new/",
        {
            "account_name": "probe",
            "broker": "IIFL",
            "app_key": "a",
            "secret_key": "b",
            "base_url": "http://127.0.0.1:6379",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "private or loopback address" in str(response.context["form"].errors["base_url"])
    assert not BrokerAccount.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_admin_form_refuses_a_loopback_base_url(full_stack_policy):
    owner = make_user()
    web = factories.staff_client()
    response = web.post(
        "/admin/accounts/brokeraccount/add/",
        factories.broker_account_admin_form(
            user_id=owner.pk,
            account_name="probe",
            broker="IIFL",
            app_key="a",
            secret_key="b",
            base_url="http://169.254.169.254/latest/meta-data",
        ),
    )
    assert response.status_code == 200
    assert "not allowed" in response.content.decode()
    assert not BrokerAccount.objects.filter(user=owner).exists()


def test_stored_loopback_url_from_before_the_rule_is_refused_at_call_time(
    transactional_db, full_stack_policy, foreign
):
    server = foreign(status=200, body={"type": "success", "result": {"token": "t"}})
    account = _xts_account(server.url)
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    body = response.json()
    assert response.status_code == 422, body
    assert body["code"] == "BROKER_REJECTED"
    assert "not allowed" in body["error"]
    assert server.requests == []  # the secret key never left


def test_an_order_to_a_refused_host_is_rejected_not_left_pending(
    transactional_db, full_stack_policy, foreign, settings
):
    """Refused before a byte is sent: the order is certainly not placed, so REJECTED (a
    PENDING leg would tell the trader 'may have reached the broker, do not place again')."""
    from tests.factories import make_instrument

    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    server = foreign(status=200, body={"type": "success", "result": {"token": "t"}})
    account = _xts_account(server.url)
    instrument = make_instrument()
    response = api_client_for(account.user).post(
        "/api/orders",
        {
            "account_id": account.pk,
            "exchange_segment": instrument.exchange_segment,
            "exchange_instrument_id": instrument.exchange_instrument_id,
            "order_side": "BUY",
            "order_type": "LIMIT",
            "order_quantity": instrument.lot_size,
            "limit_price": "100.00",
        },
        format="json",
    )
    assert response.status_code == 422, response.content
    assert response.json()["details"].get("order_id")
    assert server.requests == []


def test_a_listed_name_that_resolves_to_loopback_is_refused(
    transactional_db, full_stack_policy, foreign, settings
):
    server = foreign(status=200, body={"type": "success", "result": {"token": "t"}})
    settings.BROKER_REQUIRE_HTTPS = False
    settings.BROKER_ALLOWED_HOSTS = [f"localhost:{server.port}"]
    url = f"http://localhost:{server.port}"
    assert validate_base_url(url) == url  # listed by name: accepted at input
    account = _xts_account(url)
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code == 422
    assert "private or loopback" in response.json()["error"]
    assert server.requests == []


def test_unlisted_name_resolving_to_loopback_is_refused_at_input(full_stack_policy, settings):
    settings.BROKER_REQUIRE_HTTPS = False
    with pytest.raises(BrokerHostNotAllowed):
        validate_base_url("http://localhost:8701")
    settings.BROKER_ALLOW_PRIVATE_HOSTS = True  # the operator allows it (simulator, demo)
    assert validate_base_url("http://localhost:8701") == "http://localhost:8701"


def test_a_redirect_to_another_host_is_not_followed(transactional_db, foreign, settings):
    settings.BROKER_RETRY_BACKOFF_SECONDS = 0.01
    target = foreign(status=200, body={"type": "success", "result": {"token": "t"}})
    redirector = foreign(
        status=307, body="", headers={"Location": f"{target.url}/interactive/user/session"}
    )
    account = _xts_account(redirector.url)
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code in (422, 503)
    assert redirector.requests and target.requests == []


@pytest.mark.parametrize(
    "status,body",
    [
        (400, {"type": "error", "description": BANNER}),
        (401, {"type": "error", "description": f"Invalid token session {BANNER}"}),
        (500, f"<html><body><h1>{BANNER}</h1></body></html>"),
        (200, f"<html>{BANNER}</html>"),
    ],
)
def test_a_foreign_servers_text_never_reaches_the_trader(
    transactional_db, foreign, settings, caplog, status, body
):
    settings.BROKER_RETRY_BACKOFF_SECONDS = 0.01
    server = foreign(status=status, body=body)
    account = _xts_account(server.url)
    with caplog.at_level(logging.WARNING, logger="orders.brokers.messages"):
        api = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    assert api.status_code in (422, 503)
    assert "OpenSSH" not in api.content.decode()
    if status != 200:  # the gateway keeps an error's text: it is for the operator's log
        assert "OpenSSH" in caplog.text

    web = Client()
    assert web.login(username=account.user.username, password=DEFAULT_PASSWORD)
    page = web.post(f"/settings/accounts/{account.pk}/connect/", follow=True)
    assert "Could not connect" in page.content.decode()
    assert "OpenSSH" not in page.content.decode()


def test_a_listed_host_is_reached_through_the_address_that_was_checked(simulator, settings):
    """The call-time check connects to the address it judged; the Host header and the login
    still work against a real XTS server reached by name."""
    port = simulator.base_url.rsplit(":", 1)[1]
    settings.BROKER_ALLOWED_HOSTS = [f"localhost:{port}"]
    account = make_xts_account(f"http://localhost:{port}")
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code == 200, response.content
    assert response.json()["connected"] is True
