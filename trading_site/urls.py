"""URL map: the REST API under /api/, the web UI, the admin, health and metrics."""

from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from monitoring import health
from orders.alerts import views as alert_views
from trading_site.core import metrics
from trading_site.core.api.errors import api_not_found

api_patterns: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from our own static files (drf-spectacular-sidecar), its start-up script
    # a separate request: no CDN, no inline script (the Content-Security-Policy allows
    # neither).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("", include("accounts.api.urls")),
    path("", include("orders.market.api.urls")),
    path("", include("orders.api.urls")),
    path("", include("orders.positions.api.urls")),
    path("", include("orders.tradebook.api.urls")),
    path("", include("orders.scheduled.api.urls")),
    path("", include("pnl.api.urls")),
    path("", include("monitoring.api.urls")),
    # The OpenAlgo-compatible API (orders.openalgo): OpenAlgo's calls and answers.
    path("v1/", include("orders.openalgo.urls")),
    # Last: any other /api/ path is the JSON 404 envelope, in DEBUG too (no HTML, no redirect).
    re_path(r"^.*$", api_not_found),
]

# Alert webhooks (orders.alerts): the webhook id, then optionally the secret, in the path.
_HOOK_ID = r"(?P<public_id>[A-Za-z0-9_-]{1,64})"
_HOOK_SECRET = r"(?P<secret>[A-Za-z0-9_-]{1,128})"

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(rf"^hooks/alerts/{_HOOK_ID}/?$", alert_views.receive_alert, name="alert_webhook"),
    re_path(
        rf"^hooks/alerts/{_HOOK_ID}/{_HOOK_SECRET}/?$",
        alert_views.receive_alert,
        name="alert_webhook_secret",
    ),
    re_path(
        rf"^strategy/webhook/{_HOOK_ID}/?$",
        alert_views.receive_openalgo_strategy_alert,
        name="openalgo_strategy_webhook",
    ),
    re_path(
        rf"^strategy/webhook/{_HOOK_ID}/{_HOOK_SECRET}/?$",
        alert_views.receive_openalgo_strategy_alert,
        name="openalgo_strategy_webhook_secret",
    ),
    path("api/", include(api_patterns)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Browsers that ask for /favicon.ico regardless of the page's <link rel="icon">.
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("favicon.svg"))),
    path("", include("trading_site.web_urls")),
]

handler400 = "trading_site.core.error_views.bad_request"
handler403 = "trading_site.core.error_views.permission_denied"
handler404 = "trading_site.core.error_views.not_found"
handler500 = "trading_site.core.error_views.server_error"
