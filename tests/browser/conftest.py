"""Browser tests: Debian's chromium driven by Playwright against a live ASGI server.

pytest-django's `live_server` speaks WSGI only, and the pages need the WebSocket too, so
`asgi_server` runs uvicorn serving `trading_site.asgi.application` (HTTP and WebSocket) in a
background thread of this process, on an OS-chosen port, against the test database and the
Redis channel layer. Tests using it are `transaction=True` so the server thread sees their rows.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.support import arrange_ticket_desk, log_in

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


BROWSER_TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # marked before -m selects and pytest-django orders the tests
def pytest_collection_modifyitems(config, items):
    """Every test in this folder is a `browser` test with a transactional database (the
    server thread must see its rows); all of them are skipped when chromium is missing."""
    for item in items:
        if item.path.is_relative_to(BROWSER_TESTS):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.django_db(transaction=True))
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: install Debian's chromium package")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


class _ThreadedUvicorn:
    def __init__(self) -> None:
        import uvicorn

        from trading_site.asgi import application

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            application,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            ws_ping_interval=None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="asgi-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test ASGI server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def asgi_server(transactional_db, settings) -> Iterator[str]:
    # The paper exchange trades at any hour; the WebSocket is refused outside the window.
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    server = _ThreadedUvicorn()
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium():
    """One browser per module. Playwright's sync API keeps an event loop running in the test
    thread while it is open; the ORM calls these tests make in that thread are still plain
    synchronous calls, so Django's async guard is lifted for exactly this span, and the loop
    is gone before any other module's tests run."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-IN")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def desk(transactional_db, settings):
    """A trader with a paper account and an equity priced at 101.00, banded 50 to 150
    (support.arrange_ticket_desk), the paper exchange open and rejecting nothing:
    (user, account, instrument)."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"
    return arrange_ticket_desk(username="asha", symbol="INFYDESK")


BATCH_COLUMNS = "external_id,trading_symbol,order_side,no_of_lots,entry_price,sl_price,targets\n"


@pytest.fixture
def batch_page(page, asgi_server, desk):
    """`batch_page(*rows)`: the desk's trader signed in, on the batch page with `rows` under
    the batch columns in its CSV box."""
    user, _account, _instrument = desk

    def open_with(*rows: str) -> None:
        log_in(page, asgi_server, user)
        page.goto(f"{asgi_server}/orders/batch/")
        page.fill("#id_csv_text", BATCH_COLUMNS + "".join(f"{row}\n" for row in rows))

    return open_with
