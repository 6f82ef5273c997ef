"""Every error under /api/ is the SPEC 4 envelope; pages elsewhere stay HTML."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, api_client_for, make_user
from tests.openapi_contract import published_contract

pytestmark = pytest.mark.django_db


def _assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "code", "details"}
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return body


def test_malformed_json_is_a_400_envelope():
    response = APIClient().generic(
        "POST", "/api/login", "{not json", content_type="application/json"
    )
    body = _assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "Malformed" in body["error"]


def test_validation_error_is_a_400_with_fields_in_details():
    response = api_client_for(make_user()).post("/api/accounts", {}, format="json")
    body = _assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "account_name" in body["details"]


def test_missing_token_is_a_401_envelope():
    response = APIClient().get("/api/accounts")
    _assert_envelope(response, 401, "AUTHENTICATION_FAILED")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer two words",
        "Bearer sh0rt",
        "Bearer " + "x" * 300,
        "Bearer bad$chars!!!!!!!!!!!",
    ],
)
def test_malformed_bearer_header_is_a_401_envelope(header):
    response = APIClient().get("/api/accounts", HTTP_AUTHORIZATION=header)
    _assert_envelope(response, 401, "AUTHENTICATION_FAILED")


# A header of whitespace alone: a proxy or client that blanks the credential. The servers trim
# only spaces and tabs; a latin-1 byte such as 0xA0 or 0x1C reaches the view and is
# whitespace to str.split(). It was an IndexError: a 500 for a client's bad header.
@pytest.mark.parametrize("header", [" ", "\t", "\xa0", "\x1c \x1d"])
def test_a_whitespace_only_authorization_header_is_a_401_envelope_not_a_500(header):
    response = APIClient().get("/api/accounts", HTTP_AUTHORIZATION=header)
    _assert_envelope(response, 401, "AUTHENTICATION_FAILED")


def test_unknown_token_is_a_401_envelope():
    response = APIClient().get("/api/accounts", HTTP_AUTHORIZATION="Bearer " + "a" * 43)
    body = _assert_envelope(response, 401, "AUTHENTICATION_FAILED")
    assert body["error"] == "Invalid or expired token"


def test_cookie_authenticated_write_without_csrf_is_a_403_envelope():
    user = make_user()
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    response = client.post("/api/accounts", {"account_name": "x"}, format="json")
    body = _assert_envelope(response, 403, "PERMISSION_DENIED")
    assert "CSRF" in body["error"]


def test_cookie_authenticated_read_needs_no_csrf_token():
    user = make_user()
    client = APIClient(enforce_csrf_checks=True)
    client.login(username=user.username, password=DEFAULT_PASSWORD)
    assert client.get("/api/accounts").status_code == 200


def test_unknown_api_path_is_a_404_envelope_for_every_method():
    client = api_client_for(make_user())
    _assert_envelope(client.get("/api/no-such-thing"), 404, "NOT_FOUND")
    _assert_envelope(client.post("/api/no/such/thing", {}, format="json"), 404, "NOT_FOUND")


def test_unknown_api_path_is_a_404_envelope_even_without_auth_or_csrf():
    response = Client(enforce_csrf_checks=True).post("/api/nope", "{}", "application/json")
    _assert_envelope(response, 404, "NOT_FOUND")


def test_missing_object_is_a_404_envelope():
    response = api_client_for(make_user()).get("/api/accounts/987654321")
    _assert_envelope(response, 404, "NOT_FOUND")


def test_wrong_method_is_a_405_envelope_with_its_own_documented_code():
    response = APIClient().put("/api/login", {}, format="json")  # a POST-only route
    body = _assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert body["details"]["method"] == "PUT"
    assert response["Allow"] == "POST, OPTIONS"
    error = published_contract().document["components"]["schemas"]["Error"]
    assert "METHOD_NOT_ALLOWED" in error["properties"]["code"]["enum"]


def test_unsupported_media_type_is_a_415_envelope():
    response = APIClient().post("/api/login", "username=a", content_type="text/plain")
    _assert_envelope(response, 415, "VALIDATION_ERROR")


def test_rate_limited_is_a_429_envelope(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "1/0.01"}
    client = api_client_for(make_user())
    client.get("/api/accounts")
    response = client.get("/api/accounts")
    body = _assert_envelope(response, 429, "RATE_LIMITED")
    assert body["error"] == "Rate limit exceeded"
    assert body["retry_after"] >= 1


@pytest.mark.urls("tests.trading_site.failing_urls")
def test_crash_in_an_api_view_is_a_500_envelope_without_a_trace(caplog):
    response = APIClient().get("/api/test-crash", HTTP_X_REQUEST_ID="req-crash-1")
    body = _assert_envelope(response, 500, "INTERNAL_ERROR")
    assert body["details"]["request_id"] == "req-crash-1"
    assert "boom" not in response.content.decode()
    assert "Traceback" not in response.content.decode()


@pytest.mark.urls("tests.trading_site.failing_urls")
def test_crash_in_a_plain_view_under_api_is_a_500_envelope():
    client = Client(raise_request_exception=False)
    response = client.get("/api/test-plain-crash", HTTP_X_REQUEST_ID="req-crash-2")
    body = _assert_envelope(response, 500, "INTERNAL_ERROR")
    assert body["details"]["request_id"] == "req-crash-2"
    assert "plain boom" not in response.content.decode()


@pytest.mark.urls("tests.trading_site.failing_urls")
def test_crash_outside_api_is_an_html_500():
    response = Client(raise_request_exception=False).get("/test-page-crash")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_unknown_page_outside_api_stays_html():
    response = Client().get("/no-such-page-here")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.trading_site.failing_urls")
def test_unexpected_exception_is_logged_with_the_request_id_and_redacted():
    """The log line of a crash carries the request id; secrets in it are redacted."""
    from trading_site.core.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("trading_site.core.api")
    logger.addHandler(handler)
    try:
        APIClient().get("/api/test-crash", HTTP_X_REQUEST_ID="req-log-1")
    finally:
        logger.removeHandler(handler)
    records = [json.loads(line) for line in lines]
    crash = next(r for r in records if r["message"] == "unhandled API error")
    assert crash["request_id"] == "req-log-1"
    assert crash["level"] == "ERROR"
    assert "RuntimeError" in crash["exc"]
    assert "hunter2" not in crash["exc"]


def test_openapi_schema_documents_the_accounts_api():
    response = api_client_for(make_user()).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    for path in ("/api/login", "/api/accounts", "/api/accounts/{account_id}", "/api/strategies"):
        assert path in schema["paths"]
    assert "/api/accounts/" not in schema["paths"]  # the trailing-slash alias is not listed
    assert schema["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_unknown_api_path_is_json_even_in_debug_mode(settings):
    settings.DEBUG = True
    response = Client().get("/api/definitely/not/here")
    _assert_envelope(response, 404, "NOT_FOUND")
