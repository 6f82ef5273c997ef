"""JSON log lines: a request id on every line of a request, secrets redacted everywhere."""

from __future__ import annotations

import json
import logging

import pytest

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
    handler = _Collect()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = client.get("/api/accounts", HTTP_X_REQUEST_ID="req-abc")
    finally:
        logger.removeHandler(handler)
    assert response["X-Request-ID"] == "req-abc"
    assert response.status_code == 401
    assert any(line["request_id"] == "req-abc" for line in handler.lines)


def test_the_settings_wire_json_and_redaction_into_every_handler(settings):
    for name in ("console", "file"):
        handler = settings.LOGGING["handlers"][name]
        assert handler["formatter"] == "json"
        assert set(handler["filters"]) == {"request_id", "redact"}
    assert settings.LOGGING["handlers"]["file"]["class"] == "logging.handlers.RotatingFileHandler"
