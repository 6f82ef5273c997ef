from django.apps import AppConfig


class PnlConfig(AppConfig):
    name = "pnl"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # New prices move the MTM of the positions that hold them (pnl.intraday).
        from orders.market.signals import fair_prices_recorded  # reason: app registry ready
        from pnl.intraday import on_fair_prices_recorded  # reason: imports models

        fair_prices_recorded.connect(on_fair_prices_recorded, dispatch_uid="pnl-live-mtm")
