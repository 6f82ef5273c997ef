"""Market data: the instrument master and each instrument's latest fair prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models

from orders.domain.vocabulary import ExchangeSegment

PRICE: dict[str, Any] = {"max_digits": 15, "decimal_places": 4}


class Instrument(models.Model):
    """One tradable instrument from the XTS instrument master."""

    exchange_segment = models.CharField(max_length=10, choices=ExchangeSegment.choices)
    exchange_instrument_id = models.BigIntegerField()
    instrument_type = models.CharField(max_length=20, blank=True, default="")
    trading_symbol = models.CharField(max_length=100, db_index=True)
    name = models.CharField(max_length=100, blank=True, default="")
    description = models.CharField(max_length=200, blank=True, default="")
    series = models.CharField(max_length=20, blank=True, default="")
    lot_size = models.PositiveIntegerField(default=1)
    tick_size = models.DecimalField(**PRICE, default=Decimal("0.05"))
    freeze_quantity = models.PositiveIntegerField(null=True, blank=True)
    price_band_high = models.DecimalField(**PRICE, null=True, blank=True)
    price_band_low = models.DecimalField(**PRICE, null=True, blank=True)
    multiplier = models.PositiveIntegerField(default=1)
    underlying = models.CharField(max_length=100, blank=True, default="")
    expiry = models.DateField(null=True, blank=True)
    strike_price = models.DecimalField(**PRICE, null=True, blank=True)
    option_type = models.CharField(max_length=4, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "instruments"
        constraints = [
            models.UniqueConstraint(
                fields=["exchange_segment", "exchange_instrument_id"], name="uniq_instrument"
            )
        ]
        # Position rows, paper marks and batches look instruments up by their ids alone
        # (`exchange_instrument_id IN (...)`, the segment checked in Python): without this
        # index each such read scans the whole master (some 100,000 rows at a real broker).
        indexes = [models.Index(fields=["exchange_instrument_id"], name="instrument_by_id")]

    def __str__(self) -> str:
        return f"{self.trading_symbol} ({self.exchange_segment}:{self.exchange_instrument_id})"


class InstrumentFields(models.Model):
    """The instrument a row of a broker's books (or a figure drawn from them) is about, as the
    broker names it: its segment, its instrument id, and the symbol sent with it (blank when
    none was)."""

    exchange_segment = models.CharField(max_length=10)
    exchange_instrument_id = models.BigIntegerField()
    trading_symbol = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        abstract = True


class FairPrice(models.Model):
    """The latest fair prices and LTP of one instrument (feed, admin or simulated)."""

    instrument = models.OneToOneField(
        Instrument, on_delete=models.CASCADE, related_name="fair_price"
    )
    buy_fair_price = models.DecimalField(**PRICE, null=True, blank=True)
    sell_fair_price = models.DecimalField(**PRICE, null=True, blank=True)
    avg_fair_price = models.DecimalField(**PRICE, null=True, blank=True)
    last_traded_price = models.DecimalField(**PRICE, null=True, blank=True)
    source = models.CharField(max_length=20, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    # The four prices, written together (orders.market.services) and shown together (the admin,
    # the API).
    PRICE_FIELDS = ("buy_fair_price", "sell_fair_price", "avg_fair_price", "last_traded_price")

    class Meta:
        db_table = "fair_prices"

    def __str__(self) -> str:
        return f"fair price of {self.instrument_id}"
