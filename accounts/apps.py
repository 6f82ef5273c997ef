from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # reason: Django connects receivers and schema extensions once the apps are ready
        from accounts import schema, signals  # noqa: F401


class TwoFactorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with a site that requires two-factor login of staff."""

    default = False  # "accounts" alone still means AccountsConfig

    default_site = "accounts.admin_site.TwoFactorAdminSite"
