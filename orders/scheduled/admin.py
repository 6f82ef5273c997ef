"""Admin for scheduled orders and the record of their daily runs."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from accounts.admin_audit import AuditedAdmin
from orders.scheduled.models import ScheduledOrder, ScheduledOrderRun
from orders.scheduled.services import (
    WEEKDAYS_RULE,
    delete_scheduled_order,
    record_schedule_saved,
    schedule_state,
    validate_template,
    weekdays_problem,
)
from trading_site.core.admin import ReadOnlyAdmin, ReadOnlyInline
from trading_site.core.errors import DomainError
from trading_site.core.safe_json import DepthLimitedJSONField


class ScheduledOrderRunInline(ReadOnlyInline):
    model = ScheduledOrderRun
    fields = ("trading_date", "status", "order", "error", "created_at")
    readonly_fields = fields
    ordering = ("-trading_date",)


class ScheduledOrderAdminForm(forms.ModelForm):
    """An admin edit passes the template validation of the API and the web form."""

    class Meta:
        model = ScheduledOrder
        fields = (
            "user",
            "account",
            "name",
            "kind",
            "template",
            "time_of_day",
            "weekdays",
            "enabled",
        )
        field_classes = {"template": DepthLimitedJSONField, "weekdays": DepthLimitedJSONField}

    def clean_weekdays(self):
        weekdays = self.cleaned_data.get("weekdays")
        if not isinstance(weekdays, list) or weekdays_problem(weekdays):
            raise forms.ValidationError(WEEKDAYS_RULE)
        return sorted(set(weekdays))

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        user, account = cleaned.get("user"), cleaned.get("account")
        if user is None or account is None or "template" not in cleaned:
            return cleaned
        if account.user_id != user.pk:
            raise forms.ValidationError("The account must belong to the schedule's user.")
        try:
            validate_template(
                user=user,
                kind=cleaned.get("kind") or ScheduledOrder._meta.get_field("kind").default,
                account_id=account.pk,
                template=cleaned["template"],
            )
        except DomainError as exc:
            raise forms.ValidationError(
                {"template": [f"{k}: {v}" for k, v in (exc.details or {}).items()] or exc.message}
            ) from None
        return cleaned


@admin.register(ScheduledOrder)
class ScheduledOrderAdmin(AuditedAdmin):
    form = ScheduledOrderAdminForm
    list_display = ("name", "user", "account", "kind", "time_of_day", "weekdays", "enabled")
    list_filter = ("enabled", "kind")
    search_fields = ("name", "user__username", "account__account_name")
    list_select_related = ("user", "account")
    raw_id_fields = ("user", "account")
    inlines = (ScheduledOrderRunInline,)

    # Audited as the API's and the settings pages' changes are, with the admin as the actor.
    def audited_state(self, obj):
        return schedule_state(obj)

    def record_saved(self, obj, *, before, actor):
        record_schedule_saved(schedule=obj, before=before, actor=actor)

    def delete_audited(self, obj, *, actor):
        delete_scheduled_order(schedule=obj, actor=actor)


@admin.register(ScheduledOrderRun)
class ScheduledOrderRunAdmin(ReadOnlyAdmin):
    list_display = ("schedule", "trading_date", "status", "order", "created_at")
    list_filter = ("status", "trading_date")
    search_fields = ("schedule__name",)
    list_select_related = ("schedule", "order")
    raw_id_fields = ("schedule", "order")
