"""The order endpoints (SPEC 4). Views parse, call one service or selector, and shape output.

Answers of the placement endpoints (POST /api/orders and POST /api/algo-orders):
- 201 {"order": {...}}: written and accepted by the broker (order_status OPEN, or already
  FILLED for a paper market order);
- 200 {"order": {...}}: the same Idempotency-Key (or client_order_id) and the same body
  again: the first order, nothing new placed; the same key with another body is a 409
  CONFLICT;
- 202 {"order": {...}}: written, but the broker did not answer (timeout / 5xx). The order
  stays PENDING and the monitoring loop settles it from the broker's order book by its
  unique identifier; it is never re-sent. Do not place it again: poll GET /api/orders/{id};
- 422 BROKER_REJECTED: the broker refused it; the stored, REJECTED order is in
  details.order (and details.order_id, details.reject_reason);
- 503 BROKER_UNAVAILABLE with Retry-After and details.sent false: the order provably never
  reached the broker (our outbound limit, no broker session could be had, no connection).
  It is stored REJECTED "not sent" and its Idempotency-Key is free again: send the same
  request with the same key to place it (once);
- 409 TRADING_LOCKED: the kill switch locked the account; nothing was sent (when the lock
  came between writing and sending, details.order_id names the order stored REJECTED
  "not sent"); re-enable trading first;
- 400 VALIDATION_ERROR (nothing written), 404 for an account that is not yours,
  409 MARKET_CLOSED for a live broker outside the trading window.
POST /api/algo-place-batch-orders answers 201 with one result per item, in input order, even
when items failed: {"external_id", "status": "success" | "error", "order_id", "order_status",
"error", "code", "details"} (a broker rejection is an "error" that still has its order_id; an
item not sent has code BROKER_UNAVAILABLE and details.sent false: send it again with its key).
A locked account refuses the whole batch (409 TRADING_LOCKED).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import broker_account_for
from orders import selectors, services
from orders.api import serializers as s
from orders.api.every_error import every_error, parsed_fields
from orders.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from orders.models import Order
from orders.services.audit import user_actor
from orders.services.placement import (
    OUTCOME_NOT_SENT,
    OUTCOME_REJECTED,
    OUTCOME_REPLAYED,
    OUTCOME_UNKNOWN,
    BatchItemError,
    PlacementResult,
    not_sent_details,
)
from orders.tradebook import csv_export
from orders.validation import BracketOrderRequest, as_id, bracket_order_errors, single_order_errors
from trading_site.core.api.errors import _plain_details, _validation_message
from trading_site.core.api.pagination import LimitOffsetTotalPagination
from trading_site.core.api.plain_values import plain_validated
from trading_site.core.api.schema import csv_answer
from trading_site.core.errors import (
    BrokerRejectedError,
    BrokerUnavailableError,
    TradingLocked,
    ValidationFailed,
)


class OrdersGroupMixin:
    """Reads count against the "read" bucket, writes against the tighter "orders" one."""

    request: Any  # the view's (a DRF Request in an APIView)

    @property
    def rate_limit_group(self) -> str:
        return "read" if self.request.method in SAFE_METHODS else "orders"


def _idempotency_key(request, body_key: str) -> str:
    header = (request.headers.get("Idempotency-Key") or "").strip()
    if len(header) > 64:
        raise ValidationFailed(
            "Idempotency-Key must be at most 64 characters",
            details={"Idempotency-Key": ["at most 64 characters"]},
        )
    if header and body_key and header != body_key:
        raise ValidationFailed(
            "Idempotency-Key and client_order_id differ",
            details={
                "client_order_id": ["must equal the Idempotency-Key header when both are given"]
            },
        )
    return header or body_key


def _placement_response(result: PlacementResult) -> Response:
    order = result.order
    if result.created and getattr(order, "entry_leg", None) is not None:
        # A new order has exactly its entry leg, already in memory: no query to show it.
        order.list_legs = [order.entry_leg]
    body: dict[str, Any] = {"order": s.order_summary(order)}
    if result.outcome == OUTCOME_REPLAYED:
        return Response(body, status=status.HTTP_200_OK)
    if result.outcome == OUTCOME_NOT_SENT and result.send is not None:
        reason = result.send.rejected_reason
        details = {
            **not_sent_details(result.send),
            "order_id": order.pk,
            "order_status": order.status,
            "reject_reason": reason,
            "order": body["order"],
        }
        if result.send.trading_locked:
            raise TradingLocked(details=details)
        raise BrokerUnavailableError(
            "The order was not sent to the broker, nothing was placed: "
            f"{reason.removeprefix('not sent: ')}. Send it again with the same "
            "Idempotency-Key.",
            details=details,
            retry_after=details.get("retry_after", 1),
        )
    if result.outcome == OUTCOME_REJECTED:
        reason = result.reject_reason
        raise BrokerRejectedError(
            f"The broker rejected the order: {reason}",
            details={
                "order_id": order.pk,
                "order_status": order.status,
                "reject_reason": reason,
                "order": body["order"],
            },
        )
    if result.outcome == OUTCOME_UNKNOWN:
        body["detail"] = (
            "The broker did not answer; the order is stored and will be settled from the "
            "broker's order book. Do not place it again."
        )
        return Response(body, status=status.HTTP_202_ACCEPTED)
    return Response(body, status=status.HTTP_201_CREATED)


_PLACEMENT_RESPONSES = {
    200: OpenApiResponse(s.OrderEnvelopeSerializer, description="Idempotent replay"),
    201: OpenApiResponse(s.OrderEnvelopeSerializer, description="Placed"),
    202: OpenApiResponse(s.OrderEnvelopeSerializer, description="Broker did not answer"),
    400: OpenApiResponse(description="VALIDATION_ERROR"),
    404: OpenApiResponse(description="NOT_FOUND (account)"),
    409: OpenApiResponse(description="CONFLICT, MARKET_CLOSED or TRADING_LOCKED"),
    422: OpenApiResponse(description="BROKER_REJECTED"),
    503: OpenApiResponse(
        description="BROKER_UNAVAILABLE: not sent, nothing placed (details.sent false); "
        "retry after Retry-After with the same Idempotency-Key"
    ),
}


def _parse_when(raw: str | None, name: str, *, end_of_day: bool = False):
    if not raw:
        return None
    # Well-formed but impossible values (2024-02-30) raise ValueError: a 400, not a 500.
    # A date first: parse_datetime also reads a bare date (as its midnight), which would make
    # "until=<day>" leave that whole day out.
    try:
        day = parse_date(raw)
        value = parse_datetime(raw) if day is None else None
    except ValueError:
        value = day = None
    if value is None:
        if day is None:
            raise ValidationFailed(
                f"{name} must be an ISO date or date-time",
                details={name: [f"{raw!r} is not an ISO date or date-time"]},
            )
        from datetime import datetime, time, timedelta

        value = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def _parse_int(raw: str | None, name: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name} must be an integer", details={name: [f"{raw!r} is not an integer"]}
        ) from None
    if as_id(value) is None:  # past the database's integers (a 500 on SQLite otherwise)
        raise ValidationFailed(f"{name} is out of range", details={name: ["not an id"]})
    return value


def _parse_statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    statuses = [part.strip().upper() for part in raw.split(",") if part.strip()]
    bad = [value for value in statuses if value not in Order.Status.values]
    if bad:
        raise ValidationFailed(
            f"status must be among {', '.join(Order.Status.values)}",
            details={"status": [f"unknown status {value!r}" for value in bad]},
        )
    return statuses


class _OneOrderPost(NamedTuple):
    """How a POST of one order is parsed (`serializer_class`), checked (`rule_errors`) and
    placed (`place`, as from `source`)."""

    serializer_class: type[s.PlaceOrderSerializer] | type[s.AlgoOrderSerializer]
    rule_errors: Callable[..., Any]
    place: Callable[..., PlacementResult]
    source: str


_SINGLE_ORDER_POST = _OneOrderPost(
    s.PlaceOrderSerializer, single_order_errors, services.place_single_order, Order.Source.MANUAL
)
_BRACKET_ORDER_POST = _OneOrderPost(
    s.AlgoOrderSerializer, bracket_order_errors, services.place_bracket_order, Order.Source.ALGO
)


@functools.cache
def _plain_reader(serializer_class: type[s.PlaceOrderSerializer] | type[s.AlgoOrderSerializer]):
    """One unbound instance of the serializer per process, for `plain_validated` (which
    plans its reading once per instance: for a new instance per request, every request)."""
    return serializer_class()


def _placed_from_body(request, post: _OneOrderPost) -> Response:
    """POST of one order: a refusal lists the parse errors and the rule errors of the fields
    that did parse, at once. An ordinary body is read plainly (`plain_validated`: exactly
    the serializer's reading, without DRF's per-field machinery); the serializer judges
    any other."""
    reader = _plain_reader(post.serializer_class)
    data = plain_validated(reader, request.data)
    if data is None:
        serializer = post.serializer_class(data=request.data)
        if not serializer.is_valid():
            if not isinstance(serializer.initial_data, dict):
                raise ValidationError(serializer.errors)
            parsed = serializer.request_from(parsed_fields(serializer))
            found = post.rule_errors(user=request.user, request=parsed)
            raise every_error(serializer.errors, found.errors)
        data = serializer.validated_data
    key = _idempotency_key(request, data["client_order_id"])
    result = post.place(
        user=request.user,
        request=reader.request_from(data, idempotency_key=key),
        source=post.source,
        actor=user_actor(request.user),
    )
    return _placement_response(result)


# The query parameters `_filtered_order_list` reads.
_ORDER_LIST_FILTERS = [
    OpenApiParameter("account_id", int),
    OpenApiParameter("status", str, description="one or several, comma-separated"),
    OpenApiParameter("symbol", str),
    OpenApiParameter("strategy", str, description="strategy name"),
    OpenApiParameter("since", str, description="ISO date or date-time (inclusive)"),
    OpenApiParameter(
        "until",
        str,
        description="ISO date or date-time (exclusive; a date includes that whole day)",
    ),
]


def _filtered_order_list(request):
    """The caller's orders with the list's filters (also the CSV export's). Another user's
    account is a 404, as on every other endpoint that names one (a deactivated account of the
    caller's still lists its orders)."""
    params = request.query_params
    account_id = _parse_int(params.get("account_id"), "account_id")
    if account_id is not None:
        broker_account_for(user=request.user, account_id=account_id)
    return selectors.order_list(
        user=request.user,
        account_id=account_id,
        statuses=_parse_statuses(params.get("status")),
        symbol=params.get("symbol") or None,
        strategy=params.get("strategy") or None,
        since=_parse_when(params.get("since"), "since"),
        until=_parse_when(params.get("until"), "until", end_of_day=True),
        prefetch_legs=False,
    )


class OrderPagination(LimitOffsetTotalPagination):
    results_key = "orders"


class OrdersView(OrdersGroupMixin, APIView):
    """GET: the caller's orders, newest first; POST: place a single order."""

    pagination_class = OrderPagination

    @extend_schema(
        parameters=[
            *_ORDER_LIST_FILTERS,
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=s.OrderSummarySerializer(many=True),
    )
    def get(self, request):
        orders = _filtered_order_list(request)
        paginator = self.pagination_class()
        limit, offset = paginator.get_limit(request), paginator.get_offset(request)
        page = selectors.order_list_page(orders, user=request.user, limit=limit, offset=offset)
        return paginator.paginated_response(
            [s.order_summary(order) for order in page.rows],
            total=page.total,
            limit=limit,
            offset=offset,
        )

    @extend_schema(request=s.PlaceOrderSerializer, responses=_PLACEMENT_RESPONSES)
    def post(self, request):
        return _placed_from_body(request, _SINGLE_ORDER_POST)


class OrdersExportView(APIView):
    """GET: the order list as a streamed CSV, with the list's filters (no paging)."""

    rate_limit_group = "read"

    @extend_schema(parameters=_ORDER_LIST_FILTERS, responses=csv_answer("The orders as CSV"))
    def get(self, request):
        return csv_export.csv_response(
            csv_export.order_rows(_filtered_order_list(request)),
            filename=csv_export.export_name("orders"),
        )


class AlgoOrderView(OrdersGroupMixin, APIView):
    """POST: a bracket order (entry now; stop-loss and target once it fills)."""

    @extend_schema(request=s.AlgoOrderSerializer, responses=_PLACEMENT_RESPONSES)
    def post(self, request):
        return _placed_from_body(request, _BRACKET_ORDER_POST)


class BatchOrdersView(OrdersGroupMixin, APIView):
    """POST: up to 500 brackets; each item stands or falls alone; 201 with every result."""

    @extend_schema(request=s.BatchSerializer, responses={201: s.BatchResponseSerializer})
    def post(self, request):
        outer = s.BatchSerializer(data=request.data)
        outer.is_valid(raise_exception=True)
        account_id = outer.validated_data["account_id"]
        items: list[BracketOrderRequest | BatchItemError] = []
        validator = s.BatchItemSerializer()
        for raw in outer.validated_data["orders"]:
            try:
                # The plain reading of an ordinary item; the serializer judges the others.
                data = plain_validated(validator, raw)
                if data is None:
                    data = validator.run_validation(raw)
            except ValidationError as exc:
                errors = exc.detail if isinstance(exc.detail, dict) else {"item": exc.detail}
                items.append(
                    BatchItemError(
                        external_id=str(raw.get("external_id") or "")[:MAX_EXTERNAL_ID_LENGTH],
                        message=_validation_message(errors),
                        details=_plain_details(errors),
                    )
                )
            else:
                items.append(validator.request_from(data, account_id=account_id))
        results = services.place_batch(
            user=request.user,
            account_id=account_id,
            items=items,
            source=Order.Source.BATCH,
            actor=user_actor(request.user),
        )
        return Response(
            {"results": [result.as_dict() for result in results]}, status=status.HTTP_201_CREATED
        )


# A change of a placed order (PATCH, cancel): the order with its legs, or why not.
_CHANGE_RESPONSES = {
    200: s.OrderDetailSerializer,
    409: OpenApiResponse(
        description="CONFLICT: no working leg to change (the order is final, or the leg "
        "is), or the account is busy with another change"
    ),
    422: OpenApiResponse(description="BROKER_REJECTED: the broker refused the change"),
    503: OpenApiResponse(description="BROKER_UNAVAILABLE: the broker did not answer"),
}


class OrderDetailView(OrdersGroupMixin, APIView):
    """GET: one order with its legs and audit trail; PATCH: change a working leg."""

    @extend_schema(responses=s.OrderDetailSerializer)
    def get(self, request, order_id: int):
        order = selectors.order_detail(user=request.user, order_id=order_id)
        return Response(s.order_detail(order))

    @extend_schema(request=s.ModifyOrderSerializer, responses=_CHANGE_RESPONSES)
    def patch(self, request, order_id: int):
        order = selectors.order_for_user(user=request.user, order_id=order_id)
        serializer = s.ModifyOrderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.modify_order(
            order=order,
            actor=user_actor(request.user),
            limit_price=data.get("limit_price"),
            stop_price=data.get("stop_price"),
            quantity=data.get("quantity"),
            leg_id=data.get("leg_id"),
        )
        return Response(
            s.order_detail(selectors.order_detail(user=request.user, order_id=order_id))
        )


class CancelOrderView(OrdersGroupMixin, APIView):
    """POST: cancel the order's unfilled entry (a filled bracket keeps its SL/TP)."""

    @extend_schema(request=None, responses=_CHANGE_RESPONSES)
    def post(self, request, order_id: int):
        order = selectors.order_for_user(user=request.user, order_id=order_id)
        services.cancel_order(order=order, actor=user_actor(request.user))
        return Response(
            s.order_detail(selectors.order_detail(user=request.user, order_id=order_id))
        )
