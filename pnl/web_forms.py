"""Forms of the PnL pages: the account's brokerage plan (the web page's and the admin's).

Forms only parse and show errors; the plan is saved by pnl.services.save_brokerage_plan.
"""

from __future__ import annotations

from typing import Any

from django import forms

from pnl.models import BrokeragePlanSetting


class BrokeragePlanForm(forms.ModelForm):
    class Meta:
        model = BrokeragePlanSetting
        fields = ["mode", "flat_per_order", "percent", "cap_per_order", "delivery_free"]
        labels = {
            "flat_per_order": "Flat brokerage per executed order (₹)",
            "percent": "Brokerage, % of the order's turnover",
            "cap_per_order": "At most, per order (₹; empty: no cap)",
            "delivery_free": "No brokerage on delivery (CNC)",
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for name in ("flat_per_order", "percent", "cap_per_order"):
            value = data.get(name)
            if value is not None and value < 0:
                self.add_error(name, "must not be negative")
        if data.get("percent") is not None and data["percent"] > 5:
            self.add_error("percent", "more than 5 % of turnover is not a brokerage plan")
        return data
