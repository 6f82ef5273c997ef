"""The order page follows broker events live (issue 12 item 6): a fill handled through
`handle_broker_event` turns it from Open to Filled and takes the modify and cancel controls
away, without a reload; an update that arrives while the page is fetching is not lost."""

from __future__ import annotations

import time
from decimal import Decimal

from playwright.sync_api import expect

from orders.models import Order
from tests.browser.support import log_in, off_loop, screenshot
from tests.factories import make_account, make_instrument, make_user


def _arrange():
    from orders.services import place_single_order
    from tests.factories import make_fair_price, single_request

    user = make_user(username="meera")
    account = make_account(user=user, name="Paper desk")
    instrument = make_instrument(symbol="RELIANCE", lot_size=1, tick_size=Decimal("0.05"))
    make_fair_price(instrument, "100.00")
    order = place_single_order(user=user, request=single_request(account)).order
    return user, account, instrument, order


def _open_order_page(asgi_server, page):
    """meera's open order (`_arrange`), its page open in her browser with the live socket up:
    (user, account, instrument, order)."""
    user, account, instrument, order = off_loop(_arrange)
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/{order.pk}/")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("order-status")).to_have_text("Open")
    return user, account, instrument, order


def _fill_and_handle(account, instrument, order):
    """The price falls through the limit: the paper exchange fills the order; its row goes
    to the handler as the paper exchange's event would."""
    from monitoring.events import handle_broker_event
    from tests.factories import broker_event, paper_order_row, set_price_and_match

    set_price_and_match(instrument, "98.50")
    row = paper_order_row(account, order.legs.get())
    assert row.status == "FILLED"
    handle_broker_event(broker_event(account, order=row))


def test_a_fill_event_turns_the_order_page_filled_and_removes_its_controls_live(asgi_server, page):
    user, account, instrument, order = _open_order_page(asgi_server, page)
    change = page.locator(f'[data-order-change="{order.pk}"]')
    expect(change).to_be_visible()
    # screens' layout: one modify form per working leg, and the cancel button.
    expect(change.get_by_role("button", name="Modify", exact=True)).to_be_visible()
    expect(change.get_by_role("button", name="Cancel order")).to_be_visible()
    page.evaluate("window.__noReload = 'still here'")

    off_loop(_fill_and_handle, account, instrument, order)

    expect(page.get_by_test_id("order-status")).to_have_text("Filled")
    expect(change).to_be_hidden()
    audit = page.get_by_test_id("audit")
    expect(audit).to_contain_text("broker event (paper): status FILLED")
    expect(page.locator("table").nth(0)).to_contain_text("Filled")  # the legs table
    assert page.evaluate("window.__noReload") == "still here"
    screenshot(page, "order-page-filled-live")


def test_an_update_arriving_during_a_fetch_is_fetched_again_not_dropped(asgi_server, page):
    from orders.services.audit import order_update_message
    from trading_site.core.realtime import flush_notifications, notify_user

    user, account, instrument, order = _open_order_page(asgi_server, page)

    # Hold the first fetch of the status fragment's answer (read while the order is still
    # open) until a second update has arrived. (The page refreshes its status and its trail
    # as two fragments; the status one carries the order's state for the controls.)
    held = []
    status_part = f"/orders/{order.pk}/?part=status"

    def hold(route):
        if held:  # the later fetches go through
            route.continue_()
            return
        held.append((route, route.fetch()))

    page.route(lambda url: url.endswith(status_part), hold)

    def announce():
        notify_user(user.pk, order_update_message(Order.objects.get(pk=order.pk)))
        flush_notifications()

    off_loop(announce)  # update 1: the page fetches (and we hold the answer)
    for _ in range(100):  # Playwright runs the route handler while the test waits
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the first update did not make the page fetch"

    off_loop(_fill_and_handle, account, instrument, order)  # update 2 while fetching
    page.wait_for_timeout(300)
    route, stale = held[0]
    route.fulfill(response=stale)  # the first answer arrives: it still says Open

    # The update that came meanwhile is fetched again: the page ends on what is true.
    expect(page.get_by_test_id("order-status")).to_have_text("Filled")
    expect(page.locator(f'[data-order-change="{order.pk}"]')).to_be_hidden()


def test_a_tab_past_the_connection_cap_says_so_and_backs_off(asgi_server, page, settings):
    """The user's second tab meets the cap of one open socket (4429, right after the
    handshake). It says why, and backs off 1 s, 2 s, 4 s as for any refusal, where it used to
    reset its backoff on every `open` and knock about once a second for as long as the
    first tab stayed open. The first tab stays live."""
    settings.WS_MAX_CONNECTIONS_PER_USER = 1
    _open_order_page(asgi_server, page)  # the first tab, live
    second = page.context.new_page()
    attempts: list[float] = []
    second.on("websocket", lambda socket: attempts.append(time.monotonic()))
    second.goto(page.url)
    indicator = second.locator("#ws-indicator")
    expect(indicator).to_have_attribute("data-state", "offline")
    expect(indicator).to_contain_text("Too many open tabs")
    second.wait_for_timeout(6000)
    # Backing off (0.5-1 s, then 1-2 s, then 2-4 s): four sockets at most in six seconds;
    # the old reset of the backoff on `open` made six or more.
    assert 1 <= len(attempts) <= 4, [round(t - attempts[0], 2) for t in attempts]
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
