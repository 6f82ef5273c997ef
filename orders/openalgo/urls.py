"""The OpenAlgo-compatible API: /api/v1/<call>, as OpenAlgo serves it (and with a slash)."""

from orders.openalgo import views
from trading_site.core.api.routes import slash_optional

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
    for route in slash_optional(call, view.as_view(), "openalgo-" + call.replace("/", "-"))
]
