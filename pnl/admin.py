"""Admin for PnL: lots, daily history and per-instrument state, all read-only (derived data).

Lots and states are rewritten by every FIFO run, and daily rows are history kept forever, so
none is added, edited or deleted by hand; an action recomputes the selected accounts instead.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import redirect

from accounts.admin_audit import AuditedDeleteAdmin
from accounts.audit import admin_actor
from pnl import services
from pnl.models import BrokeragePlanSetting, MtmSample, PnlDaily, PnlInstrumentState, PnlLot
from pnl.web_forms import BrokeragePlanForm
from trading_site.core.admin import ReadOnlyAdmin
from trading_site.core.errors import Busy, Conflict


class _ReadOnlyAdmin(ReadOnlyAdmin):
    list_select_related = ("account", "account__user")


@admin.action(description="Recompute FIFO PnL of the selected rows' accounts (full re-match)")
def recompute_accounts(modeladmin, request, queryset):
    accounts = {row.account for row in queryset.select_related("account")}
    busy = []
    for account in accounts:
        # Dropping the fingerprints makes the run re-match every instrument from scratch.
        PnlInstrumentState.objects.filter(account=account).delete()
        try:
            services.compute_account_pnl(account=account)
        except Busy:  # the account's exclusion stayed taken (a cycle, an event) or RowsBusy
            busy.append(account)
    if len(busy) < len(accounts):
        modeladmin.message_user(
            request,
            f"Recomputed PnL of {len(accounts) - len(busy)} account(s).",
            messages.SUCCESS,
        )
    if busy:
        # Their run wrote nothing (a 500 before): the stored figures stand.
        names = ", ".join(sorted(str(account) for account in busy))
        modeladmin.message_user(
            request, f"Busy with another change, try again: {names}.", messages.WARNING
        )


@admin.register(PnlLot)
class PnlLotAdmin(_ReadOnlyAdmin):
    list_display = (
        "id",
        "account",
        "trading_symbol",
        "exchange_instrument_id",
        "kind",
        "entry_side",
        "quantity",
        "entry_order_id",
        "entry_time",
        "entry_price",
        "exit_order_id",
        "exit_time",
        "exit_price",
        "realized_pnl",
        "fair_price_used",
        "unrealized_pnl",
        "computed_at",
    )
    list_filter = ("kind", "entry_side", "exchange_segment", "entry_time", "account__broker")
    search_fields = (
        "trading_symbol",
        "entry_order_id",
        "exit_order_id",
        "=exchange_instrument_id",
        "account__account_name",
        "account__user__username",
    )
    # No date_hierarchy on a DateTimeField: it needs the database's time zone tables.
    raw_id_fields = ("account", "entry_leg", "exit_leg")
    actions = [recompute_accounts]


@admin.register(PnlDaily)
class PnlDailyAdmin(_ReadOnlyAdmin):
    list_display = (
        "trading_date",
        "account",
        "realized",
        "unrealized",
        "turnover",
        "fills",
        "updated_at",
    )
    list_filter = ("trading_date", "account__broker")
    search_fields = ("account__account_name", "account__user__username")
    date_hierarchy = "trading_date"
    ordering = ("-trading_date", "account")
    actions = [recompute_accounts]


@admin.register(PnlInstrumentState)
class PnlInstrumentStateAdmin(_ReadOnlyAdmin):
    list_display = (
        "account",
        "trading_symbol",
        "exchange_segment",
        "exchange_instrument_id",
        *PnlInstrumentState.RESULT_FIELDS,
        "fingerprint",
    )
    list_filter = ("exchange_segment", "account__broker")
    search_fields = (
        "trading_symbol",
        "=exchange_instrument_id",
        "account__account_name",
        "account__user__username",
    )
    actions = [recompute_accounts]


@admin.register(MtmSample)
class MtmSampleAdmin(_ReadOnlyAdmin):
    list_display = ("account", "trading_date", "minute", "mtm")
    list_filter = ("trading_date",)
    search_fields = ("account__account_name", "account__user__username")
    date_hierarchy = "trading_date"


class BrokeragePlanAdminForm(BrokeragePlanForm):
    class Meta(BrokeragePlanForm.Meta):
        fields = ["account", *BrokeragePlanForm.Meta.fields]


@admin.register(BrokeragePlanSetting)
class BrokeragePlanSettingAdmin(AuditedDeleteAdmin):
    """The traders' own brokerage plans (they edit them on the PnL page). An add or a change
    is checked as the page checks it and saved by the page's service, audited on the account
    with the admin as the actor (none when nothing changed); a plan stays with its account.
    A delete (one, or each of "delete selected") is the service's too: audited, the account
    back on the default plan."""

    form = BrokeragePlanAdminForm

    list_display = (
        "account",
        "mode",
        "flat_per_order",
        "percent",
        "cap_per_order",
        "delivery_free",
    )
    list_filter = ("mode", "delivery_free")
    search_fields = ("account__account_name", "account__user__username")
    list_select_related = ("account",)
    raw_id_fields = ("account",)

    def get_readonly_fields(self, request, obj=None):
        return ("account",) if obj is not None else ()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Conflict as exc:  # the plan deleted (by another admin) while this save ran
            self.message_user(request, exc.message, messages.ERROR)
            return redirect("admin:pnl_brokerageplansetting_changelist")

    def save_model(self, request, obj, form, change):
        services.save_brokerage_plan(
            account=obj.account,
            actor=admin_actor(request.user),
            **{name: form.cleaned_data[name] for name in BrokeragePlanForm.Meta.fields},
        )
        # The row the service saved (made by it on an add): the admin's log and redirect.
        obj.pk = BrokeragePlanSetting.objects.get(account=obj.account).pk

    def delete_audited(self, obj, *, actor):
        services.delete_brokerage_plan(plan=obj, actor=actor)
