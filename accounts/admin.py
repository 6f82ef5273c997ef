"""Admin for accounts. Secrets (credentials, access tokens, token hashes) are never shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserCreationForm

from accounts import api_keys, services, two_factor
from accounts.admin_audit import AuditedAdmin
from accounts.admin_site import VERIFIED_BY_LOGIN_FORM
from accounts.audit import (
    permission_state,
    record_permission_saved,
    record_strategy_saved,
    strategy_state,
)
from accounts.models import (
    CREDENTIAL_FIELDS,
    ApiKey,
    AuthSession,
    BrokerAccount,
    BrokerLoginLease,
    BrokerSession,
    EntryRegeneratePermission,
    RecoveryCode,
    Strategy,
    TwoFactorDevice,
    User,
)
from trading_site.core.admin import DeletableReadOnlyAdmin
from trading_site.core.errors import RateLimitExceeded, ValidationFailed


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin login, throttled per username and per IP by the limiter of POST /api/login
    and the web login (the same buckets: guesses on one page count on the others). A user
    with two-factor login gives the code in the same form; each attempt, whichever part is
    wrong, takes one token from the limiter."""

    otp = forms.CharField(
        label="Two-factor code",
        required=False,
        max_length=32,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"}
        ),
        help_text="From your authenticator app, or one of your recovery codes.",
    )

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        client_ip = self.request.META.get("REMOTE_ADDR") if self.request else None
        try:
            services.check_login_rate(username=username, client_ip=client_ip or None)
        except RateLimitExceeded as exc:
            raise forms.ValidationError(
                f"Too many login attempts. Try again in {exc.retry_after} seconds.",
                code="throttled",
            ) from None
        super().clean()
        cleaned = self.cleaned_data
        user = self.get_user()
        if user is not None and two_factor.has_two_factor(user):
            code = self.cleaned_data.get("otp") or ""
            if not code:
                raise forms.ValidationError(
                    "Enter the code from your authenticator app.", code="otp_required"
                )
            if two_factor.verify_second_factor(user=user, code=code) is None:
                raise forms.ValidationError(
                    "That two-factor code is wrong, expired or already used.", code="otp_invalid"
                )
            if self.request is not None:
                setattr(self.request, VERIFIED_BY_LOGIN_FORM, user.pk)
        return cleaned


admin.site.login_form = ThrottledAdminLoginForm


def _per_row_action(
    *, description: str, pending: dict[str, Any], apply: Callable[[Any], object], done: str
):
    """An admin action that runs one service on each selected row it still applies to
    (`pending` filters the selection), then says on how many (`done` takes `{count}`)."""

    @admin.action(description=description)
    def action(modeladmin, request, queryset):
        rows = list(queryset.filter(**pending))
        for row in rows:
            apply(row)
        modeladmin.message_user(request, done.format(count=len(rows)), messages.SUCCESS)

    return action


def _revoke_action(*, noun: str, revoke: Callable[[Any], object]):
    """Revoke each selected credential (session, API key) not revoked yet."""
    return _per_row_action(
        description=f"Revoke the selected {noun}s now",
        pending={"revoked_at__isnull": True},
        apply=revoke,
        done=f"Revoked {{count}} {noun}(s).",
    )


class _UserRecordsAdmin(DeletableReadOnlyAdmin):
    """Records the system keeps of one user (the two-factor device, recovery codes): found
    by username, the user fetched with the list."""

    search_fields = ("user__username",)
    list_select_related = ("user",)


class _UserSettingsAdmin(admin.ModelAdmin):
    """A user's own rows, edited here (broker accounts, strategies): the user as a raw id, so
    no page loads every user, and fetched with the list."""

    list_select_related = ("user",)
    raw_id_fields = ("user",)


class TraderCreationForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = TraderCreationForm
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )
    list_display = ("username", "email", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("username", "email", "first_name", "last_name")
    actions = ["revoke_api_sessions", "deactivate_users", "reset_two_factor"]

    @admin.action(description="Revoke all API sessions and API keys of the selected users")
    def revoke_api_sessions(self, request, queryset):
        count = sum(services.revoke_user_sessions(user=user) for user in queryset)
        keys = sum(api_keys.revoke_user_api_keys(user=user) for user in queryset)
        self.message_user(
            request, f"Revoked {count} session(s) and {keys} API key(s).", messages.SUCCESS
        )

    @admin.action(description="Deactivate the selected users (and revoke their sessions)")
    def deactivate_users(self, request, queryset):
        for user in queryset:
            user.is_active = False
            user.save(update_fields=["is_active", "updated_at"])
            services.revoke_user_sessions(user=user)
            api_keys.revoke_user_api_keys(user=user)
        self.message_user(request, f"Deactivated {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Reset two-factor login (the user lost phone and recovery codes)")
    def reset_two_factor(self, request, queryset):
        for user in queryset:
            two_factor.reset_two_factor(user=user)
        self.message_user(
            request,
            f"Two-factor login reset for {queryset.count()} user(s); staff among them must "
            "set it up again at their next login.",
            messages.SUCCESS,
        )


@admin.register(AuthSession)
class AuthSessionAdmin(DeletableReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "client_ip",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at", "expires_at")
    search_fields = ("user__username", "user__email", "client_ip")
    list_select_related = ("user",)
    # The hash is not the token, but it is the cache key: no reason to show it.
    exclude = ("token_hash",)
    actions = ["revoke_sessions"]

    revoke_sessions = _revoke_action(
        noun="session", revoke=lambda session: services.revoke_auth_session(session=session)
    )


@admin.register(ApiKey)
class ApiKeyAdmin(DeletableReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "name",
        "scope",
        "display_prefix",
        "bound_account",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__username", "name", "display_prefix")
    list_select_related = ("user", "bound_account")
    exclude = ("key_hash",)
    actions = ["revoke_keys"]

    revoke_keys = _revoke_action(
        noun="API key", revoke=lambda api_key: api_keys.revoke_api_key(api_key=api_key)
    )


class BrokerAccountAdminForm(forms.ModelForm):
    """Credentials are write-only: one password-style field per key, blank keeps the value."""

    clear_credentials = forms.MultipleChoiceField(
        choices=[(key, key) for key in CREDENTIAL_FIELDS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Remove these stored credential keys.",
    )

    class Meta:
        model = BrokerAccount
        fields = (
            "user",
            "account_name",
            "broker",
            "is_active",
            "confirm_live_orders",
            "cash_available",
            "margin_utilized",
            "net_margin",
            "total_mtm",
            "unrealized_mtm",
            "realized_mtm",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = set((self.instance.credentials or {}) if self.instance.pk else {})
        for key in CREDENTIAL_FIELDS:
            self.fields[f"credential_{key}"] = forms.CharField(
                label=key.replace("_", " "),
                required=False,
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                help_text="stored; leave blank to keep" if key in stored else "not set",
            )

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        merged = dict(self.instance.credentials or {}) if self.instance.pk else {}
        for key in cleaned.get("clear_credentials") or []:
            merged.pop(key, None)
        for key in CREDENTIAL_FIELDS:
            value = cleaned.get(f"credential_{key}")
            if value:
                merged[key] = value
        broker = cleaned.get("broker") or self.instance.broker
        try:
            self._credentials = services.validate_credentials(broker=broker, credentials=merged)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned

    def save(self, commit=True):
        self.instance.credentials = self._credentials
        return super().save(commit=commit)


@admin.register(BrokerAccount)
class BrokerAccountAdmin(_UserSettingsAdmin):
    form = BrokerAccountAdminForm
    list_display = (
        "account_name",
        "user",
        "broker",
        "is_active",
        "trading_locked_at",
        "cash_available",
        "net_margin",
        "total_mtm",
        "last_synced_at",
    )
    list_filter = ("broker", "is_active")
    search_fields = ("account_name", "user__username", "user__email")
    # The trading lock is the kill switch's and the trader's (audited there), not the admin's.
    readonly_fields = (
        "credential_keys",
        "trading_locked_at",
        "trading_locked_by",
        "last_synced_at",
        "created_at",
        "updated_at",
    )
    actions = ["deactivate_accounts"]

    @admin.display(description="stored credential keys")
    def credential_keys(self, obj: BrokerAccount) -> str:
        return ", ".join(sorted(obj.credentials or {})) or "-"

    deactivate_accounts = _per_row_action(
        description="Deactivate the selected accounts",
        pending={"is_active": True},
        apply=lambda account: services.deactivate_broker_account(account=account),
        done="Deactivated {count} account(s).",
    )


@admin.register(BrokerSession)
class BrokerSessionAdmin(DeletableReadOnlyAdmin):
    list_display = ("account", "broker_user_id", "created_at", "expires_at", "invalidated_at")
    list_filter = (("invalidated_at", admin.EmptyFieldListFilter), "account__broker")
    search_fields = ("account__account_name", "account__user__username", "broker_user_id")
    list_select_related = ("account",)
    exclude = ("access_token",)


@admin.register(BrokerLoginLease)
class BrokerLoginLeaseAdmin(DeletableReadOnlyAdmin):
    """Who is logging an account in right now (an empty owner: nobody)."""

    list_display = ("account", "owner", "expires_at")
    list_select_related = ("account",)


@admin.register(Strategy)
class StrategyAdmin(AuditedAdmin, _UserSettingsAdmin):
    list_display = (
        "name",
        "user",
        "allow_regeneration",
        "max_regenerations",
        "trailing_sl_enabled",
        "max_slippage_pct",
        "updated_at",
    )
    list_filter = ("allow_regeneration", "trailing_sl_enabled")
    search_fields = ("name", "user__username")

    # Audited as the API's and the settings page's changes are, with the admin as the actor.
    def audited_state(self, obj):
        return strategy_state(obj)

    def record_saved(self, obj, *, before, actor):
        record_strategy_saved(strategy=obj, before=before, actor=actor)

    def delete_audited(self, obj, *, actor):
        services.delete_strategy(strategy=obj, actor=actor)


class EntryRegeneratePermissionAdminForm(forms.ModelForm):
    class Meta:
        model = EntryRegeneratePermission
        fields = ("user", "enabled", "strategies")

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        user, strategies = cleaned.get("user"), cleaned.get("strategies")
        if user is not None and strategies is not None:
            foreign = [s.name for s in strategies if s.user_id != user.pk]
            if foreign:
                raise forms.ValidationError(f"Strategies of another user: {', '.join(foreign)}")
        return cleaned


@admin.register(EntryRegeneratePermission)
class EntryRegeneratePermissionAdmin(AuditedAdmin):
    form = EntryRegeneratePermissionAdminForm
    list_display = ("user", "enabled", "strategy_names", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("user__username",)
    raw_id_fields = ("user",)
    filter_horizontal = ("strategies",)

    @admin.display(description="strategies")
    def strategy_names(self, obj: EntryRegeneratePermission) -> str:
        return ", ".join(s.name for s in obj.strategies.all()) or "-"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").prefetch_related("strategies")

    # Audited as the API's and the settings page's changes are, with the admin as the actor.
    def audited_state(self, obj):
        return permission_state(obj)

    def record_saved(self, obj, *, before, actor):
        record_permission_saved(permission=obj, before=before, actor=actor)

    def delete_audited(self, obj, *, actor):
        services.delete_regenerate_permission(permission=obj, actor=actor)


@admin.register(TwoFactorDevice)
class TwoFactorDeviceAdmin(_UserRecordsAdmin):
    """Whether a user has two-factor login; the secret is never shown. To reset a user's,
    use the action on the users list."""

    list_display = ("user", "confirmed_at", "created_at")
    list_filter = (("confirmed_at", admin.EmptyFieldListFilter),)
    exclude = ("secret", "last_used_step")


@admin.register(RecoveryCode)
class RecoveryCodeAdmin(_UserRecordsAdmin):
    list_display = ("user", "created_at", "used_at")
    list_filter = (("used_at", admin.EmptyFieldListFilter),)
    exclude = ("code_hash",)
