"""A trader in a real browser: live updates over the WebSocket, batch CSV, monitoring page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from orders.models import Order
from tests.browser.support import (
    log_in,
    move_price,
    run_cycle,
    screenshot,
)


def test_bracket_order_row_and_pnl_update_live_without_reload(asgi_server, page, desk):
    user, account, instrument = desk
    log_in(page, asgi_server, user)
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    screenshot(page, "01-dashboard")

    # Place a bracket order, choosing the instrument through the search box.
    # (Issue 13: the ticket's one instrument box, target rows, and a confirmation to send.)
    page.goto(f"{asgi_server}/orders/new/?kind=bracket")
    page.fill("#id_symbol", "INFYD")
    page.locator(".search-results button").first.click()
    expect(page.locator('[data-out="lot"]')).to_have_text("1")
    page.fill("#id_no_of_lots", "2")
    page.fill("#id_entry_price", "100.00")
    page.fill("#id_sl_price", "95.00")
    page.fill("#target-price-1", "110.00")
    screenshot(page, "02-place-bracket")
    page.get_by_test_id("order-form").locator("button[type=submit]").click()
    page.locator("[data-confirm-yes]").click()
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(user=user)
    expect(page.get_by_test_id("order-status")).to_have_text("Open")
    screenshot(page, "03-order-detail")

    # The order table; mark the page so a reload would be noticed.
    page.goto(f"{asgi_server}/orders/")
    row = page.locator(f'[data-order-row="{order.pk}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("Open")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    page.evaluate("window.__noReload = 'still here'")

    # The price falls through the entry limit: the paper exchange fills it; the next cycle
    # syncs the order, places its SL/TP, computes PnL and pushes the updates.
    move_price(instrument, "99.50")
    run_cycle(user, "browser-1")
    expect(row.locator('[data-field="status"]')).to_have_text("Filled")
    expect(page.locator("#cycle-indicator")).to_contain_text("Cycle")

    # The price rises: the next cycle's PnL shows in the same row, still without a reload.
    move_price(instrument, "104.00")
    run_cycle(user, "browser-2")
    # The limit buy at 100 filled at the market's 99.50: 2 x (104.00 - 99.50) = 9.00.
    expect(row.locator('[data-field="pnl"]')).to_have_text("\u20b99.00")
    assert page.evaluate("window.__noReload") == "still here"
    screenshot(page, "04-orders-live")

    page.goto(f"{asgi_server}/pnl/")
    expect(page.get_by_test_id("pnl-unrealized")).to_have_text("\u20b99.00")
    screenshot(page, "05-pnl")
    page.goto(f"{asgi_server}/")
    screenshot(page, "06-dashboard-after")


def test_batch_csv_places_the_valid_rows_and_shows_the_invalid_rows_error(page, desk, batch_page):
    user, account, instrument = desk
    batch_page(
        "ok-1,INFYDESK,BUY,1,100.00,95.00,110.00",
        "bad-tick,INFYDESK,BUY,1,100.03,95.00,110.00",
        "ok-2,INFYDESK,SELL,1,102.00,106.00,98.00",
    )
    page.get_by_test_id("place-batch").click()
    results = page.get_by_test_id("batch-results")
    expect(results).to_be_visible()
    expect(page.locator('[data-external-id="bad-tick"] [data-testid=row-error]')).to_contain_text(
        "entry_price"
    )
    expect(page.locator('[data-external-id="ok-1"]')).to_contain_text("placed")
    expect(page.locator('[data-external-id="ok-2"]')).to_contain_text("placed")
    screenshot(page, "07-batch-results")
    assert sorted(Order.objects.filter(user=user).values_list("external_id", flat=True)) == [
        "ok-1",
        "ok-2",
    ]


def test_monitoring_page_lists_cycles_and_adds_new_ones_live(asgi_server, page, desk):
    user, account, instrument = desk
    run_cycle(user, "listed-1")
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/monitoring/")
    cycles = page.get_by_test_id("cycles")
    expect(cycles).to_contain_text("listed-1")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    run_cycle(user, "listed-2")
    expect(cycles).to_contain_text("listed-2")
    screenshot(page, "08-monitoring")


def test_phone_width_layout_keeps_the_orders_page_usable(asgi_server, page, desk):
    user, account, instrument = desk
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    screenshot(page, "09-phone-place-order")
