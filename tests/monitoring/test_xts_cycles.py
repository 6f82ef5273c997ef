"""Monitoring cycles and order services on XTS accounts against the XTS simulator over a real
socket: dealer logins, reads that fail one at a time, rejections that come after an
acceptance, rate limits, and numbers the broker sends unreadable."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from monitoring.models import MonitoringRun
from monitoring.services import run_user_cycle
from orders.models import BrokerPosition, BrokerTrade, Order, OrderLeg
from orders.services import place_single_order
from orders.services.kill_switch import kill_switch
from tests.factories import (
    make_account,
    make_instrument,
    make_priced_instrument,
    make_user,
    make_xts_account,
    place_bracket_near_1000,
    set_price_and_match,
    single_request,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _cycle(user, key: str) -> MonitoringRun:
    return run_user_cycle(user_id=user.pk, cycle_key=key, trigger="test")


def _step(run: MonitoringRun, number: int) -> dict:
    return next(s for s in run.steps if s["step"] == number)


@pytest.fixture
def reliance(transactional_db):
    instrument = make_instrument(symbol="RELIANCE", freeze_quantity=None)
    set_price_and_match(instrument, "100.00")
    return instrument


def test_a_dealer_account_runs_full_cycles_from_entry_to_target(simulator, listen):
    user = make_user()
    account = make_xts_account(
        simulator.base_url,
        user=user,
        app_key="dealer-app",
        secret="dealer-secret",
        client_id="CLIENT8",
    )
    instrument = make_priced_instrument(symbol="HDFCBANK")
    order = place_bracket_near_1000(account=account, instrument=instrument)
    set_price_and_match(instrument, "994")  # the entry fills at the simulator
    run = _cycle(user, "dealer-1")
    assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, 10)
    protective = order.legs.filter(role__in=[OrderLeg.Role.STOP_LOSS, OrderLeg.Role.TAKE_PROFIT])
    assert {(leg.role, leg.status) for leg in protective} == {
        (OrderLeg.Role.STOP_LOSS, "OPEN"),
        (OrderLeg.Role.TAKE_PROFIT, "OPEN"),
    }
    assert all(leg.broker_order_id for leg in protective)

    set_price_and_match(instrument, "1012")  # the target fills
    run = _cycle(user, "dealer-2")
    assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)
    run = _cycle(user, "dealer-3")
    assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    account.refresh_from_db()
    assert account.realized_mtm > 0  # PnL from the dealer's trade book
    assert BrokerTrade.objects.filter(account=account).count() == 2
    stats = simulator.stats()
    # A dealer's balance is never asked for; every call names the client code.
    assert "GET /interactive/user/balance" not in stats["requests"]
    assert stats["client_ids"] and {sent for _r, sent in stats["client_ids"]} == {"CLIENT8"}
    assert stats["logins"] == 1


def test_a_failed_balance_read_is_reported_and_the_cycle_goes_on(simulator, reliance, settings):
    settings.BROKER_READ_RETRIES = 0
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    result = place_single_order(user=user, request=single_request(account, limit_price=D("101")))
    simulator.set_faults(error_rate=1.0, routes=["GET /interactive/user/balance"])
    run = _cycle(user, "balance-down")
    assert run.status == MonitoringRun.Status.ERRORS
    assert _step(run, 1)["outcome"] == "ok"
    assert any("balance unavailable" in error for error in run.errors)
    assert [_step(run, n)["outcome"] for n in (2, 3, 4)] == ["ok", "ok", "ok"]
    # the rest of step 1's reads were stored and synced
    result.order.refresh_from_db()
    assert result.order.status == Order.Status.FILLED
    assert BrokerPosition.objects.get(account=account).net_qty == 10


def test_a_failed_order_book_read_stops_the_cycle_but_stores_the_other_reads(
    simulator, reliance, settings
):
    settings.BROKER_READ_RETRIES = 0
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    place_single_order(user=user, request=single_request(account, limit_price=D("101")))
    simulator.set_faults(error_rate=1.0, routes=["GET /interactive/orders"])
    run = _cycle(user, "book-down")
    assert run.status == MonitoringRun.Status.FAILED
    assert _step(run, 1)["outcome"] == "failed" and "order book unavailable" in run.errors[0]
    assert BrokerPosition.objects.get(account=account).net_qty == 10
    assert BrokerTrade.objects.filter(account=account).count() == 1
    account.refresh_from_db()
    assert account.last_synced_at is not None


def test_a_placement_accepted_then_rejected_by_the_broker_is_rejected_at_sync(simulator, reliance):
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    # 60,000 x 99 needs 11.9 lakh of margin: the broker accepts, then its RMS rejects.
    result = place_single_order(user=user, request=single_request(account, order_quantity=60000))
    leg = result.order.legs.get()
    assert result.outcome == "accepted"
    assert (leg.status, bool(leg.broker_order_id)) == ("OPEN", True)
    run = _cycle(user, "rms")
    assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)
    leg.refresh_from_db()
    result.order.refresh_from_db()
    assert leg.status == "REJECTED" and "margin" in leg.reject_reason.lower()
    assert result.order.status == Order.Status.REJECTED


def test_a_rate_limited_placement_is_rejected_and_nothing_is_placed(simulator, reliance):
    simulator.set_faults(rate_limit_per_second=1)
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    first = place_single_order(user=user, request=single_request(account))
    second = place_single_order(user=user, request=single_request(account))
    assert first.outcome == "accepted"
    # Refused by the broker's rate limit: nothing placed, so "not sent" (a retry is safe).
    assert second.outcome == "not_sent"
    leg = second.order.legs.get()
    assert leg.status == "REJECTED" and "rate limit" in leg.reject_reason
    assert simulator.stats()["rate_limited"] == 1
    simulator.set_faults(rate_limit_per_second=0)
    from asgiref.sync import async_to_sync

    from orders.brokers.sessions import broker_client

    book = async_to_sync(broker_client(account).order_book)()
    assert [row.unique_identifier for row in book] == [first.order.legs.get().unique_identifier]


def _a_buy_of_10_then_unreadable(simulator, field: str, route: str):
    """A buy of 10 at an XTS-simulator account, then the simulator sends `field` unreadable
    in its answers to `route`: (user, account)."""
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    place_single_order(user=user, request=single_request(account, limit_price=D("101")))
    simulator.set_faults(unreadable_fields=[field], routes=[route])
    return user, account


def test_an_unreadable_position_quantity_is_stored_as_unknown_and_stops_the_kill_switch_for_it(
    simulator, reliance
):
    user, account = _a_buy_of_10_then_unreadable(
        simulator, "Quantity", "GET /interactive/portfolio/positions"
    )
    run = _cycle(user, "garbled")
    assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)
    position = BrokerPosition.objects.get(account=account)
    assert position.net_qty is None  # unknown, not 0 (and not a stale 10)
    assert position.buy_qty == 10

    result = kill_switch(account=account, actor="test")
    assert result.exit_legs == []
    assert any("quantity is unreadable" in error for error in result.errors), result.errors

    simulator.set_faults(unreadable_fields=[])
    result = kill_switch(account=account, actor="test")
    assert len(result.exit_legs) == 1 and not result.errors


def test_a_trade_with_an_unreadable_price_is_reported_and_stored_once_readable(simulator, reliance):
    user, account = _a_buy_of_10_then_unreadable(
        simulator, "LastTradedPrice", "GET /interactive/orders/trades"
    )
    run = _cycle(user, "bad-price")
    assert run.status == MonitoringRun.Status.ERRORS
    assert any("price is unreadable" in error for error in run.errors), run.errors
    assert not BrokerTrade.objects.filter(account=account).exists()
    simulator.set_faults(unreadable_fields=[])
    run = _cycle(user, "good-price")
    assert run.status == MonitoringRun.Status.OK, run.errors
    (trade,) = BrokerTrade.objects.filter(account=account)
    assert (trade.quantity, trade.price) == (10, D("100.05"))


def test_a_cycle_reads_a_paper_and_an_xts_account_of_one_user_each_its_own_way(simulator, reliance):
    """Step 1 reads a paper book in the cycle's thread and an XTS account on the event loop;
    each answer lands on its own account."""
    user = make_user()
    xts = make_xts_account(simulator.base_url, user=user)
    paper = make_account(user=user)
    for account, quantity in ((xts, 2), (paper, 3)):
        market = single_request(
            account, order_type="MARKET", limit_price=None, order_quantity=quantity
        )
        place_single_order(user=user, request=market)

    run = _cycle(user, "mixed-1")

    assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)
    assert _step(run, 1)["details"]["accounts"] == 2
    for account, quantity in ((xts, 2), (paper, 3)):
        account.refresh_from_db()
        assert account.last_synced_at is not None
        (position,) = BrokerPosition.objects.filter(account=account)
        assert position.net_qty == quantity
