"""The XTS gateway against the XTS simulator over a real socket."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import partial

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from accounts.models import BrokerSession
from orders.brokers.base import (
    BrokerOrderRow,
    BrokerUnavailable,
    OrderRejected,
    RateLimited,
)
from orders.brokers.sessions import broker_client, connect_account
from orders.domain.vocabulary import LegStatus
from tests.factories import limit_modify_request, make_xts_account, order_request, record_price

D = Decimal


# A limit order of 10 unless told.
_order = partial(order_request, order_type="LIMIT", quantity=10)


def _place_and_read_back(client, instrument, uid: str, limit: Decimal) -> BrokerOrderRow:
    """Places a limit order of 10; the order book's one row, which is that order's."""
    ack = async_to_sync(client.place_order)(_order(instrument, uid, limit=limit))
    (row,) = async_to_sync(client.order_book)()
    assert (row.broker_order_id, row.unique_identifier) == (ack.broker_order_id, uid)
    return row


def test_connect_logs_in_and_stores_the_token_encrypted(simulator):
    account = make_xts_account(simulator.base_url)
    session = connect_account(account)
    assert session.broker_user_id == "INV001" and session.is_investor_client
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM broker_sessions WHERE id = %s", [session.pk])
        (raw,) = cursor.fetchone()
    assert session.access_token not in raw  # ciphertext at rest
    assert simulator.stats()["logins"] == 1


def test_wrong_credentials_are_a_rejection(simulator):
    account = make_xts_account(simulator.base_url, secret="wrong")
    with pytest.raises(OrderRejected, match="Invalid appKey"):
        connect_account(account)


def test_place_then_fill_after_the_price_moves(simulator, instrument):
    client = broker_client(make_xts_account(simulator.base_url))
    row = _place_and_read_back(client, instrument, "X1", D("1540.00"))
    assert row.status == LegStatus.OPEN
    assert row.average_price is None  # XTS sends "" before a fill
    broker_order_id = row.broker_order_id
    record_price(instrument, "1539.00")
    (row,) = async_to_sync(client.order_book)()
    assert (row.status, row.filled_quantity, row.average_price) == (
        LegStatus.FILLED,
        10,
        D("1539.00"),
    )
    (trade,) = async_to_sync(client.trade_book)()
    assert (trade.broker_order_id, trade.quantity, trade.price) == (
        broker_order_id,
        10,
        D("1539.00"),
    )
    (position,) = async_to_sync(client.positions)()
    assert (position.exchange_instrument_id, position.net_qty) == (1594, 10)
    balance = async_to_sync(client.balance)()
    assert balance.cash_available == D("1000000.00")  # bought at the mark: no MTM yet
    assert balance.margin_utilized == D("3078.00")  # 10 x 1539 x 0.2


def test_modify_and_cancel(simulator, instrument):
    client = broker_client(make_xts_account(simulator.base_url))
    ack = async_to_sync(client.place_order)(_order(instrument, "M1", limit=D("1500.00")))
    async_to_sync(client.modify_order)(
        limit_modify_request(ack.broker_order_id, "M1", quantity=20, limit=D("1510.00"))
    )
    (row,) = async_to_sync(client.order_book)()
    assert (row.quantity, row.limit_price) == (20, D("1510.00"))
    async_to_sync(client.cancel_order)(ack.broker_order_id, "M1")
    (row,) = async_to_sync(client.order_book)()
    assert row.status == LegStatus.CANCELLED


def test_a_price_band_breach_is_accepted_then_shows_rejected_with_the_reason(simulator, instrument):
    # Changed with issue 11: real brokers accept such an order and reject it in the order
    # book (this test used to expect an immediate OrderRejected from the simulator).
    client = broker_client(make_xts_account(simulator.base_url))
    row = _place_and_read_back(client, instrument, "R1", D("1900.00"))
    assert (row.status, row.raw_status) == (LegStatus.REJECTED, "Rejected")
    assert "price band" in row.reject_reason
    assert (row.filled_quantity, row.leaves_quantity, row.exchange_order_id) == (0, 0, "")


def test_an_unknown_instrument_is_refused_at_once(simulator, instrument):
    client = broker_client(make_xts_account(simulator.base_url))
    request = order_request(("NSECM", 999999), "U1", order_type="LIMIT", quantity=1, limit=D("10"))
    with pytest.raises(OrderRejected, match="not found"):
        async_to_sync(client.place_order)(request)
    assert async_to_sync(client.order_book)() == []


def test_an_expired_session_is_renewed_by_one_transparent_login(simulator, instrument):
    account = make_xts_account(simulator.base_url)
    client = broker_client(account)
    async_to_sync(client.order_book)()
    simulator.expire_sessions()
    assert async_to_sync(client.order_book)() == []
    stats = simulator.stats()
    assert stats["logins"] == 2
    # the first call, the refused one, and its one retry
    assert stats["requests"]["GET /interactive/orders"] == 3
    assert BrokerSession.objects.get(account=account).invalidated_at is None


def test_a_session_near_expiry_is_refreshed_before_the_call(simulator, settings):
    # The session lives as long as the token's JWT says (here 60 s, inside the margin).
    simulator.set_faults(token_ttl_seconds=60)
    settings.BROKER_SESSION_REFRESH_MARGIN_SECONDS = 120  # every stored session is "near expiry"
    client = broker_client(make_xts_account(simulator.base_url))
    async_to_sync(client.order_book)()
    async_to_sync(client.order_book)()
    assert simulator.stats()["logins"] == 2


def test_a_live_session_is_reused(simulator):
    client = broker_client(make_xts_account(simulator.base_url))
    for _ in range(3):
        async_to_sync(client.order_book)()
    assert simulator.stats()["logins"] == 1


def test_a_5xx_on_a_read_is_retried_then_gives_unavailable(simulator, settings):
    settings.BROKER_RETRY_BACKOFF_SECONDS = 0.01
    client = broker_client(make_xts_account(simulator.base_url))
    connect_account(client.account)
    simulator.set_faults(error_next=10, routes=["GET /interactive/orders"])
    with pytest.raises(BrokerUnavailable, match="HTTP 500"):
        async_to_sync(client.order_book)()
    assert simulator.stats()["requests"]["GET /interactive/orders"] == 3  # 1 + 2 retries


def test_a_read_succeeds_when_the_5xx_passes(simulator, settings):
    settings.BROKER_RETRY_BACKOFF_SECONDS = 0.01
    client = broker_client(make_xts_account(simulator.base_url))
    simulator.set_faults(error_next=1, routes=["GET /interactive/orders"])
    assert async_to_sync(client.order_book)() == []


def test_a_5xx_on_an_order_post_is_not_retried(simulator, instrument):
    client = broker_client(make_xts_account(simulator.base_url))
    simulator.set_faults(error_next=1, routes=["POST /interactive/orders"])
    with pytest.raises(BrokerUnavailable):
        async_to_sync(client.place_order)(_order(instrument, "E1", limit=D("1500.00")))
    assert simulator.stats()["order_posts_by_uid"] == {"E1": 1}


def test_a_timed_out_order_post_is_sent_once_and_is_found_in_the_book(
    simulator, instrument, settings
):
    settings.BROKER_TIMEOUT_SECONDS = 0.5
    client = broker_client(make_xts_account(simulator.base_url))
    connect_account(client.account)
    simulator.set_faults(timeout_next=1, timeout_seconds=1.5, routes=["POST /interactive/orders"])
    with pytest.raises(BrokerUnavailable, match="timed out"):
        async_to_sync(client.place_order)(_order(instrument, "T1", limit=D("1500.00")))
    assert simulator.stats()["order_posts_by_uid"] == {"T1": 1}
    # The broker did act: the next sync resolves the pending leg by its unique identifier.
    (row,) = async_to_sync(client.order_book)()
    assert (row.unique_identifier, row.status) == ("T1", LegStatus.OPEN)


def test_a_timed_out_read_gives_unavailable(simulator, settings):
    settings.BROKER_TIMEOUT_SECONDS = 0.3
    settings.BROKER_READ_RETRIES = 0
    client = broker_client(make_xts_account(simulator.base_url))
    connect_account(client.account)
    simulator.set_faults(timeout_next=1, timeout_seconds=1, routes=["GET /interactive/orders"])
    with pytest.raises(BrokerUnavailable, match="timed out"):
        async_to_sync(client.order_book)()


def test_investor_logins_send_no_client_id(simulator, instrument):
    client = broker_client(make_xts_account(simulator.base_url, client_id="INV001"))
    async_to_sync(client.place_order)(_order(instrument, "I1", limit=D("1500.00")))
    async_to_sync(client.order_book)()
    sent = simulator.stats()["client_ids"]
    assert sent and all(client_id is None for _route, client_id in sent)


def test_dealer_logins_send_the_accounts_client_id_on_every_call(simulator, instrument):
    account = make_xts_account(
        simulator.base_url, app_key="dealer-app", secret="dealer-secret", client_id="CLIENT8"
    )
    client = broker_client(account)
    ack = async_to_sync(client.place_order)(_order(instrument, "D1", limit=D("1500.00")))
    (row,) = async_to_sync(client.order_book)()
    async_to_sync(client.cancel_order)(ack.broker_order_id, "D1")
    async_to_sync(client.trade_book)()
    async_to_sync(client.positions)()
    # The balance call is for investor logins only: a dealer's is skipped, not sent.
    assert async_to_sync(client.balance)() is None
    sent = simulator.stats()["client_ids"]
    assert len(sent) == 5 and all(client_id == "CLIENT8" for _route, client_id in sent)
    assert "GET /interactive/user/balance" not in simulator.stats()["requests"]
    assert row.client_id == "CLIENT8"
    session = BrokerSession.objects.get(account=account)
    assert (session.is_investor_client, session.client_id) == (False, "CLIENT8")


def test_a_forced_rejection_is_a_typed_rejection(simulator, instrument):
    client = broker_client(make_xts_account(simulator.base_url))
    simulator.set_faults(reject_next=1)
    with pytest.raises(OrderRejected, match="RMS"):
        async_to_sync(client.place_order)(_order(instrument, "F1", limit=D("1500.00")))


def test_concurrent_calls_of_one_account_share_one_login(simulator):
    client = broker_client(make_xts_account(simulator.base_url))

    async def monitoring_fetch():
        return await asyncio.gather(client.order_book(), client.positions(), client.balance())

    async_to_sync(monitoring_fetch)()
    assert simulator.stats()["logins"] == 1


def test_the_outbound_order_limit_stops_a_burst_before_the_broker(simulator, instrument, settings):
    settings.BROKER_ORDERS_PER_SECOND = 1
    settings.BROKER_RATE_LIMIT_MAX_WAIT_SECONDS = 0
    client = broker_client(make_xts_account(simulator.base_url))
    async_to_sync(client.place_order)(_order(instrument, "L1", limit=D("1500.00")))
    with pytest.raises(RateLimited):
        async_to_sync(client.place_order)(_order(instrument, "L2", limit=D("1500.00")))
    assert simulator.stats()["order_posts_by_uid"] == {"L1": 1}
