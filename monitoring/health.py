"""/healthz (the process is up) and /readyz (its dependencies answer).

/readyz reports three things:
- database: a `SELECT 1`; failing makes /readyz 503;
- redis (full stack only): a PING; failing makes /readyz 503;
- beat: the age of celery beat's heartbeat (`monitoring.models.Heartbeat` name="beat").
  Older than 3 x MONITOR_INTERVAL_SECONDS (or absent) is "stale". A stale beat is reported
  (top-level status "degraded") but keeps 200: this probe decides whether a web process
  gets traffic, and a web process serves the API fine while beat is down; taking every web
  process out of rotation because of beat would turn a monitoring outage into a full outage.
  Alert on `checks.beat.status` instead. The embedded mode has no beat (its timer runs in
  the web process), so the check reports "embedded".
- streams: per active account that should have a broker event stream (an XTS account with a
  live session, a paper account while paper events are on), its state (connected,
  reconnecting, waiting-for-session, down), since when, its last event and reconnect count
  (orders.brokers.streams.health; kept with a TTL by the process running the stream, so a
  dead process's streams read "down"). Any stream not connected is "degraded", reported
  like a stale beat: the 60-second cycle still syncs those accounts, so the API stays ready.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from monitoring.models import Heartbeat
from orders.brokers.streams import health as stream_health

BEAT_HEARTBEAT_NAME = "beat"
BEAT_STALE_AFTER_INTERVALS = 3


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok"}


def _check_redis() -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"status": "ok"}


def _check_beat() -> dict[str, Any]:
    if settings.EMBEDDED:
        return {"status": "embedded"}

    beat_at = (
        Heartbeat.objects.filter(name=BEAT_HEARTBEAT_NAME).values_list("beat_at", flat=True).first()
    )
    stale_after = BEAT_STALE_AFTER_INTERVALS * settings.MONITOR_INTERVAL_SECONDS
    if beat_at is None:
        return {"status": "missing", "age_seconds": None, "stale_after_seconds": stale_after}
    age = max(0.0, (timezone.now() - beat_at).total_seconds())
    return {
        "status": "ok" if age <= stale_after else "stale",
        "age_seconds": round(age, 1),
        "stale_after_seconds": stale_after,
    }


def readyz(request):
    checks: dict[str, dict[str, Any]] = {}
    ready = True
    probes = [("database", _check_database)]
    if not settings.EMBEDDED:
        probes.append(("redis", _check_redis))
    for name, probe in probes:
        try:
            checks[name] = probe()
        except Exception as exc:  # report, never raise: this is a probe
            checks[name] = {"status": "error", "error": type(exc).__name__}
            ready = False
    if ready:
        try:
            checks["beat"] = _check_beat()
        except Exception as exc:
            checks["beat"] = {"status": "error", "error": type(exc).__name__}
        try:
            checks["streams"] = stream_health.readiness()
        except Exception as exc:
            checks["streams"] = {"status": "error", "error": type(exc).__name__}
    else:
        checks["beat"] = {"status": "unknown"}
        checks["streams"] = {"status": "unknown"}
    degraded = (
        checks["beat"]["status"] not in ("ok", "embedded") or checks["streams"]["status"] != "ok"
    )
    status_text = "unavailable" if not ready else ("degraded" if degraded else "ok")
    return JsonResponse(
        {"status": status_text, "checks": checks, "embedded": settings.EMBEDDED},
        status=200 if ready else 503,
    )
