from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # reason: Django connects receivers and schema extensions once the apps are ready
        from accounts import schema, signals  # noqa: F401
