"""One key per rendered web form, so a second click, a resubmitted POST or a reload never
acts twice.

Forms that place orders turn the key into the orders' Idempotency-Key (the API's
mechanism, `Order.client_order_id`): the same form posted again replays the first result.
Forms that only change something (modify, cancel, exit, schedule) claim the key once in the
cache: a second post of the same rendered form is told it was already sent.
"""

from __future__ import annotations

import logging
import re
import uuid

from django.core.cache import cache

FORM_KEY = "form_key"
CLAIM_SECONDS = 24 * 3600
_SHAPE = re.compile(r"[0-9a-f]{32}")

logger = logging.getLogger(__name__)


def new_form_key() -> str:
    return uuid.uuid4().hex


def posted_form_key(data) -> str:
    """The form's key as posted ("" when absent or malformed: the form is then unguarded,
    as a client that never rendered our form)."""
    value = (data.get(FORM_KEY) or "").strip() if hasattr(data, "get") else ""
    return value if _SHAPE.fullmatch(value) else ""


def claim_form_key(*, user_id: int, key: str) -> bool:
    """True the first time this user's rendered form is posted (or when it has no key)."""
    if not key:
        return True
    try:
        return bool(cache.add(f"form-key:{user_id}:{key}", 1, timeout=CLAIM_SECONDS))
    except Exception:  # the cache unreachable: act (the services' own guards still hold)
        logger.warning("form key not claimable, cache unavailable", extra={"user_id": user_id})
        return True
