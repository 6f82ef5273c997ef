"""/healthz (the process is up) and /readyz (its dependencies answer)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_redis() -> str:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    client.ping()
    return "ok"


def readyz(request):
    checks: dict[str, str] = {}
    ready = True
    probes = [("database", _check_database)]
    if not settings.EMBEDDED:
        probes.append(("redis", _check_redis))
    for name, probe in probes:
        try:
            checks[name] = probe()
        except Exception as exc:  # report, never raise: this is a probe
            checks[name] = f"error: {type(exc).__name__}"
            ready = False
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": checks,
            "embedded": settings.EMBEDDED,
        },
        status=200 if ready else 503,
    )
