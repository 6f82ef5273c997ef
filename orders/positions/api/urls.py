"""Positions and holdings endpoints under /api/: slash-less paths, and the same with a slash."""

from orders.positions.api import views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional("positions", views.PositionsView.as_view(), "api-positions"),
    *slash_optional("positions/exit", views.ExitPositionView.as_view(), "api-positions-exit"),
    *slash_optional(
        "positions/exit-all", views.ExitAllPositionsView.as_view(), "api-positions-exit-all"
    ),
    *slash_optional("holdings", views.HoldingsView.as_view(), "api-holdings"),
]
