"""PnL endpoints under /api/ (SPEC 4): slash-less paths, and the same with a slash."""

from django.urls import path

from pnl.api import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("broker-order-book-pnl", views.BrokerOrderBookPnlView.as_view(), "api-pnl-lots"),
    *_both("pnl/summary", views.PnlSummaryView.as_view(), "api-pnl-summary"),
    *_both("pnl/history", views.PnlHistoryView.as_view(), "api-pnl-history"),
    *_both("pnl/intraday", views.IntradayView.as_view(), "api-pnl-intraday"),
]
