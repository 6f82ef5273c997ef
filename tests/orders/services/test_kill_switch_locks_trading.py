"""The kill switch stops trading (issue 10, item 16): an order placed right after it was once
accepted. Now the account refuses every new order (API single, bracket and batch; the web
form and batch page; scheduled runs; regeneration) with TRADING_LOCKED, writing and sending
nothing, until the trader re-enables trading (alert webhooks too); exits of existing positions still go out; the
audit trail shows the lock and the unlock; the switch is in every page's navigation and its
result reads in plain words."""

from __future__ import annotations

import json
from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from orders.alerts.models import ReceivedAlert
from orders.alerts.services import save_webhook
from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent, OrderLeg, RegenerationStage, ScheduledOrder
from orders.scheduled.services import place_due_scheduled_orders
from orders.services import (
    place_bracket_order,
    place_protective_legs,
    place_single_order,
)
from orders.services.placement import _order_plan, submit_and_record, write_ahead
from orders.services.regeneration import place_regenerations
from orders.services.trading_lock import lock_trading
from orders.validation import validate_single_order
from tests.factories import (
    DEFAULT_PASSWORD,
    bracket_request,
    legs_of,
    make_fair_price,
    make_order,
    make_strategy,
    single_order_body,
    single_request,
    single_ticket_form,
    sync_from_broker,
)

D = Decimal
IST = ZoneInfo("Asia/Kolkata")

BATCH_ITEM = {
    "external_id": "b-1",
    "trading_symbol": "RELIANCE",
    "no_of_lots": 10,
    "entry_price": "99",
    "sl_price": "95",
    "targets": [{"price": "105", "lots": 10}],
}


def _kill(client, account) -> dict:
    response = client.post(
        f"/api/accounts/{account.pk}/kill-switch", {"confirm": "KILL"}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _nothing_new(before_orders: int, before_paper: int) -> None:
    assert Order.objects.count() == before_orders
    assert PaperOrder.objects.count() == before_paper


@pytest.fixture
def web(trader) -> Client:
    browser = Client()
    assert browser.login(username=trader.username, password=DEFAULT_PASSWORD)
    return browser


def test_every_api_placement_right_after_the_kill_switch_is_refused_and_nothing_is_written(
    client, trader, account, instrument
):
    _kill(client, account)
    orders, paper = Order.objects.count(), PaperOrder.objects.count()

    single = client.post(
        "/api/orders",
        single_order_body(account),
        format="json",
        HTTP_IDEMPOTENCY_KEY="after-kill-1",
    )
    bracket = client.post(
        "/api/algo-orders",
        {k: v for k, v in BATCH_ITEM.items() if k != "external_id"} | {"account_id": account.pk},
        format="json",
    )
    batch = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [BATCH_ITEM]},
        format="json",
    )

    for response in (single, bracket, batch):
        assert response.status_code == 409, response.content
        body = response.json()
        assert body["code"] == "TRADING_LOCKED"
        assert "re-enable" in body["error"]
        assert body["details"]["sent"] is False
    _nothing_new(orders, paper)


def test_the_web_form_and_batch_page_refuse_after_the_kill_switch(web, client, account, instrument):
    _kill(client, account)
    orders, paper = Order.objects.count(), PaperOrder.objects.count()

    form = web.post(reverse("place_order"), single_ticket_form(account))
    batch = web.post(
        reverse("batch_orders"),
        {
            "account_id": account.pk,
            "action": "place",
            "csv_text": "external_id,trading_symbol,order_side,no_of_lots,entry_price,"
            "sl_price,targets\nw-1,RELIANCE,BUY,1,99,95,105\n",
        },
    )

    assert form.status_code == 409
    assert "Trading is locked" in form.content.decode()
    assert batch.status_code == 409
    assert "Trading is locked" in batch.content.decode()
    _nothing_new(orders, paper)


