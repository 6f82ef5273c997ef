"""The intraday PnL page, scheduled orders on the ticket, the order page, and the polish of
issue 13 (collapsible navigation, nothing wider than a 390 px phone, the dark theme, the
favicon) in a real browser."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from orders.models import Order, ScheduledOrder
from pnl.models import MtmSample, PnlDaily
from tests.browser.support import arrange_paper_desk, log_in, off_loop, screenshot
from tests.factories import make_account, make_order, make_trades
from trading_site.core.market_hours import MARKET_TZ

D = Decimal


@pytest.fixture
def trader(transactional_db):
    user, paper, instrument = arrange_paper_desk(username="nisha", symbol="HDFCSCH", price="100.00")
    live = off_loop(make_account, user=user, name="IIFL live", broker="IIFL")
    return user, paper, live, instrument


def a_trading_day(paper, live, instrument) -> datetime:
    """A day's curve for both accounts (09:15 to 15:30, one point a minute), its daily row
    and two fills, written directly."""
    day = datetime.now(MARKET_TZ).date()
    start = datetime.combine(day, datetime.min.time(), tzinfo=MARKET_TZ) + timedelta(
        hours=9, minutes=15
    )
    walk = random.Random(7)
    rows = []
    for account, scale in ((paper, 40), (live, 15)):
        value = D("0")
        for minute in range(0, 376, 1):
            value += D(walk.randint(-scale, scale + 2))
            rows.append(
                MtmSample(
                    account=account,
                    trading_date=day,
                    minute=start + timedelta(minutes=minute),
                    mtm=value,
                )
            )
    MtmSample.objects.bulk_create(rows)
    PnlDaily.objects.create(account=paper, trading_date=day, realized=D("850"), unrealized=D("120"))
    make_trades(
        account=paper,
        instrument=instrument,
        fills=[
            ("D1", "BUY", 100, "100", start + timedelta(minutes=5)),
            ("D2", "SELL", 100, "108.5", start + timedelta(minutes=200)),
        ],
    )
    return start


@pytest.mark.parametrize("width", [1280, 390])
def test_the_intraday_curve_with_drawdown_charges_and_net(asgi_server, page, trader, width):
    user, paper, live, instrument = trader
    off_loop(a_trading_day, paper, live, instrument)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/pnl/?account={paper.pk}")
    curve = page.get_by_test_id("mtm-curve-account")
    expect(curve.locator("polyline.mtm-line")).to_be_visible()
    expect(curve.locator("line.drawdown")).to_have_count(1)
    expect(page.get_by_test_id("gross-account")).to_have_text("\u20b9970.00")
    charges = page.get_by_test_id("charges-account").inner_text()
    net = page.get_by_test_id("net-account").inner_text()
    to_number = lambda text: D(text.replace("\u20b9", "").replace(",", ""))  # noqa: E731
    assert to_number(charges) > 0 and to_number(net) == D("970.00") - to_number(charges)
    page.get_by_test_id("charges-breakdown").locator("summary").click()
    expect(page.get_by_test_id("charges-breakdown")).to_contain_text("Stamp duty")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"pnl-intraday-{width}")
    page.goto(f"{asgi_server}/pnl/?account=all")
    expect(page.get_by_test_id("mtm-curve-paper")).to_be_visible()
    expect(page.get_by_test_id("mtm-curve-live")).to_be_visible()  # apart, never summed
    screenshot(page, f"pnl-all-accounts-{width}")


def _choose_hdfc_and_fill_the_bracket(page, *, lots: str, entry: str, sl: str) -> None:
    """On a bracket ticket: the trader's instrument picked from the search, then the lots,
    the entry and the stop-loss."""
    page.locator("#id_symbol").click()
    page.keyboard.type("HDFCS")
    page.locator(".search-results button").first.click()
    page.fill("#id_no_of_lots", lots)
    page.fill("#id_entry_price", entry)
    page.fill("#id_sl_price", sl)


def test_a_scheduled_bracket_is_made_on_the_ticket_with_weekday_names(asgi_server, page, trader):
    user, paper, live, instrument = trader
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/settings/scheduled/new/")
    page.fill("#id_name", "Morning breakout")
    page.fill("#id_time_of_day", "09:20")
    page.locator('label[for="kind-bracket"]').click()
    _choose_hdfc_and_fill_the_bracket(page, lots="3", entry="101", sl="97")
    page.fill("#target-price-1", "105")
    page.fill("#target-lots-1", "1")
    page.locator("[data-add-target]").click()
    page.keyboard.type("110")
    page.fill("#target-lots-2", "2")
    expect(page.locator("[data-confirm-dialog]")).to_have_count(0)  # saving, not sending
    screenshot(page, "schedule-ticket-1280")
    page.get_by_role("button", name="Save schedule").click()
    expect(page).to_have_url(re.compile(r"/settings/$"))
    expect(page.locator("body")).to_contain_text("Mon to Fri")
    schedule = ScheduledOrder.objects.get(user=user)
    assert schedule.kind == "BRACKET"
    assert schedule.template["targets"] == [
        {"price": "105", "lots": 1},
        {"price": "110", "lots": 2},
    ]
    screenshot(page, "settings-schedules")
    page.goto(f"{asgi_server}/settings/scheduled/{schedule.pk}/")
    expect(page.locator("#target-price-2")).to_have_value("110")
    expect(page.locator("#kind-bracket")).to_be_checked()


def test_the_order_page_shows_status_before_the_forms_and_the_audit_in_words(
    asgi_server, page, trader
):
    user, paper, live, instrument = trader
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/")
    page.locator("#id_symbol").click()
    page.keyboard.type("HDFCS")
    page.locator(".search-results button").first.click()
    page.select_option("#id_account_id", str(paper.pk))
    page.fill("#id_order_quantity", "2")
    page.fill("#id_limit_price", "99")
    page.get_by_test_id("order-form").locator("[data-send]").click()
    expect(page.locator("[data-confirm-dialog]")).to_contain_text("(paper)")
    page.locator("[data-confirm-yes]").click()
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    status_first = page.evaluate(
        "document.querySelector('[data-testid=order-status]').compareDocumentPosition("
        "document.querySelector('.modify-form')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    assert status_first
    order = Order.objects.get(user=user)
    leg = order.legs.get()
    expect(page.locator(f"#leg{leg.pk}_limit_price")).to_have_value("99")
    expect(page.locator(f"#leg{leg.pk}_quantity")).to_have_value("2")
    audit = page.get_by_test_id("audit")
    expect(audit).to_contain_text("Order saved, before anything was sent to the broker")
    expect(audit).to_contain_text("The broker accepted the entry leg")
    expect(audit).not_to_contain_text("user:")
    expect(audit).not_to_contain_text("written ahead")
    expect(audit.locator("td").filter(has_text=re.compile(r"^You$")).first).to_be_visible()
    # Change the price only: the form sends what changed.
    page.fill(f"#leg{leg.pk}_limit_price", "98.5")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("modify-entry").get_by_role("button", name="Modify").click()
    expect(page.locator(".messages")).to_contain_text("entry leg (limit) modified")
    leg.refresh_from_db()
    assert (leg.limit_price, leg.quantity) == (D("98.5"), 2)
    screenshot(page, "order-detail-plain-words")


def test_the_navigation_folds_on_a_phone_and_opens_from_the_keyboard(asgi_server, page, trader):
    user, *_ = trader
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, asgi_server, user)
    nav = page.locator(".site-nav")
    toggle = page.locator("[data-nav-toggle]")
    expect(nav).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(nav).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_focused()
    screenshot(page, "nav-open-390")
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    expect(toggle).to_be_focused()
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(nav).to_be_visible()
    expect(toggle).to_be_hidden()


BATCH = (
    "external_id,trading_symbol,order_side,no_of_lots,entry_price,entry_stop_price,sl_price,"
    "sl_stop_price,targets,strategy_name,product_type,exchange_segment\n"
    "a-very-long-external-identifier-0001,HDFCSCH,BUY,1,100.00,,95.00,,110.00:50%;120.00:50%,"
    ",MIS,NSECM\n"
    "bad,NOSUCHSYMBOLATALL,BUY,1,100.03,,95.00,,110.00,,MIS,NSECM\n"
)


def test_no_page_is_wider_than_a_390_px_phone(asgi_server, page, trader):
    user, paper, live, instrument = trader
    order = off_loop(make_order, account=paper, instrument=instrument)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, asgi_server, user)
    paths = [
        "/",
        "/orders/",
        f"/orders/{order.pk}/",
        "/orders/new/",
        "/orders/new/?kind=bracket",
        "/positions/",
        "/trades/",
        "/pnl/",
        "/pnl/?account=all",
        "/monitoring/",
        "/settings/",
        "/settings/scheduled/new/",
        f"/pnl/brokerage/{paper.pk}/",
        "/orders/batch/",
    ]
    too_wide = {}
    for path in paths:
        page.goto(f"{asgi_server}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            too_wide[path] = width
    # The batch page with a preview of long rows (771 px wide before issue 13).
    page.goto(f"{asgi_server}/orders/batch/")
    page.fill("#id_csv_text", BATCH)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("batch-results")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > 390:
        too_wide["/orders/batch/ (preview)"] = width
    screenshot(page, "batch-preview-390")
    assert too_wide == {}


def _contrast(page, selector: str) -> float:
    """The WCAG contrast ratio of the element's text against the page background."""
    return page.evaluate(
        """(selector) => {
          const el = document.querySelector(selector);
          const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
          const lum = ([r, g, b]) => {
            const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
          };
          let bgEl = el, bg = 'rgba(0, 0, 0, 0)';
          while (bgEl && (bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent')) { bg = getComputedStyle(bgEl).backgroundColor; bgEl = bgEl.parentElement; }
          const a = lum(rgb(getComputedStyle(el).color)), b = lum(rgb(bg));
          return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        }""",
        selector,
    )


