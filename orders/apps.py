from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The OpenAlgo API's credential in the OpenAPI schema (a drf-spectacular extension).
        from orders.openalgo import schema  # noqa: F401  # reason: registers on import
