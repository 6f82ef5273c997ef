"""The one error envelope of the API (SPEC 4).

Every error under /api/ is `{"error": str, "code": CODE, "details": {...}}`. Services raise
the domain errors of trading_site.core.errors; views may also meet Django's and DRF's own
exceptions. The exception handler (and the Django-level fallbacks) turns each into the
envelope, the domain errors through one table of HTTP statuses (`HTTP_STATUS_OF`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

from trading_site.core.errors import (
    AUTHENTICATION_FAILED,
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PERMISSION_DENIED,
    RATE_LIMITED,
    VALIDATION_ERROR,
    BrokerRejectedError,
    BrokerUnavailableError,
    Conflict,
    DomainError,
    MarketClosed,
    NotFound,
    PermissionDenied,
    RateLimitExceeded,
    TradingLocked,
    ValidationFailed,
)
from trading_site.core.request_context import current_request_id

logger = logging.getLogger("trading_site.core.api")

# Each domain error's HTTP status (the first class of the error's MRO found here).
HTTP_STATUS_OF: dict[type[DomainError], int] = {
    ValidationFailed: status.HTTP_400_BAD_REQUEST,
    NotFound: status.HTTP_404_NOT_FOUND,
    PermissionDenied: status.HTTP_403_FORBIDDEN,
    Conflict: status.HTTP_409_CONFLICT,
    MarketClosed: status.HTTP_409_CONFLICT,
    TradingLocked: status.HTTP_409_CONFLICT,
    BrokerRejectedError: status.HTTP_422_UNPROCESSABLE_ENTITY,
    BrokerUnavailableError: status.HTTP_503_SERVICE_UNAVAILABLE,
    RateLimitExceeded: status.HTTP_429_TOO_MANY_REQUESTS,
    DomainError: status.HTTP_400_BAD_REQUEST,
}


def http_status_of(error: DomainError) -> int:
    return next(HTTP_STATUS_OF[cls] for cls in type(error).__mro__ if cls in HTTP_STATUS_OF)


def envelope(message: str, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": message, "code": code, "details": details or {}}


def _validation_message(detail: Any) -> str:
    """A one-line summary of DRF validation errors: the first field and its first message."""
    if isinstance(detail, dict) and detail:
        field, messages = next(iter(detail.items()))
        first = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(first, dict):
            return f"{field}: {_validation_message(first)}"
        if field == "non_field_errors":
            return str(first)
        return f"{field}: {first}"
    if isinstance(detail, list) and detail:
        return str(detail[0])
    return "Validation error"


def _plain(detail: Any) -> Any:
    """ErrorDetail trees -> plain lists/dicts of strings."""
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception becomes the envelope, nothing escapes."""
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = ValidationFailed(
            "; ".join(exc.messages),
            details=getattr(exc, "message_dict", None) or {"non_field_errors": exc.messages},
        )

    if isinstance(exc, RequestDataTooBig):
        return Response(too_big_body(), status=413)
    if isinstance(exc, OverflowError):
        # A number past what the database holds (SQLite raises this for a 20-digit id):
        # the client's input, not our fault. Validators bound the known fields; this is the
        # net under the rest.
        logger.warning("number out of range in a request: %s", exc)
        return Response(
            envelope("A number in the request is out of range", VALIDATION_ERROR), status=400
        )
    if isinstance(exc, RateLimitExceeded):
        body = envelope(exc.message, exc.code, exc.details)
        body["retry_after"] = exc.retry_after
        headers.update(exc.limit_headers)
        headers["Retry-After"] = str(exc.retry_after)
        return Response(body, status=http_status_of(exc), headers=headers)
    if isinstance(exc, BrokerUnavailableError) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, DomainError):
        return Response(
            envelope(exc.message, exc.code, exc.details),
            status=http_status_of(exc),
            headers=headers or None,
        )
    if isinstance(exc, drf_exceptions.Throttled):
        wait = int(exc.wait or 1)  # type: ignore[attr-defined]  # set in __init__, not in the stubs
        body = envelope("Rate limit exceeded", RATE_LIMITED, {"retry_after": wait})
        body["retry_after"] = wait
        return Response(body, status=429, headers={"Retry-After": str(wait)})
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(
            envelope(_validation_message(exc.detail), VALIDATION_ERROR, _plain_details(exc.detail)),
            status=400,
        )
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(envelope(f"Malformed request: {exc.detail}", VALIDATION_ERROR), status=400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response(envelope(str(exc.detail), VALIDATION_ERROR), status=415)
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return Response(envelope(str(exc.detail), VALIDATION_ERROR), status=406)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(
            envelope(str(exc.detail), METHOD_NOT_ALLOWED, {"method": context["request"].method}),
            status=405,
        )
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        response = Response(envelope(str(exc.detail), AUTHENTICATION_FAILED), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Response(envelope(str(exc.detail), PERMISSION_DENIED), status=403)
    if isinstance(exc, drf_exceptions.NotFound):
        return Response(envelope("Not found", NOT_FOUND), status=404)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(envelope(str(exc.detail), VALIDATION_ERROR), status=exc.status_code)

    logger.exception(
        "unhandled API error", extra={"view": type(context.get("view")).__name__}, exc_info=exc
    )
    return Response(
        envelope("Internal server error", INTERNAL_ERROR, {"request_id": current_request_id()}),
        status=500,
    )


def _plain_details(detail: Any) -> dict[str, Any]:
    plain = _plain(detail)
    if isinstance(plain, dict):
        return plain
    return {"non_field_errors": plain if isinstance(plain, list) else [plain]}


# Django-level fallbacks for what never reaches a DRF view (unknown paths, CSRF, crashes).


def json_error_response(message: str, code: str, status_code: int, **details: Any) -> JsonResponse:
    return JsonResponse(envelope(message, code, details), status=status_code)


@csrf_exempt  # an unknown path is a 404 for every method, not a CSRF failure
def api_not_found(request, exception=None) -> JsonResponse:
    return json_error_response("Not found", NOT_FOUND, 404, path=request.path)


def too_big_body() -> dict[str, Any]:
    return envelope(
        "Request body too large",
        VALIDATION_ERROR,
        {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
    )


def api_bad_request(request, exception=None) -> JsonResponse:
    """Django's 400 (a SuspiciousOperation outside a DRF view); a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE is a 413."""
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(too_big_body(), status=413)
    return json_error_response("Bad request", VALIDATION_ERROR, 400)


def api_server_error(request) -> JsonResponse:
    return json_error_response(
        "Internal server error", INTERNAL_ERROR, 500, request_id=current_request_id()
    )


def api_csrf_failure(request, reason: str = "") -> JsonResponse:
    return json_error_response(
        "CSRF verification failed", PERMISSION_DENIED, 403, reason=reason or "CSRF check failed"
    )
