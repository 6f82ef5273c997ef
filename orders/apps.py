from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The paper exchange's and market data's admin lives beside the broker code.
        from orders.market import admin  # noqa: F401
