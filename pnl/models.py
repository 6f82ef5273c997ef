"""FIFO results per account (replaced per account in one transaction) and daily history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models

from orders.domain.vocabulary import Side
from orders.market.models import InstrumentFields

PRICE: dict[str, Any] = {"max_digits": 15, "decimal_places": 4}
MONEY: dict[str, Any] = {"max_digits": 15, "decimal_places": 2}


class PnlLot(InstrumentFields):
    """One FIFO lot of an account: a matched entry/exit pair, or an open lot."""

    class Kind(models.TextChoices):
        MATCHED = "MATCHED", "Matched"
        OPEN = "OPEN", "Open"

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="pnl_lots"
    )
    kind = models.CharField(max_length=7, choices=Kind.choices)
    entry_side = models.CharField(max_length=4, choices=Side.choices)  # BUY: a long lot
    quantity = models.PositiveIntegerField()
    entry_order_id = models.CharField(max_length=40)
    entry_leg = models.ForeignKey(
        "orders.OrderLeg", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    entry_time = models.DateTimeField()
    entry_price = models.DecimalField(**PRICE)
    exit_order_id = models.CharField(max_length=40, blank=True, default="")
    exit_leg = models.ForeignKey(
        "orders.OrderLeg", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exit_time = models.DateTimeField(null=True, blank=True)
    exit_price = models.DecimalField(**PRICE, null=True, blank=True)
    realized_pnl = models.DecimalField(**PRICE, default=Decimal("0"))
    fair_price_used = models.DecimalField(**PRICE, null=True, blank=True)
    unrealized_pnl = models.DecimalField(**PRICE, default=Decimal("0"))
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "pnl_lots"
        indexes = [
            models.Index(fields=["account", "exchange_instrument_id", "entry_time"]),
            models.Index(fields=["account", "kind"]),
        ]

    @property
    def is_long(self) -> bool:
        return self.entry_side == Side.BUY


class PnlDaily(models.Model):
    """Per account and trading day: kept forever (the lot table alone keeps no history)."""

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="pnl_days"
    )
    trading_date = models.DateField()
    realized = models.DecimalField(**MONEY, default=Decimal("0"))
    unrealized = models.DecimalField(**MONEY, default=Decimal("0"))
    turnover = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0"))
    fills = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    # Set by the P&L page for its table (pnl.views), never stored.
    charges: Decimal
    net: Decimal

    class Meta:
        db_table = "pnl_daily"
        constraints = [
            models.UniqueConstraint(fields=["account", "trading_date"], name="uniq_pnl_daily")
        ]


class PnlInstrumentState(InstrumentFields):
    """What the last FIFO run saw per (account, instrument): lets the next run skip it.

    `fingerprint` digests the instrument's fills (and which order legs they belong to); when it
    is unchanged, the stored lots are kept and only the open lots' unrealized PnL is refreshed.
    """

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="pnl_instrument_states"
    )
    fingerprint = models.CharField(max_length=64)
    fill_count = models.PositiveIntegerField(default=0)
    realized = models.DecimalField(**PRICE, default=Decimal("0"))
    unrealized = models.DecimalField(**PRICE, default=Decimal("0"))
    open_quantity = models.IntegerField(default=0)  # signed: + long, - short
    matched_at = models.DateTimeField()  # when FIFO last re-matched this instrument's fills
    computed_at = models.DateTimeField()  # when the valuation was last refreshed

    # What a run found for the instrument: pnl.services writes these, the admin lists them.
    RESULT_FIELDS = (
        "fill_count",
        "realized",
        "unrealized",
        "open_quantity",
        "matched_at",
        "computed_at",
    )

    class Meta:
        db_table = "pnl_instrument_states"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "exchange_segment", "exchange_instrument_id"],
                name="uniq_pnl_instrument_state",
            )
        ]

    def __str__(self) -> str:
        return f"{self.exchange_segment}:{self.exchange_instrument_id} of {self.account_id}"


class MtmSample(models.Model):
    """The account's MTM at a minute of a trading day: the intraday curve. One row per account
    and minute (the last value seen in it), written each monitoring cycle and on price ticks
    that move the account's positions; rows older than MTM_SAMPLE_RETENTION_DAYS are deleted
    by the daily housekeeping."""

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="mtm_samples"
    )
    trading_date = models.DateField()
    minute = models.DateTimeField()  # the minute's start
    mtm = models.DecimalField(**MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "pnl_mtm_samples"
        constraints = [
            models.UniqueConstraint(fields=["account", "minute"], name="uniq_mtm_sample_minute")
        ]
        indexes = [models.Index(fields=["account", "trading_date", "minute"])]


class BrokeragePlanSetting(models.Model):
    """The trader's brokerage plan for one account (estimated charges: pnl.charges). No row:
    the default plan, a flat Rs 20 per executed order."""

    class Mode(models.TextChoices):
        FLAT = "FLAT", "Flat per executed order"
        PERCENT = "PERCENT", "Percentage of turnover, capped per order"

    account = models.OneToOneField(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="brokerage_plan"
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.FLAT)
    flat_per_order = models.DecimalField(max_digits=9, decimal_places=2, default=Decimal("20"))
    percent = models.DecimalField(max_digits=7, decimal_places=4, default=Decimal("0.03"))
    cap_per_order = models.DecimalField(
        max_digits=9, decimal_places=2, null=True, blank=True, default=Decimal("20")
    )
    delivery_free = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "pnl_brokerage_plans"

    def __str__(self) -> str:
        return f"brokerage plan of account {self.account_id}"
