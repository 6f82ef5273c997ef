"""Accounts API routes (SPEC 4): paths without a trailing slash, and the same with one."""

from accounts.api import broker_views, views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional("login", views.LoginView.as_view(), "api-login"),
    *slash_optional("logout", views.LogoutView.as_view(), "api-logout"),
    *slash_optional("accounts", views.BrokerAccountListView.as_view(), "api-accounts"),
    *slash_optional(
        "accounts/<int:account_id>", views.BrokerAccountDetailView.as_view(), "api-account"
    ),
    *slash_optional("strategies", views.StrategyListView.as_view(), "api-strategies"),
    *slash_optional(
        "strategies/<int:strategy_id>", views.StrategyDetailView.as_view(), "api-strategy"
    ),
    *slash_optional("api-keys", views.ApiKeyListView.as_view(), "api-keys"),
    *slash_optional("api-keys/<int:key_id>", views.ApiKeyDetailView.as_view(), "api-key"),
    *slash_optional(
        "entry-regenerate-permission",
        views.EntryRegeneratePermissionView.as_view(),
        "api-entry-regenerate-permission",
    ),
    *slash_optional(
        "accounts/<int:pk>/connect",
        broker_views.AccountConnectView.as_view(),
        "api-account-connect",
    ),
    *slash_optional(
        "accounts/<int:account_id>/kill-switch",
        broker_views.KillSwitchView.as_view(),
        "api-account-kill-switch",
    ),
    *slash_optional(
        "accounts/<int:account_id>/enable-trading",
        broker_views.EnableTradingView.as_view(),
        "api-account-enable-trading",
    ),
]
