"""The OpenAlgo-compatible API: /api/v1/<call>, as OpenAlgo serves it (and with a slash)."""

from django.urls import path

from orders.openalgo import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


_CALLS = [
    ("placeorder", views.PlaceOrderView),
    ("placesmartorder", views.PlaceSmartOrderView),
    ("basketorder", views.BasketOrderView),
    ("splitorder", views.SplitOrderView),
    ("modifyorder", views.ModifyOrderView),
    ("cancelorder", views.CancelOrderView),
    ("cancelallorder", views.CancelAllOrderView),
    ("closeposition", views.ClosePositionView),
    ("orderstatus", views.OrderStatusView),
    ("openposition", views.OpenPositionView),
    ("orderbook", views.OrderBookView),
    ("tradebook", views.TradeBookView),
    ("positionbook", views.PositionBookView),
    ("holdings", views.HoldingsView),
    ("funds", views.FundsView),
    ("quotes", views.QuotesView),
    ("search", views.SearchView),
    ("symbol", views.SymbolView),
    ("market/timings", views.TimingsView),
    ("market/holidays", views.HolidaysView),
    ("analyzer", views.AnalyzerStatusView),
    ("analyzer/toggle", views.AnalyzerToggleView),
]

urlpatterns = [
    route
    for call, view in _CALLS
    for route in _both(call, view.as_view(), "openalgo-" + call.replace("/", "-"))
]
