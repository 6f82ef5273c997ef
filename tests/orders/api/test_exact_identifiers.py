"""What a trader or a program names compares exactly, on MariaDB as in SQLite: keys and ids
that differ in case, accents or an emoji are different keys and ids (MariaDB's utf8mb4
collations folded them, so a new order became a replay or a 409, and an OpenAlgo strategy
took another strategy's orders). `trading_site.core.exact_text`, migration orders 0002."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Strategy
from accounts.services import strategy_named
from orders.alerts.services import receive_alert, save_webhook
from orders.models import Order
from tests.factories import make_account, make_strategy, single_order_body

EXACT_COLUMNS = {
    ("broker_accounts", "account_name"),
    ("strategies", "name"),
    ("orders", "client_order_id"),
    ("orders", "external_id"),
    ("alert_webhooks", "public_id"),
}


@pytest.fixture(autouse=True)
def _window_open(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"


@pytest.mark.skipif(connection.vendor != "mysql", reason="SQLite compares text exactly")
def test_the_identifying_columns_have_an_exact_collation(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE()"
        )
        collations = {(table, column): name for table, column, name in cursor.fetchall()}
    assert {column: collations[column] for column in EXACT_COLUMNS} == dict.fromkeys(
        EXACT_COLUMNS, "utf8mb4_nopad_bin"
    )
    # Everything else keeps the database's collation (a symbol still matches in any case).
    assert collations[("orders", "symbol")] != "utf8mb4_nopad_bin"


@pytest.mark.parametrize(
    ("first", "second"),
    [("Key-A", "key-a"), ("café-1", "cafe-1"), ("ord 🚀", "ord 🌙")],
)
def test_idempotency_keys_that_differ_only_in_case_accent_or_emoji_place_two_orders(
    client, account, instrument, first, second
):
    one = client.post(
        "/api/orders", single_order_body(account), format="json", HTTP_IDEMPOTENCY_KEY=first
    )
    two = client.post(
        "/api/orders",
        single_order_body(account, order_quantity=6),
        format="json",
        HTTP_IDEMPOTENCY_KEY=second,
    )

    assert (one.status_code, two.status_code) == (201, 201), two.content
    assert sorted(Order.objects.values_list("client_order_id", "quantity")) == sorted(
        [(first, 10), (second, 6)]
    )
    # The same key, to the letter, is still a replay of its own order.
    again = client.post(
        "/api/orders",
        single_order_body(account, order_quantity=6),
        format="json",
        HTTP_IDEMPOTENCY_KEY=second,
    )
    assert again.status_code == 200, again.content
    assert again.json()["order"]["id"] == two.json()["order"]["id"]
    assert Order.objects.count() == 2


def test_external_ids_that_differ_only_in_case_are_two_orders_the_same_day(
    client, account, instrument
):
    one = client.post("/api/orders", single_order_body(account, external_id="sig-A"), format="json")
    two = client.post("/api/orders", single_order_body(account, external_id="sig-a"), format="json")
    repeat = client.post(
        "/api/orders", single_order_body(account, external_id="sig-a"), format="json"
    )

    assert (one.status_code, two.status_code, repeat.status_code) == (201, 201, 409)
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["sig-A", "sig-a"]


def test_strategies_named_apart_by_an_emoji_or_case_are_apart(trader):
    rocket = strategy_named(user=trader, name="🚀 scalper", actor="test")
    moon = strategy_named(user=trader, name="🌙 scalper", actor="test")
    upper = strategy_named(user=trader, name="Scalper", actor="test")
    lower = strategy_named(user=trader, name="scalper", actor="test")

    assert len({rocket.pk, moon.pk, upper.pk, lower.pk}) == 4
    assert strategy_named(user=trader, name="🌙 scalper", actor="test").pk == moon.pk
    assert sorted(Strategy.objects.filter(user=trader).values_list("name", flat=True)) == sorted(
        ["🚀 scalper", "🌙 scalper", "Scalper", "scalper"]
    )


def test_an_order_names_its_own_strategy_not_one_that_only_looks_alike(
    client, trader, account, instrument
):
    make_strategy(user=trader, name="📈 trend")
    make_strategy(user=trader, name="📉 trend")
    first = client.post(
        "/api/orders", single_order_body(account, strategy_name="📈 trend"), format="json"
    )
    second = client.post(
        "/api/orders", single_order_body(account, strategy_name="📉 trend"), format="json"
    )

    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert [first.json()["order"]["strategy"], second.json()["order"]["strategy"]] == [
        "📈 trend",
        "📉 trend",
    ]
    assert Order.objects.filter(strategy__name="📉 trend").count() == 1


def test_account_names_apart_by_an_emoji_are_two_accounts(trader):
    make_account(user=trader, name="📈 main")
    make_account(user=trader, name="📉 main")

    assert trader.broker_accounts.filter(account_name="📉 main").count() == 1


def test_an_alert_webhook_answers_only_to_its_own_public_id(trader, account, instrument):
    webhook = save_webhook(actor="test", strategy=make_strategy(user=trader), account=account)
    other_case = webhook.public_id.swapcase()
    assert other_case != webhook.public_id  # token_urlsafe(12): letters in it

    answer = receive_alert(
        public_id=other_case, secret=webhook.secret, raw_body=b"{}", client_ip=None
    )
    own = receive_alert(
        public_id=webhook.public_id, secret=webhook.secret, raw_body=b"{}", client_ip=None
    )

    assert answer.status == 404
    assert own.status != 404
