"""One JSON log line per HTTP request: method, path, status, duration, user id, request id.

It is the only access log: gunicorn runs without `--access-logfile`, daphne without an
access stream, and Django's own "django.request" warnings for 4xx answers are dropped
(`DropClientErrors`): the line here already says 404 or 400. 5xx errors still log their
traceback through "django.request", naming the path as this line does (`RedactPathSecrets`).
The query string is left out (it can carry tokens:
`?token=` on the WebSocket path, filters the trader typed), and so is a secret the URL
carries in its path (an alert webhook's `/hooks/alerts/<id>/<secret>`): the route's
`secret` part is logged as "[redacted]"; on a path that matched no route (a webhook URL
mistyped), every token-like segment is.
"""

from __future__ import annotations

import logging
import re
import time

from trading_site.core.request_timing import TimedMiddleware

logger = logging.getLogger("trading_site.access")

# URL parameters (the route's named groups) whose value must never reach the log.
SECRET_PATH_PARAMETERS = ("secret",)
REDACTED = "[redacted]"
# What a secret looks like when no route says which part is one (secrets are 32 characters).
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{24,}")


def _loggable_path(request) -> str:
    path = request.path
    match = getattr(request, "resolver_match", None)
    if match is None:
        return TOKEN_LIKE.sub(REDACTED, path)
    for name in SECRET_PATH_PARAMETERS:
        value = match.kwargs.get(name)
        if value:
            path = path.replace(value, REDACTED)
    return path


def _user_id(request) -> int | None:
    user = getattr(request, "user", None)
    if user is None:
        return None
    try:
        return user.pk if user.is_authenticated else None
    except Exception:  # a broken session must not lose the line
        return None


class AccessLogMiddleware(TimedMiddleware):
    """Right after RequestIdMiddleware, so the line carries the request id."""

    def record(self, request, response, started: float) -> None:
        status = response.status_code
        path = _loggable_path(request)
        logger.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "%s %s %s",
            request.method,
            path,
            status,
            extra={
                "method": request.method,
                "path": path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": _user_id(request),
            },
        )


class DropClientErrors(logging.Filter):
    """On "django.request": 4xx answers are in the access line already."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        return not (isinstance(status, int) and status < 500)


class RedactPathSecrets(logging.Filter):
    """On "django.request": a 5xx's "Internal Server Error: <path>" line, and the request it
    carries (logged as its text, query string included), name the path as the access line
    does. A webhook failing inside the desk (MariaDB restarting, a lock wait) logged its
    secret there."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if request is None or not isinstance(path, str):
            return True
        loggable = _loggable_path(request)
        record.msg = record.getMessage().replace(path, loggable)
        record.args = None
        # The request's own id, read before the request itself is replaced by its text.
        record.request_id = getattr(record, "request_id", None) or getattr(
            request, "request_id", "-"
        )
        record.request = f"{request.method} {loggable}"
        return True
