"""Prometheus metrics: shared across processes through Redis, served at /metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django_redis import get_redis_connection

from tests.factories import api_client_for, make_user
from trading_site.core import metrics

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_metrics(settings):
    """No samples before or after each test, and the scraper's token set."""
    settings.METRICS_TOKEN = "scrape-token-for-tests"
    metrics.reset_metrics()
    yield
    metrics.reset_metrics()


def _metrics_text(client) -> str:
    # The scraper's token (issue 10: /metrics is not anonymous).
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


@pytest.mark.django_db
def test_counters_render_with_help_type_and_labels(client):
    metrics.inc("orders_placed_total", broker="PAPER")
    metrics.inc("orders_placed_total", 2, broker="PAPER")
    metrics.inc("orders_rejected_total", broker="IIFL", reason='bad "price"')
    text = _metrics_text(client)
    assert "# TYPE orders_placed_total counter" in text
    assert "# HELP orders_placed_total Orders accepted by a broker" in text
    assert 'orders_placed_total{broker="PAPER"} 3' in text
    assert 'orders_rejected_total{broker="IIFL",reason="bad \\"price\\""} 1' in text


@pytest.mark.django_db
def test_histogram_buckets_are_cumulative(client):
    for seconds in (0.003, 0.02, 7):
        metrics.observe("cycle_duration_seconds", seconds)
    text = _metrics_text(client)
    assert "# TYPE cycle_duration_seconds histogram" in text
    # Each bucket counts every sample at or below its bound: 0.003; 0.003 and 0.02; all three.
    for bound, count in {"0.005": 1, "0.025": 2, "10": 3, "+Inf": 3}.items():
        assert f'cycle_duration_seconds_bucket{{le="{bound}"}} {count}' in text
    assert "cycle_duration_seconds_count 3" in text
    assert "cycle_duration_seconds_sum 7.023" in text


@pytest.mark.django_db
def test_gauges_set_and_add(client):
    metrics.set_gauge("queue_depth", 5)
    metrics.set_gauge("queue_depth", 2)
    metrics.add_gauge("websocket_connections", 3)
    metrics.add_gauge("websocket_connections", -1)
    text = _metrics_text(client)
    assert "queue_depth 2" in text
    assert "# TYPE websocket_connections gauge" in text
    assert "websocket_connections 2" in text


@pytest.mark.django_db
def test_request_latency_is_recorded_per_route_pattern_and_status(client):
    user = make_user()
    api = api_client_for(user)
    api.get("/api/accounts/12345")  # 404
    api.get("/api/accounts")
    text = _metrics_text(client)
    assert (
        'http_request_duration_seconds_count{method="GET",route="/api/accounts",status="200"} 1'
        in text
    )
    assert 'route="/api/accounts/<int:account_id>",status="404"} 1' in text


@pytest.mark.django_db
def test_samples_from_another_process_add_up(client):
    metrics.inc("orders_placed_total", broker="PAPER")
    script = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'trading_site.settings'); django.setup();"
        "from trading_site.core import metrics; metrics.inc('orders_placed_total', 4, broker='PAPER')"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=dict(os.environ), check=True)
    assert 'orders_placed_total{broker="PAPER"} 5' in _metrics_text(client)


def test_embedded_metrics_live_in_memory(settings):
    settings.EMBEDDED = True
    metrics.reset_metrics()
    metrics.inc("cycle_step_failures_total", step="4")
    text = metrics.render_prometheus()
    assert 'cycle_step_failures_total{step="4"} 1' in text


@pytest.mark.django_db
def test_metrics_come_back_after_redis_lost_the_set_naming_them(client):
    """The set of names /metrics reads is written with every sample (in the same script), so
    a Redis that lost it (restarted, flushed) shows every metric again after the next
    request, not only after a process restart."""
    if settings.EMBEDDED:
        pytest.skip("the full stack's Redis")
    user = make_user()
    api = api_client_for(user)
    api.get("/api/accounts")
    redis = get_redis_connection("default")
    redis.delete(cache.make_key("metrics:names"))  # what a flush does to it
    assert "http_request_duration_seconds" not in _metrics_text(client)
    api.get("/api/accounts")
    assert (
        'http_request_duration_seconds_count{method="GET",route="/api/accounts",status="200"} 2'
        in _metrics_text(client)
    )


def test_a_request_is_answered_when_redis_is_down(client, settings):
    """Metrics are best effort: a request whose samples cannot be written is answered as
    usual (a Redis port nobody listens on; the unmatched page touches nothing else)."""
    if settings.EMBEDDED:
        pytest.skip("the full stack's Redis")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    down = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    with override_settings(CACHES=down):
        metrics.inc("orders_placed_total", broker="PAPER")  # no exception either
        assert client.get("/no-such-page-for-metrics").status_code == 404
