"""Logging filters for client mistakes Django reports as errors.

Django logs every SuspiciousOperation at ERROR with its traceback (`django.security.*`).
An oversized body is a client's doing, answered 413: one WARNING line without a traceback
is enough, and an attacker sending them cannot flood the error log with stack traces.
"""

from __future__ import annotations

import logging


class ClientErrorAsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = None
        record.exc_text = None
        return True
