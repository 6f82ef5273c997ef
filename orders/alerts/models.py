"""Alert webhooks: a strategy's URL that turns alerts into orders, and every alert received."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.crypto import EncryptedTextField
from orders.models import Order, ProductType


class AlertWebhook(models.Model):
    """One strategy's webhook. Alerts place on `account`, attributed to the strategy.

    `public_id` names the webhook in its URL; `secret` (encrypted at rest, shown to the
    owner on the strategy page) must come with every alert, in the URL, a header or the
    body. Rotating the secret makes every old URL a 404 at once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_webhooks"
    )
    strategy = models.OneToOneField(
        "accounts.Strategy", on_delete=models.CASCADE, related_name="alert_webhook"
    )
    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.PROTECT, related_name="alert_webhooks"
    )
    public_id = models.CharField(max_length=32, unique=True)
    secret = EncryptedTextField()
    # Used when an alert names none.
    default_product = models.CharField(
        max_length=4, choices=ProductType.choices, default=ProductType.MIS
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    last_alert_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alert_webhooks"

    def __str__(self) -> str:
        return f"webhook {self.public_id} of strategy {self.strategy_id}"


class ReceivedAlert(models.Model):
    """Every alert that reached a webhook, with what came of it (the audit trail)."""

    class Outcome(models.TextChoices):
        RECEIVED = "received", "Received (being placed)"
        PLACED = "placed", "Placed"
        PENDING = "pending", "Sent, broker did not answer"
        REJECTED = "rejected", "Rejected by the broker"
        NOT_SENT = "not_sent", "Not sent to the broker (nothing placed; send it again)"
        DUPLICATE = "duplicate", "Duplicate (same id: not placed again)"
        NO_ACTION = "no_action", "Position already at the target (nothing placed)"
        INVALID = "invalid", "Invalid alert"
        REFUSED = "refused", "Refused"
        RATE_LIMITED = "rate_limited", "Rate limited"
        BAD_SECRET = "bad_secret", "Wrong secret"
        ERROR = "error", "Internal error"

    class Shape(models.TextChoices):
        ALERT = "alert", "Alert (TradingView and similar)"
        OPENALGO = "openalgo", "OpenAlgo strategy webhook"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="received_alerts"
    )
    # Kept when the webhook goes (its strategy deleted): the audit outlives it.
    webhook = models.ForeignKey(
        AlertWebhook, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    shape = models.CharField(max_length=10, choices=Shape.choices, default=Shape.ALERT)
    alert_id = models.CharField(max_length=64, blank=True, default="")
    # The body as received (the secret blanked out), cut at ALERT_BODY_STORED_BYTES.
    body = models.TextField(blank=True, default="")
    body_truncated = models.BooleanField(default=False)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.RECEIVED)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "received_alerts"
        indexes = [
            models.Index(fields=["webhook", "-received_at"]),
            models.Index(fields=["user", "-received_at"]),
        ]

    def __str__(self) -> str:
        return f"alert {self.pk} ({self.outcome})"
