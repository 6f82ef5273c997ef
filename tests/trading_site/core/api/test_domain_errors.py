"""Each domain error a service raises becomes the error envelope with its HTTP status and
code, in the one exception handler; nothing else decides them."""

from __future__ import annotations

import pytest

from trading_site.core import errors
from trading_site.core.api.errors import api_exception_handler


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.ValidationFailed("bad", details={"qty": ["too big"]}), 400, "VALIDATION_ERROR"),
        (errors.NotFound("Order not found"), 404, "NOT_FOUND"),
        (errors.PermissionDenied("no"), 403, "PERMISSION_DENIED"),
        (errors.Conflict("already final", details={"order_id": 7}), 409, "CONFLICT"),
        (errors.MarketClosed(), 409, "MARKET_CLOSED"),
        (errors.BrokerRejectedError("RMS: margin"), 422, "BROKER_REJECTED"),
        (errors.BrokerUnavailableError(), 503, "BROKER_UNAVAILABLE"),
        (errors.DomainError("anything else"), 400, "VALIDATION_ERROR"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_a_domain_error_is_the_envelope_with_its_status_and_code(error, status, code):
    response = api_exception_handler(error, {})
    assert response.status_code == status
    assert response.data == {"error": error.message, "code": code, "details": error.details}


def test_rate_limit_exceeded_carries_its_wait_in_the_body_and_the_headers():
    error = errors.RateLimitExceeded(retry_after=2.2, limit_headers={"X-RateLimit-Limit": "5"})
    response = api_exception_handler(error, {})
    assert response.status_code == 429
    assert response.data["retry_after"] == 3 and response.data["details"] == {"retry_after": 3}
    assert (response["Retry-After"], response["X-RateLimit-Limit"]) == ("3", "5")


def test_domain_errors_know_nothing_of_http():
    assert not any(hasattr(cls, "status_code") for cls in errors.DomainError.__subclasses__())
