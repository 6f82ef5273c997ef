"""/healthz and /readyz: database, Redis and the beat heartbeat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import Heartbeat

pytestmark = pytest.mark.django_db


def _readyz(client, *, status_code: int = 200) -> dict:
    """/readyz's body, once its status code is `status_code`."""
    response = client.get("/readyz")
    assert response.status_code == status_code
    return response.json()


def test_readyz_reports_database_and_redis_ok(client):
    Heartbeat.objects.create(name="beat", beat_at=timezone.now())
    body = _readyz(client)
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["beat"]["status"] == "ok"
    assert body["checks"]["beat"]["age_seconds"] < 5


def test_stale_beat_is_reported_as_degraded_but_stays_ready(client, settings):
    settings.MONITOR_INTERVAL_SECONDS = 60
    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - timedelta(seconds=200))
    body = _readyz(client)
    assert body["status"] == "degraded"
    assert body["checks"]["beat"]["status"] == "stale"
    assert body["checks"]["beat"]["age_seconds"] >= 200
    assert body["checks"]["beat"]["stale_after_seconds"] == 180


def test_missing_beat_heartbeat_is_reported(client):
    body = client.get("/readyz").json()
    assert body["checks"]["beat"]["status"] == "missing"
    assert body["status"] == "degraded"


def test_unreachable_redis_makes_readyz_503(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    body = _readyz(client, status_code=503)
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


def test_healthz_needs_no_dependencies(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert client.get("/healthz").json() == {"status": "ok"}
