"""Issue 10 item 15: paper and live money were mixed. The forms preselected the
alphabetically first account (a live IIFL account over "Paper demo") and the dashboard added
paper and live cash into one total. Now: the forms start on the last-used account, else a
paper one; a PAPER / LIVE badge on every order form and order; a confirmation step before a
live web order (the account's `confirm_live_orders`; API clients are never asked); totals
per kind of money. Server-rendered HTML asserted; the XTS simulator stands in for the live
broker."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Broker, BrokerAccount
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import connect_account
from orders.models import Order
from tests.factories import (
    api_client_for,
    make_account,
    make_instrument,
    make_order,
    make_reliance_at_100,
    make_user,
    single_ticket_form,
    staff_client,
    web_client_for,
)


@pytest.fixture(autouse=True)
def _window_open(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"


def _live(user, *, name="A live IIFL", base_url="https://ttblaze.iifl.com", **extra):
    return make_account(
        user=user,
        broker=Broker.IIFL,
        name=name,
        credentials={"app_key": "inv-app", "secret_key": "inv-secret", "base_url": base_url},
        **extra,
    )


def selected_account(html: str) -> int:
    select = re.search(r'<select name="account_id".*?</select>', html, re.S).group(0)
    return int(re.search(r'<option value="(\d+)"[^>]*selected', select).group(1))


def badge(html: str) -> str:
    found = re.search(r'data-testid="money-badge">\s*<span class="badge money-(\w+)"', html)
    return found.group(1) if found else ""


@pytest.fixture
def two_accounts(db):
    user = make_user()
    live = _live(user)
    paper = make_account(user=user, name="Paper demo")
    make_reliance_at_100()
    return user, live, paper


# ---- which account a form starts on ------------------------------------------------------------


@pytest.mark.parametrize("page", ["place_order", "batch_orders", "scheduled_create"])
def test_forms_preselect_paper_over_a_live_account_named_first(two_accounts, page):
    user, live, paper = two_accounts
    html = web_client_for(user).get(reverse(page)).content.decode()
    assert selected_account(html) == paper.pk
    assert badge(html) == "paper"
    # Each choice says which money it is.
    assert (
        "A live IIFL (IIFL (XTS)) · LIVE" in html and "Paper demo (Paper exchange) · PAPER" in html
    )
    assert f'data-paper-accounts="{paper.pk}"' in html


def test_the_last_used_account_becomes_every_forms_default(two_accounts):
    user, live, _paper = two_accounts
    second = make_account(user=user, name="Zeta paper")
    web = web_client_for(user)
    placed = web.post(
        reverse("place_order"),
        {
            "kind": "SINGLE",
            "account_id": second.pk,
            "symbol": "RELIANCE",
            "order_side": "BUY",
            "product_type": "MIS",
            "order_type": "LIMIT",
            "order_quantity": "1",
            "limit_price": "99",
        },
    )
    assert placed.status_code == 302
    user.refresh_from_db()
    assert user.last_used_account_id == second.pk
    for page in ("place_order", "batch_orders"):
        assert selected_account(web.get(reverse(page)).content.decode()) == second.pk


def test_a_deactivated_last_used_account_falls_back_to_paper(two_accounts):
    user, live, paper = two_accounts
    user.last_used_account = live
    user.save(update_fields=["last_used_account"])
    BrokerAccount.objects.filter(pk=live.pk).update(is_active=False)
    assert (
        selected_account(web_client_for(user).get(reverse("place_order")).content.decode())
        == paper.pk
    )


def test_a_form_on_a_live_account_wears_the_live_badge(two_accounts):
    user, live, _paper = two_accounts
    html = web_client_for(user).get(reverse("place_order")).content.decode()
    assert badge(html) == "paper"
    user.last_used_account = live
    user.save(update_fields=["last_used_account"])
    html = web_client_for(user).get(reverse("place_order")).content.decode()
    assert selected_account(html) == live.pk and badge(html) == "live"


# ---- every order says which money ---------------------------------------------------------------


def test_orders_wear_their_badge_in_the_list_the_detail_and_the_dashboard(two_accounts):
    user, live, paper = two_accounts
    live_order = make_order(account=live, instrument=make_instrument(symbol="LIVEONE"))
    paper_order = make_order(account=paper, instrument=make_instrument(symbol="PAPERONE"))
    web = web_client_for(user)

    rows = web.get(reverse("orders")).content.decode()
    for order, money in ((live_order, "live"), (paper_order, "paper")):
        row = re.search(rf'<tr data-order-row="{order.pk}".*?</tr>', rows, re.S).group(0)
        assert f'class="badge money-{money}" data-money-badge>{money.upper()}<' in row

    detail = web.get(reverse("order_detail", args=[live_order.pk])).content.decode()
    assert 'class="badge money-live" data-money-badge>LIVE<' in detail
    dashboard = web.get(reverse("dashboard")).content.decode()
    recent = re.search(rf'<tr data-order-row="{paper_order.pk}".*?</tr>', dashboard, re.S).group(0)
    assert "data-money-badge>PAPER<" in recent


# ---- the confirmation step before a live order ---------------------------------------------------


def _ticket(account) -> dict:
    return single_ticket_form(
        account, kind="SINGLE", order_quantity="2", limit_price="99", form_key="e" * 32
    )


def test_a_live_ticket_asks_first_and_writes_nothing(two_accounts):
    user, live, _paper = two_accounts
    answer = web_client_for(user).post(reverse("place_order"), _ticket(live))
    html = answer.content.decode()
    assert answer.status_code == 200
    assert "Place with real money?" in html
    assert 'data-testid="confirm-live"' in html and "BUY 2 RELIANCE, LIMIT at 99" in html
    assert 'class="badge money-live" data-money-badge>LIVE<' in html
    # The same fields and the same form key go back with the answer.
    assert f'name="form_key" value="{"e" * 32}"' in html
    assert f'name="account_id" value="{live.pk}"' in html
    assert Order.objects.count() == 0


def test_back_to_the_form_places_nothing_and_keeps_the_ticket(two_accounts):
    user, live, _paper = two_accounts
    back = web_client_for(user).post(
        reverse("place_order"), {**_ticket(live), "confirm_live": "back"}
    )
    assert back.status_code == 200
    assert 'data-testid="order-form"' in back.content.decode()
    assert selected_account(back.content.decode()) == live.pk
    assert Order.objects.count() == 0


def test_a_live_batch_asks_first(two_accounts):
    user, live, _paper = two_accounts
    answer = web_client_for(user).post(
        reverse("batch_orders"),
        {
            "account_id": live.pk,
            "csv_text": "trading_symbol,no_of_lots,entry_price,sl_price\nRELIANCE,1,99,95\n",
            "action": "place",
            "form_key": "f" * 32,
        },
    )
    assert answer.status_code == 200
    assert "Place with real money?" in answer.content.decode()
    assert "1 bracket order(s) from the CSV" in answer.content.decode()
    assert Order.objects.count() == 0


def test_paper_tickets_are_not_asked(two_accounts):
    user, _live, paper = two_accounts
    answer = web_client_for(user).post(reverse("place_order"), _ticket(paper))
    assert answer.status_code == 302
    assert Order.objects.filter(account=paper).count() == 1


@pytest.fixture
def live_on_simulator(simulator, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user = make_user()
    live = _live(user, base_url=simulator.base_url)
    make_account(user=user, name="Paper demo")
    make_reliance_at_100()
    connect_account(live)
    return user, live


def test_yes_places_the_live_order_once(simulator, live_on_simulator):
    user, live = live_on_simulator
    web = web_client_for(user)
    assert web.post(reverse("place_order"), _ticket(live)).status_code == 200  # asked
    assert Order.objects.count() == 0
    yes = web.post(reverse("place_order"), {**_ticket(live), "confirm_live": "yes"})
    again = web.post(reverse("place_order"), {**_ticket(live), "confirm_live": "yes"})
    [order] = Order.objects.all()
    assert yes.status_code == again.status_code == 302
    assert order.account_id == live.pk
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == 1
    user.refresh_from_db()
    assert user.last_used_account_id == live.pk


def test_an_account_that_does_not_ask_places_at_once(simulator, live_on_simulator):
    user, live = live_on_simulator
    BrokerAccount.objects.filter(pk=live.pk).update(confirm_live_orders=False)
    answer = web_client_for(user).post(reverse("place_order"), _ticket(live))
    assert answer.status_code == 302
    assert Order.objects.filter(account=live).count() == 1


def test_api_clients_are_never_asked(simulator, live_on_simulator):
    user, live = live_on_simulator
    assert BrokerAccount.objects.get(pk=live.pk).confirm_live_orders
    answer = api_client_for(user).post(
        "/api/orders",
        {
            "account_id": live.pk,
            "symbol": "RELIANCE",
            "order_side": "BUY",
            "order_quantity": 2,
            "order_type": "LIMIT",
            "limit_price": "99",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert PaperOrder.objects.count() == 1


# ---- the setting: account settings page and admin ------------------------------------------


def test_the_setting_is_on_for_new_live_accounts_and_editable(two_accounts):
    user, live, paper = two_accounts
    web = web_client_for(user)
    page = web.get(reverse("account_edit", args=[live.pk])).content.decode()
    assert 'name="confirm_live_orders"' in page and "checked" in re.search(
        r'<input type="checkbox" name="confirm_live_orders"[^>]*>', page
    ).group(0)
    saved = web.post(reverse("account_edit", args=[live.pk]), {"account_name": live.account_name})
    assert saved.status_code == 302
    assert BrokerAccount.objects.get(pk=live.pk).confirm_live_orders is False
    web.post(
        reverse("account_edit", args=[live.pk]),
        {"account_name": live.account_name, "confirm_live_orders": "on"},
    )
    assert BrokerAccount.objects.get(pk=live.pk).confirm_live_orders is True
    # A paper account's page does not offer it (paper is never asked).
    assert (
        'name="confirm_live_orders"'
        not in web.get(reverse("account_edit", args=[paper.pk])).content.decode()
    )


def test_the_admin_edits_the_setting(two_accounts):
    _user, live, _paper = two_accounts
    page = staff_client().get(reverse("admin:accounts_brokeraccount_change", args=[live.pk]))
    assert page.status_code == 200
    assert 'name="confirm_live_orders"' in page.content.decode()


# ---- totals ------------------------------------------------------------------------------------


def test_the_dashboard_never_adds_paper_and_live_money(two_accounts):
    user, live, paper = two_accounts
    BrokerAccount.objects.filter(pk=live.pk).update(cash_available=Decimal("1000.00"))
    BrokerAccount.objects.filter(pk=paper.pk).update(cash_available=Decimal("250.00"))
    html = web_client_for(user).get(reverse("dashboard")).content.decode()
    paper_totals = re.search(r'data-money="paper".*?</div>\s*</div>', html, re.S).group(0)
    live_totals = re.search(r'data-money="live".*?</div>\s*</div>', html, re.S).group(0)
    assert "250.00" in paper_totals and "1,000.00" in live_totals
    assert "1,250.00" not in html
    assert "Paper accounts" in html and "Live accounts" in html
    card = re.search(rf'<section class="card" data-account-id="{live.pk}".*?</h2>', html, re.S)
    assert "data-money-badge>LIVE<" in card.group(0)
