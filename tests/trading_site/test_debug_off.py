"""Debug by default (issue 10, item 7): the embedded default ran with DEBUG on, so a 404 listed
every URL and a 500 showed locals and settings. Now DEBUG is off unless DJANGO_DEBUG=1, the
error pages are the product's own, static files still load, and binding a public address
without ALLOWED_HOSTS logs a warning."""

from __future__ import annotations

import logging
import subprocess
import time

import httpx
import pytest
from django.test import Client

from tests.servers import free_port, fresh_machine_env, python_process, run_manage
from trading_site.core.exposure import warn_if_exposed

_PRINT_DEBUG = "from django.conf import settings; print('DEBUG', settings.DEBUG)"


@pytest.mark.slow
def test_debug_is_off_unless_asked_for(tmp_path):
    embedded = fresh_machine_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", VAR_DIR=str(tmp_path / "var")
    )
    default = run_manage("shell", "-c", _PRINT_DEBUG, env=embedded)
    assert "DEBUG False" in default.stdout, default.stderr
    asked = run_manage("shell", "-c", _PRINT_DEBUG, env={**embedded, "DJANGO_DEBUG": "1"})
    assert "DEBUG True" in asked.stdout, asked.stderr


@pytest.mark.slow
def test_the_embedded_default_serves_product_pages_not_debug_pages(tmp_path):
    port = free_port()
    env = fresh_machine_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        VAR_DIR=str(tmp_path / "var"),
        PRICE_FEED_ENABLED="0",
    )
    env.pop("ALLOWED_HOSTS", None)
    server = python_process(
        ["manage.py", "start_embedded", "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the embedded server did not start"
            time.sleep(0.3)
        base = f"http://127.0.0.1:{port}"
        missing = httpx.get(f"{base}/no/such/page/", timeout=5)
        assert missing.status_code == 404
        assert "Page not found" in missing.text
        assert "URLconf" not in missing.text and "urlpatterns" not in missing.text
        assert 'href="/static/css/app.css"' in missing.text
        # Static files come from whitenoise with DEBUG off.
        css = httpx.get(f"{base}/static/css/app.css", timeout=5)
        assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
        assert httpx.get(f"{base}/static/js/desk.js", timeout=5).status_code == 200
        assert httpx.get(f"{base}/login/", timeout=5).status_code == 200
    finally:
        server.terminate()
        try:
            _out, err = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            _out, err = server.communicate()
    # Bound to every interface without ALLOWED_HOSTS: one warning at start.
    assert "ALLOWED_HOSTS is not set" in err


@pytest.mark.django_db
@pytest.mark.urls("tests.trading_site.failing_urls")
def test_a_crash_shows_the_product_500_page_without_a_trace(settings):
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/test-page-crash")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert "Traceback" not in body and "plain boom" not in body and "RuntimeError" not in body


@pytest.mark.django_db
def test_an_unknown_page_is_the_product_404_page():
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


@pytest.mark.parametrize(
    "host,allowed,warns",
    [
        ("0.0.0.0", "", True),
        ("::", "", True),
        ("192.168.1.20", "", True),
        ("desk.example.com", "", True),
        ("0.0.0.0", "desk.example.com", False),
        ("127.0.0.1", "", False),
        ("::1", "", False),
        ("localhost", "", False),
    ],
)
def test_binding_a_public_address_without_allowed_hosts_warns(
    settings, caplog, host, allowed, warns
):
    # What settings.py derives from the ALLOWED_HOSTS variable (only settings read the
    # environment); the start-up test above runs a real server without the variable.
    settings.ALLOWED_HOSTS_CONFIGURED = bool(allowed)
    with caplog.at_level(logging.WARNING, logger="trading_site.startup"):
        assert warn_if_exposed(host) is warns
    assert ("ALLOWED_HOSTS is not set" in caplog.text) is warns
