"""The scheduled-order form of the settings pages: when (IST time and weekdays) and what
(the same order ticket as the place-order page)."""

from __future__ import annotations

from django import forms

from orders.web_forms import OrderTicketForm

WEEKDAY_CHOICES = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class ScheduledOrderForm(OrderTicketForm):
    """A schedule: its name, time and weekdays, and the order ticket it places."""

    name = forms.CharField(max_length=100)
    time_of_day = forms.TimeField(
        label="Time (IST)", widget=forms.TimeInput(attrs={"type": "time"})
    )
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        initial=[0, 1, 2, 3, 4],
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")