def test_a_scheduled_run_after_the_kill_switch_fails_with_the_lock_and_places_nothing(
    client, trader, account, instrument, settings
):
    settings.SCHEDULED_ORDER_GRACE_MINUTES = 5
    ScheduledOrder.objects.create(
        user=trader,
        account=account,
        name="morning buy",
        kind=Order.Kind.SINGLE,
        template={
            "symbol": "RELIANCE",
            "order_side": "BUY",
            "order_type": "LIMIT",
            "order_quantity": 5,
            "limit_price": "99",
        },
        time_of_day=time(9, 30),
        weekdays=[],
    )
    _kill(client, account)
    orders, paper = Order.objects.count(), PaperOrder.objects.count()

    [run] = place_due_scheduled_orders(now=datetime(2026, 11, 26, 9, 30, tzinfo=IST))

    assert run.status == "FAILED"
    assert "Trading is locked" in run.error
    _nothing_new(orders, paper)


def test_regeneration_after_the_kill_switch_places_nothing(client, trader, account, instrument):
    rejected = make_order(
        account=account, instrument=instrument, status=Order.Status.REJECTED, quantity=10
    )
    stage = RegenerationStage.objects.create(source_order=rejected, cycle_key="c1")
    _kill(client, account)
    orders, paper = Order.objects.count(), PaperOrder.objects.count()

    result = place_regenerations(user_id=trader.pk)

    stage.refresh_from_db()
    assert result.placed == []
    assert stage.status == RegenerationStage.Status.FAILED
    assert "Trading is locked" in stage.error
    _nothing_new(orders, paper)


def test_an_order_written_just_before_the_lock_is_not_sent_after_it(trader, account, instrument):
    """The kill switch can land between an order's write-ahead and its broker call: the
    call is skipped and the order is recorded not sent."""
    request = single_request(account, client_order_id="raced-the-kill")
    valid = validate_single_order(user=trader, request=request)
    # The plan placement itself makes of the validated request.
    plan = _order_plan(
        user=trader, request=request, valid=valid, source=Order.Source.MANUAL, fingerprint=""
    )
    [order] = write_ahead(plans=[plan], actor="user:test")
    lock_trading(account=account, actor="user:test")

    [outcome] = submit_and_record(account=account, orders=[order], actor="user:test")

    order.refresh_from_db()
    leg = legs_of(order)[0]
    assert outcome.not_sent and outcome.trading_locked
    assert (order.status, leg.status) == (Order.Status.REJECTED, "REJECTED")
    assert leg.reject_reason.startswith("not sent: trading is locked")
    assert not PaperOrder.objects.filter(unique_identifier=leg.unique_identifier).exists()


def test_protective_exits_of_existing_positions_still_go_out_while_locked(
    trader, account, instrument
):
    bracket = place_bracket_order(user=trader, request=bracket_request(account)).order
    make_fair_price(instrument, "98.90")
    sync_from_broker(account)  # the entry fills
    lock_trading(account=account, actor="user:test")

    place_protective_legs(account=account)

    assert [leg.status for leg in legs_of(bracket, "STOP_LOSS")] == ["OPEN"]
    assert len(legs_of(bracket, "TAKE_PROFIT")) == 2


def test_re_enabling_trading_lets_orders_through_again_and_both_are_audited(
    client, trader, account, instrument
):
    placed = place_single_order(
        user=trader, request=single_request(account, limit_price=D("90.00"))
    ).order
    _kill(client, account)
    shown = client.get(f"/api/accounts/{account.pk}").json()["account"]
    assert shown["trading_locked"] is True and shown["trading_locked_at"]

    unconfirmed = client.post(f"/api/accounts/{account.pk}/enable-trading", {}, format="json")
    assert unconfirmed.status_code == 400
    enabled = client.post(
        f"/api/accounts/{account.pk}/enable-trading", {"confirm": "ENABLE"}, format="json"
    )
    assert enabled.status_code == 200, enabled.content
    assert enabled.json() == {"account_id": account.pk, "trading_locked": False, "changed": True}

    response = client.post(
        "/api/orders",
        single_order_body(account),
        format="json",
    )
    assert response.status_code == 201, response.content
    kinds = list(
        OrderEvent.objects.filter(account=account, order=None)
        .order_by("id")
        .values_list("kind", "actor")
    )
    assert kinds == [
        ("trading_locked", f"user:{trader.pk}"),
        ("kill_switch_completed", f"user:{trader.pk}"),
        ("trading_unlocked", f"user:{trader.pk}"),
    ]
    assert legs_of(placed)[0].status == "CANCELLED"


