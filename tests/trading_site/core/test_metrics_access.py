"""/metrics against strangers (issue 10, item 6): it needs the scraper's METRICS_TOKEN or a
staff session, and invented HTTP methods cannot mint new series in Redis."""

from __future__ import annotations

import httpx
import pytest
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, make_user
from trading_site.core import metrics

TOKEN = "a-long-random-scrape-token"


@pytest.fixture(autouse=True)
def _metrics(settings):
    settings.METRICS_TOKEN = TOKEN
    metrics.reset_metrics()
    metrics.inc("orders_placed_total", broker="PAPER")
    yield
    metrics.reset_metrics()


def _signed_in(**user_fields) -> Client:
    user = make_user(**user_fields)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


def _assert_refused_and_silent(response, status: int) -> None:
    """Refused with `status`, and not one figure in the answer."""
    assert response.status_code == status
    assert b"orders_placed_total" not in response.content


@pytest.mark.django_db
def test_anonymous_metrics_are_refused_and_say_nothing():
    _assert_refused_and_silent(Client().get("/metrics"), 401)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
        {"HTTP_X_METRICS_TOKEN": "wrong-token"},
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"},
    ],
)
def test_a_wrong_token_is_refused(headers):
    _assert_refused_and_silent(Client().get("/metrics", **headers), 403)


@pytest.mark.django_db
def test_a_trader_session_is_refused():
    _assert_refused_and_silent(_signed_in().get("/metrics"), 403)


@pytest.mark.django_db
def test_no_token_configured_means_no_token_opens_it(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert Client().get("/metrics", HTTP_X_METRICS_TOKEN="").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers", [{"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, {"HTTP_X_METRICS_TOKEN": TOKEN}]
)
def test_the_scrape_token_reads_the_metrics(headers):
    response = Client().get("/metrics", **headers)
    assert response.status_code == 200
    assert b'orders_placed_total{broker="PAPER"} 1' in response.content


@pytest.mark.django_db
def test_a_staff_session_reads_the_metrics():
    response = _signed_in(is_staff=True).get("/metrics")
    assert response.status_code == 200
    assert b"orders_placed_total" in response.content


def _http_series() -> dict[str, float]:
    return metrics.snapshot().get((metrics.HISTOGRAM, "http_request_duration_seconds"), {})


@pytest.mark.django_db
def test_invented_http_methods_do_not_create_series(live_server):
    """Over a real socket: 60 made-up methods and 60 random paths, each a request."""
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        http.get("/healthz")
        baseline = len(_http_series())
        for n in range(60):
            http.request(f"BREW{n}", "/healthz")
            http.request(f"X-{n}", f"/no/such/page/{n}")
    series = _http_series()
    labels = {field.split("\x1f")[0] for field in series}
    assert not any("BREW" in label or "X-" in label for label in labels)
    assert any('method="OTHER"' in label for label in labels)
    assert not any("/no/such/page" in label for label in labels)
    # At most a handful of new (method, route, status) series, not 120.
    assert len(series) - baseline <= 3 * (len(metrics.BUCKETS) + 3)
