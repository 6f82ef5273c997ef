"""PnL endpoints under /api/ (SPEC 4): slash-less paths, and the same with a slash."""

from pnl.api import views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional(
        "broker-order-book-pnl", views.BrokerOrderBookPnlView.as_view(), "api-pnl-lots"
    ),
    *slash_optional("pnl/summary", views.PnlSummaryView.as_view(), "api-pnl-summary"),
    *slash_optional("pnl/history", views.PnlHistoryView.as_view(), "api-pnl-history"),
    *slash_optional("pnl/intraday", views.IntradayView.as_view(), "api-pnl-intraday"),
]