def test_the_kill_switch_result_reads_in_plain_words(client, trader, account, instrument):
    place_bracket_order(user=trader, request=bracket_request(account))
    place_single_order(user=trader, request=single_request(account, limit_price=D("90.00")))
    make_fair_price(instrument, "98.90")
    sync_from_broker(account)  # the bracket's entry fills: a position of 100
    make_fair_price(instrument, "100.00")

    body = _kill(client, account)

    assert body["trading_locked"] is True
    assert body["summary"] == (
        "Cancelled 1 open order, squared off 1 position (RELIANCE 100 sold at market); "
        "trading is locked until you re-enable it."
    )


def test_the_kill_switch_is_in_every_pages_navigation_and_names_the_account(web, account):
    for page in ("dashboard", "orders", "pnl", "settings"):
        html = web.get(reverse(page)).content.decode()
        assert f'href="{reverse("kill_switch")}"' in html, page

    chooser = web.get(reverse("kill_switch"))
    assert chooser.status_code == 302
    assert chooser["Location"] == reverse("account_kill_switch", args=[account.pk])
    confirmation = web.get(chooser["Location"]).content.decode()
    assert account.account_name in confirmation
    assert "locks its trading" in confirmation


def test_the_web_kill_switch_locks_and_the_settings_button_re_enables(web, trader, account):
    done = web.post(
        reverse("account_kill_switch", args=[account.pk]),
        {"confirmation": account.account_name},
        follow=True,
    )
    page = done.content.decode()
    assert "trading is locked until you re-enable it" in page
    assert "Re-enable trading" in page
    account.refresh_from_db()
    assert account.trading_locked

    web.post(reverse("account_enable_trading", args=[account.pk]))

    account.refresh_from_db()
    assert not account.trading_locked
    assert OrderEvent.objects.filter(account=account, kind="trading_unlocked").count() == 1
    assert OrderLeg.objects.filter(account=account).count() == 0


def test_an_alert_webhook_after_the_kill_switch_is_refused_and_places_nothing(
    client, trader, account, instrument, settings
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    webhook = save_webhook(actor="test", strategy=make_strategy(user=trader), account=account)
    _kill(client, account)
    orders, paper = Order.objects.count(), PaperOrder.objects.count()

    response = Client().post(
        f"/hooks/alerts/{webhook.public_id}/{webhook.secret}",
        data=json.dumps({"id": "a-1", "symbol": "RELIANCE", "action": "BUY", "quantity": 1}),
        content_type="application/json",
    )

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "TRADING_LOCKED"
    assert ReceivedAlert.objects.get().outcome == ReceivedAlert.Outcome.REFUSED
    _nothing_new(orders, paper)


def test_a_working_entry_cannot_grow_while_trading_is_locked(client, trader, account, instrument):
    # An entry the kill switch could not cancel (not yet acknowledged then) is working on a
    # locked account: modifying it from 10 to 1,000 opened ten times the position the lock
    # was there to stop. Growing an entry is refused; shrinking it is still allowed.
    order = place_single_order(user=trader, request=single_request(account)).order
    lock_trading(account=account, actor="user:test")

    grown = client.patch(f"/api/orders/{order.pk}", {"quantity": 1000}, format="json")

    assert grown.status_code == 409 and grown.json()["code"] == "TRADING_LOCKED"
    [paper] = PaperOrder.objects.filter(unique_identifier=legs_of(order)[0].unique_identifier)
    assert paper.quantity == 10
    shrunk = client.patch(f"/api/orders/{order.pk}", {"quantity": 5}, format="json")
    assert shrunk.status_code == 200, shrunk.content
