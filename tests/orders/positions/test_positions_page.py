"""The positions page: positions and holdings per account, Exit and Exit all through the
write-ahead path, another user's account a 404, CSRF on the exits."""

from __future__ import annotations

import pytest
from django.test import Client

from orders.models import Order
from tests.factories import DEFAULT_PASSWORD, buy_and_sync, make_account, make_user

pytestmark = pytest.mark.django_db


def web_for(user, *, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


def test_the_page_lists_positions_with_exit_buttons_and_paper_totals(trader, account, instrument):
    buy_and_sync(account, instrument, 6)
    page = web_for(trader).get("/positions/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f'data-position-key="{account.pk}:NSECM:{instrument.exchange_instrument_id}:MIS"' in text
    assert "Exit all" in text and 'data-testid="paper-total"' in text
    assert 'data-testid="live-total"' not in text  # no live account: no live total
    assert "Holdings (delivery)" in text


def test_exit_from_the_page_sends_a_market_order_and_says_so(trader, account, instrument):
    buy_and_sync(account, instrument, 6)
    response = web_for(trader).post(
        "/positions/exit/",
        {
            "account_id": account.pk,
            "exchange_segment": instrument.exchange_segment,
            "exchange_instrument_id": instrument.exchange_instrument_id,
            "product_type": "MIS",
            "symbol": instrument.trading_symbol,
        },
        follow=True,
    )
    assert "Exit sent for TATAPOS (MIS): 1 market order." in response.content.decode()
    assert Order.objects.filter(external_id="position-exit", quantity=6, side="SELL").exists()


def test_exit_all_from_the_page(trader, account, instrument):
    buy_and_sync(account, instrument, 2)
    response = web_for(trader).post("/positions/exit-all/", {"account_id": account.pk})
    assert response.status_code == 302
    assert Order.objects.filter(external_id="position-exit").count() == 1


def test_another_users_account_is_a_404_on_the_page_and_its_exits(trader, account, instrument):
    buy_and_sync(account, instrument, 2)
    stranger = web_for(make_user())
    assert stranger.get(f"/positions/?account={account.pk}").status_code == 404
    assert stranger.post("/positions/exit-all/", {"account_id": account.pk}).status_code == 404
    one = stranger.post(
        "/positions/exit/",
        {
            "account_id": account.pk,
            "exchange_segment": "NSECM",
            "exchange_instrument_id": instrument.exchange_instrument_id,
            "product_type": "MIS",
        },
    )
    assert one.status_code == 404
    assert not Order.objects.filter(external_id="position-exit").exists()


def test_the_exits_need_the_csrf_token(trader, account):
    client = web_for(trader, csrf=True)
    assert client.post("/positions/exit-all/", {"account_id": account.pk}).status_code == 403


def test_a_deactivated_account_is_not_shown(trader):
    make_account(user=trader, name="Old", is_active=False)
    assert "Old" not in web_for(trader).get("/positions/").content.decode()
