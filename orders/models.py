"""Orders and their legs, the audit trail and the broker snapshots.

The orders app's other models live beside their feature and are imported here, so Django
finds them: instruments and fair prices (orders.market.models), scheduled orders
(orders.scheduled.models), the paper exchange's book (orders.brokers.paper.models).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from orders.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from orders.domain.vocabulary import (
    OPEN_LEG_STATUSES,
    EventKind,
    LegRole,
    LegStatus,
    OrderKind,
    OrderStatus,
    OrderType,
    ProductType,
    Side,
)
from orders.market.models import PRICE, ExchangeSegment, FairPrice, Instrument, InstrumentFields

MONEY: dict[str, Any] = {"max_digits": 15, "decimal_places": 2}


class Order(models.Model):
    """One trading intent: a single order, or a bracket (entry + stop-loss + targets)."""

    Kind = OrderKind
    Status = OrderStatus

    class Source(models.TextChoices):
        MANUAL = "MANUAL", "Manual"
        ALGO = "ALGO", "Algo"
        BATCH = "BATCH", "Batch"
        SCHEDULED = "SCHEDULED", "Scheduled"
        REGENERATED = "REGENERATED", "Regenerated"
        KILL_SWITCH = "KILL_SWITCH", "Kill switch"
        ALERT = "ALERT", "Alert webhook"
        OPENALGO = "OPENALGO", "OpenAlgo API"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.PROTECT, related_name="orders"
    )
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    symbol = models.CharField(max_length=100)
    exchange_segment = models.CharField(max_length=10)
    exchange_instrument_id = models.BigIntegerField()
    side = models.CharField(max_length=4, choices=Side.choices)
    product_type = models.CharField(
        max_length=4, choices=ProductType.choices, default=ProductType.MIS
    )
    quantity = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SINGLE)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MANUAL)
    strategy = models.ForeignKey(
        "accounts.Strategy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    external_id = models.CharField(max_length=MAX_EXTERNAL_ID_LENGTH, blank=True, default="")
    # The trading day of a client's own external_id (null when it has none, or gave it back:
    # not sent): one external_id per account and trading day (uniq_external_id_per_day).
    external_id_day = models.DateField(null=True, blank=True)
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)

    # What was asked for: the entry, and for a bracket the stop-loss and the targets.
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    sl_price = models.DecimalField(**PRICE, null=True, blank=True)
    sl_stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    # [{"price": "123.45", "quantity": 50}, ...] quantities summing to the order quantity.
    targets = models.JSONField(default=list, blank=True)

    # Derived by the monitoring loop (SPEC 7 and the design's wide row).
    filled_quantity = models.PositiveIntegerField(default=0)
    pnl = models.DecimalField(**MONEY, default=Decimal("0.00"))
    open_position = models.IntegerField(default=0)
    ltp = models.DecimalField(**PRICE, null=True, blank=True)
    margin = models.DecimalField(**MONEY, null=True, blank=True)
    buy_fair_price = models.DecimalField(**PRICE, null=True, blank=True)
    sell_fair_price = models.DecimalField(**PRICE, null=True, blank=True)
    avg_fair_price = models.DecimalField(**PRICE, null=True, blank=True)

    # Rejected orders are archived (step 7), never deleted; regeneration reads them (step 8).
    archived_at = models.DateTimeField(null=True, blank=True)
    regenerated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="regenerations"
    )
    regeneration_count = models.PositiveIntegerField(default=0)
    # Set when the trader or the kill switch asked to close the order: step 4 then places no
    # new stop-loss or target legs for it.
    exit_requested_at = models.DateTimeField(null=True, blank=True)
    # With it, the entry's filled quantity that exit covers: what the entry fills beyond it
    # (an entry the exit could not cancel) came later, and step 4 squares it off at once.
    exit_requested_entry_filled = models.PositiveIntegerField(null=True, blank=True)
    # Of the bracket's open position, what the broker did not hold when an exit path (the
    # kill switch, a position exit or change) last measured it: closed outside the desk (a
    # trade in the broker's own terminal, its risk system). No exit, stop-loss or target
    # of the bracket covers it (orders.domain.exit_sizing). The database default lets web
    # processes that predate the column keep placing during a rolling deploy.
    broker_shortfall = models.PositiveIntegerField(default=0, db_default=0)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Set by the services and pages that load an order with its legs, never stored: the entry
    # leg placement wrote, the legs a list or detail page shows, each leg role's status.
    entry_leg: OrderLeg
    list_legs: list[Any]  # OrderLeg or orders.selectors.ListLeg rows
    detail_legs: list[OrderLeg]
    detail_events: list[OrderEvent]
    leg_status: dict[str, str]

    class Meta:
        db_table = "orders"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_order_id"], name="uniq_client_order_id"
            ),
            # The day first: an index led by the account would tempt MariaDB away from
            # order_user_account_recent for the account-filtered order list (a filesort).
            models.UniqueConstraint(
                fields=["external_id_day", "account", "external_id"],
                name="uniq_external_id_per_day",
            ),
        ]
        indexes = [
            models.Index(
                fields=["user", "account", "-created_at", "-id"], name="order_user_account_recent"
            ),
            models.Index(fields=["account", "status"]),
            models.Index(fields=["user", "-created_at", "-id"], name="order_user_recent"),
            # With "-id" the list's tie-break (newest first, then highest id) is in the index
            # too: a filtered page is read in order, without a sort.
            models.Index(fields=["user", "status", "-created_at", "-id"], name="order_user_status"),
            models.Index(fields=["user", "symbol", "-created_at", "-id"], name="order_user_symbol"),
            models.Index(fields=["exchange_segment", "exchange_instrument_id"]),
        ]

    def __str__(self) -> str:
        return f"order {self.pk} {self.side} {self.quantity} {self.symbol}"


class OrderLeg(models.Model):
    """One order sent to the broker on behalf of an Order (entry, stop-loss, target, exit)."""

    Role = LegRole
    # Written only through orders.services.lifecycle (the transition table's one gate).
    Status = LegStatus

    OPEN_STATUSES = OPEN_LEG_STATUSES

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="legs")
    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(max_length=12, choices=Role.choices)
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.PositiveIntegerField()
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    unique_identifier = models.CharField(max_length=20, unique=True)
    broker_order_id = models.CharField(max_length=40, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING_SUBMIT)
    broker_status = models.CharField(max_length=32, blank=True, default="")
    filled_quantity = models.PositiveIntegerField(default=0)
    average_price = models.DecimalField(**PRICE, null=True, blank=True)
    reject_reason = models.TextField(blank=True, default="")
    modification_count = models.PositiveIntegerField(default=0)
    # Which of the Order's targets a TAKE_PROFIT leg serves (0-based).
    target_index = models.PositiveSmallIntegerField(null=True, blank=True)
    # Trailing stop-loss reference price (the best price seen since the SL was placed).
    trail_reference_price = models.DecimalField(**PRICE, null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "order_legs"
        indexes = [
            models.Index(fields=["order", "role"]),
            models.Index(fields=["account", "status"]),
            models.Index(fields=["account", "broker_order_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.role} leg {self.unique_identifier}"


class OrderEvent(models.Model):
    """Append-only audit trail: every state change and every broker call outcome."""

    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    leg = models.ForeignKey(
        OrderLeg, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    account = models.ForeignKey(
        "accounts.BrokerAccount", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Who or what did it: "user:12", "admin:3", "monitoring", "scheduler", "system".
    actor = models.CharField(max_length=64)
    kind = models.CharField(max_length=48, choices=EventKind.choices)
    message = models.TextField(blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    broker_response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    # Set for the audit trail's display (orders.audit_words), never stored.
    sentence: str
    by: str
    plain: str

    class Meta:
        db_table = "order_events"
        indexes = [models.Index(fields=["order", "created_at"])]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("order events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("order events are never deleted")

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"


class DailyCounter(models.Model):
    """(account, trading date) -> last sequence number used in a leg's unique identifier."""

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="+"
    )
    trading_date = models.DateField()
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "daily_counters"
        constraints = [
            models.UniqueConstraint(fields=["account", "trading_date"], name="uniq_daily_counter")
        ]


