"""The server-rendered web UI (each app's pages live in its own views module)."""

from django.urls import include, path

from accounts import views as account_views
from monitoring import views as monitoring_views
from orders import views as order_views
from orders.alerts import views as alert_views
from orders.positions import views as position_views
from orders.scheduled import views as scheduled_views
from orders.tradebook import views as tradebook_views
from pnl import views as pnl_views
from trading_site import pages

# The pages of one order, two-factor setting, account, strategy or scheduled order, each
# group under its one prefix.
order_pages = [
    path("", order_views.order_detail, name="order_detail"),
    path("row/", order_views.order_row, name="order_row"),
    path("cancel/", order_views.order_cancel, name="order_cancel"),
    path("modify/", order_views.order_modify, name="order_modify"),
]

two_factor_pages = [
    path("", account_views.two_factor_settings, name="two_factor"),
    path("start/", account_views.two_factor_start, name="two_factor_start"),
    path("confirm/", account_views.two_factor_confirm, name="two_factor_confirm"),
    path(
        "recovery-codes/",
        account_views.two_factor_recovery_codes,
        name="two_factor_recovery_codes",
    ),
    path("disable/", account_views.two_factor_disable, name="two_factor_disable"),
]

account_pages = [
    path("", account_views.account_edit, name="account_edit"),
    path("connect/", order_views.account_connect, name="account_connect"),
    path("deactivate/", account_views.account_deactivate, name="account_deactivate"),
    path("kill-switch/", order_views.account_kill_switch, name="account_kill_switch"),
    path("enable-trading/", order_views.account_enable_trading, name="account_enable_trading"),
]

strategy_pages = [
    path("", account_views.strategy_edit, name="strategy_edit"),
    path("webhook/", alert_views.webhook_save, name="strategy_webhook_save"),
    path("webhook/rotate/", alert_views.webhook_rotate, name="strategy_webhook_rotate"),
    path("delete/", account_views.strategy_delete, name="strategy_delete"),
]

scheduled_pages = [
    path("", scheduled_views.scheduled_edit, name="scheduled_edit"),
    path("delete/", scheduled_views.scheduled_delete, name="scheduled_delete"),
]

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("login/", account_views.login_view, name="login"),
    path("login/code/", account_views.login_code, name="login_code"),
    path("logout/", account_views.logout_view, name="logout"),
    path("dashboard/numbers/", pages.dashboard_accounts, name="dashboard_accounts"),
    # Orders
    path("orders/", order_views.order_list, name="orders"),
    path("orders/export.csv", order_views.order_list_csv, name="orders_csv"),
    path("orders/new/", order_views.place_order, name="place_order"),
    path("orders/batch/", order_views.batch_orders, name="batch_orders"),
    path("orders/batch/results/<str:key>/", order_views.batch_results, name="batch_results"),
    path("orders/<int:pk>/", include(order_pages)),
    path("instruments/search/", order_views.instrument_search, name="instrument_search"),
    path("instruments/facts/", order_views.instrument_facts, name="instrument_facts"),
    # Positions, holdings and the trade book
    path("positions/", position_views.positions_page, name="positions"),
    path("positions/exit/", position_views.exit_position, name="positions_exit"),
    path("positions/exit-all/", position_views.exit_all_positions, name="positions_exit_all"),
    path("trades/", tradebook_views.trade_book, name="trades"),
    path("trades/export.csv", tradebook_views.trade_book_csv, name="trades_csv"),
    # PnL and monitoring
    path("pnl/", pnl_views.pnl_page, name="pnl"),
    path("pnl/brokerage/<int:pk>/", pnl_views.brokerage_plan, name="brokerage_plan"),
    path("monitoring/", monitoring_views.monitoring_page, name="monitoring"),
    # Settings
    path("settings/", pages.settings_home, name="settings"),
    path("settings/password/", account_views.password_change, name="password_change"),
    path("settings/two-factor/", include(two_factor_pages)),
    path("settings/api-keys/", account_views.api_keys_page, name="api_keys"),
    path("settings/api-keys/<int:pk>/revoke/", account_views.api_key_revoke, name="api_key_revoke"),
    path("settings/accounts/new/", account_views.account_create, name="account_create"),
    path("settings/accounts/<int:pk>/", include(account_pages)),
    path("kill-switch/", order_views.kill_switch_chooser, name="kill_switch"),
    path("settings/strategies/new/", account_views.strategy_edit, name="strategy_create"),
    path("settings/strategies/<int:pk>/", include(strategy_pages)),
    path(
        "settings/regenerate-permission/",
        account_views.regenerate_permission,
        name="regenerate_permission",
    ),
    path("settings/scheduled/new/", scheduled_views.scheduled_edit, name="scheduled_create"),
    path("settings/scheduled/<int:pk>/", include(scheduled_pages)),
]
