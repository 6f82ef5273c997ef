"""The event sources with the desk's real handler (monitoring.events): a bracket's entry fills
at the broker and its stop-loss and target reach the broker through the stream, with no
monitoring cycle at all. Paper through Redis (full stack) and in memory (embedded), and an
XTS-simulator account through its interactive stream."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from monitoring.models import MonitoringRun
from orders.brokers.paper import events as paper_events
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import connect_account
from orders.brokers.streams.runner import build_supervisor
from orders.models import OrderLeg
from tests.factories import (
    make_account,
    make_instrument,
    make_user,
    make_xts_account,
    place_bracket_near_1000,
    record_price,
)
from tests.servers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

Role = OrderLeg.Role


@pytest.fixture
def fast(settings):
    settings.BROKER_STREAMS_SCAN_SECONDS = 0.2
    settings.BROKER_STREAM_LEASE_SECONDS = 3


def _protected(order) -> bool:
    legs = {leg.role: leg.status for leg in order.legs.all()}
    return legs.get(Role.STOP_LOSS) == "OPEN" and legs.get(Role.TAKE_PROFIT) == "OPEN"


def _fill_entry_and_wait_for_protection(account, instrument) -> float:
    order = place_bracket_near_1000(account=account, instrument=instrument)
    assert not _protected(order)
    started = time.monotonic()
    record_price(instrument, "994")  # the broker fills the entry
    wait_for(lambda: _protected(order), timeout=15)
    return time.monotonic() - started


@pytest.fixture
def instrument():
    inst = make_instrument(symbol="HDFCBANK", instrument_id=1333, band=(D("100"), D("5000")))
    record_price(inst, "1000")
    return inst


@pytest.mark.parametrize("shape", ["full-stack", "embedded"])
def test_an_entry_fill_at_the_paper_exchange_is_protected_through_the_stream(
    shape, instrument, fast, settings, supervisors
):
    if shape == "embedded":
        settings.PAPER_EVENTS_TRANSPORT = "memory"
    account = make_account(user=make_user())
    supervisors(build_supervisor(in_process=shape == "embedded"))
    if shape == "embedded":
        wait_for(lambda: paper_events.memory_bus.attached)
    took = _fill_entry_and_wait_for_protection(account, instrument)
    print(f"\n{shape}: entry fill -> stop-loss and target at the broker in {took:.2f} s")
    assert took < 5
    assert PaperOrder.objects.filter(book__account_id=account.pk).count() == 3
    assert not MonitoringRun.objects.exists()  # no cycle did it


def test_an_entry_fill_at_an_xts_broker_is_protected_through_its_interactive_stream(
    simulator, instrument, fast, supervisors, settings
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True  # a live account: not after market hours
    account = make_xts_account(simulator.base_url, user=make_user())
    connect_account(account)
    supervisors(build_supervisor(in_process=True))
    wait_for(lambda: simulator.stats()["streams"]["open"] == {"inv-app": 1})
    took = _fill_entry_and_wait_for_protection(account, instrument)
    print(f"\nxts: entry fill -> stop-loss and target accepted at the broker in {took:.2f} s")
    assert took < 5
    book = PaperOrder.objects.filter(book__name="xts:inv-app")
    assert book.count() == 3 and book.filter(status="OPEN").count() == 2
    assert simulator.stats()["order_posts_by_uid"] and all(
        n == 1 for n in simulator.stats()["order_posts_by_uid"].values()
    )
    assert not MonitoringRun.objects.exists()
