"""Admin: monitoring runs (read-only, steps readable), trading holidays, heartbeats."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from monitoring.models import Heartbeat, MonitoringRun, TradingHoliday
from trading_site.core.admin import DeletableReadOnlyAdmin


@admin.register(MonitoringRun)
class MonitoringRunAdmin(DeletableReadOnlyAdmin):
    list_display = (
        "cycle_key",
        "user",
        "trigger",
        "status",
        "started_at",
        "duration_ms",
        "failed_steps",
    )
    # A date filter, not date_hierarchy: the drill-down on a DateTimeField converts times in
    # SQL (CONVERT_TZ), a 500 on a MariaDB without time-zone tables; this filter compares
    # with boundaries computed in Python.
    list_filter = ("status", "trigger", ("started_at", admin.DateFieldListFilter))
    search_fields = ("user__username", "user__email", "cycle_key")
    list_select_related = ("user",)
    readonly_fields = ("user", *MonitoringRun.SUMMARY_FIELDS, "steps_table", "error_list")
    exclude = ("steps", "errors")

    @admin.display(description="failed steps")
    def failed_steps(self, run: MonitoringRun) -> str:
        failed = [str(s.get("step")) for s in run.steps or [] if s.get("outcome") == "failed"]
        return ", ".join(failed) or "-"

    @admin.display(description="steps")
    def steps_table(self, run: MonitoringRun):
        return format_html_join(
            "\n",
            "<div>{}. {}: <strong>{}</strong> ({} ms) {}</div>",
            (
                (
                    s.get("step"),
                    s.get("name"),
                    s.get("outcome"),
                    s.get("duration_ms", 0),
                    s.get("reason", ""),
                )
                for s in run.steps or []
            ),
        )

    @admin.display(description="errors")
    def error_list(self, run: MonitoringRun):
        return format_html_join("\n", "<div>{}</div>", ((e,) for e in run.errors or [])) or "-"


@admin.register(TradingHoliday)
class TradingHolidayAdmin(admin.ModelAdmin):
    list_display = ("date", "description")
    search_fields = ("description",)
    date_hierarchy = "date"


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "beat_at")
    readonly_fields = ("name", "beat_at")

    def has_add_permission(self, request):
        return False
