"""Issue 10 item 14: the batch page placed 3 orders for one CSV row after a second click
and a browser reload. Every web form that places orders carries a key per rendered form
(the API's Idempotency-Key mechanism), answers with a redirect (post/redirect/get), and an
external_id is unique per account and trading day (a repeat fails that item alone, in the
database too). Server side, against MariaDB and the paper exchange."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent
from tests.factories import DEFAULT_PASSWORD, make_order, single_ticket_form
from trading_site.core.market_hours import trading_date

CSV_HEADER = "external_id,trading_symbol,order_side,no_of_lots,entry_price,sl_price,targets\n"


@pytest.fixture(autouse=True)
def _window_open(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"


@pytest.fixture
def web(trader) -> Client:
    client = Client()
    assert client.login(username=trader.username, password=DEFAULT_PASSWORD)
    return client


def rendered_key(response) -> str:
    """The form key the page rendered (what a browser posts back)."""
    found = re.findall(r'name="form_key" value="([0-9a-f]{32})"', response.content.decode())
    assert found, "the form carries no key"
    return found[0]


def _batch(web, account, csv_text: str, key: str):
    return web.post(
        reverse("batch_orders"),
        {"account_id": account.pk, "csv_text": csv_text, "action": "place", "form_key": key},
    )


# ---- the batch page -------------------------------------------------------------------------


def test_a_double_post_of_the_same_rendered_batch_form_places_once_per_row(
    web, account, instrument
):
    key = rendered_key(web.get(reverse("batch_orders")))
    csv_text = CSV_HEADER + "row-1,RELIANCE,BUY,1,99,95,110\nrow-2,RELIANCE,BUY,2,98,94,110\n"

    first = _batch(web, account, csv_text, key)
    second = _batch(web, account, csv_text, key)  # the second click / the resubmitted POST

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == reverse("batch_results", args=[key])
    orders = list(Order.objects.filter(account=account).order_by("id"))
    assert [o.external_id for o in orders] == ["row-1", "row-2"]
    assert PaperOrder.objects.count() == 2  # one entry per row reached the exchange
    assert all(o.client_order_id.startswith(f"web:{key}:") for o in orders)


def test_reloading_the_batch_results_page_places_nothing(web, account, instrument):
    key = rendered_key(web.get(reverse("batch_orders")))
    csv_text = CSV_HEADER + "reload-1,RELIANCE,BUY,1,99,95,110\n"
    placed = _batch(web, account, csv_text, key)
    events = OrderEvent.objects.count()

    for _ in range(3):  # the browser's reloads of the page after the redirect
        page = web.get(placed["Location"])
        assert page.status_code == 200
        assert "Results: 1 of 1 placed" in page.content.decode()

    assert Order.objects.count() == 1 and PaperOrder.objects.count() == 1
    assert OrderEvent.objects.count() == events
    # The results page offers an empty form with a new key: placing again is a new batch.
    assert rendered_key(page) != key
    assert "reload-1,RELIANCE" not in page.content.decode().split("batch-results")[0]


def test_two_batch_rows_with_the_same_external_id_place_one_and_fail_the_other(
    web, account, instrument
):
    key = rendered_key(web.get(reverse("batch_orders")))
    csv_text = CSV_HEADER + (
        "dup-1,RELIANCE,BUY,1,99,95,110\n"
        "dup-1,RELIANCE,BUY,3,97,93,110\n"
        "other-1,RELIANCE,BUY,1,99,95,110\n"
    )
    page = web.get(_batch(web, account, csv_text, key)["Location"])

    rows = {row.line: row for row in page.context["rows"]}
    assert [rows[line].status for line in (2, 3, 4)] == ["success", "error", "success"]
    assert "already used today" in rows[3].error
    assert sorted(Order.objects.values_list("external_id", "quantity")) == [
        ("dup-1", 1),
        ("other-1", 1),
    ]
    assert PaperOrder.objects.count() == 2


def test_an_external_id_from_an_earlier_batch_the_same_day_fails_that_row_alone(
    web, account, instrument
):
    _batch(web, account, CSV_HEADER + "day-1,RELIANCE,BUY,1,99,95,110\n", "a" * 32)
    page = web.get(
        _batch(
            web,
            account,
            CSV_HEADER + "day-1,RELIANCE,BUY,1,99,95,110\nday-2,RELIANCE,BUY,1,99,95,110\n",
            "b" * 32,
        )["Location"]
    )
    assert [row.status for row in page.context["rows"]] == ["error", "success"]
    assert Order.objects.filter(external_id="day-1").count() == 1


def test_rows_without_an_external_id_never_clash_across_batches(web, account, instrument):
    csv_text = "trading_symbol,no_of_lots,entry_price,sl_price\nRELIANCE,1,99,95\n"
    _batch(web, account, csv_text, "c" * 32)
    _batch(web, account, csv_text, "d" * 32)  # another rendered form: another batch
    assert Order.objects.count() == 2
    assert set(Order.objects.values_list("external_id", "external_id_day")) == {("", None)}


# ---- the ticket, modify and cancel ------------------------------------------------------------


def _ticket(account, key: str, **extra) -> dict:
    form = single_ticket_form(
        account, kind="SINGLE", order_quantity="5", limit_price="99", form_key=key
    )
    return {**form, **extra}


def test_a_double_post_of_the_ticket_places_one_order_and_answers_with_it(web, account, instrument):
    key = rendered_key(web.get(reverse("place_order")))
    first = web.post(reverse("place_order"), _ticket(account, key))
    second = web.post(reverse("place_order"), _ticket(account, key))

    [order] = Order.objects.all()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == reverse("order_detail", args=[order.pk])
    assert order.client_order_id == f"web:{key}"
    assert PaperOrder.objects.count() == 1
    said = [str(m) for m in get_messages(second.wsgi_request)]
    assert any("already placed from this form" in m for m in said), said


def test_the_same_ticket_key_with_other_values_places_nothing_more(web, account, instrument):
    key = rendered_key(web.get(reverse("place_order")))
    web.post(reverse("place_order"), _ticket(account, key))
    changed = web.post(reverse("place_order"), _ticket(account, key, order_quantity="7"))
    [order] = Order.objects.all()
    assert changed.status_code == 302 and changed["Location"].endswith(f"/orders/{order.pk}/")
    assert order.quantity == 5


def test_a_double_post_of_the_cancel_form_cancels_once(web, account, instrument):
    key = rendered_key(web.get(reverse("place_order")))
    web.post(reverse("place_order"), _ticket(account, key))
    order = Order.objects.get()
    cancel_key = rendered_key(web.get(reverse("order_detail", args=[order.pk])))
    web.post(reverse("order_cancel", args=[order.pk]), {"form_key": cancel_key})
    cancels = OrderEvent.objects.filter(order=order).count()
    again = web.post(reverse("order_cancel", args=[order.pk]), {"form_key": cancel_key})
    assert again.status_code == 302
    assert OrderEvent.objects.filter(order=order).count() == cancels
    said = [str(m) for m in get_messages(again.wsgi_request)]
    assert any("already sent" in m for m in said), said


# ---- the database holds the rule too ------------------------------------------------------


def test_the_database_refuses_a_second_order_with_the_same_external_id_the_same_day(
    account, instrument
):
    today = trading_date()
    make_order(account=account, instrument=instrument, external_id="x-1", external_id_day=today)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_order(account=account, instrument=instrument, external_id="x-1", external_id_day=today)
    # Another trading day, or no day (an id that is not the client's), is another matter.
    make_order(
        account=account,
        instrument=instrument,
        external_id="x-1",
        external_id_day=today - timedelta(days=1),
    )
    make_order(account=account, instrument=instrument, external_id="x-1")
    make_order(account=account, instrument=instrument, external_id="x-1")
    assert Order.objects.filter(external_id="x-1").count() == 4
