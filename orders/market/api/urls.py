"""Instruments and fair prices (orders.market.api.views).

Paths without a trailing slash (SPEC 4), plus the trailing-slash spelling clients often send.
"""

from orders.market.api import views as market_views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional("instruments", market_views.InstrumentListView.as_view(), "api-instruments"),
    *slash_optional("fair-prices", market_views.FairPriceView.as_view(), "api-fair-prices"),
]
