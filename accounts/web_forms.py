"""Forms of the web UI's account pages (login, broker accounts, strategies, permission).

Forms only parse and show errors; the rules live in accounts.services. `add_service_errors`
puts a service's `ValidationFailed.details` (any DomainError's) next to the form fields they name (used by every
app's web forms).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from accounts.models import CREDENTIAL_FIELDS, ApiKey, Broker, BrokerAccount, Strategy
from accounts.selectors import active_accounts_by_name
from trading_site.core.market_hours import validate_nameable_day

CREDENTIAL_LABELS = {
    "app_key": "App key",
    "secret_key": "Secret key",
    "client_id": "Client ID",
    "user_id": "User ID",
    "password": "Password",
    "totp_secret": "TOTP secret",
    "base_url": "Base URL override",
}


def _messages(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(_messages(item))
        return out
    if isinstance(value, Mapping):
        out = []
        for key, inner in value.items():
            out.extend(f"{key}: {m}" for m in _messages(inner))
        return out
    return [str(value)]


def add_service_errors(
    form: forms.BaseForm,
    details: Mapping[str, Any] | None,
    *,
    fallback: str = "",
    field_map: Mapping[str, str] | None = None,
) -> None:
    """Attach a service error's `details` to the form: each named field gets its messages
    (renamed through `field_map` where the service's names differ from the form's); nested
    details such as {"credentials": {"app_key": [...]}} reach the sub-field when the form has
    it; anything else becomes a form-wide error."""
    field_map = field_map or {}
    placed = False
    for key, value in (details or {}).items():
        name = field_map.get(key, key)
        if isinstance(value, Mapping) and name not in form.fields:
            for sub, inner in value.items():
                sub_name = field_map.get(sub, sub)
                if sub_name in form.fields:
                    for message in _messages(inner):
                        form.add_error(sub_name, message)
                    placed = True
                else:
                    for message in _messages(inner):
                        form.add_error(None, f"{sub}: {message}")
                    placed = True
            continue
        target = name if name in form.fields else None
        for message in _messages(value):
            form.add_error(target, message if target else f"{key}: {message}")
        placed = True
    if not placed:
        form.add_error(None, fallback or "The request was not valid.")


class LoginForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


def _credential_fields() -> dict[str, forms.Field]:
    # Write-only: never rendered back (render_value=False); a blank field keeps the old value.
    return {
        name: forms.CharField(
            label=CREDENTIAL_LABELS.get(name, name),
            required=False,
            max_length=500,
            strip=True,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        )
        for name in CREDENTIAL_FIELDS
    }


class BrokerAccountForm(forms.Form):
    account_name = forms.CharField(max_length=100)
    broker = forms.ChoiceField(choices=Broker.choices, initial=Broker.PAPER)
    confirm_live_orders = forms.BooleanField(
        label="Ask before placing a live order",
        required=False,
        initial=True,
        help_text="Live accounts: the web order forms show a confirmation step first "
        "(API clients are never asked).",
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # The broker of an existing account does not change (its orders belong to it).
            del self.fields["broker"]
        self.fields.update(_credential_fields())

    def credentials(self) -> dict[str, str]:
        return {
            name: self.cleaned_data[name]
            for name in CREDENTIAL_FIELDS
            if self.cleaned_data.get(name)
        }


class KillSwitchForm(forms.Form):
    confirmation = forms.CharField(
        max_length=100,
        label="Type the account name to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, account_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.account_name = account_name
        self.fields["confirmation"].widget.attrs["data-typed-confirm"] = account_name

    def clean_confirmation(self) -> str:
        value = self.cleaned_data["confirmation"].strip()
        if value != self.account_name:
            raise forms.ValidationError(
                "The text does not match the account name; nothing was done."
            )
        return value


class StrategyForm(forms.ModelForm):
    class Meta:
        model = Strategy
        fields = Strategy.SETTINGS
        labels = {
            "allow_regeneration": "Re-place rejected entries",
            "max_regenerations": "Most regenerations per order",
            "trailing_sl_enabled": "Trailing stop-loss",
            "trailing_sl_trigger": "Trail trigger distance",
            "trailing_sl_step": "Trail step",
            "max_slippage_pct": "Most slippage for fair-price re-pricing (%)",
        }

    def validate_unique(self) -> None:
        """Name uniqueness is the service's rule (it reports it on the name field)."""

    def _post_clean(self) -> None:
        # Do not let ModelForm build a half-bound instance; the service writes the row.
        pass


class RegeneratePermissionForm(forms.Form):
    enabled = forms.BooleanField(
        required=False, label="Allow the monitoring loop to re-place rejected entries"
    )
    strategies = forms.ModelMultipleChoiceField(
        queryset=Strategy.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="For these strategies",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        strategies = self.fields["strategies"]
        assert isinstance(strategies, forms.ModelMultipleChoiceField)
        strategies.queryset = Strategy.objects.filter(user=user).order_by("name")


# ---- two-factor login and API keys -----------------------------------------------------------


class OneTimeCodeInput(forms.TextInput):
    """A code field that comes back empty after a failed try: a spent or wrong code is
    worth nothing, and the next one is typed fresh."""

    def format_value(self, value):
        return None


def _code_field(label: str = "Code from your authenticator app") -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=32,
        strip=True,
        widget=OneTimeCodeInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )


class TwoFactorCodeForm(forms.Form):
    """The login's second step, and every page that asks for a code."""

    code = _code_field()

    def __init__(self, *args, allow_recovery: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if allow_recovery:
            self.fields["code"].help_text = "Lost your phone? Enter one of your recovery codes."


class TwoFactorDisableForm(forms.Form):
    password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    code = _code_field("Code from your authenticator app (or a recovery code)")


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the key is for, e.g. “Amibroker on the office PC”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scope = forms.ChoiceField(
        choices=ApiKey.Scope.choices,
        initial=ApiKey.Scope.READ,
        widget=forms.RadioSelect,
        help_text="Read only: orders, positions, PnL. Trade: also place, modify and cancel.",
    )
    bound_account = forms.ModelChoiceField(
        queryset=BrokerAccount.objects.none(),
        required=False,
        empty_label="Not bound (desk API, every account)",
        label="Bound to account",
        help_text=(
            "A bound key acts for that one account, on the account-scoped (OpenAlgo) API; "
            "the desk API refuses it."
        ),
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires after (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at midnight (IST) after this day.",
        validators=[validate_nameable_day],
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        bound_account = self.fields["bound_account"]
        assert isinstance(bound_account, forms.ModelChoiceField)
        bound_account.queryset = active_accounts_by_name(user=user)