class UserOrderCount(models.Model):
    """How many orders a user has, kept by the database itself: triggers on `orders`
    (the orders migration, `orders.order_count_triggers`) add one on every insert and take
    one off on every delete, inside the writing transaction, so every snapshot's count is
    exact. The order list's unfiltered total reads this row instead of counting the user's
    every order (0.9 ms at 10,000 orders, and growing with them). No code writes it.

    A plain user id, no foreign key: the row outlives nothing it points to (orders PROTECT
    their user), and a key would make the triggers' upsert depend on the user row."""

    user_id = models.BigIntegerField(primary_key=True)
    total = models.BigIntegerField(default=0)

    class Meta:
        db_table = "order_counts"

    def __str__(self) -> str:
        return f"user {self.user_id}: {self.total} orders"


class BrokerOrder(InstrumentFields):
    """The latest order-book row the broker reported, typed (XTS.md 'Order-book row')."""

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="broker_orders"
    )
    broker_order_id = models.CharField(max_length=40)
    exchange_order_id = models.CharField(max_length=40, blank=True, default="")
    client_id = models.CharField(max_length=40, blank=True, default="")
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, blank=True, default="")
    product_type = models.CharField(max_length=4, blank=True, default="")
    time_in_force = models.CharField(max_length=8, blank=True, default="")
    order_price = models.DecimalField(**PRICE, null=True, blank=True)
    order_stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    # NULL: the broker sent the number unreadable (it is never stored as 0).
    order_quantity = models.PositiveIntegerField(null=True, blank=True, default=0)
    cumulative_quantity = models.PositiveIntegerField(null=True, blank=True, default=0)
    leaves_quantity = models.PositiveIntegerField(null=True, blank=True, default=0)
    average_traded_price = models.DecimalField(**PRICE, null=True, blank=True)
    status = models.CharField(max_length=16, choices=OrderLeg.Status.choices)
    raw_status = models.CharField(max_length=32, blank=True, default="")
    cancel_reject_reason = models.TextField(blank=True, default="")
    unique_identifier = models.CharField(max_length=40, blank=True, default="", db_index=True)
    generated_at = models.DateTimeField(null=True, blank=True)
    exchange_transact_time = models.DateTimeField(null=True, blank=True)
    last_update_time = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "broker_order_book"
        constraints = [
            models.UniqueConstraint(fields=["account", "broker_order_id"], name="uniq_broker_order")
        ]
        indexes = [
            models.Index(fields=["account", "exchange_instrument_id", "exchange_transact_time"])
        ]


