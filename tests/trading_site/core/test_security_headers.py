"""Cache-Control and Content-Security-Policy headers (issue 10, item 10)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, api_client_for, make_account, make_user

pytestmark = pytest.mark.django_db


def _signed_in() -> Client:
    user = make_user()
    make_account(user=user)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


@pytest.mark.parametrize("path", ["/", "/orders/", "/pnl/", "/settings/", "/monitoring/"])
def test_authenticated_pages_are_never_stored_and_carry_the_policy(path):
    response = _signed_in().get(path)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    policy = response["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "connect-src 'self' ws://testserver wss://testserver",
    ):
        assert directive in policy, directive
    assert "unsafe-inline" not in policy


def test_authenticated_api_answers_are_never_stored():
    user = make_user()
    response = api_client_for(user).get("/api/accounts")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_anonymous_login_page_has_the_policy_but_may_be_cached():
    response = Client().get("/login/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "no-store" not in response.get("Cache-Control", "")


def test_no_template_carries_inline_script_style_or_handlers():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    offenders = []
    for template in root.rglob("*.html"):
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=\"|\son[a-z]+=\"", text):
            offenders.append(str(template.relative_to(root)))
    assert offenders == []
