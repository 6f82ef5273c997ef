"""What a trader reads when talking to a broker failed: our own words, never the server's.

A broker error's message may carry text from the other end (an XTS `description`, an HTML
error page, a connection error naming an address). Shown to a trader, that text turns a
login attempt into a probe of whatever answered (server-side request forgery used as a port
scanner). So the connect paths and the monitoring errors show these sentences instead; the
server's own text goes to the log (secrets redacted by trading_site.core.logging).
"""

from __future__ import annotations

import logging

from orders.brokers.base import (
    AccountMisconfigured,
    BrokerError,
    BrokerUnavailable,
    OrderRejected,
    RateLimited,
    SessionExpired,
)
from orders.brokers.host_policy import BrokerHostNotAllowed

logger = logging.getLogger(__name__)

LOGIN_REFUSED = "the broker refused the login; check the account's app key and secret key"
SESSION_REFUSED = "the broker no longer accepts the session; it will log in again"
SLOW_DOWN = "the broker asked us to slow down; try again in a minute"
UNREACHABLE = "the broker did not answer or could not be reached; try again shortly"
FAILED = "the broker call failed; try again shortly"


def trader_message(exc: BaseException, *, account_id: int | None = None) -> str:
    """One of the sentences above for `exc` (logged with the server's own text)."""
    if isinstance(exc, (BrokerHostNotAllowed, AccountMisconfigured)):
        return exc.message  # our own words already (what to set on the account)
    if isinstance(exc, SessionExpired):
        text = SESSION_REFUSED
    elif isinstance(exc, RateLimited):
        text = SLOW_DOWN
    elif isinstance(exc, OrderRejected):
        text = LOGIN_REFUSED
    elif isinstance(exc, BrokerUnavailable):
        text = UNREACHABLE
    else:
        text = FAILED
    detail = exc.message if isinstance(exc, BrokerError) else repr(exc)
    response = exc.response if isinstance(exc, BrokerError) else None
    logger.warning(
        "broker call failed: %s %s",
        detail[:1000],
        str(response)[:1000] if response else "",
        extra={"account_id": account_id, "error_type": type(exc).__name__},
    )
    return text
