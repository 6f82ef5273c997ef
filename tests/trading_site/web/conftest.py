"""Fixtures of the web UI tests: a trader with an account, signed-in clients."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, make_account, make_user


@pytest.fixture
def trader(db):
    return make_user()


@pytest.fixture
def other_trader(db):
    return make_user()


@pytest.fixture
def account(trader):
    return make_account(user=trader, name="Main paper")


@pytest.fixture
def web(trader) -> Client:
    client = Client()
    assert client.login(username=trader.username, password=DEFAULT_PASSWORD)
    return client


@pytest.fixture
def csrf_web(trader) -> Client:
    """A signed-in browser-like client that enforces CSRF on every POST."""
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=trader.username, password=DEFAULT_PASSWORD)
    return client