class BrokerTrade(InstrumentFields):
    """One fill from the broker's trade book: the best source for FIFO (XTS.md)."""

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="broker_trades"
    )
    execution_id = models.CharField(max_length=64)
    broker_order_id = models.CharField(max_length=40, db_index=True)
    unique_identifier = models.CharField(max_length=40, blank=True, default="")
    side = models.CharField(max_length=4, choices=Side.choices)
    product_type = models.CharField(max_length=4, blank=True, default="")
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(**PRICE)
    traded_at = models.DateTimeField()
    synced_at = models.DateTimeField(auto_now=True)

    # Set by the trade book and order pages for display, never stored: our order and leg
    # role (orders.tradebook.selectors.FillOwner), the fill's value in rupees (from
    # orders.tradebook.selectors.values_of), the leg it filled.
    owner: Any
    value: Decimal
    leg: OrderLeg | None

    class Meta:
        db_table = "broker_trade_book"
        # One fill: an order's exchange trade number. XTS's ExecutionID is the exchange's
        # trade number, unique within a segment's day only, and the trade book keeps every
        # day: the number alone would take a new fill for an old one of another order.
        constraints = [
            models.UniqueConstraint(
                fields=["account", "broker_order_id", "execution_id"],
                name="uniq_broker_trade_fill",
            )
        ]
        indexes = [models.Index(fields=["account", "exchange_instrument_id", "traded_at"])]


class BrokerPosition(InstrumentFields):
    """The latest position row per account, instrument and product (XTS.md 'Position row')."""

    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="broker_positions"
    )
    product_type = models.CharField(max_length=4)
    # NULL: the broker sent the number unreadable (it is never stored as 0).
    net_qty = models.IntegerField(null=True, blank=True, default=0)
    buy_qty = models.PositiveIntegerField(null=True, blank=True, default=0)
    sell_qty = models.PositiveIntegerField(null=True, blank=True, default=0)
    buy_avg_price = models.DecimalField(**PRICE, null=True, blank=True)
    sell_avg_price = models.DecimalField(**PRICE, null=True, blank=True)
    buy_amount = models.DecimalField(**MONEY, null=True, blank=True, default=Decimal("0"))
    sell_amount = models.DecimalField(**MONEY, null=True, blank=True, default=Decimal("0"))
    net_amount = models.DecimalField(**MONEY, null=True, blank=True, default=Decimal("0"))
    realized_mtm = models.DecimalField(**MONEY, null=True, blank=True, default=Decimal("0"))
    unrealized_mtm = models.DecimalField(**MONEY, null=True, blank=True, default=Decimal("0"))
    mtm = models.DecimalField(**MONEY, null=True, blank=True, default=Decimal("0"))
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "broker_positions"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "exchange_segment", "exchange_instrument_id", "product_type"],
                name="uniq_broker_position",
            )
        ]
        # A price tick finds the accounts holding the instrument (live MTM, orders.positions).
        indexes = [
            models.Index(
                fields=["exchange_segment", "exchange_instrument_id"], name="broker_pos_instrument"
            )
        ]


class RegenerationStage(models.Model):
    """Step 8 stages an archived rejected order here; step 9 places it and marks the row."""

    class Status(models.TextChoices):
        STAGED = "STAGED", "Staged"
        PLACED = "PLACED", "Placed"
        FAILED = "FAILED", "Failed"

    source_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    cycle_key = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.STAGED)
    new_order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "regeneration_stages"
        constraints = [
            models.UniqueConstraint(
                fields=["source_order", "cycle_key"], name="uniq_regeneration_stage"
            )
        ]


# Models that live beside their feature (they need Order, so they come after it).
from orders.alerts.models import AlertWebhook, ReceivedAlert  # noqa: E402
from orders.brokers.paper.models import PaperBook, PaperOrder, PaperTrade  # noqa: E402
from orders.openalgo.models import OpenAlgoRequest  # noqa: E402
from orders.scheduled.models import ScheduledOrder, ScheduledOrderRun  # noqa: E402

__all__ = [
    "MONEY",
    "PRICE",
    "AlertWebhook",
    "BrokerOrder",
    "BrokerPosition",
    "BrokerTrade",
    "DailyCounter",
    "ExchangeSegment",
    "FairPrice",
    "Instrument",
    "OpenAlgoRequest",
    "Order",
    "OrderEvent",
    "OrderLeg",
    "OrderType",
    "PaperBook",
    "PaperOrder",
    "PaperTrade",
    "ProductType",
    "ReceivedAlert",
    "RegenerationStage",
    "ScheduledOrder",
    "ScheduledOrderRun",
    "Side",
]
