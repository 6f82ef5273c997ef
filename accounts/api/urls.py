"""Accounts API routes (SPEC 4): paths without a trailing slash, and the same with one."""

from django.urls import path

from accounts.api import broker_views, views


def _both(route: str, view, name: str) -> list:
    """The SPEC's slash-less path, plus the trailing-slash spelling clients often send."""
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("login", views.LoginView.as_view(), "api-login"),
    *_both("logout", views.LogoutView.as_view(), "api-logout"),
    *_both("accounts", views.BrokerAccountListView.as_view(), "api-accounts"),
    *_both("accounts/<int:account_id>", views.BrokerAccountDetailView.as_view(), "api-account"),
    *_both("strategies", views.StrategyListView.as_view(), "api-strategies"),
    *_both("strategies/<int:strategy_id>", views.StrategyDetailView.as_view(), "api-strategy"),
    *_both("api-keys", views.ApiKeyListView.as_view(), "api-keys"),
    *_both("api-keys/<int:key_id>", views.ApiKeyDetailView.as_view(), "api-key"),
    *_both(
        "entry-regenerate-permission",
        views.EntryRegeneratePermissionView.as_view(),
        "api-entry-regenerate-permission",
    ),
    *_both(
        "accounts/<int:pk>/connect",
        broker_views.AccountConnectView.as_view(),
        "api-account-connect",
    ),
    *_both(
        "accounts/<int:account_id>/kill-switch",
        broker_views.KillSwitchView.as_view(),
        "api-account-kill-switch",
    ),
    *_both(
        "accounts/<int:account_id>/enable-trading",
        broker_views.EnableTradingView.as_view(),
        "api-account-enable-trading",
    ),
]
