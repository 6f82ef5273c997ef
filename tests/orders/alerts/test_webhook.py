"""Alert webhooks over HTTP (issue 13, item 8): an alert places through the one placement
path on the strategy's account, once per alert id; a wrong secret or an unknown webhook is a
404 that places nothing; every alert is audited with its outcome."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from accounts.services import deactivate_broker_account
from orders.alerts import services
from orders.alerts.models import AlertWebhook, ReceivedAlert
from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent, OrderLeg
from tests.concurrency import in_threads, posted_from_tabs_at_once
from tests.factories import (
    make_account,
    make_fair_price,
    make_instrument,
    make_reliance_at_100,
    make_strategy,
    make_user,
    place_protected_bracket,
)

pytestmark = pytest.mark.django_db

Outcome = ReceivedAlert.Outcome


@pytest.fixture
def hook(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user = make_user()
    account = make_account(user=user, name="Paper desk")
    make_account(user=user, name="Other account")
    stock = make_instrument(symbol="ALERTSYM", lot_size=1, tick_size=Decimal("0.05"))
    make_fair_price(stock, "100.00")
    future = make_instrument(
        symbol="ALERTFUT", segment="NSEFO", lot_size=50, tick_size=Decimal("0.05")
    )
    make_fair_price(future, "200.00")
    strategy = make_strategy(user=user, name="Breakout")
    webhook = services.save_webhook(actor="test", strategy=strategy, account=account)
    return webhook


def _post(path: str, body, *, content_type="application/json", headers=None):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client(REMOTE_ADDR="203.0.113.7").post(
        path, data=data, content_type=content_type, headers=headers
    )


def _url(webhook, secret: str | None = None) -> str:
    return f"/hooks/alerts/{webhook.public_id}/{secret or webhook.secret}"


MARKET_BUY = {"symbol": "ALERTSYM", "action": "BUY", "quantity": "3", "id": "tv-1"}


def test_an_alert_places_a_single_order_on_the_strategys_account_and_is_audited(hook):
    response = _post(_url(hook), MARKET_BUY)
    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get(pk=body["order_id"])
    assert order.account_id == hook.account_id and order.user_id == hook.user_id
    assert order.strategy.name == "Breakout"
    assert order.source == Order.Source.ALERT and order.kind == Order.Kind.SINGLE
    assert order.quantity == 3 and order.client_order_id == f"alert:{hook.pk}:tv-1"
    alert = ReceivedAlert.objects.get()
    assert alert.outcome == Outcome.PLACED and alert.http_status == 201
    assert alert.order_id == order.pk and alert.alert_id == "tv-1"
    assert alert.source_ip == "203.0.113.7"
    assert json.loads(alert.body)["symbol"] == "ALERTSYM"


def test_the_same_alert_id_twice_places_once(hook):
    first = _post(_url(hook), MARKET_BUY)
    second = _post(_url(hook), MARKET_BUY)
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["order_id"] == first.json()["order_id"]
    assert second.json()["outcome"] == "duplicate"
    assert Order.objects.count() == 1
    outcomes = list(ReceivedAlert.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == [Outcome.PLACED, Outcome.DUPLICATE]


def test_the_same_id_with_another_order_is_a_409_and_places_nothing_more(hook):
    _post(_url(hook), MARKET_BUY)
    response = _post(_url(hook), {**MARKET_BUY, "quantity": 4})
    assert response.status_code == 409
    assert Order.objects.count() == 1
    assert ReceivedAlert.objects.order_by("-id").first().outcome == Outcome.REFUSED


def test_alerts_without_an_id_each_place(hook):
    body = {"symbol": "ALERTSYM", "action": "SELL", "quantity": 1}
    assert _post(_url(hook), body).status_code == 201
    assert _post(_url(hook), body).status_code == 201
    assert Order.objects.count() == 2


def test_a_stop_loss_makes_a_bracket_and_quantity_becomes_lots(hook):
    response = _post(
        _url(hook),
        {
            "symbol": "ALERTFUT",
            "exchange": "NFO",
            "action": "BUY",
            "quantity": 100,
            "price": "200",
            "stop_loss": "195",
            "target": "210",
            "id": "br-1",
        },
    )
    assert response.status_code == 201, response.content
    order = Order.objects.get(pk=response.json()["order_id"])
    assert order.kind == Order.Kind.BRACKET and order.quantity == 100
    assert order.sl_price == Decimal("195")


def test_a_bracket_quantity_that_is_not_whole_lots_is_refused(hook):
    response = _post(
        _url(hook),
        {"symbol": "ALERTFUT", "action": "BUY", "quantity": 75, "price": 200, "stop_loss": 195},
    )
    assert response.status_code == 400
    assert "lot size 50" in response.json()["details"]["quantity"][0]
    assert not Order.objects.exists()


def test_lots_on_a_single_order_become_units(hook):
    response = _post(_url(hook), {"symbol": "ALERTFUT", "action": "BUY", "lots": 2})
    assert response.status_code == 201
    assert Order.objects.get().quantity == 100


def test_the_secret_may_come_in_a_header_or_in_the_body_and_is_not_kept(hook):
    plain = f"/hooks/alerts/{hook.public_id}"
    by_header = _post(plain, {**MARKET_BUY, "id": "h"}, headers={"X-Webhook-Secret": hook.secret})
    assert by_header.status_code == 201
    in_body = {**MARKET_BUY, "id": "b", "secret": hook.secret}
    # TradingView sends its message as text/plain.
    by_body = _post(plain, json.dumps(in_body), content_type="text/plain")
    assert by_body.status_code == 201
    assert Order.objects.count() == 2
    assert all(hook.secret not in a.body for a in ReceivedAlert.objects.all())


def test_a_wrong_secret_or_unknown_webhook_is_404_and_places_nothing(hook):
    wrong = _post(_url(hook, "not-the-secret"), MARKET_BUY)
    unknown = _post(f"/hooks/alerts/nosuchhook/{hook.secret}", MARKET_BUY)
    missing = _post(f"/hooks/alerts/{hook.public_id}", MARKET_BUY)
    for response in (wrong, unknown, missing):
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
    assert not Order.objects.exists()
    # The owner sees the wrong-secret attempts on the known webhook, without their bodies.
    rows = list(ReceivedAlert.objects.all())
    assert len(rows) == 2 and {r.outcome for r in rows} == {Outcome.BAD_SECRET}
    assert all(r.body == "" for r in rows)


def test_guessing_secrets_from_one_address_is_throttled(hook, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "webhook_bad_secret": "3/0.001"}
    for n in range(3):
        assert _post(_url(hook, f"guess{n}"), MARKET_BUY).status_code == 404
    assert _post(_url(hook, "guess4"), MARKET_BUY).status_code == 429
    # The right secret is unaffected: wrong guesses do not lock the owner out.
    assert _post(_url(hook), MARKET_BUY).status_code == 201


def test_rotating_the_secret_ends_the_old_url_at_once(hook):
    old_url = _url(hook)
    services.rotate_webhook_secret(webhook=hook, actor="test")
    assert _post(old_url, MARKET_BUY).status_code == 404
    assert _post(_url(hook), MARKET_BUY).status_code == 201


def test_alerts_past_the_webhooks_rate_limit_are_refused_and_audited(hook, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "webhook": "2/0.001"}
    body = {"symbol": "ALERTSYM", "action": "BUY", "quantity": 1}
    assert _post(_url(hook), body).status_code == 201
    assert _post(_url(hook), body).status_code == 201
    limited = _post(_url(hook), body)
    assert limited.status_code == 429 and "Retry-After" in limited
    assert Order.objects.count() == 2
    assert ReceivedAlert.objects.order_by("-id").first().outcome == Outcome.RATE_LIMITED


def test_a_bad_alert_is_a_400_naming_the_field_and_audited(hook):
    response = _post(_url(hook), {"symbol": "ALERTSYM", "action": "HOLD", "quantity": "1.5"})
    assert response.status_code == 400
    assert {"action", "quantity"} <= set(response.json()["details"])
    alert = ReceivedAlert.objects.get()
    assert alert.outcome == Outcome.INVALID and "action" in alert.details
    assert not Order.objects.exists()


def test_an_unknown_symbol_is_named_in_the_alerts_words(hook):
    response = _post(_url(hook), {"symbol": "NOSUCH", "action": "BUY", "quantity": 1})
    assert response.status_code == 400
    assert "symbol" in response.json()["details"]
    assert not Order.objects.exists()


def test_a_body_that_is_not_a_json_object_is_a_400(hook):
    assert _post(_url(hook), "BUY RELIANCE 10", content_type="text/plain").status_code == 400
    assert _post(_url(hook), "[1, 2]").status_code == 400
    assert not Order.objects.exists()


def test_an_oversized_alert_is_a_413_and_only_a_slice_is_kept(hook):
    huge = json.dumps({**MARKET_BUY, "note": "x" * (services.ALERT_MAX_BODY_BYTES + 10)})
    response = _post(_url(hook), huge)
    assert response.status_code == 413
    alert = ReceivedAlert.objects.get()
    assert alert.body_truncated and len(alert.body) == services.ALERT_BODY_STORED_CHARS
    assert not Order.objects.exists()


def test_a_switched_off_webhook_refuses_alerts(hook):
    services.save_webhook(actor="test", strategy=hook.strategy, account=hook.account, enabled=False)
    response = _post(_url(hook), MARKET_BUY)
    assert response.status_code == 403
    assert not Order.objects.exists()
    assert ReceivedAlert.objects.get().outcome == Outcome.REFUSED


def test_a_broker_rejection_is_answered_with_the_order_id_and_audited(hook):
    make_instrument(symbol="NOPRICE", lot_size=1, tick_size=Decimal("0.05"))  # no market price
    response = _post(_url(hook), {"symbol": "NOPRICE", "action": "BUY", "quantity": 1})
    assert response.status_code == 422
    order_id = response.json()["order_id"]
    assert Order.objects.get(pk=order_id).status == Order.Status.REJECTED
    alert = ReceivedAlert.objects.get()
    assert alert.outcome == Outcome.REJECTED and alert.order_id == order_id


def test_only_post_is_accepted(hook):
    response = Client().get(_url(hook))
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert not ReceivedAlert.objects.exists()


def test_openalgos_strategy_webhook_moves_the_position_to_position_size(hook):
    # The payload OpenAlgo documents (and its Strategy client sends): symbol, action and
    # position_size, the position to reach; the order is the difference to the live one.
    url = f"/strategy/webhook/{hook.public_id}/{hook.secret}"
    response = _post(url, {"symbol": "ALERTSYM", "action": "BUY", "position_size": "4"})
    assert response.status_code == 201, response.content
    assert response.json()["current_position"] == 0 and response.json()["quantity"] == 4
    first = Order.objects.get()
    assert first.quantity == 4 and first.side == "BUY"
    assert ReceivedAlert.objects.get().shape == ReceivedAlert.Shape.OPENALGO

    again = _post(url, {"symbol": "ALERTSYM", "action": "BUY", "position_size": "4"})
    assert again.status_code == 200 and again.json()["outcome"] == "no_action"
    assert Order.objects.count() == 1

    flip = _post(url, {"symbol": "ALERTSYM", "action": "SELL", "position_size": "-2"})
    assert flip.status_code == 201, flip.content
    sell = Order.objects.get(pk=flip.json()["order_id"])
    assert (sell.side, sell.quantity) == ("SELL", 6)

    close = _post(url, {"symbol": "ALERTSYM", "action": "BUY", "position_size": 0})
    assert close.status_code == 201, close.content
    cover = Order.objects.get(pk=close.json()["order_id"])
    assert (cover.side, cover.quantity) == ("BUY", 2)
    flat = _post(url, {"symbol": "ALERTSYM", "action": "SELL", "position_size": 0})
    assert flat.status_code == 200 and flat.json()["outcome"] == "no_action"
    assert Order.objects.count() == 3
    outcomes = list(ReceivedAlert.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == [
        Outcome.PLACED,
        Outcome.NO_ACTION,
        Outcome.PLACED,
        Outcome.PLACED,
        Outcome.NO_ACTION,
    ]


def test_openalgos_strategy_webhook_sent_twice_without_an_id_places_once(hook):
    # OpenAlgo's strategy module sends no id. A relay's retry (or a duplicate delivery) of
    # a LIMIT target while the first order still works read the position without it: two
    # working BUY 5 for a target of 5, long 10 once they fill.
    url = f"/strategy/webhook/{hook.public_id}/{hook.secret}"
    body = {"symbol": "ALERTSYM", "action": "BUY", "position_size": 5, "pricetype": "LIMIT"}
    first = _post(url, {**body, "price": "95"})
    again = _post(url, {**body, "price": "95.00"})
    assert first.status_code == 201, first.content
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate", again.content
    assert again.json()["order_id"] == first.json()["order_id"]
    assert list(Order.objects.values_list("side", "quantity", "status")) == [("BUY", 5, "OPEN")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path, body",
    [
        ("hooks/alerts", MARKET_BUY),
        ("strategy/webhook", {"symbol": "ALERTSYM", "action": "BUY", "position_size": 5}),
    ],
)
def test_one_alert_delivered_several_times_at_once_places_once(hook, path, body):
    # A sender's retries racing its first delivery: every copy is audited, one order exists,
    # and the paper exchange holds it once.
    url = f"/{path}/{hook.public_id}/{hook.secret}"
    answers = in_threads(4, lambda _: _post(url, body))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], answers
    [order] = Order.objects.all()
    assert order.quantity in (3, 5)
    assert PaperOrder.objects.count() == 1
    assert ReceivedAlert.objects.filter(webhook=hook).count() == 4


def test_openalgos_strategy_webhook_without_position_size_places_nothing(hook):
    url = f"/strategy/webhook/{hook.public_id}/{hook.secret}"
    response = _post(url, {"symbol": "ALERTSYM", "action": "BUY"})
    assert response.status_code == 400
    assert "position_size" in response.json()["details"]
    assert not Order.objects.exists()


# ---- the strategy page -------------------------------------------------------------------------


def test_the_strategy_page_shows_the_url_and_the_received_alerts(hook):
    _post(_url(hook), MARKET_BUY)
    _post(_url(hook), {"symbol": "ALERTSYM", "action": "HOLD", "quantity": 1})
    browser = Client()
    browser.force_login(hook.user)
    page = browser.get(f"/settings/strategies/{hook.strategy_id}/").content.decode()
    assert f"/hooks/alerts/{hook.public_id}/{hook.secret}" in page
    assert "Placed" in page and "Invalid alert" in page and "tv-1" in page


def test_a_webhook_is_made_and_changed_from_the_strategy_page(settings):
    user = make_user()
    account = make_account(user=user)
    strategy = make_strategy(user=user)
    browser = Client()
    browser.force_login(user)
    response = browser.post(
        f"/settings/strategies/{strategy.pk}/webhook/",
        {"account": account.pk, "default_product": "NRML", "enabled": "on"},
    )
    assert response.status_code == 302
    webhook = strategy.alert_webhook
    assert webhook.account_id == account.pk and webhook.default_product == "NRML"
    old_secret = webhook.secret
    # Switched off and to MIS; then saved again unchanged (no row for that).
    for _ in range(2):
        browser.post(
            f"/settings/strategies/{strategy.pk}/webhook/",
            {"account": account.pk, "default_product": "MIS"},
        )
    browser.post(f"/settings/strategies/{strategy.pk}/webhook/rotate/")
    webhook.refresh_from_db()
    assert webhook.secret != old_secret and webhook.secret_rotated_at is not None
    # Each change on the account's audit trail, with who did it, never the secret.
    rows = OrderEvent.objects.filter(account=account).order_by("pk")
    assert [(e.kind, e.actor) for e in rows] == [
        ("webhook_created", f"user:{user.pk}"),
        ("webhook_changed", f"user:{user.pk}"),
        ("webhook_secret_rotated", f"user:{user.pk}"),
    ]
    created, changed, rotated = rows
    assert (created.before, created.after["default_product"]) == (None, "NRML")
    assert (changed.before["enabled"], changed.after["enabled"]) == (True, False)
    assert changed.after["default_product"] == "MIS"
    assert "changed (default_product, enabled)" in changed.message
    for row in rows:
        assert webhook.secret not in f"{row.message}{row.before}{row.after}"
        assert old_secret not in f"{row.message}{row.before}{row.after}"


@pytest.mark.django_db(transaction=True)
def test_a_webhook_made_from_two_tabs_at_once_is_made_once():
    """Both posts found no webhook, both inserted one, the later lost on the unique strategy
    and answered 500."""
    user = make_user()
    account = make_account(user=user)
    strategy = make_strategy(user=user)
    answers = posted_from_tabs_at_once(
        user,
        f"/settings/strategies/{strategy.pk}/webhook/",
        {"account": account.pk, "default_product": "NRML", "enabled": "on"},
    )
    assert answers == [302] * 4
    assert AlertWebhook.objects.get(strategy=strategy).default_product == "NRML"
    # Made once, audited once: the saves that lost the insert changed nothing.
    assert list(OrderEvent.objects.values_list("kind", flat=True)) == ["webhook_created"]


def test_another_users_strategy_or_account_cannot_be_used(hook):
    stranger = make_user()
    own_strategy = make_strategy(user=stranger)
    browser = Client()
    browser.force_login(stranger)
    assert (
        browser.post(
            f"/settings/strategies/{hook.strategy_id}/webhook/", {"account": hook.account_id}
        ).status_code
        == 404
    )
    assert (
        browser.post(f"/settings/strategies/{hook.strategy_id}/webhook/rotate/").status_code == 404
    )
    assert browser.get(f"/settings/strategies/{hook.strategy_id}/").status_code == 404
    # Their own strategy with the victim's account: refused, nothing made.
    browser.post(
        f"/settings/strategies/{own_strategy.pk}/webhook/",
        {"account": hook.account_id, "default_product": "MIS", "enabled": "on"},
    )
    assert not hasattr(own_strategy, "alert_webhook") or own_strategy.alert_webhook is None


def test_several_targets_share_the_lots(hook):
    response = _post(
        _url(hook),
        {
            "symbol": "ALERTFUT",
            "action": "BUY",
            "lots": 3,
            "price": 200,
            "stop_loss": 195,
            "targets": [210, "220"],
        },
    )
    assert response.status_code == 201, response.content
    targets = Order.objects.get().targets
    assert [(Decimal(t["price"]), t["quantity"]) for t in targets] == [
        (Decimal("210"), 100),
        (Decimal("220"), 50),
    ]


def test_old_received_alerts_are_purged_and_their_orders_stay(hook):
    _post(_url(hook), MARKET_BUY)
    _post(_url(hook), {**MARKET_BUY, "id": "tv-2"})
    old = ReceivedAlert.objects.order_by("id").first()
    ReceivedAlert.objects.filter(pk=old.pk).update(received_at=old.received_at - timedelta(days=91))
    assert services.purge_old_received_alerts() == 1
    assert ReceivedAlert.objects.count() == 1
    assert Order.objects.count() == 2


def test_the_secret_in_the_path_is_not_written_to_the_log(hook, caplog):
    caplog.set_level("INFO")
    _post(_url(hook), {"symbol": "ALERTSYM", "action": "HOLD", "quantity": 1})  # a 400
    _post(_url(hook), MARKET_BUY)
    assert caplog.records, "the webhook logs its answers"
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert hook.secret not in logged
    assert hook.public_id in logged


def test_a_deactivated_users_webhook_is_a_404(hook):
    hook.user.is_active = False
    hook.user.save()
    assert _post(_url(hook), MARKET_BUY).status_code == 404
    assert not Order.objects.exists() and not ReceivedAlert.objects.exists()


def test_a_deactivated_accounts_webhook_places_and_exits_nothing(hook):
    # The trader deleted (deactivated) the webhook's account: it is no longer traded. A
    # plain alert's placement refused it, but OpenAlgo's strategy webhook read its position
    # at the broker and exited the bracket holding it (201, a SELL sent).
    reliance = make_reliance_at_100()
    bracket = place_protected_bracket(user=hook.user, account=hook.account, instrument=reliance)
    deactivate_broker_account(account=hook.account)
    legs = list(OrderLeg.objects.order_by("id").values_list("id", "status"))
    paper_orders = PaperOrder.objects.count()

    flat = _post(
        f"/strategy/webhook/{hook.public_id}/{hook.secret}",
        {"symbol": "RELIANCE", "action": "SELL", "position_size": 0},
    )
    buy = _post(_url(hook), {**MARKET_BUY, "symbol": "RELIANCE"})
    for refused in (flat, buy):
        assert refused.status_code == 403, refused.content
        assert "account is deactivated" in refused.json()["error"]
    assert list(Order.objects.values_list("id", flat=True)) == [bracket.pk]
    assert list(OrderLeg.objects.order_by("id").values_list("id", "status")) == legs
    assert PaperOrder.objects.count() == paper_orders
    outcomes = set(ReceivedAlert.objects.values_list("outcome", flat=True))
    assert outcomes == {Outcome.REFUSED}
