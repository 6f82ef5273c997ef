"""Position exits under the account's exclusion (orders.services.exclusion), on the broker's
state as it is now: two exits at once send one exit order, an exit waits for (or gives up on)
another change of the account, and a stop-loss that just filled is not cancelled."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from orders.brokers.paper.exchange import match_open_orders
from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent, OrderLeg
from orders.positions.services import exit_positions
from orders.services.exclusion import account_exclusion
from tests.factories import (
    buy_and_sync,
    exit_body,
    legs_of,
    make_fair_price,
    make_reliance_at_100,
    place_protected_bracket,
)
from tests.servers import held_by_another_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _key(instrument, product="MIS"):
    return (instrument.exchange_segment, instrument.exchange_instrument_id, product)


def test_two_exits_at_once_send_one_exit_order(account, instrument, settings):
    buy_and_sync(account, instrument, 4)
    settings.PAPER_FILL_CAP = 1  # the first exit is still working when the second looks
    start = threading.Barrier(2)
    results, failures = [], []

    def exit_once(actor: str):
        try:
            start.wait(5)
            results.append(exit_positions(account=account, actor=actor, keys={_key(instrument)}))
        except Exception as exc:  # reported below: a thread's error must fail the test
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=exit_once, args=(f"user:{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    assert len(results) == 2
    sent = [r for r in results if r.exited]
    refused = [r for r in results if not r.exited]
    assert len(sent) == 1 and len(refused) == 1, [r.errors for r in results]
    assert any("still working" in error for error in refused[0].errors)
    assert Order.objects.filter(account=account, external_id="position-exit").count() == 1
    assert OrderLeg.objects.filter(account=account, role="EXIT").count() == 1


def test_an_exit_while_the_account_is_busy_answers_409_and_sends_nothing(
    client, account, instrument, settings
):
    buy_and_sync(account, instrument, 3)
    settings.ACCOUNT_LOCK_WAIT_SECONDS = 0.3
    with held_by_another_worker(lambda: account_exclusion(account.pk, purpose="test holder")):
        answer = client.post("/api/positions/exit", exit_body(account, instrument), format="json")
    assert answer.status_code == 409
    assert answer.json()["code"] == "CONFLICT" and "busy" in answer.json()["error"]
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    assert not OrderEvent.objects.filter(kind="positions_exit_requested").exists()
    # Once the other change is done, the same exit goes through.
    again = client.post("/api/positions/exit", exit_body(account, instrument), format="json")
    assert again.status_code == 200, again.json()


def test_an_exit_reads_the_broker_first_and_never_cancels_a_filled_stop_loss(trader, account):
    reliance = make_reliance_at_100()
    bracket = place_protected_bracket(user=trader, account=account, instrument=reliance)
    (sl,) = legs_of(bracket, "STOP_LOSS")
    # The stop-loss fills at the broker; the desk has not synced since.
    make_fair_price(reliance, "95.20")
    match_open_orders()
    assert PaperOrder.objects.get(unique_identifier=sl.unique_identifier).status == "FILLED"

    result = exit_positions(account=account, actor="test", keys={_key(reliance)})

    assert sl.unique_identifier not in result.cancelled_legs
    assert not OrderEvent.objects.filter(kind="position_exit_cancel_failed").exists()
    sl.refresh_from_db()
    assert sl.status == "FILLED"
    # Its targets are cancelled (they would open a new position), and nothing is sold:
    # the stop-loss already closed the position.
    assert {leg.status for leg in legs_of(bracket, "TAKE_PROFIT")} == {"CANCELLED"}
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    assert result.errors == [
        f"{reliance.exchange_segment}:{reliance.exchange_instrument_id} MIS: "
        "the broker reports no open position"
    ]
