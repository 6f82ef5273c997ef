"""The order ticket in a real browser, at desktop (1280 px) and phone (390 px) widths:
keyboard-only use (Tab, B / S, Enter, the confirmation), fields that follow the order type,
the LTP click, several targets, the figures the page computes against orders.domain.ticket,
and every validation error in one round with the instrument's facts kept in view."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from orders.domain.ticket import EQUITY, TicketFacts, TicketTarget, estimate
from orders.models import Order
from tests.browser.support import (
    choose_instrument_by_keyboard,
    log_in,
    screenshot,
)

D = Decimal


def open_ticket_with_the_instrument(page, asgi_server, user, query: str = "") -> None:
    """Signed in as `user`, the order ticket (`query`: "?kind=bracket" for a bracket) with the
    desk's instrument chosen by keyboard."""
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/{query}")
    page.locator("#id_symbol").click()
    choose_instrument_by_keyboard(page, "INFYD")


@pytest.mark.parametrize("width", [1280, 390])
def test_keyboard_only_sell_with_the_confirmation(asgi_server, page, desk, width):
    user, account, instrument = desk
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/")
    expect(page.locator("[data-ticket]")).to_have_attribute("data-side", "BUY")
    # S picks Sell when nothing is being typed, and puts the cursor in the instrument box.
    page.keyboard.press("s")
    expect(page.locator("[data-ticket]")).to_have_attribute("data-side", "SELL")
    expect(page.locator("#id_symbol")).to_be_focused()
    choose_instrument_by_keyboard(page, "INFYD")
    expect(page.locator("[data-ltp]")).to_have_text("\u20b9101.00")
    # Tab: product, order type, quantity (typing B or S in a field changes nothing).
    page.keyboard.press("Tab")
    expect(page.locator("#id_product_type")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#id_order_type")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#id_order_quantity")).to_be_focused()
    page.keyboard.type("3")
    page.keyboard.press("b")
    expect(page.locator("[data-ticket]")).to_have_attribute("data-side", "SELL")
    page.keyboard.press("Tab")
    expect(page.locator("#id_limit_price")).to_be_focused()
    page.keyboard.type("100")
    expect(page.get_by_test_id("ticket-value")).to_have_text("\u20b9300.00")
    # Enter asks first; Escape steps back without sending.
    page.keyboard.press("Enter")
    dialog = page.locator("[data-confirm-dialog]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Sell INFYDESK (paper)")
    expect(page.locator("[data-confirm-yes]")).to_be_focused()
    screenshot(page, f"ticket-confirm-{width}")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert Order.objects.count() == 0
    # Enter again, and Enter on "Sell now" sends it.
    page.locator("#id_limit_price").focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-confirm-yes]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(user=user)
    assert (order.side, order.quantity, order.order_type, order.limit_price) == (
        "SELL",
        3,
        "LIMIT",
        D("100"),
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_fields_follow_the_order_type_and_the_ltp_fills_the_price(asgi_server, page, desk):
    user, account, instrument = desk
    open_ticket_with_the_instrument(page, asgi_server, user)
    limit, stop = page.locator("#id_limit_price"), page.locator("#id_stop_price")
    expect(limit).to_be_visible()
    expect(stop).to_be_hidden()  # no stop field on a plain limit order
    page.select_option("#id_order_type", "STOPMARKET")
    expect(limit).to_be_hidden()
    expect(stop).to_be_visible()
    page.select_option("#id_order_type", "MARKET")
    expect(limit).to_be_hidden()
    expect(stop).to_be_hidden()
    # The LTP click on a market order makes it a limit order at the LTP.
    page.locator("[data-ltp]").click()
    expect(page.locator("#id_order_type")).to_have_value("LIMIT")
    expect(limit).to_have_value("101")
    # The price field last used takes the LTP.
    page.select_option("#id_order_type", "STOPLIMIT")
    stop.click()
    page.locator("[data-ltp]").click()
    expect(stop).to_have_value("101")
    # A bracket shows its stop-loss and targets instead.
    page.locator('label[for="kind-bracket"]').click()
    expect(page.locator("#id_sl_price")).to_be_visible()
    expect(page.locator("#target-price-1")).to_be_visible()
    expect(limit).to_be_hidden()
    expect(page.locator("#id_entry_stop_price")).to_be_hidden()
    page.select_option("#id_entry_type", "STOPLIMIT")
    expect(page.locator("#id_entry_stop_price")).to_be_visible()


def test_the_pages_figures_are_the_python_formulas_for_a_bracket_with_two_targets(
    asgi_server, page, desk
):
    user, account, instrument = desk
    open_ticket_with_the_instrument(page, asgi_server, user, "?kind=bracket")
    page.fill("#id_no_of_lots", "7")
    page.fill("#id_entry_price", "100.05")
    page.fill("#id_sl_price", "96.35")
    page.fill("#target-price-1", "104.2")
    page.fill("#target-lots-1", "3")
    page.locator("[data-add-target]").click()
    expect(page.locator("#target-price-2")).to_be_focused()
    page.keyboard.type("109.95")
    page.fill("#target-lots-2", "4")
    expected = estimate(
        facts=TicketFacts(instrument_class=EQUITY, ltp=D("101"), paper_margin_rate=D("0.2")),
        side="BUY",
        product="MIS",
        order_type="LIMIT",
        quantity=7,
        limit_price=D("100.05"),
        sl_price=D("96.35"),
        targets=(TicketTarget(D("104.2"), 3), TicketTarget(D("109.95"), 4)),
    )
    for name, value in (
        ("value", expected.value),
        ("margin", expected.margin),
        ("risk", expected.risk),
        ("reward", expected.reward),
    ):
        expect(page.get_by_test_id(f"ticket-{name}")).to_have_attribute("data-raw", str(value))
    expect(page.get_by_test_id("ticket-risk")).to_have_text("\u20b925.90")
    screenshot(page, "ticket-bracket-two-targets")
    page.get_by_test_id("order-form").locator("[data-send]").click()
    page.locator("[data-confirm-yes]").click()
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(user=user)
    assert order.targets == [
        {"price": "104.2", "quantity": 3},
        {"price": "109.95", "quantity": 4},
    ]


def test_every_error_comes_back_in_one_round_with_the_facts_in_view(asgi_server, page, desk):
    user, account, instrument = desk
    open_ticket_with_the_instrument(page, asgi_server, user)
    page.fill("#id_limit_price", "151.03")  # off the tick and above the band; no quantity
    page.get_by_test_id("order-form").locator("[data-send]").click()
    page.locator("[data-confirm-yes]").click()
    expect(page.get_by_test_id("ticket-errors")).to_be_visible()
    errors = page.locator(".field.has-error")
    expect(page.locator("#id_limit_price").locator("xpath=..")).to_contain_text(
        "must be a multiple of the tick size 0.05"
    )
    expect(page.locator("#id_limit_price").locator("xpath=..")).to_contain_text(
        "is above the price band 150"
    )
    expect(page.locator("#id_order_quantity").locator("xpath=..")).to_contain_text("is required")
    assert errors.count() >= 2
    # The LTP, lot and tick are still on screen.
    expect(page.locator("[data-ltp]")).to_have_text("\u20b9101.00")
    expect(page.locator('[data-out="tick"]')).to_have_text("0.05")
    expect(page.locator('[data-out="band"]')).to_contain_text("150")
    screenshot(page, "ticket-all-errors-at-once")
    assert Order.objects.count() == 0


def test_the_ticket_on_a_phone_puts_the_figures_first_and_fits(asgi_server, page, desk):
    user, account, instrument = desk
    page.set_viewport_size({"width": 390, "height": 844})
    open_ticket_with_the_instrument(page, asgi_server, user, "?kind=bracket")
    page.keyboard.press("Escape")
    page.fill("#id_no_of_lots", "2")
    page.fill("#id_entry_price", "100")
    page.fill("#id_sl_price", "95")
    page.fill("#target-price-1", "110")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "ticket-phone-bracket")
