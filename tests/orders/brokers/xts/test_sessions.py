"""XTS sessions: one login per account however many callers, JWT lifetimes, and dealer
client codes, against the XTS simulator over a real socket.

An XTS login kills the previous token of its appKey, so a second login for one account is
never harmless: it breaks every caller still holding the first token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import BrokerSession
from orders.brokers.base import OrderRejected, SessionExpired
from orders.brokers.sessions import (
    BrokerClient,
    broker_client,
    connect_account,
    mark_session_invalid,
    stored_sessions,
)
from orders.brokers.xts.simulator import XtsSimulator, parse_users, serve_in_thread
from tests.concurrency import in_threads
from tests.factories import api_client_for, make_user, make_xts_account


def test_two_concurrent_connects_log_in_once(simulator):
    account = make_xts_account(simulator.base_url)
    # A slow login: the second connect arrives while the first is still logging in.
    simulator.set_faults(latency_ms=400)
    results = in_threads(2, lambda _: connect_account(account).access_token)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert simulator.stats()["logins"] == 1
    # both callers hold the one live token
    assert results[0] == results[1]
    assert async_to_sync(broker_client(account).order_book)() == []
    assert simulator.stats()["logins"] == 1


def test_two_processes_needing_a_session_log_in_once(simulator):
    account = make_xts_account(simulator.base_url)
    simulator.set_faults(latency_ms=300)
    results = in_threads(3, lambda _: async_to_sync(broker_client(account).order_book)())
    assert results == [[], [], []]
    assert simulator.stats()["logins"] == 1


def test_a_token_refused_after_another_login_does_not_invalidate_the_new_session(simulator):
    account = make_xts_account(simulator.base_url)
    client = broker_client(account)
    stale = async_to_sync(client.session)()
    connect_account(account)  # another process logs in: the simulator kills the first token
    with pytest.raises(SessionExpired):
        async_to_sync(client.gateway.order_book)(stale)
    # What the client does on that refusal: invalidate only the token that was refused.
    assert not mark_session_invalid(
        account_id=account.pk, reason="Invalid Token", token=stale.access_token
    )
    assert BrokerSession.objects.get(account=account).invalidated_at is None
    assert async_to_sync(client.order_book)() == []
    assert simulator.stats()["logins"] == 2  # no third login to kill the second


def test_expired_sessions_under_concurrent_reads_are_renewed_by_one_login(simulator):
    client = broker_client(make_xts_account(simulator.base_url))
    async_to_sync(client.order_book)()
    simulator.expire_sessions()
    snapshot = async_to_sync(client.snapshot)()
    assert snapshot.errors == {}
    assert simulator.stats()["logins"] == 2


def test_the_session_is_trusted_until_the_jwt_expires(simulator):
    account = make_xts_account(simulator.base_url)
    session = connect_account(account)
    lifetime = session.expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24)
    simulator.set_faults(token_ttl_seconds=3600)
    session = connect_account(account)
    assert timedelta(minutes=59) < session.expires_at - timezone.now() <= timedelta(hours=1)


# ---- dealer client codes ------------------------------------------------------------------------


def test_a_dealer_with_several_client_codes_must_choose_one(simulator):
    account = make_xts_account(simulator.base_url, app_key="dealer-app", secret="dealer-secret")
    with pytest.raises(OrderRejected, match=r"several clients \(CLIENT7, CLIENT8\).*client_id"):
        connect_account(account)
    row = BrokerSession.objects.filter(account=account).first()
    assert row is None or "client_id" in row.last_error


def test_a_dealer_client_id_that_is_not_one_of_the_logins_codes_is_refused(simulator):
    account = make_xts_account(
        simulator.base_url, app_key="dealer-app", secret="dealer-secret", client_id="X9"
    )
    with pytest.raises(OrderRejected, match="'X9' is not one of the client codes"):
        connect_account(account)


def test_connecting_a_misconfigured_dealer_is_a_clear_422(simulator):
    user = make_user()
    account = make_xts_account(
        simulator.base_url, app_key="dealer-app", secret="dealer-secret", user=user
    )
    response = api_client_for(user).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "BROKER_REJECTED" and "CLIENT7, CLIENT8" in body["error"]


@pytest.fixture
def chatty_dealer(transactional_db):
    """A login answer whose client codes carry text that is not a client code."""
    running = serve_in_thread(
        XtsSimulator(
            users=parse_users("chatty-app:chatty-secret:DLR5:dealer:CL1;<h1>internal admin</h1>"),
            seed=1,
        )
    )
    yield running
    running.stop()


def test_a_misconfigured_dealer_error_repeats_only_code_shaped_values(chatty_dealer):
    # The 422 shows our own words and the login's codes, but a server at the base URL must
    # not get its own text in front of the trader through them (issue 10, SSRF).
    user = make_user()
    account = make_xts_account(
        chatty_dealer.base_url, app_key="chatty-app", secret="chatty-secret", user=user
    )
    response = api_client_for(user).post(f"/api/accounts/{account.pk}/connect")
    body = response.json()
    assert response.status_code == 422 and body["code"] == "BROKER_REJECTED"
    assert "several clients (CL1 and 1 more): set the account's client_id" in body["error"]
    assert "internal admin" not in body["error"] and "<h1>" not in body["error"]


@pytest.fixture
def solo_dealer(transactional_db):
    running = serve_in_thread(
        XtsSimulator(users=parse_users("solo-app:solo-secret:DLR9:dealer:ONLY1"), seed=1)
    )
    yield running
    running.stop()


def test_a_dealer_with_one_client_code_acts_for_it_without_configuration(solo_dealer):
    account = make_xts_account(solo_dealer.base_url, app_key="solo-app", secret="solo-secret")
    session = connect_account(account)
    assert (session.is_investor_client, session.client_id, session.broker_user_id) == (
        False,
        "ONLY1",
        "DLR9",
    )
    client = broker_client(account)
    async_to_sync(client.order_book)()
    async_to_sync(client.trade_book)()
    assert [sent for _route, sent in solo_dealer.app.stats()["client_ids"]] == ["ONLY1", "ONLY1"]


def test_changing_a_dealers_client_id_takes_a_new_login(simulator):
    account = make_xts_account(
        simulator.base_url, app_key="dealer-app", secret="dealer-secret", client_id="CLIENT7"
    )
    client = broker_client(account)
    async_to_sync(client.order_book)()
    account.credentials = {**account.credentials, "client_id": "CLIENT8"}
    account.save()
    client = broker_client(account)
    async_to_sync(client.order_book)()
    assert simulator.stats()["logins"] == 2
    sent = [client_id for _route, client_id in simulator.stats()["client_ids"]]
    assert sent == ["CLIENT7", "CLIENT8"]
    assert BrokerSession.objects.get(account=account).client_id == "CLIENT8"


def test_a_session_handed_to_the_client_serves_its_first_call_only(simulator):
    """The monitoring cycle reads every account's stored session at once and hands each
    client its row (`stored_sessions`): the first call uses that row, every later one reads
    the stored session again."""
    account = make_xts_account(simulator.base_url)
    connect_account(account)
    [row] = stored_sessions([account.pk]).values()
    client = BrokerClient(account, stored_session=row)
    with CaptureQueriesContext(connection) as first:
        assert async_to_sync(client.order_book)() == []
    assert not [q for q in first.captured_queries if "broker_sessions" in q["sql"]]
    with CaptureQueriesContext(connection) as second:
        assert async_to_sync(client.order_book)() == []
    assert [q for q in second.captured_queries if "broker_sessions" in q["sql"]]
    assert simulator.stats()["logins"] == 1

    # A handed row that looks unusable (a copy read before a refresh, say) is checked against
    # the stored one under the login lock: the stored session is still good, so no second
    # login (which on XTS would kill every other caller's token).
    row.expires_at = timezone.now() - timedelta(seconds=1)
    assert async_to_sync(BrokerClient(account, stored_session=row).order_book)() == []
    assert async_to_sync(BrokerClient(account, stored_session=None).order_book)() == []
    assert simulator.stats()["logins"] == 1
    # Once the stored session itself is gone, a handed None logs in.
    BrokerSession.objects.filter(account_id=account.pk).delete()
    assert async_to_sync(BrokerClient(account, stored_session=None).order_book)() == []
    assert simulator.stats()["logins"] == 2
