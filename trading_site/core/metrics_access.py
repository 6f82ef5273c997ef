"""Who may read /metrics: the scraper with METRICS_TOKEN, or a signed-in staff member.

The metrics name routes, brokers, error rates and connection counts: operational detail an
attacker should not get for free. Without a token configured, only staff sessions see them.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse


def _offered_token(request) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("X-Metrics-Token", "").strip()


def metrics_access_denied(request) -> HttpResponse | None:
    """None when the request may read the metrics, else the 401/403 answer."""
    expected = getattr(settings, "METRICS_TOKEN", "") or ""
    offered = _offered_token(request)
    if expected and offered and hmac.compare_digest(offered.encode(), expected.encode()):
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return None
    if offered or (user is not None and user.is_authenticated):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    response = HttpResponse("Authentication required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
