"""What the browser tests do besides driving the page: sign in, keep screenshots, and run
server-side code off Playwright's event loop."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from django.db import connections
from playwright.sync_api import expect

from monitoring.models import MonitoringRun
from monitoring.services import run_user_cycle
from tests.factories import (
    DEFAULT_PASSWORD,
    make_account,
    make_instrument,
    make_user,
    record_price,
    totp_code,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def log_in(page, base: str, user, *, totp_secret: str | None = None) -> None:
    """The web login; with `totp_secret`, its second step too (the authenticator's code)."""
    page.goto(f"{base}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    if totp_secret is not None:
        expect(page).to_have_url(f"{base}/login/code/")
        page.fill("#id_code", totp_code(totp_secret))
        page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/")


def log_out(page) -> None:
    """Log out from the header; on a phone the menu is folded, so it is opened first."""
    toggle = page.locator("[data-nav-toggle]")
    if toggle.is_visible():
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
    page.get_by_role("button", name="Log out").click()


def no_sideways_scroll(page) -> int:
    """The page's width in CSS pixels; a test asserts it is not wider than the viewport."""
    return page.evaluate("document.documentElement.scrollWidth")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def off_loop(fn, *args, **kwargs):
    """Run server-side code (services, the monitoring cycle) in a fresh thread.

    Playwright's sync API leaves an asyncio loop running in the test thread, and the
    services' `async_to_sync` calls (broker clients, channel-layer sends) refuse to run in
    a thread with a running loop, as they would in a real request thread they need none.
    """
    box: dict = {}

    def target():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="server-side-call")
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():
        raise TimeoutError(f"{fn.__name__} did not finish in 60 s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def move_price(instrument, price: str) -> None:
    off_loop(record_price, instrument, price)


def arrange_paper_desk(*, username: str, symbol: str, price: str = "101.00", **instrument) -> tuple:
    """A trader with a paper account, and an equity (lot 1, tick 0.05; `instrument` adds to
    make_instrument's fields) priced at `price`: (user, account, instrument)."""

    def arrange():
        user = make_user(username=username)
        account = make_account(user=user, name="Paper desk")
        equity = make_instrument(symbol=symbol, lot_size=1, tick_size=Decimal("0.05"), **instrument)
        return user, account, equity

    user, account, equity = off_loop(arrange)
    move_price(equity, price)
    return user, account, equity


def arrange_ticket_desk(*, username: str, symbol: str) -> tuple:
    """The paper desk with its equity's band 50 to 150: (user, account, instrument)."""
    return arrange_paper_desk(
        username=username, symbol=symbol, band=(Decimal("50"), Decimal("150"))
    )


def choose_instrument_by_keyboard(page, text: str) -> None:
    page.keyboard.type(text)
    first = page.locator(".search-results button").first
    expect(first).to_be_visible()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator('[data-out="facts"]')).to_be_visible()


def run_cycle(user, key: str) -> MonitoringRun:
    """The user's monitoring cycle `key`, run now off the browser's loop (not failed)."""
    off_loop(run_user_cycle, user_id=user.pk, cycle_key=key, trigger="manual")
    run = MonitoringRun.objects.get(user=user, cycle_key=key)
    assert run.status != MonitoringRun.Status.FAILED, run.steps
    return run
