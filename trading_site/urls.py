"""URL map: the REST API under /api/, the web UI, the admin, health and metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from trading_site import health

api_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("accounts.api.urls")),
    path("", include("orders.api.market_urls")),
    path("", include("orders.api.urls")),
    path("", include("pnl.api.urls")),
    path("", include("monitoring.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("trading_site.web_urls")),
]

handler404 = "trading_site.views.not_found"
handler500 = "trading_site.views.server_error"
