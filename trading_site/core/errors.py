"""The domain errors services raise: a small hierarchy, free of HTTP and of DRF.

A service refuses with one of these (a message for people, `details` naming the fields or
ids involved, and `code`, the stable reason of SPEC 4 that API clients branch on). The API
turns each into the error envelope with its HTTP status in one place
(trading_site.core.api.errors); the web pages show the same message and field details next
to the form (accounts.web_forms.add_service_errors).
"""

from __future__ import annotations

import math
from typing import Any

# The codes of SPEC 4's error envelope.
VALIDATION_ERROR = "VALIDATION_ERROR"
# A 405: the path exists, not with this method (nothing in the body was wrong).
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
PERMISSION_DENIED = "PERMISSION_DENIED"
NOT_FOUND = "NOT_FOUND"
RATE_LIMITED = "RATE_LIMITED"
CONFLICT = "CONFLICT"
MARKET_CLOSED = "MARKET_CLOSED"
TRADING_LOCKED = "TRADING_LOCKED"
BROKER_REJECTED = "BROKER_REJECTED"
BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"


class DomainError(Exception):
    """Base of every refusal a service raises."""

    code = VALIDATION_ERROR
    default_message = "Bad request"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(DomainError):
    """The request breaks a business rule; `details` maps each field to its messages."""

    code = VALIDATION_ERROR
    default_message = "Validation error"


class NotFound(DomainError):
    """The thing asked for does not exist, or is not the caller's (never say which)."""

    code = NOT_FOUND
    default_message = "Not found"


class PermissionDenied(DomainError):
    code = PERMISSION_DENIED
    default_message = "You do not have permission to do this"


class Conflict(DomainError):
    """The request is fine but the state does not allow it now (an order already final,
    an idempotency key used for another order)."""

    code = CONFLICT
    default_message = "Conflict"


class Busy(Conflict):
    """Something else holds what this work needs (an account's exclusion) and did not let go
    within the wait: nothing was done, and the same work may simply be tried again later.
    Expected under load; callers that retry log it without a traceback."""

    default_message = "Busy with another change; try again in a few seconds"


class MarketClosed(DomainError):
    code = MARKET_CLOSED
    default_message = "The market is closed"


class TradingLocked(Conflict):
    """The account's trading is locked (the kill switch fired): no new order until the
    trader re-enables trading. Exits of existing positions are not refused."""

    code = TRADING_LOCKED
    default_message = (
        "Trading is locked on this account by the kill switch; re-enable trading to place orders"
    )


class BrokerRejectedError(DomainError):
    """The broker refused (named apart from orders.brokers.base.OrderRejected, the
    gateway's error that a service turns into this one)."""

    code = BROKER_REJECTED
    default_message = "The broker rejected the request"


class BrokerUnavailableError(DomainError):
    """The broker did not answer (apart from orders.brokers.base.BrokerUnavailable, the
    gateway's error)."""

    code = BROKER_UNAVAILABLE
    default_message = "The broker is unavailable; try again shortly"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        # When set, the answer carries Retry-After: nothing was sent, a retry is safe then.
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        super().__init__(message, details=details)


class RateLimitExceeded(DomainError):
    """Too many requests (or login attempts): try again after `retry_after` seconds."""

    code = RATE_LIMITED
    default_message = "Rate limit exceeded"

    def __init__(self, retry_after: float, limit_headers: dict[str, str] | None = None):
        self.retry_after = max(1, math.ceil(retry_after))
        self.limit_headers = limit_headers or {}
        super().__init__(self.default_message, details={"retry_after": self.retry_after})
