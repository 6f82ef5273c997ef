from django.apps import AppConfig


class PnlConfig(AppConfig):
    name = "pnl"
    default_auto_field = "django.db.models.BigAutoField"
