"""The alert-webhook panel on the strategy settings page (accounts' template shows it; the
webhook is the orders app's)."""

from __future__ import annotations

import json

from django import template
from django.urls import reverse

from orders.alerts import selectors
from orders.alerts.forms import WebhookForm
from orders.alerts.views import SECRET_HEADER

register = template.Library()

EXAMPLE_ALERT = {
    "id": "{{strategy.order.id}}-{{timenow}}",
    "symbol": "{{ticker}}",
    "exchange": "NSE",
    "action": "{{strategy.order.action}}",
    "quantity": "{{strategy.order.contracts}}",
    "price": "{{close}}",
}


@register.inclusion_tag("orders/_strategy_webhook.html", takes_context=True)
def strategy_webhook_panel(context, strategy):
    request = context["request"]
    webhook = selectors.webhook_of(strategy=strategy)
    initial = {}
    url = plain_url = openalgo_url = ""
    if webhook is not None:
        initial = {
            "account": webhook.account_id,
            "default_product": webhook.default_product,
            "enabled": webhook.enabled,
        }
        url = request.build_absolute_uri(
            reverse("alert_webhook_secret", args=[webhook.public_id, webhook.secret])
        )
        plain_url = request.build_absolute_uri(reverse("alert_webhook", args=[webhook.public_id]))
        openalgo_url = request.build_absolute_uri(
            reverse("openalgo_strategy_webhook_secret", args=[webhook.public_id, webhook.secret])
        )
    return {
        "csrf_token": context.get("csrf_token"),
        "strategy": strategy,
        "webhook": webhook,
        "form": WebhookForm(user=request.user, initial=initial),
        "url": url,
        "plain_url": plain_url,
        "openalgo_url": openalgo_url,
        "secret_header": SECRET_HEADER,
        "alerts": selectors.recent_alerts(webhook=webhook) if webhook else [],
        "example": json.dumps(EXAMPLE_ALERT, indent=2),
    }
