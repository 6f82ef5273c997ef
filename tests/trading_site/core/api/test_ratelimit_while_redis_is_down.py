"""The limits hold while Redis is down: each process takes the tokens from its own buckets,
as large as the shared ones, instead of letting every request through (which let anyone who
knew a webhook's public id guess secrets and write rows without end). A trader's normal use
within the limit still answers as usual, and the shared buckets are used again once Redis is
back."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.conf import settings as live_settings
from django.core.cache import cache
from django.test import Client
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from orders.alerts import services as alert_services
from orders.alerts.models import ReceivedAlert
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_strategy,
    make_user,
    single_order_body,
)
from tests.trading_site.core.conftest import BREAKER_LOGGER, assert_one_outage_logged
from trading_site.core.api.ratelimit import group_rate

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(live_settings.EMBEDDED, reason="the full stack's Redis"),
]

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

# Each test its own address: a process's buckets outlive a test, as they outlive a request.
WEBHOOK_GUESSER = "198.51.100.11"
LOGIN_GUESSER = "198.51.100.12"


def test_wrong_secrets_write_at_most_a_bucket_of_rows_then_answer_429(settings):
    owner = make_user()
    webhook = alert_services.save_webhook(
        actor="test", strategy=make_strategy(user=owner), account=make_account(user=owner)
    )
    capacity, _ = group_rate("webhook_bad_secret")
    settings.CACHES = DEAD_REDIS
    guesser = Client(REMOTE_ADDR=WEBHOOK_GUESSER)

    answers = [
        guesser.post(
            f"/hooks/alerts/{webhook.public_id}/guess-{n}",
            data='{"symbol": "X", "action": "BUY", "quantity": 1}',
            content_type="application/json",
        )
        for n in range(capacity + 5)
    ]

    assert [a.status_code for a in answers] == [404] * capacity + [429] * 5
    refused = answers[-1]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused["Retry-After"]) >= 1
    rows = ReceivedAlert.objects.filter(webhook=webhook)
    assert rows.filter(outcome=ReceivedAlert.Outcome.BAD_SECRET).count() == capacity


def test_login_guesses_past_the_limit_are_refused(settings):
    user = make_user()
    capacity, _ = group_rate("login_user")
    settings.CACHES = DEAD_REDIS
    guesser = APIClient(REMOTE_ADDR=LOGIN_GUESSER)

    def attempt(password: str):
        return guesser.post(
            "/api/login", {"username": user.username, "password": password}, format="json"
        )

    assert [attempt(f"guess-{n}").status_code for n in range(capacity)] == [401] * capacity
    refused = attempt("guess-again")
    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused["Retry-After"]) >= 1


def test_a_traders_order_within_the_limit_is_placed_on_paper(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    trader = make_user()
    account = make_account(user=trader)
    make_fair_price(make_instrument(symbol="RELIANCE"), Decimal("100.00"))
    client = api_client_for(trader)
    capacity, _ = group_rate("orders")
    settings.CACHES = DEAD_REDIS

    response = client.post(
        "/api/orders",
        single_order_body(account, exchange_segment="NSECM", product_type="MIS"),
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response["X-RateLimit-Limit"] == str(capacity)
    assert response["X-RateLimit-Remaining"] == str(capacity - 1)


@pytest.fixture
def tight_reads(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "3/0.001"}


@pytest.fixture
def no_cool_off(settings):
    """Redis asked again on the request after a failure (test_ratelimit_while_redis_hangs
    waits a cool-off out)."""
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = 0


def test_the_shared_bucket_is_used_again_once_redis_is_back(settings, tight_reads, no_cool_off):
    client = api_client_for(make_user())
    live = settings.CACHES
    settings.CACHES = DEAD_REDIS
    assert [client.get("/api/accounts").status_code for _ in range(4)] == [200, 200, 200, 429]

    settings.CACHES = live
    response = client.get("/api/accounts")

    assert response.status_code == 200  # the shared bucket, untouched by the outage
    assert response["X-RateLimit-Remaining"] == "2"
    user_id = response.wsgi_request.user.pk
    assert get_redis_connection("default").exists(cache.make_key(f"rl:user:{user_id}:read"))


def test_an_outage_is_logged_once_and_its_end_once(settings, tight_reads, no_cool_off, caplog):
    client = api_client_for(make_user())
    assert client.get("/api/accounts").status_code == 200  # Redis answers: no outage open
    live = settings.CACHES
    caplog.set_level(logging.INFO, logger=BREAKER_LOGGER)
    caplog.clear()

    settings.CACHES = DEAD_REDIS
    for _ in range(5):
        client.get("/api/accounts")
    settings.CACHES = live
    for _ in range(2):
        client.get("/api/accounts")

    assert_one_outage_logged(caplog)
