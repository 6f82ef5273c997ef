"""JSON log lines: a request id on every line of a request, secrets redacted everywhere."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest
from django.db import transaction
from django.test import Client

from orders.alerts.models import AlertWebhook
from orders.alerts.services import save_webhook
from tests.factories import make_account, make_strategy, make_user
from tests.servers import held_by_another_worker, short_lock_waits
from trading_site.core.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter
from trading_site.core.request_context import request_id_var


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[dict] = []
        self.addFilter(RequestIdFilter())
        self.addFilter(RedactSecretsFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def collected():
    handler = _Collect()
    logger = logging.getLogger("tests.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, handler.lines
    logger.removeHandler(handler)


def test_password_in_the_message_is_redacted(collected):
    logger, lines = collected
    logger.info("login attempt password=hunter2 user=asha")
    assert "hunter2" not in lines[0]["message"]
    assert "user=asha" in lines[0]["message"]


def test_secrets_in_format_arguments_are_redacted(collected):
    logger, lines = collected
    logger.info(
        "broker login body %s", {"appKey": "APP-123", "secretKey": "SEC-456", "source": "WEBAPI"}
    )
    assert "APP-123" not in lines[0]["message"]
    assert "SEC-456" not in lines[0]["message"]
    assert "WEBAPI" in lines[0]["message"]


def test_authorization_header_is_redacted(collected):
    logger, lines = collected
    logger.warning("upstream headers: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def")
    assert "eyJhbGciOiJIUzI1NiJ9" not in lines[0]["message"]


def test_secret_extra_fields_are_redacted(collected):
    logger, lines = collected
    logger.info(
        "session refreshed",
        extra={"access_token": "TOKEN-XYZ", "payload": {"password": "pw1", "clientID": "C9"}},
    )
    line = lines[0]
    assert line["access_token"] == "[REDACTED]"
    assert line["payload"]["password"] == "[REDACTED]"
    assert line["payload"]["clientID"] == "C9"
    assert "TOKEN-XYZ" not in json.dumps(line)


def test_object_extras_are_logged_as_redacted_text(collected):
    logger, lines = collected

    class Request:
        def __str__(self):
            return "<Request GET /ws/1/?token=RAWTOKEN123>"

    logger.info("ws connect", extra={"request": Request()})
    assert "RAWTOKEN123" not in lines[0]["request"]


def test_secrets_in_exception_text_are_redacted(collected):
    logger, lines = collected
    try:
        raise ValueError("bad login password=hunter2")
    except ValueError:
        logger.exception("failed")
    assert "hunter2" not in lines[0]["exc"]
    assert "ValueError" in lines[0]["exc"]


def test_each_line_carries_the_current_request_id(collected):
    logger, lines = collected
    token = request_id_var.set("req-42")
    try:
        logger.info("inside a request")
    finally:
        request_id_var.reset(token)
    logger.info("outside")
    assert lines[0]["request_id"] == "req-42"
    assert lines[1]["request_id"] == "-"


@pytest.mark.django_db
def test_lines_logged_during_a_request_carry_its_request_id(client):
    # Issue 13: the request's own line is the access line (django.request no longer repeats
    # a 4xx), so that is the line this looks for.
    handler = _Collect()
    logger = logging.getLogger("trading_site.access")
    logger.addHandler(handler)
    try:
        response = client.get("/api/accounts", HTTP_X_REQUEST_ID="req-abc")
    finally:
        logger.removeHandler(handler)
    assert response["X-Request-ID"] == "req-abc"
    assert response.status_code == 401
    assert any(line["request_id"] == "req-abc" for line in handler.lines)


@pytest.mark.django_db
def test_each_request_logs_exactly_one_line_with_its_facts(client, settings):
    from django.test import Client

    from tests.factories import DEFAULT_PASSWORD, make_user

    user = make_user()
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    seen: dict[str, _Collect] = {}
    for name in ("trading_site.access", "django.request", "django.server"):
        seen[name] = _Collect()
        logging.getLogger(name).addHandler(seen[name])
    try:
        web.get("/orders/?symbol=secret-token-abc", HTTP_X_REQUEST_ID="req-one")
        web.get("/no/such/page/", HTTP_X_REQUEST_ID="req-404")
    finally:
        for name, handler in seen.items():
            logging.getLogger(name).removeHandler(handler)
    lines = seen["trading_site.access"].lines
    assert [line["request_id"] for line in lines] == ["req-one", "req-404"]
    first = lines[0]
    assert (first["method"], first["path"], first["status"]) == ("GET", "/orders/", 200)
    assert first["user_id"] == user.pk and first["duration_ms"] >= 0
    assert "secret-token-abc" not in json.dumps(first)  # no query string
    assert lines[1]["status"] == 404
    assert seen["django.request"].lines == []  # no second line for the 404
    assert seen["django.server"].lines == []


def test_the_settings_wire_json_and_redaction_into_every_handler(settings):
    for name in ("console", "file"):
        handler = settings.LOGGING["handlers"][name]
        assert handler["formatter"] == "json"
        assert set(handler["filters"]) == {"request_id", "redact"}
    assert settings.LOGGING["handlers"]["file"]["class"] == "logging.handlers.RotatingFileHandler"


def test_a_secret_in_a_path_no_route_matched_is_not_logged(client):
    # A webhook URL mistyped (a trailing segment): no route names the secret, so every
    # token-like segment is redacted; the short parts still say what was asked for.
    secret = "iqWJzHm0NOOeDlE7hUfBe1Y36fHusAMc"
    handler = _Collect()
    logger = logging.getLogger("trading_site.access")
    logger.addHandler(handler)
    try:
        response = client.post(f"/hooks/alerts/TFqwTJWB/{secret}/extra")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 404
    (line,) = handler.lines
    assert secret not in json.dumps(line)
    assert line["path"] == "/hooks/alerts/TFqwTJWB/[redacted]/extra"


@contextmanager
def _row_locked(webhook):
    with transaction.atomic():
        AlertWebhook.objects.select_for_update().get(pk=webhook.pk)
        yield


@pytest.mark.django_db(transaction=True)
def test_a_webhook_failing_inside_the_desk_does_not_log_its_secret():
    # The alert cannot be written (its webhook's row is locked by another worker past this
    # connection's lock wait, as when MariaDB is restarting): a 500, whose "django.request"
    # line named the path, secret included, in its message and in its request.
    user = make_user()
    webhook = save_webhook(
        actor="test", strategy=make_strategy(user=user), account=make_account(user=user)
    )
    handler = _Collect()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        with held_by_another_worker(lambda: _row_locked(webhook)), short_lock_waits():
            response = Client(raise_request_exception=False).post(
                f"/hooks/alerts/{webhook.public_id}/{webhook.secret}",
                data=json.dumps({"symbol": "X", "action": "BUY", "quantity": 1}),
                content_type="application/json",
                HTTP_X_REQUEST_ID="req-500",
            )
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 500
    (line,) = handler.lines
    assert webhook.secret not in json.dumps(line)
    assert line["message"] == f"Internal Server Error: /hooks/alerts/{webhook.public_id}/[redacted]"
    assert line["request_id"] == "req-500" and "Lock wait timeout" in line["exc"]
