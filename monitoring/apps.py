from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # reason: the admin (earlier in INSTALLED_APPS) has autodiscovered every admin.py by now
        from monitoring.admin_actions import attach_to_user_admin

        attach_to_user_admin()