def test_the_dark_theme_follows_the_system_and_stays_readable(asgi_server, page, trader):
    user, paper, live, instrument = trader
    off_loop(a_trading_day, paper, live, instrument)
    page.emulate_media(color_scheme="dark")
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/orders/new/?kind=bracket")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 20, 26)", background
    for selector in ("h1", ".muted", ".field label", "#id_symbol", ".segmented label", "a.brand"):
        ratio = _contrast(page, selector)
        assert ratio >= 4.5, (selector, ratio)
    _choose_hdfc_and_fill_the_bracket(page, lots="2", entry="100", sl="96")
    screenshot(page, "dark-ticket")
    page.goto(f"{asgi_server}/pnl/?account={paper.pk}")
    for selector in (".total .label", ".chart text", "td.num"):
        assert _contrast(page, selector) >= 4.5, selector
    screenshot(page, "dark-pnl")
    page.emulate_media(color_scheme="light")
    page.reload()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(245, 246, 248)"


def test_the_favicon_is_served(asgi_server, page, trader):
    user, *_ = trader
    log_in(page, asgi_server, user)
    href = page.locator('link[rel="icon"]').get_attribute("href")
    icon = page.request.get(f"{asgi_server}{href}")
    assert icon.status == 200 and "svg" in icon.headers["content-type"]
    legacy = page.request.get(f"{asgi_server}/favicon.ico", max_redirects=0)
    assert legacy.status == 301 and legacy.headers["location"] == href
