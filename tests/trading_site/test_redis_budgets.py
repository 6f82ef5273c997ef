"""Redis round-trip budgets of the hot paths (issue 15), as test_query_budgets counts SQL: the
round trips one request sends to Redis from its own thread (a pipeline or a script is one),
against a bound set at the count measured when the path was last made cheaper, so a later
change cannot quietly add one."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager

import pytest
from django.conf import settings
from redis.connection import AbstractConnection

from tests.factories import (
    api_client_for,
    make_account,
    make_reliance_at_100,
    make_user,
    single_order_body,
)
from trading_site.core import metrics

pytestmark = [
    # Committed for real: the broker event is sent after commit.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(settings.EMBEDDED, reason="the full stack's Redis"),
]

# One single paper order (POST /api/orders), steady: the authentication cache (MGET), the
# user's rate limit (EVALSHA), the account's lease taken (SET NX), its fence after the legs
# are locked (GET: the lease may be lost between the two, orders.services.exclusion), the
# paper exchange's broker event after commit (XADD), the lease released (EVAL), and the
# request's metrics, its latency and the orders-placed counter, in one script (EVALSHA).
# 8 before: each metrics call was a round trip of its own. The order_update notify after
# commit is sent from the realtime publisher's thread (trading_site.core.realtime), not
# counted here.
SINGLE_PAPER_ORDER = 7

_COMMAND_NAME = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)")


@contextmanager
def redis_round_trips():
    """The commands of each round trip this thread sends to Redis in the block (a list of
    lists: a pipeline's or a script's commands are one round trip)."""
    sent: list[list[str]] = []
    thread = threading.get_ident()
    send = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        if threading.get_ident() == thread:
            packed = command if isinstance(command, bytes) else b"".join(command)
            sent.append([name.decode().upper() for name in _COMMAND_NAME.findall(packed)])
        return send(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]


def test_one_single_paper_order_through_the_api(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"
    settings.PAPER_EVENTS_TRANSPORT = "redis"  # the full stack's broker events, counted too
    user = make_user()
    account = make_account(user=user)
    make_reliance_at_100()
    client = api_client_for(user)
    body = single_order_body(account)
    # The account's first order of the day logs in to the paper broker; the first script
    # call loads the script: the steady path is the second.
    assert client.post("/api/orders", body, format="json").status_code == 201
    with redis_round_trips() as sent:
        response = client.post("/api/orders", body, format="json")
    assert response.status_code == 201, response.json()
    print("single paper order: Redis round trips", sent)
    assert len(sent) <= SINGLE_PAPER_ORDER, sent
    # The request's metrics did reach Redis, all of them.
    figures = metrics.snapshot()
    assert figures[(metrics.COUNTER, "orders_placed_total")]['broker="PAPER"'] >= 2
    latency = figures[(metrics.HISTOGRAM, "http_request_duration_seconds")]
    assert latency['method="POST",route="/api/orders",status="201"\x1fcount'] >= 2
