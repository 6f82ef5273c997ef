"""Issue 10 items 14 and 15 in a real browser: a double click on the ticket's send places
one order, a double click on the batch page's Place sends one POST and one order per row,
the badge follows the chosen account, and a live account's order waits for the
confirmation step (the XTS simulator is the live broker)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import Broker
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import connect_account
from orders.models import Order
from tests.browser.support import (
    choose_instrument_by_keyboard,
    log_in,
    off_loop,
    screenshot,
)
from tests.factories import make_account

D = Decimal


def _fill_single(page, quantity="3", price="100") -> None:
    page.locator("#id_symbol").click()
    choose_instrument_by_keyboard(page, "INFYD")
    page.fill("#id_order_quantity", quantity)
    page.fill("#id_limit_price", price)


def test_double_clicking_the_tickets_send_places_one_order(asgi_server, page, desk):
    user, account, instrument = desk
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/")
    expect(page.get_by_test_id("money-badge")).to_have_text("PAPER")
    _fill_single(page)
    posts = []
    page.on(
        "request",
        lambda request: posts.append(request.url) if request.method == "POST" else None,
    )
    page.locator("button[data-send]").dblclick()
    yes = page.locator("[data-confirm-yes]")
    expect(yes).to_be_visible()
    yes.dblclick()
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    [order] = Order.objects.filter(user=user)
    assert (order.quantity, order.limit_price) == (3, D("100"))
    assert PaperOrder.objects.count() == 1
    assert len([url for url in posts if url.endswith("/orders/new/")]) == 1, posts
    expect(page.locator("main")).to_contain_text("PAPER")


def test_double_clicking_place_on_the_batch_page_posts_once(page, batch_page):
    batch_page("b-1,INFYDESK,BUY,1,100.00,95.00,110.00", "b-2,INFYDESK,BUY,2,99.00,95.00,110.00")
    # Two clicks in a row (the second before anything came back): the page lets one
    # submission go (static/js/forms.js), counted by a listener that runs after its guard.
    submitted = page.evaluate(
        """() => {
            window.__submits = 0;
            window.addEventListener("submit", (e) => { if (!e.defaultPrevented) window.__submits += 1; });
            const place = document.querySelector("[data-testid=place-batch]");
            place.click();
            place.click();
            return window.__submits;
        }"""
    )
    assert submitted == 1
    expect(page).to_have_url(re.compile(r"/orders/batch/results/[0-9a-f]{32}/$"))
    expect(page.get_by_test_id("batch-results")).to_contain_text("order")
    expect(page.get_by_test_id("place-batch")).to_be_enabled()  # a fresh form for the next
    page.reload()  # the results page again: a GET, nothing placed
    expect(page.get_by_test_id("batch-results")).to_be_visible()
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["b-1", "b-2"]
    assert PaperOrder.objects.count() == 2
    screenshot(page, "batch-results-once")


@pytest.fixture
def live_desk(simulator, desk):
    user, paper, instrument = desk

    def arrange():
        live = make_account(
            user=user,
            broker=Broker.IIFL,
            name="A live IIFL",
            credentials={
                "app_key": "inv-app",
                "secret_key": "inv-secret",
                "base_url": simulator.base_url,
            },
        )
        connect_account(live)
        return live

    return user, paper, off_loop(arrange), instrument


def test_a_live_order_waits_for_the_confirmation_step(asgi_server, page, simulator, live_desk):
    user, paper, live, instrument = live_desk
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/")
    # Paper is preselected over the live account whose name sorts first.
    expect(page.locator("#id_account_id")).to_have_value(str(paper.pk))
    expect(page.get_by_test_id("money-badge")).to_have_text("PAPER")
    page.select_option("#id_account_id", str(live.pk))
    expect(page.get_by_test_id("money-badge")).to_have_text("LIVE")
    _fill_single(page, quantity="2", price="99")
    page.locator("button[data-send]").click()
    expect(page.locator("[data-confirm-dialog]")).to_contain_text("real money")
    page.locator("[data-confirm-yes]").click()
    # The server's confirmation step: nothing placed yet.
    expect(page.get_by_test_id("live-warning")).to_contain_text("A live IIFL")
    expect(page.get_by_test_id("live-summary")).to_contain_text("BUY 2 INFYDESK")
    screenshot(page, "live-confirmation")
    assert Order.objects.count() == 0
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == 0
    page.get_by_test_id("confirm-live").dblclick()
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    [order] = Order.objects.all()
    assert order.account_id == live.pk
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == 1
    expect(page.locator("main")).to_contain_text("LIVE")
    # The live account is now the last used: the next ticket starts on it, badge LIVE.
    page.goto(f"{asgi_server}/orders/new/")
    expect(page.locator("#id_account_id")).to_have_value(str(live.pk))
    expect(page.get_by_test_id("money-badge")).to_have_text("LIVE")
