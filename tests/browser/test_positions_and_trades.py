"""Positions, holdings and the trade book in a real browser: the MTM moving with each price
tick without a reload, Exit and Exit all behind their confirmations, the CSV download, and
the pages at phone width."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from orders.models import Order
from tests.browser.support import (
    arrange_paper_desk,
    log_in,
    move_price,
    off_loop,
    run_cycle,
    screenshot,
)
from tests.factories import (
    broker_event,
    buy_at_market,
    make_account,
    make_instrument,
    order_request,
    paper_position_row,
)

D = Decimal


@pytest.fixture
def holder(transactional_db):
    user, paper, infy = arrange_paper_desk(
        username="arjun", symbol="INFYPOS", price="100.00", freeze_quantity=5000
    )

    def arrange():
        second = make_account(user=user, name="Paper two")
        tcs = make_instrument(symbol="TCSPOS", lot_size=1, freeze_quantity=5000)
        return second, tcs

    second, tcs = off_loop(arrange)
    move_price(tcs, "200.00")
    off_loop(buy_at_market, paper, infy, 10)
    off_loop(buy_at_market, paper, tcs, 4)
    off_loop(buy_at_market, second, infy, 5)
    run_cycle(user, "positions-1")
    return user, paper, second, infy, tcs


def test_mtm_moves_with_each_tick_and_exit_goes_through_the_confirmation(asgi_server, page, holder):
    user, paper, second, infy, tcs = holder
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/positions/")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    key = f"{paper.pk}:NSECM:{infy.exchange_instrument_id}:MIS"
    row = page.locator(f'[data-position-key="{key}"]')
    expect(row.locator('[data-field="net_qty"]')).to_have_text("10")
    expect(row.locator('[data-field="mtm"]')).to_have_text("\u20b90.00")
    page.evaluate("window.__noReload = 'still here'")

    move_price(infy, "103.50")  # a tick: no cycle, no reload
    expect(row.locator('[data-field="ltp"]')).to_have_text("103.50")
    expect(row.locator('[data-field="mtm"]')).to_have_text("\u20b935.00")
    expect(page.locator(f'[data-account-mtm="{paper.pk}"]')).to_have_text("\u20b935.00")
    # Both paper accounts hold INFYPOS: 10 x 3.50 + 5 x 3.50.
    expect(page.get_by_test_id("paper-total")).to_have_text("\u20b952.50")
    assert page.evaluate("window.__noReload") == "still here"
    screenshot(page, "positions-live-1280")

    # Exit: the browser asks first; "no" sends nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Exit INFYPOS MIS").click()
    expect(page.get_by_test_id(f"positions-{paper.pk}")).to_be_visible()
    assert not Order.objects.filter(external_id="position-exit").exists()
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Exit INFYPOS MIS").click()
    expect(page.locator(".messages")).to_contain_text("Exit sent for INFYPOS (MIS)")
    assert "Exit 10 INFYPOS (MIS) at market?" in messages[0]
    exit_order = Order.objects.get(external_id="position-exit")
    assert (exit_order.side, exit_order.quantity, exit_order.account_id) == ("SELL", 10, paper.pk)

    # Exit all of the second account.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id(f"exit-all-{second.pk}").click()
    expect(page.locator(".messages")).to_contain_text("every position of Paper two")
    assert Order.objects.filter(external_id="position-exit", account=second).count() == 1


def _buy_at_the_terminal(account, instrument, quantity: int) -> None:
    from orders.brokers.paper.book import book_for_account
    from orders.brokers.paper.exchange import submit_order

    submit_order(
        book=book_for_account(account.pk),
        request=order_request(instrument, "typed-at-terminal", quantity=quantity),
    )


def _position_event(account, instrument):
    """The paper exchange's position row of `instrument`, as its position event carries it,
    through the handler the streams call."""
    from monitoring.events import handle_broker_event

    handle_broker_event(broker_event(account, position=paper_position_row(account, instrument)))


def test_a_position_event_redraws_the_quantity_without_waiting_for_the_cycle(
    asgi_server, page, holder
):
    user, paper, second, infy, tcs = holder
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/positions/?account={paper.pk}")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    row = page.locator(f'[data-position-key="{paper.pk}:NSECM:{infy.exchange_instrument_id}:MIS"]')
    expect(row.locator('[data-field="net_qty"]')).to_have_text("10")
    page.evaluate("window.__noReload = 'still here'")

    # Bought at the broker's own terminal (so no order_update of the desk redraws the page),
    # filled at once; no cycle runs. Only the position event tells the page.
    off_loop(_buy_at_the_terminal, paper, infy, 5)
    off_loop(_position_event, paper, infy)

    expect(row.locator('[data-field="net_qty"]')).to_have_text("15")
    assert page.evaluate("window.__noReload") == "still here"


def test_positions_and_holdings_fit_a_phone(asgi_server, page, holder):
    user, paper, *_ = holder
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/positions/")
    expect(page.get_by_test_id(f"holdings-{paper.pk}")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "positions-390")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_trade_book_filters_and_downloads_csv(asgi_server, page, holder, width):
    user, paper, second, infy, tcs = holder
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/trades/")
    table = page.get_by_test_id("trades-table")
    expect(table).to_contain_text("INFYPOS")
    expect(table).to_contain_text("TCSPOS")
    page.select_option("#id_account", str(second.pk))
    page.get_by_role("button", name="Filter").click()
    expect(table).not_to_contain_text("TCSPOS")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"trades-{width}")
    with page.expect_download() as download:
        page.get_by_test_id("trades-csv").click()
    text = open(download.value.path(), encoding="utf-8").read()
    lines = text.strip().splitlines()
    assert lines[0].startswith("traded_at,account,trading_symbol")
    assert len(lines) == 2 and "Paper two" in lines[1] and "+05:30" in lines[1]
