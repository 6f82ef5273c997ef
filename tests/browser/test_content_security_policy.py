"""The Content-Security-Policy in a real browser (issue 10, items 8 and 10): every page the
trader, the admin and a programmer opens runs under `script-src 'self'; style-src 'self'`
without one violation, keeps working (the live connection, the API docs), and loads nothing
from another origin."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from orders.alerts.services import receive_alert, save_webhook
from orders.services import place_single_order
from tests.browser.support import log_in, off_loop
from tests.factories import (
    enable_two_factor,
    make_account,
    make_fair_price,
    make_instrument,
    make_strategy,
    make_user,
    single_request,
)


class Watch:
    """CSP violations and requests to other origins, as the page reports them."""

    def __init__(self, page, base: str):
        self.origin = urlsplit(base).netloc
        self.violations: list[str] = []
        self.foreign: list[str] = []
        page.on("console", self._console)
        page.on("request", self._request)
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => "
            "console.error('CSP-VIOLATION ' + e.violatedDirective + ' ' + e.blockedURI));"
        )

    def _console(self, message):
        text = message.text
        if "CSP-VIOLATION" in text or "Content Security Policy" in text:
            self.violations.append(text)

    def _request(self, request):
        url = urlsplit(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != self.origin:
            self.foreign.append(request.url)


@pytest.fixture
def trader(transactional_db):
    def arrange():
        user = make_user(username="csp-trader", is_staff=True, is_superuser=True)
        # Staff need two-factor login for the admin (issue 13).
        secret = enable_two_factor(user)
        account = make_account(user=user, name="Paper desk")
        make_instrument(symbol="CSPTEST", lot_size=1, tick_size=Decimal("0.05"))
        reliance = make_instrument(symbol="RELIANCE", lot_size=1, tick_size=Decimal("0.05"))
        make_fair_price(reliance, "100.00")
        # A working order: its page has the modify forms and the live fragments.
        order = place_single_order(user=user, request=single_request(account)).order
        strategy = make_strategy(user=user, name="Momentum")
        webhook = save_webhook(actor="test", strategy=strategy, account=account)
        receive_alert(
            public_id=webhook.public_id,
            secret=webhook.secret,
            raw_body=b'{"symbol": "CSPTEST", "action": "HOLD"}',
            client_ip="127.0.0.1",
        )
        return user, account, secret, strategy, order

    return off_loop(arrange)


PAGES = [
    "/",
    "/orders/",
    "/orders/new/",
    "/orders/new/?kind=bracket",
    "/orders/batch/",
    "/pnl/",
    "/pnl/?account=all",
    "/positions/",
    "/trades/",
    "/monitoring/",
    "/settings/",
    "/settings/accounts/new/",
    "/settings/strategies/new/",
    "/settings/scheduled/new/",
    "/settings/password/",
    "/settings/two-factor/",
    "/settings/api-keys/",
    "/no/such/page/",
    "/admin/",
    "/admin/orders/order/",
    "/admin/accounts/brokeraccount/add/",
    "/admin/monitoring/monitoringrun/",
]


def test_every_page_runs_under_the_policy_without_a_violation(asgi_server, page, trader):
    user, _account, secret, strategy, order = trader
    watch = Watch(page, asgi_server)
    log_in(page, asgi_server, user, totp_secret=secret)
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    for path in [
        *PAGES,
        f"/settings/strategies/{strategy.pk}/",
        f"/pnl/brokerage/{_account.pk}/",
        f"/orders/{order.pk}/",
    ]:
        response = page.goto(f"{asgi_server}{path}")
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
        assert "no-store" in response.headers.get("cache-control", ""), path
        page.wait_for_load_state("networkidle")
    # The live connection still comes up under connect-src.
    page.goto(f"{asgi_server}/")
    expect(page.locator("#ws-indicator")).to_have_attribute("data-state", "live")
    # The PnL account picker submits without an inline handler.
    page.goto(f"{asgi_server}/pnl/")
    assert watch.violations == [], watch.violations
    assert watch.foreign == [], watch.foreign


def test_the_api_docs_work_from_our_own_origin_alone(asgi_server, page, trader):
    watch = Watch(page, asgi_server)
    page.goto(f"{asgi_server}/api/docs/")
    # Swagger UI rendered the schema: the operations are listed.
    expect(page.locator(".opblock").first).to_be_visible(timeout=20000)
    expect(page.get_by_text("/api/orders", exact=True).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert watch.foreign == [], watch.foreign
    assert watch.violations == [], watch.violations
