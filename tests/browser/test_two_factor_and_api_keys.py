"""Two-factor login, API keys and the alert webhook panel in a real browser (issue 13, items
6-8), at desktop (1280 px) and phone (390 px) widths: enrolment with the QR code and a login
with the code; an API key made, copied (shown once), used over HTTP and revoked; nothing
wider than the screen."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect

from accounts import two_factor
from accounts.models import ApiKey
from accounts.two_factor import code_at_step, current_step
from orders.alerts.services import receive_alert, save_webhook
from tests.browser.support import log_in, log_out, no_sideways_scroll, off_loop, screenshot
from tests.factories import (
    DEFAULT_PASSWORD,
    make_account,
    make_fair_price,
    make_instrument,
    make_strategy,
    make_user,
)

WIDTHS = {"desktop": 1280, "phone": 390}


def _fits(page, width: int, where: str) -> None:
    scroll = no_sideways_scroll(page)
    assert scroll <= width, f"{where}: the page is {scroll}px wide at {width}px"


@pytest.fixture
def trader(transactional_db):
    def arrange():
        user = make_user(username="meera")
        account = make_account(user=user, name="Paper desk")
        instrument = make_instrument(symbol="KEYSYM", lot_size=1, tick_size=Decimal("0.05"))
        make_fair_price(instrument, "250.00")
        return user, account

    return off_loop(arrange)


@pytest.mark.parametrize("size", WIDTHS)
def test_enrol_then_log_in_with_a_code(asgi_server, page, trader, size):
    width = WIDTHS[size]
    user, _account = trader
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/settings/")
    page.get_by_role("link", name="Set up two-factor login").click()
    page.get_by_role("button", name="Set up two-factor login").click()
    enrolment = page.get_by_test_id("enrolment")
    expect(enrolment).to_be_visible()
    qr = page.locator("img.qr-code")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert qr.evaluate("img => img.naturalWidth") > 0  # the SVG decoded and drew
    secret = page.get_by_test_id("totp-secret").get_attribute("data-secret")
    _fits(page, width, "enrolment")
    screenshot(page, f"2fa-1-enrol-{size}")

    # Codes are pinned to the enrolment's step, so a 30 s boundary passing while the
    # browser works cannot turn the spent code into a fresh one.
    enrol_step = current_step()
    page.fill("#id_code", code_at_step(secret, enrol_step))
    page.get_by_role("button", name="Turn on two-factor login").click()
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    _fits(page, width, "recovery codes")
    screenshot(page, f"2fa-2-recovery-codes-{size}")
    assert two_factor.has_two_factor(user)

    log_out(page)  # on a phone, through the folded menu
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{asgi_server}/login/code/")
    # The code just used to enrol is spent: it is refused.
    page.fill("#id_code", code_at_step(secret, enrol_step))
    page.click("button[type=submit]")
    expect(page.locator(".field .error")).to_contain_text("already used")
    _fits(page, width, "code page")
    screenshot(page, f"2fa-3-code-refused-{size}")
    page.fill("#id_code", code_at_step(secret, enrol_step + 1))
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{asgi_server}/")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")


@pytest.mark.parametrize("size", WIDTHS)
def test_make_copy_use_and_revoke_an_api_key(asgi_server, page, trader, size):
    width = WIDTHS[size]
    user, account = trader
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server)
    page.set_viewport_size({"width": width, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/settings/")
    page.get_by_role("link", name="Manage API keys").click()
    expect(page.get_by_text("No API keys yet.")).to_be_visible()
    page.fill("#id_name", "Amibroker on the office PC")
    page.get_by_label("Trade (includes read)").check()
    page.get_by_role("button", name="Make key").click()

    shown = page.get_by_test_id("new-key-value")
    expect(shown).to_be_visible()
    raw = shown.input_value()
    assert raw.startswith("tdk_")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    _fits(page, width, "new key")
    screenshot(page, f"keys-1-created-{size}")

    # The key works over real HTTP, as a Bearer token.
    headers = {"Authorization": f"Bearer {raw}"}
    assert httpx.get(f"{asgi_server}/api/accounts", headers=headers).status_code == 200

    # Shown once: the list has its name and prefix, never the key again.
    page.goto(f"{asgi_server}/settings/api-keys/")
    row = page.locator("tr", has_text="Amibroker on the office PC")
    expect(row).to_contain_text("Trade")
    expect(row).to_contain_text(raw[:12])
    assert raw not in page.content()
    _fits(page, width, "key list")
    screenshot(page, f"keys-2-listed-{size}")

    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("revoked")
    expect(page.locator("tr", has_text="Amibroker on the office PC")).to_contain_text("Revoked")
    assert httpx.get(f"{asgi_server}/api/accounts", headers=headers).status_code == 401
    assert ApiKey.objects.get(user=user).revoked_at is not None
    _fits(page, width, "revoked")
    screenshot(page, f"keys-3-revoked-{size}")


@pytest.mark.parametrize("size", WIDTHS)
def test_the_strategy_page_shows_the_webhook_and_its_alerts(asgi_server, page, trader, size):
    width = WIDTHS[size]
    user, account = trader

    def arrange():
        strategy = make_strategy(user=user, name="Opening range")
        webhook = save_webhook(actor="test", strategy=strategy, account=account)
        for body in (
            b'{"symbol": "KEYSYM", "action": "BUY", "quantity": 1, "id": "orb-1"}',
            b'{"symbol": "KEYSYM", "action": "HOLD", "quantity": 1}',
        ):
            receive_alert(
                public_id=webhook.public_id,
                secret=webhook.secret,
                raw_body=body,
                client_ip="52.89.214.238",
            )
        return strategy, webhook

    strategy, webhook = off_loop(arrange)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, asgi_server, user)
    page.goto(f"{asgi_server}/settings/strategies/{strategy.pk}/")
    url = page.get_by_test_id("webhook-url")
    expect(url).to_have_value(f"{asgi_server}/hooks/alerts/{webhook.public_id}/{webhook.secret}")
    alerts = page.get_by_test_id("received-alerts")
    expect(alerts).to_contain_text("orb-1")
    expect(alerts).to_contain_text("Placed")
    expect(alerts).to_contain_text("Invalid alert")
    page.locator("#webhook").scroll_into_view_if_needed()
    _fits(page, width, "strategy page")
    screenshot(page, f"webhook-strategy-page-{size}")
