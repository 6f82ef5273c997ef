"""The scheduled-order form of the settings pages."""

from __future__ import annotations

from django import forms

from orders.models import Order
from orders.web_forms import account_choices
from trading_site.core.safe_json import DepthLimitedJSONField

WEEKDAY_CHOICES = [
    (0, "Mon"),
    (1, "Tue"),
    (2, "Wed"),
    (3, "Thu"),
    (4, "Fri"),
    (5, "Sat"),
    (6, "Sun"),
]


class ScheduledOrderForm(forms.Form):
    """A schedule: when (IST time and weekdays) and what (the API's order fields as JSON)."""

    name = forms.CharField(max_length=100)
    account_id = forms.TypedChoiceField(label="Account", coerce=int, choices=())
    kind = forms.ChoiceField(choices=Order.Kind.choices, initial=Order.Kind.SINGLE)
    time_of_day = forms.TimeField(
        label="Time (IST)", widget=forms.TimeInput(attrs={"type": "time"})
    )
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        initial=[0, 1, 2, 3, 4],
    )
    enabled = forms.BooleanField(required=False, initial=True)
    template = DepthLimitedJSONField(
        label="Order fields (JSON)",
        help_text='The fields of POST /api/orders (single), e.g. {"symbol": "RELIANCE", '
        '"order_side": "BUY", "order_type": "MARKET", "order_quantity": 1}, or of '
        "POST /api/algo-orders (bracket).",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account_id"].choices = account_choices(user)

    def clean_template(self):
        value = self.cleaned_data["template"]
        if not isinstance(value, dict) or not value:
            raise forms.ValidationError("must be a JSON object with the order's fields")
        return value
