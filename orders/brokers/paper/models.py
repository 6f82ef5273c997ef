"""Models of the paper exchange's own order book (imported by orders.models).

A `PaperBook` is one simulated broker login: the book of a PAPER `BrokerAccount`
(`account` set), or the book behind one XTS-simulator login (`name` = "xts:<appKey>").
Orders and fills live in `PaperOrder` / `PaperTrade`; positions and balances are computed
from the fills (orders.brokers.paper.exchange), so there is nothing to keep in step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models

from orders.domain.vocabulary import VENUE_ORDER_STATUSES, LegStatus
from orders.market.models import InstrumentFields

_PRICE: dict[str, Any] = {"max_digits": 15, "decimal_places": 4}
_MONEY: dict[str, Any] = {"max_digits": 15, "decimal_places": 2}

__all__ = [
    "PaperBook",
    "PaperOrder",
    "PaperOrderState",
    "PaperPositionConversion",
    "PaperTrade",
]


class PaperBook(models.Model):
    """One simulated broker login's book, with its starting cash (margin is derived)."""

    name = models.CharField(max_length=100, unique=True)
    account = models.OneToOneField(
        "accounts.BrokerAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="paper_book",
    )
    starting_cash = models.DecimalField(**_MONEY, default=Decimal("0.00"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "paper_books"

    def __str__(self) -> str:
        return self.name


class PaperOrder(InstrumentFields):
    """One order at the paper exchange, in our vocabulary (a broker order's statuses)."""

    Status = LegStatus
    OPEN_STATUSES = (LegStatus.OPEN, LegStatus.PARTIALLY_FILLED)

    book = models.ForeignKey(PaperBook, on_delete=models.CASCADE, related_name="orders")
    # The broker order id we hand out (XTS AppOrderID); set from the primary key on insert.
    app_order_id = models.BigIntegerField(unique=True, null=True, blank=True)
    unique_identifier = models.CharField(max_length=40, blank=True, default="")
    instrument = models.ForeignKey(
        "orders.Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    side = models.CharField(max_length=4)
    order_type = models.CharField(max_length=10)
    product_type = models.CharField(max_length=4)
    time_in_force = models.CharField(max_length=8, default="DAY")
    quantity = models.PositiveIntegerField()
    limit_price = models.DecimalField(**_PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**_PRICE, null=True, blank=True)
    filled_quantity = models.PositiveIntegerField(default=0)
    average_price = models.DecimalField(**_PRICE, null=True, blank=True)
    status = models.CharField(
        max_length=16,
        choices=[(status.value, status.label) for status in VENUE_ORDER_STATUSES],
        default=LegStatus.OPEN,
    )
    reject_reason = models.TextField(blank=True, default="")
    # A stop order becomes a limit/market order once the price reaches its stop.
    triggered = models.BooleanField(default=False)
    client_id = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_fill_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "paper_orders"
        indexes = [
            models.Index(fields=["status", "instrument"], name="paper_open_by_instrument"),
            models.Index(fields=["book", "created_at"], name="paper_book_recent"),
            models.Index(fields=["book", "unique_identifier"], name="paper_book_uid"),
            # Covers the open-order exposure summed on every placement (index-only; the
            # instrument for its contract multiplier, read by primary key).
            models.Index(
                fields=[
                    "book",
                    "status",
                    "order_type",
                    "quantity",
                    "filled_quantity",
                    "limit_price",
                    "stop_price",
                    "instrument",
                ],
                name="paper_book_open_exposure",
            ),
        ]

    def __str__(self) -> str:
        return f"paper order {self.app_order_id} {self.side} {self.quantity}"

    @property
    def leaves_quantity(self) -> int:
        if self.status in self.OPEN_STATUSES:
            return self.quantity - self.filled_quantity
        return 0


class PaperTrade(InstrumentFields):
    """One fill of a paper order (a trade-book row)."""

    order = models.ForeignKey(PaperOrder, on_delete=models.CASCADE, related_name="trades")
    book = models.ForeignKey(PaperBook, on_delete=models.CASCADE, related_name="trades")
    execution_id = models.CharField(max_length=40, unique=True)
    side = models.CharField(max_length=4)
    product_type = models.CharField(max_length=4)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(**_PRICE)
    traded_at = models.DateTimeField()

    class Meta:
        db_table = "paper_trades"
        indexes = [models.Index(fields=["book", "traded_at"], name="paper_trade_book_time")]

    def __str__(self) -> str:
        return f"fill {self.execution_id}"


class PaperOrderState(models.Model):
    """One state an order of the XTS simulator passed through (its order history): written
    by the simulator when it places, modifies or cancels an order, with the order's terms at
    that moment; fills are added from `PaperTrade` when the history is read."""

    order = models.ForeignKey(PaperOrder, on_delete=models.CASCADE, related_name="states")
    # XTS wording: PendingNew, New, Trigger Pending, Replaced, Cancelled, Rejected.
    status = models.CharField(max_length=20)
    order_type = models.CharField(max_length=10)
    product_type = models.CharField(max_length=4)
    quantity = models.PositiveIntegerField()
    limit_price = models.DecimalField(**_PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**_PRICE, null=True, blank=True)
    reject_reason = models.TextField(blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        db_table = "paper_order_states"
        indexes = [models.Index(fields=["order", "at"], name="paper_order_state_time")]

    def __str__(self) -> str:
        return f"{self.status} of paper order {self.order_id}"


class PaperPositionConversion(models.Model):
    """A position conversion at the XTS simulator (e.g. MIS -> NRML): `quantity` of the net
    position (signed: negative for a short) moved from one product to the other. Fills keep
    their product; the simulator's position rows apply the conversions."""

    book = models.ForeignKey(PaperBook, on_delete=models.CASCADE, related_name="conversions")
    exchange_segment = models.CharField(max_length=10)
    exchange_instrument_id = models.BigIntegerField()
    from_product = models.CharField(max_length=4)
    to_product = models.CharField(max_length=4)
    quantity = models.IntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "paper_position_conversions"

    def __str__(self) -> str:
        return f"convert {self.quantity} {self.from_product}->{self.to_product}"
