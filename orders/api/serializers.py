"""Request parsing and response shapes of the order endpoints (SPEC 4 field names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from orders.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from orders.domain.rollup import role_status
from orders.models import ExchangeSegment, Order, OrderEvent, OrderLeg, OrderType, ProductType, Side
from orders.selectors import ListLeg, OrderRow
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec
from trading_site.core.api.fields import PRICE, FlatFieldsCopied

PRICE_FIELD: dict[str, Any] = {
    "max_digits": 15,
    "decimal_places": 4,
    "required": False,
    "allow_null": True,
}


def optional_text(max_length: int, **extra: Any) -> serializers.CharField:
    """A text field that may be left out or blank (then "")."""
    return serializers.CharField(
        required=False, allow_blank=True, max_length=max_length, default="", **extra
    )


def external_id_field() -> serializers.CharField:
    return optional_text(
        64,
        help_text="Your own id for the order: unique per account and trading day (a repeat "
        "is a 409 CONFLICT and places nothing).",
    )


class UpperChoiceField(serializers.ChoiceField):
    """Choices compared case-insensitively (XTS sends Buy/BUY alike)."""

    @staticmethod
    def normalize_choice(data: str) -> str:
        """How text is read (trading_site.core.api.plain_values reads it the same way)."""
        return data.strip().upper()

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = self.normalize_choice(data)
        return super().to_internal_value(data)


def price_field(**extra) -> serializers.DecimalField:
    return serializers.DecimalField(**{**PRICE_FIELD, **extra})


def _shared_request_fields(data: dict, *, client_order_id: str = "") -> dict[str, Any]:
    """The fields every kind of order request carries (`OrderRequest`'s) from parsed fields;
    `client_order_id`, when given, before the body's."""
    return {
        "product_type": data["product_type"],
        "exchange_segment": data["exchange_segment"] or "",
        "strategy_name": data["strategy_name"] or "",
        "client_order_id": client_order_id or data["client_order_id"] or "",
    }


class PlaceOrderSerializer(FlatFieldsCopied):
    """POST /api/orders."""

    account_id = serializers.IntegerField()
    symbol = optional_text(100)
    exchange_instrument_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    exchange_segment = UpperChoiceField(
        choices=ExchangeSegment.choices, required=False, allow_blank=True, default=""
    )
    product_type = UpperChoiceField(choices=ProductType.choices, default=ProductType.MIS)
    order_side = UpperChoiceField(choices=Side.choices)
    order_quantity = serializers.IntegerField()
    order_type = UpperChoiceField(choices=OrderType.choices)
    limit_price = price_field()
    stop_price = price_field()
    strategy_name = optional_text(100)
    client_order_id = optional_text(64)
    external_id = external_id_field()

    @staticmethod
    def request_from(data: dict, *, idempotency_key: str = "") -> SingleOrderRequest:
        """The request from parsed fields (a field that failed to parse is None)."""
        return SingleOrderRequest(
            account_id=data["account_id"],
            order_side=data["order_side"],
            order_type=data["order_type"],
            order_quantity=data["order_quantity"],
            symbol=data["symbol"] or "",
            exchange_instrument_id=data.get("exchange_instrument_id"),
            limit_price=data.get("limit_price"),
            stop_price=data.get("stop_price"),
            external_id=data.get("external_id") or "",
            **_shared_request_fields(data, client_order_id=idempotency_key),
        )


class _BracketFields(FlatFieldsCopied):
    trading_symbol = optional_text(100)
    exchange_token = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    exchange_segment = UpperChoiceField(
        choices=ExchangeSegment.choices, required=False, allow_blank=True, default=""
    )
    no_of_lots = serializers.IntegerField()
    entry_price = price_field()
    entry_stop_price = price_field()
    sl_price = price_field()
    sl_stop_price = price_field()
    order_side = UpperChoiceField(choices=Side.choices, default=Side.BUY)
    product_type = UpperChoiceField(choices=ProductType.choices, default=ProductType.MIS)
    strategy_name = optional_text(100)
    client_order_id = optional_text(64)

    def _request(self, data: dict, **extra) -> BracketOrderRequest:
        return BracketOrderRequest(
            account_id=data.get("account_id", 0),
            no_of_lots=data["no_of_lots"],
            entry_price=data.get("entry_price"),
            sl_price=data.get("sl_price"),
            order_side=data["order_side"],
            trading_symbol=data["trading_symbol"] or "",
            exchange_token=data.get("exchange_token"),
            entry_stop_price=data.get("entry_stop_price"),
            sl_stop_price=data.get("sl_stop_price"),
            **_shared_request_fields(data),
            **extra,
        )


class AlgoOrderSerializer(_BracketFields):
    """POST /api/algo-orders: a bracket with one target at tp_price for all its lots."""

    account_id = serializers.IntegerField()
    tp_price = price_field()
    external_id = external_id_field()

    def request_from(self, data: dict, *, idempotency_key: str = "") -> BracketOrderRequest:
        """The request from parsed fields (a field that failed to parse is None)."""
        lots = data.get("no_of_lots")
        request = self._request(
            data,
            targets=(
                [TargetSpec(price=data["tp_price"], lots=lots)]
                if data.get("tp_price") is not None and lots is not None and lots > 0
                else []
            ),
            targets_field="tp_price",
            external_id=data.get("external_id") or "",
        )
        if idempotency_key:
            request.client_order_id = idempotency_key
        return request


class TargetSerializer(serializers.Serializer):
    price = serializers.DecimalField(**PRICE)
    percent = serializers.DecimalField(
        max_digits=7, decimal_places=4, required=False, allow_null=True
    )
    lots = serializers.IntegerField(required=False, allow_null=True)


class BatchItemSerializer(_BracketFields):
    """One item of POST /api/algo-place-batch-orders (validated on its own)."""

    external_id = optional_text(MAX_EXTERNAL_ID_LENGTH)
    targets = TargetSerializer(many=True, required=False, default=list)

    def request_from(self, data: dict, *, account_id: int) -> BracketOrderRequest:
        """`data` is what `run_validation` returned: one serializer instance validates every
        item of a batch (building DRF fields per item costs more than validating it)."""
        return self._request(
            {**data, "account_id": account_id},
            external_id=data["external_id"],
            targets=[
                TargetSpec(price=t["price"], lots=t.get("lots"), percent=t.get("percent"))
                for t in data["targets"]
            ],
        )


class AnyObjectField(serializers.DictField):
    """`DictField()`: any JSON object (its errors for anything else), its values handed on
    as they are. DictField's default child gives every value back unchanged, so running it
    on each key of a batch's 500 items (some 4,000 calls) only cost time; each item is
    validated on its own afterwards (BatchItemSerializer)."""

    def __init__(self, **kwargs):
        assert "child" not in kwargs, "AnyObjectField takes every value as it is"
        super().__init__(**kwargs)

    def run_child_validation(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {str(key): value for key, value in data.items()}


class BatchSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    orders = serializers.ListField(child=AnyObjectField(), allow_empty=False, max_length=500)


class ModifyOrderSerializer(serializers.Serializer):
    """PATCH /api/orders/{id}: any of the three; `leg_id` picks an exit leg (else the entry)."""

    limit_price = price_field()
    stop_price = price_field()
    quantity = serializers.IntegerField(required=False, allow_null=True)
    leg_id = serializers.IntegerField(required=False, allow_null=True)


# ---- responses ------------------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _when(value) -> str | None:
    return value.isoformat() if value is not None else None


def order_summary(order: Order | OrderRow) -> dict[str, Any]:
    """One row of the order list, from a list row (selectors.order_list_page) or an order. Reads
    only legs already loaded (no query per row): `list_legs` or prefetched ones."""
    legs: Sequence[OrderLeg | ListLeg]
    if isinstance(order, OrderRow):
        legs, strategy = order.list_legs, order.strategy_name
    else:
        loaded = getattr(order, "list_legs", None)
        legs = loaded if loaded is not None else list(order.legs.all())
        strategy = order.strategy.name if order.strategy is not None else None
    entry = next(
        (leg for leg in legs if leg.role == OrderLeg.Role.ENTRY), legs[0] if legs else None
    )
    return {
        "id": order.pk,
        "account_id": order.account_id,
        "symbol": order.symbol,
        "exchange_segment": order.exchange_segment,
        "exchange_instrument_id": order.exchange_instrument_id,
        "order_side": order.side,
        "product_type": order.product_type,
        "order_type": order.order_type,
        "order_quantity": order.quantity,
        "filled_quantity": order.filled_quantity,
        "kind": order.kind,
        "source": order.source,
        "strategy": strategy,
        "external_id": order.external_id,
        "client_order_id": order.client_order_id,
        "order_status": order.status,
        "entry_order_status": entry.status if entry else None,
        "sl_order_status": role_status(legs, OrderLeg.Role.STOP_LOSS),
        "tp_order_status": role_status(legs, OrderLeg.Role.TAKE_PROFIT),
        "broker_order_id": entry.broker_order_id if entry else None,
        "reject_reason": (entry.reject_reason or None) if entry else None,
        "limit_price": _money(order.limit_price),
        "stop_price": _money(order.stop_price),
        "sl_price": _money(order.sl_price),
        "sl_stop_price": _money(order.sl_stop_price),
        "targets": order.targets,
        "pnl": _money(order.pnl),
        "open_position": order.open_position,
        "ltp": _money(order.ltp),
        "buy_fair_price": _money(order.buy_fair_price),
        "sell_fair_price": _money(order.sell_fair_price),
        "avg_fair_price": _money(order.avg_fair_price),
        "regeneration_count": order.regeneration_count,
        "archived": order.archived_at is not None,
        "created_at": _when(order.created_at),
        "updated_at": _when(order.updated_at),
    }


def order_detail(order: Order) -> dict[str, Any]:
    data = order_summary(order)
    data["legs"] = [leg_detail(leg) for leg in order.detail_legs]
    data["events"] = [event_detail(event) for event in order.detail_events]
    return data


class OrderSummarySerializer(serializers.Serializer):
    """The documented shape of an order (rendered by `order_summary`)."""

    id = serializers.IntegerField()
    account_id = serializers.IntegerField()
    symbol = serializers.CharField()
    exchange_segment = serializers.CharField()
    exchange_instrument_id = serializers.IntegerField()
    order_side = serializers.CharField()
    product_type = serializers.CharField()
    order_type = serializers.CharField()
    order_quantity = serializers.IntegerField()
    filled_quantity = serializers.IntegerField()
    kind = serializers.CharField()
    # The metaclass moves declared fields off the class: this shadows Field.source for the
    # type checker only.
    source = serializers.CharField()  # type: ignore[assignment]
    strategy = serializers.CharField(allow_null=True)
    external_id = serializers.CharField()
    client_order_id = serializers.CharField(allow_null=True)
    order_status = serializers.ChoiceField(choices=Order.Status.choices)
    entry_order_status = serializers.CharField(allow_null=True)
    sl_order_status = serializers.CharField(allow_null=True)
    tp_order_status = serializers.CharField(allow_null=True)
    broker_order_id = serializers.CharField(allow_null=True)
    reject_reason = serializers.CharField(allow_null=True)
    limit_price = serializers.CharField(allow_null=True)
    stop_price = serializers.CharField(allow_null=True)
    sl_price = serializers.CharField(allow_null=True)
    sl_stop_price = serializers.CharField(allow_null=True)
    targets = serializers.ListField(child=serializers.DictField())
    pnl = serializers.CharField()
    open_position = serializers.IntegerField()
    ltp = serializers.CharField(allow_null=True)
    buy_fair_price = serializers.CharField(allow_null=True)
    sell_fair_price = serializers.CharField(allow_null=True)
    avg_fair_price = serializers.CharField(allow_null=True)
    regeneration_count = serializers.IntegerField()
    archived = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return order_summary(instance)


class _MomentField(serializers.DateTimeField):
    """A moment written as `order_summary` writes one (`_when`: isoformat, as stored)."""

    def to_representation(self, value):
        return _when(value)


# One leg of an order's detail, rendered from the leg (`leg_detail`). (A comment: a docstring
# would be the schema component's description.)
class LegSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=OrderLeg.Role.choices)
    order_type = serializers.CharField()
    order_side = serializers.CharField(source="side")
    quantity = serializers.IntegerField()
    filled_quantity = serializers.IntegerField()
    limit_price = serializers.CharField(allow_null=True)
    stop_price = serializers.CharField(allow_null=True)
    average_price = serializers.CharField(allow_null=True)
    unique_identifier = serializers.CharField()
    broker_order_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=OrderLeg.Status.choices)
    broker_status = serializers.CharField()
    reject_reason = serializers.CharField()
    target_index = serializers.IntegerField(allow_null=True)
    modification_count = serializers.IntegerField()
    submitted_at = _MomentField(allow_null=True)
    created_at = _MomentField()
    updated_at = _MomentField()


# One event of an order's detail, rendered from the event (`event_detail`).
class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    leg_id = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField()
    kind = serializers.CharField()
    message = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    broker_response = serializers.JSONField(allow_null=True)
    created_at = _MomentField()


def leg_detail(leg: OrderLeg) -> dict[str, Any]:
    return LegSerializer(leg).data


def event_detail(event: OrderEvent) -> dict[str, Any]:
    return EventSerializer(event).data


class OrderDetailSerializer(OrderSummarySerializer):
    legs = LegSerializer(many=True)
    events = EventSerializer(many=True)

    def to_representation(self, instance):
        return order_detail(instance)


class OrderEnvelopeSerializer(serializers.Serializer):
    order = OrderSummarySerializer()


class BatchResultSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["success", "error"])
    order_id = serializers.IntegerField(allow_null=True)
    order_status = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)
    details = serializers.DictField(allow_null=True)


class BatchResponseSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True)
