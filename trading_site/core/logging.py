"""JSON log lines with the request id, and a filter that redacts credentials and tokens."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from trading_site.core.request_context import current_request_id

_SECRET_KEYS = re.compile(
    r"(?i)(password|passwd|secret|token|authorization|api[_-]?key|app[_-]?key|totp|"
    r"access[_-]?token|session[_-]?token|cookie|fernet)"
)
# key=value, "key": "value", 'key': 'value' (dict reprs) and Bearer/Basic credentials in text.
_KV_PATTERN = re.compile(
    r"(?i)([\"']?(?:password|passwd|secret[_-]?key|secret|api[_-]?key|app[_-]?key|token|"
    r"access[_-]?token|session[_-]?token|totp[_-]?secret|authorization|cookie)[\"']?\s*[:=]\s*)"
    r"((?:bearer|basic|token)\s+[^\s\"',;}&]+|\"[^\"]*\"|'[^']*'|[^\s,;}&]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
REDACTED = "[REDACTED]"


def redact_text(text: str) -> str:
    text = _KV_PATTERN.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def redact_value(key: str, value):
    if _SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    # Anything else (a request, an exception, a model) is logged as its text: redact that.
    return redact_text(str(value))


class RequestIdFilter(logging.Filter):
    """Adds the request id: from the context, or from the record's `request`.

    Django logs 4xx/5xx responses ("django.request") after the middleware chain has
    returned, outside RequestIdMiddleware's context; those records carry the request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            request_id = current_request_id()
            if request_id == "-":
                request_id = getattr(getattr(record, "request", None), "request_id", "-")
            record.request_id = request_id
        return True


_STANDARD_ATTRS = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__.keys()) | {
    "message",
    "asctime",
    "request_id",
}


class RedactSecretsFilter(logging.Filter):
    """Rewrites the message, its arguments and extra fields so no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, redact_value(key, value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", current_request_id()),
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)
