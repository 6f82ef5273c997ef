"""The strategy page's webhook form (accounts' strategy page shows it: orders.templatetags)."""

from __future__ import annotations

from django import forms

from accounts.models import BrokerAccount
from accounts.selectors import active_accounts_by_name
from orders.models import ProductType


class WebhookForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=BrokerAccount.objects.none(),
        label="Place alerts on account",
        empty_label=None,
    )
    default_product = forms.ChoiceField(
        choices=ProductType.choices,
        initial=ProductType.MIS,
        label="Product when the alert names none",
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Accept alerts")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        account = self.fields["account"]
        assert isinstance(account, forms.ModelChoiceField)
        account.queryset = active_accounts_by_name(user=user)
