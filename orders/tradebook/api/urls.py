"""Trade book endpoints under /api/: slash-less paths, and the same with a slash."""

from orders.tradebook.api import views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional("trades", views.TradesView.as_view(), "api-trades"),
    *slash_optional("trades/export", views.TradesExportView.as_view(), "api-trades-export"),
]
