"""The OpenAlgo-compatible API under /api/v1/: thin views over orders.openalgo.services and
selectors, answering in OpenAlgo's formats.

Every call is a POST with `apikey` in the JSON body. Answers are
`{"status": "success", ...}` (200) or `{"status": "error", "message": ...}` with OpenAlgo's
HTTP statuses: 400 a bad field (named), 403 a bad key or scope, 404 an unknown order, 429
rate limited, 500 a broker that did not answer; and two of the desk's own, with a `code`:
409 TRADING_LOCKED (the kill switch's lock) and 503 NOT_SENT (retryable: the same request
sent again places once). The writes that place (placeorder,
placesmartorder, basketorder, splitorder, closeposition) run once per request content
within OPENALGO_IDEMPOTENCY_SECONDS (orders.openalgo.idempotency).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Instrument, Order
from orders.openalgo import presenters as show
from orders.openalgo import schema as doc
from orders.openalgo import selectors, services
from orders.openalgo.auth import BodyApiKeyAuthentication, BoundApiKeyScope
from orders.openalgo.fields import (
    FieldReader,
    OpenAlgoInvalid,
    OrderFields,
    read_date,
    read_order,
    read_order_id,
    read_strategy,
    read_year,
)
from orders.openalgo.idempotency import Answer, run_once
from orders.openalgo.mapping import (
    EXCHANGES,
    MappingError,
    epoch_millis,
    product_type_of_product,
)
from orders.positions.holdings import account_holdings
from orders.services.broker_calls import OUTCOME_NOT_SENT, OUTCOME_REJECTED, OUTCOME_UNKNOWN
from orders.services.broker_reads import (
    read_balance,
    read_positions,
    read_trade_book,
)
from orders.services.placement import PlacementResult, not_sent_details
from orders.services.resync import refresh_orders_from_broker
from trading_site.core.errors import (
    TRADING_LOCKED,
    BrokerRejectedError,
    BrokerUnavailableError,
    DomainError,
    NotFound,
    PermissionDenied,
    RateLimitExceeded,
    TradingLocked,
)
from trading_site.core.market_hours import MARKET_TZ, market_now
from trading_site.core.request_context import current_request_id

logger = logging.getLogger(__name__)

# OpenAlgo's statuses for the desk's refusals: it has no 409 or 422 (a conflict, a closed
# market, a broker's rejection are 400), and a broker that did not answer is its 500. Two
# answers are the desk's own, with a `code` beside OpenAlgo's `message` so a program can
# tell them apart: the kill switch's trading lock is 409 TRADING_LOCKED (send nothing more
# until the trader re-enables trading), and an order provably never sent to the broker is
# 503 NOT_SENT with Retry-After (`_not_sent`).
_STATUS_OF: list[tuple[type[DomainError], int]] = [
    (TradingLocked, 409),
    (NotFound, 404),
    (PermissionDenied, 403),
    (RateLimitExceeded, 429),
    (BrokerUnavailableError, 500),
    (BrokerRejectedError, 400),
    (DomainError, 400),
]


def status_of(exc: DomainError) -> int:
    return next(status for cls, status in _STATUS_OF if isinstance(exc, cls))


def error_answer(exc: Exception) -> Answer:
    if isinstance(exc, OpenAlgoInvalid):
        return Answer(status=400, body=show.error(exc.message))
    if isinstance(exc, MappingError):
        return Answer(status=400, body=show.error(str(exc)))
    if isinstance(exc, RateLimitExceeded):
        headers = {**exc.limit_headers, "Retry-After": str(exc.retry_after)}
        return Answer(status=429, body=show.error("Rate limit exceeded"), headers=headers)
    if isinstance(exc, TradingLocked):
        return Answer(status=409, body=show.error(exc.message, code=TRADING_LOCKED))
    if isinstance(exc, DomainError):
        return Answer(status=status_of(exc), body=show.error(exc.message))
    raise exc


def openalgo_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Everything raised before or around a view's own work, in OpenAlgo's envelope."""
    if isinstance(exc, RequestDataTooBig):
        return Response(show.error("Request body too large"), status=413)
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return Response(show.error(str(exc.detail)), status=403)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Response(show.error(str(exc.detail)), status=403)
    if isinstance(exc, drf_exceptions.Throttled):
        wait = int(exc.wait or 1)  # type: ignore[attr-defined]  # set in __init__, not in the stubs
        return Response(
            show.error("Rate limit exceeded"), status=429, headers={"Retry-After": str(wait)}
        )
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(show.error(f"{exc.detail} OpenAlgo calls are POSTs."), status=405)
    if isinstance(exc, (drf_exceptions.ParseError, drf_exceptions.UnsupportedMediaType)):
        return Response(show.error(f"Malformed request: {exc.detail}"), status=400)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(show.error(str(exc.detail)), status=exc.status_code)
    try:
        answer = error_answer(exc)
    except Exception:
        logger.exception("unhandled OpenAlgo API error", exc_info=exc)
        return Response(
            show.error(f"Internal server error (request {current_request_id()})"), status=500
        )
    return Response(answer.body, status=answer.status, headers=answer.headers)


class OpenAlgoView(APIView):
    """One OpenAlgo endpoint. `respond` does the work and returns the Answer; refusals
    raised in it (a bad field, a domain error) become OpenAlgo's error answers."""

    authentication_classes = [BodyApiKeyAuthentication]
    permission_classes = [BoundApiKeyScope]
    accepts_bound_api_keys = True
    rate_limit_group = "read"
    places_orders = False
    # Run once per request content within the idempotency window (the placing calls).
    runs_once = False
    # Acts on the key's analyzer mode itself (analyzer/toggle): its paper twin's state does
    # not refuse it.
    switches_analyzer = False
    endpoint = ""

    # Its OpenAPI operation on `post`, tagged OpenAlgo: summarised as "<endpoint>: <summary>",
    # the request's fields beside `apikey`, the success answer's beside `status`, both
    # components named after the view (PlaceOrderView: OpenAlgoPlaceOrderRequest, ...Answer).
    summary = ""
    request_fields: Mapping[str, serializers.Field] = {}
    answer_fields: Mapping[str, serializers.Field] = {}
    schema_name = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.summary:
            name = cls.schema_name or cls.__name__.removesuffix("View")
            operation = extend_schema(
                tags=[doc.TAG],
                summary=f"{cls.endpoint}: {cls.summary}",
                request=doc.request_body(name, **cls.request_fields),
                responses=doc.answer(name, **cls.documented_answer()),
            )
            extend_schema_view(post=operation)(cls)

    @classmethod
    def documented_answer(cls) -> Mapping[str, serializers.Field]:
        return cls.answer_fields

    def get_exception_handler(self):
        return openalgo_exception_handler

    def post(self, request, *args, **kwargs):
        caller = services.caller_for(request.auth, switching_analyzer=self.switches_analyzer)
        body = dict(request.data)

        def handle(claim_id: int | None) -> Answer:
            try:
                return self.respond(caller, body, claim_id)
            except (OpenAlgoInvalid, MappingError, DomainError) as exc:
                return error_answer(exc)

        if self.runs_once:
            answer = run_once(
                endpoint=self.endpoint,
                api_key=caller.api_key,
                account=caller.account,
                body=body,
                handle=handle,
            )
        else:
            answer = handle(None)
        return Response(answer.body, status=answer.status, headers=answer.headers)

    def respond(
        self, caller: services.Caller, body: dict, claim_id: int | None
    ) -> Answer:  # pragma: no cover - every endpoint overrides it
        raise NotImplementedError


def _mode() -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=["live", "analyze"])


class OrderWriteView(OpenAlgoView):
    """An endpoint that places, changes or cancels: the orders rate limit, a trade key."""

    rate_limit_group = "orders"
    places_orders = True

    @classmethod
    def documented_answer(cls) -> Mapping[str, serializers.Field]:
        # Every write answers the mode it ran in (live or analyze), last.
        return {**cls.answer_fields, "mode": _mode()}


# An endpoint that places orders: it runs once per request content within the idempotency
# window. (No docstring: the schema describes an endpoint by the docstring its view inherits.)
class PlacingView(OrderWriteView):
    runs_once = True


def _read(body: dict) -> FieldReader:
    return FieldReader(body)


def _read_order_id(body: dict) -> int:
    reader = _read(body)
    order_id = read_order_id(reader)
    reader.raise_errors()
    assert order_id is not None  # required: raise_errors refused it missing
    return order_id


def _read_placement(
    body: dict, *, size_field: str = "", size_minimum: int | None = 1, **order_options: Any
) -> tuple[str, OrderFields, int]:
    """A placing request's strategy and order (`read_order`'s options) and, when
    `size_field` names one, its required whole number (else 0); every bad field refused
    at once."""
    reader = _read(body)
    strategy = read_strategy(reader)
    order = read_order(reader, **order_options)
    size = reader.integer(size_field, required=True, minimum=size_minimum) if size_field else 0
    reader.raise_errors()
    assert size is not None  # required: raise_errors refused it missing
    return strategy, order, size


def _ok(*, placed: bool = False, **fields: Any) -> Answer:
    """OpenAlgo's success answer (200) with `fields`; `placed`: something was written."""
    return Answer(status=200, body=show.success(**fields), placed=placed)


def _refused(message: str, *, placed: bool = False, **fields: Any) -> Answer:
    """OpenAlgo's error answer (400) for a request the desk or the broker turned down."""
    return Answer(status=400, body=show.error(message, **fields), placed=placed)


def _placed(result: PlacementResult, caller: services.Caller, *, note: str = "", **extra) -> Answer:
    """A placement's answer: success with the desk's order id (and `note`, its message); a
    broker's refusal is an error naming the (stored, rejected) order; no answer from the
    broker is a success whose order settles at the next sync (it is never sent twice)."""
    order = result.order
    if result.outcome == OUTCOME_NOT_SENT and result.send is not None:
        return _not_sent(result, caller, **extra)
    if result.outcome == OUTCOME_REJECTED:
        return _refused(
            f"The broker rejected the order: {result.reject_reason}",
            orderid=str(order.pk),
            mode=caller.mode,
            placed=True,
        )
    body = show.success(orderid=str(order.pk), mode=caller.mode, **extra)
    if note:
        body["message"] = note
    if result.outcome == OUTCOME_UNKNOWN:
        body["message"] = (
            "The broker did not answer; the order is stored and settles at the next sync "
            "(it is never sent twice)"
        )
    return Answer(status=200, body=body, placed=True)


NOT_SENT = "NOT_SENT"


def _nothing_sent(message: str, retry_after: str = "1", **fields: Any) -> Answer:
    """503 NOT_SENT, retryable: nothing reached the broker, the same request sent again
    places once."""
    return Answer(
        status=503,
        body=show.error(message, code=NOT_SENT, retryable=True, **fields),
        headers={"Retry-After": retry_after},
    )


def _not_sent(result: PlacementResult, caller: services.Caller, **extra) -> Answer:
    """An order that provably never reached the broker (our outbound limit, no session, no
    connection; or the kill switch locked the account between the check and the send):
    OpenAlgo has no word for it, so the desk's own answer, an error a client does not take
    for a placement. Not sent: 503 with Retry-After and `retryable`; the order's key was
    released and the request's claim is not kept (`placed=False`), so the same request sent
    again is evaluated afresh and places once. Locked: 409 TRADING_LOCKED."""
    send = result.send
    assert send is not None  # a not-sent order was sent for
    fields = {"orderid": str(result.order.pk), "mode": caller.mode, **extra}
    if send.trading_locked:
        return Answer(
            status=409,
            body=show.error(TradingLocked.default_message, code=TRADING_LOCKED, **fields),
        )
    details = not_sent_details(send)
    retry_after = str(details.get("retry_after", 1))
    return _nothing_sent(
        "The order was not sent to the broker, nothing was placed: "
        f"{send.rejected_reason.removeprefix('not sent: ')}. Send the same request again.",
        retry_after,
        **fields,
    )


def _item_row(row: dict[str, Any], placement: PlacementResult | None, error: str) -> dict:
    """One basket or split order's row: success, or an error saying why (an order not
    sent says so, `retryable`: send that order again)."""
    if placement is not None and placement.outcome not in (OUTCOME_REJECTED, OUTCOME_NOT_SENT):
        row.update(status="success", orderid=str(placement.order.pk))
        return row
    if placement is not None and placement.outcome == OUTCOME_NOT_SENT:
        send = placement.send
        row.update(
            status="error",
            message=(
                TradingLocked.default_message
                if send is not None and send.trading_locked
                else "Not sent to the broker, nothing was placed: "
                f"{placement.reject_reason.removeprefix('not sent: ')}"
            ),
            code=TRADING_LOCKED if send is not None and send.trading_locked else NOT_SENT,
            retryable=not (send is not None and send.trading_locked),
        )
    else:
        reason = placement.reject_reason if placement is not None else ""
        row.update(status="error", message=error or f"The broker rejected the order: {reason}")
    if placement is not None:
        row["orderid"] = str(placement.order.pk)
    return row


def _all_not_sent(results) -> bool:
    placements = [r.placement for r in results]
    return bool(placements) and all(
        p is not None and p.outcome == OUTCOME_NOT_SENT for p in placements
    )


def _many_placed(what: str, outcomes, *, placed: bool, **fields: Any) -> Answer:
    """A basket's or a split's answer from its orders' outcomes and rows (`fields["results"]`):
    nothing sent is 503 NOT_SENT (send it all again), no row placed is a refusal naming the
    first row's reason, anything placed is a success."""
    rows = fields["results"]
    if _all_not_sent(outcomes):
        return _nothing_sent(
            f"No order of the {what} was sent to the broker, nothing was placed; "
            "send the same request again",
            **fields,
        )
    if not any(row["status"] == "success" for row in rows):
        message = f"No order of the {what} was placed: " + rows[0].get("message", "")
        return _refused(message, placed=placed, **fields)
    return _ok(placed=placed, **fields)


# ---- placing --------------------------------------------------------------------------------


def inline_order_item() -> serializers.Serializer:
    return inline_serializer(name="OpenAlgoBasketItem", fields=dict(doc.ORDER_FIELDS))


class PlaceOrderView(PlacingView):
    endpoint = "placeorder"

    summary = "one order (with stoploss/target: a desk bracket)"
    request_fields = dict(**doc.STRATEGY, **doc.ORDER_FIELDS, **doc.BRACKET_FIELDS)
    answer_fields = dict(orderid=serializers.CharField())

    def respond(self, caller, body, claim_id):
        strategy, order, _ = _read_placement(body)
        result = services.place_order(
            caller=caller,
            order=order,
            strategy_name=strategy,
            key=services.order_key(claim_id),
        )
        return _placed(result, caller, kind=result.order.kind)


class PlaceSmartOrderView(PlacingView):
    endpoint = "placesmartorder"

    summary = "the order for the difference to a target position"
    request_fields = dict(
        **doc.STRATEGY,
        **doc.ORDER_FIELDS,
        position_size=doc._text("the position to reach (signed; 0 = flat)", True),
    )
    answer_fields = dict(
        orderid=serializers.CharField(required=False),
        message=serializers.CharField(required=False),
    )

    def respond(self, caller, body, claim_id):
        strategy, order, position_size = _read_placement(
            body, size_field="position_size", size_minimum=None, quantity_minimum=0, brackets=False
        )
        smart = services.place_smart_order(
            caller=caller,
            order=order,
            position_size=position_size,
            strategy_name=strategy,
            claim_id=claim_id,
        )
        if smart.change is None:
            return _ok(
                message="Positions Already Matched. No Action needed.",
                current_position=smart.current,
                mode=caller.mode,
            )
        change = smart.result
        assert change is not None and smart.change is not None  # a change was decided and made
        extra: dict[str, Any] = {
            "action": smart.change.side,
            "quantity": smart.change.quantity,
            "current_position": smart.current,
        }
        # A success's note; an error answer's message is its own (`message` is its argument).
        note = ""
        if change.exit_legs:
            extra["orderids"] = [str(order.pk) for order in change.orders]
            note = (
                "Part or all of the change exits desk brackets holding the position "
                f"(orders {', '.join(str(o.pk) for o in change.bracket_orders)})"
            )
        # The trader hears of it, refused or not: among the errors when there are any (with
        # the rest of `protection.words`), else in the note.
        if change.protection.sized_words and not change.errors:
            note = ". ".join(n for n in (note, change.protection.sized_words) if n)
        if change.nothing_sent:
            # The exits never reached the broker: answered as an order not sent would be;
            # the same request sent again reads the position afresh and places once.
            return _nothing_sent(
                "The exit was not sent to the broker, nothing was placed: "
                + "; ".join(change.errors)
                + ". Send the same request again.",
                mode=caller.mode,
                **extra,
            )
        # What the exits refused left: protected again at once, or not (square off by hand).
        protection = change.protection.words
        if change.errors and not change.placement:
            message = "; ".join(change.errors)
            if protection:  # sentences, each with its full stop
                message += ". " + " ".join(protection)
            return _refused(message, mode=caller.mode, **extra, placed=True)
        if change.placement is not None:
            if change.errors:
                extra["errors"] = change.errors + protection
            return _placed(change.placement, caller, note=note, **extra)
        primary = change.primary_order
        assert primary is not None  # something was sent, without errors
        if note:
            extra["message"] = note
        return _ok(orderid=str(primary.pk), mode=caller.mode, **extra, placed=True)


class BasketOrderView(PlacingView):
    endpoint = "basketorder"

    summary = "several orders, each standing alone (BUYs before SELLs)"
    request_fields = dict(
        **doc.STRATEGY,
        orders=serializers.ListField(
            child=inline_order_item(), help_text="the orders (at most 100)"
        ),
    )
    answer_fields = dict(results=doc.any_list())

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        strategy = read_strategy(reader)
        raw_items = body.get("orders")
        if not isinstance(raw_items, list):
            reader.fail("orders", "is required: a list of orders")
        reader.raise_errors()
        items: list = []
        for index, raw in enumerate(raw_items):
            try:
                item_reader = FieldReader(raw, prefix=f"orders[{index}].")
                item = read_order(item_reader, brackets=False)
                item_reader.raise_errors()
                items.append(item)
            except OpenAlgoInvalid as exc:
                items.append(exc)
        results = services.place_basket(
            caller=caller, items=items, strategy_name=strategy, claim_id=claim_id
        )
        rows = []
        for result, raw in zip(results, raw_items, strict=True):
            symbol = result.order.symbol if result.order else str(_get(raw, "symbol"))
            rows.append(_item_row({"symbol": symbol}, result.placement, result.error))
        placed = any(
            result.placement is not None and result.placement.outcome != OUTCOME_NOT_SENT
            for result in results
        )
        return _many_placed("basket", results, placed=placed, results=rows, mode=caller.mode)


def _get(raw: Any, name: str) -> Any:
    return raw.get(name, "") if isinstance(raw, dict) else ""


class SplitOrderView(PlacingView):
    endpoint = "splitorder"

    summary = "one quantity in several orders of splitsize (remainder last)"
    request_fields = dict(
        **doc.STRATEGY,
        **doc.ORDER_FIELDS,
        splitsize=doc._text("units per order (at most 100 orders)", True),
    )
    answer_fields = dict(
        split_size=serializers.IntegerField(),
        total_quantity=serializers.IntegerField(),
        results=doc.any_list(),
    )

    def respond(self, caller, body, claim_id):
        strategy, order, split_size = _read_placement(body, size_field="splitsize", brackets=False)
        results = services.place_split(
            caller=caller,
            order=order,
            split_size=split_size,
            strategy_name=strategy,
            claim_id=claim_id,
        )
        rows = []
        for result in results:
            row: dict[str, Any] = {"order_num": result.index + 1, "quantity": result.quantity}
            rows.append(_item_row(row, result.placement, result.error))
        fields: dict[str, Any] = dict(
            split_size=split_size, total_quantity=order.quantity, results=rows, mode=caller.mode
        )
        return _many_placed("split", results, placed=True, **fields)


# ---- changing -------------------------------------------------------------------------------


class ModifyOrderView(OrderWriteView):
    endpoint = "modifyorder"

    summary = "new price, trigger price or (a single order's) quantity"
    request_fields = dict(**doc.ORDER_ID, **doc.STRATEGY, **doc.ORDER_FIELDS)
    answer_fields = dict(orderid=serializers.CharField())

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        order_id = read_order_id(reader)
        order = read_order(reader, brackets=False)
        reader.raise_errors()
        assert order_id is not None  # required: raise_errors refused it missing
        modified = services.modify(caller=caller, order_id=order_id, order=order)
        return _ok(orderid=str(modified.pk), mode=caller.mode, placed=True)


class CancelOrderView(OrderWriteView):
    endpoint = "cancelorder"

    summary = "cancel one order's unfilled entry"
    request_fields = dict(**doc.ORDER_ID, **doc.STRATEGY)
    answer_fields = dict(orderid=serializers.CharField())

    def respond(self, caller, body, claim_id):
        order_id = _read_order_id(body)
        cancelled = services.cancel(caller=caller, order_id=order_id)
        return _ok(orderid=str(cancelled.pk), mode=caller.mode, placed=True)


class CancelAllOrderView(OrderWriteView):
    endpoint = "cancelallorder"

    summary = "cancel every working order of the key's account"
    request_fields = doc.STRATEGY
    answer_fields = dict(
        message=serializers.CharField(),
        canceled_orders=serializers.ListField(child=serializers.CharField()),
        failed_cancellations=doc.any_list(),
    )

    def respond(self, caller, body, claim_id):
        result = services.cancel_all(caller=caller)
        message = (
            f"Canceled {len(result.cancelled)} orders. "
            f"Failed to cancel {len(result.failed)} orders."
        )
        return _ok(
            message=message,
            canceled_orders=[str(pk) for pk in result.cancelled],
            failed_cancellations=[
                {"orderid": str(pk), "reason": reason} for pk, reason in result.failed
            ],
            mode=caller.mode,
            placed=bool(result.cancelled),
        )


class ClosePositionView(PlacingView):
    endpoint = "closeposition"

    summary = "MARKET orders closing every open position of the account"
    request_fields = doc.STRATEGY
    answer_fields = dict(
        message=serializers.CharField(),
        orderids=serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="absent when there was no open position to close",
        ),
    )

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        strategy = read_strategy(reader)
        reader.raise_errors()
        result = services.close_positions(caller=caller, strategy_name=strategy)
        order_ids = [str(pk) for pk in result.exit_order_ids + result.bracket_order_ids]
        written = bool(order_ids)
        if not written and not result.errors:
            return _ok(message="No open positions to close", mode=caller.mode)
        if result.not_sent and not result.exit_legs and len(result.not_sent) == len(result.errors):
            return _nothing_sent(
                "No exit was sent to the broker, nothing was placed: "
                + "; ".join(result.errors)
                + ". Send the same request again.",
                orderids=order_ids,
                mode=caller.mode,
            )
        if result.errors and not result.exit_legs:
            return _refused(
                "No position was closed: " + "; ".join(result.errors),
                orderids=order_ids,
                mode=caller.mode,
                placed=written,
            )
        if result.errors:
            return _ok(
                message="Some positions were not closed: " + "; ".join(result.errors),
                orderids=order_ids,
                errors=result.errors,
                mode=caller.mode,
                placed=True,
            )
        return _ok(
            message="All Open Positions Squared Off",
            orderids=order_ids,
            mode=caller.mode,
            placed=True,
        )


# ---- orders and books -----------------------------------------------------------------------


class OrderStatusView(OpenAlgoView):
    endpoint = "orderstatus"

    summary = "one order of the key's account"
    request_fields = dict(**doc.ORDER_ID, **doc.STRATEGY)
    answer_fields = dict(data=doc.any_object("the order"))

    def respond(self, caller, body, claim_id):
        order_id = _read_order_id(body)
        selectors.order_on_account(account=caller.account, order_id=order_id)  # 404 first
        refresh_orders_from_broker(account=caller.account, actor=caller.actor)
        order = selectors.order_on_account(account=caller.account, order_id=order_id)
        return _ok(data=show.order_data(order))


class OpenPositionView(OpenAlgoView):
    endpoint = "openposition"

    summary = "the net quantity of one symbol and product (live)"
    request_fields = dict(
        **doc.STRATEGY,
        **doc.INSTRUMENT_FIELDS,
        product=doc._text("MIS, NRML, CNC", True),
    )
    answer_fields = dict(quantity=serializers.CharField())

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        symbol = reader.text("symbol", required=True)
        exchange = reader.text("exchange", required=True)
        product = reader.mapped("product", product_type_of_product, required=True)
        reader.raise_errors()
        quantity = services.open_position(
            caller=caller, exchange=exchange, symbol=symbol, product_type=product
        )
        return _ok(quantity=str(quantity))


# A read answered as {"data": data_of(caller)}; `data_field` documents it. (No docstring: the
# schema describes an endpoint by the docstring its view inherits.)
class _DataView(OpenAlgoView):
    data_field: serializers.Field
    data_of: Callable[[services.Caller], Any]

    @classmethod
    def documented_answer(cls) -> Mapping[str, serializers.Field]:
        return {"data": cls.data_field}

    def respond(self, caller, body, claim_id):
        return _ok(data=self.data_of(caller))


def _order_book(caller: services.Caller) -> dict[str, Any]:
    refresh_orders_from_broker(account=caller.account, actor=caller.actor)
    return show.order_book(selectors.orders_of_the_day(account=caller.account))


class OrderBookView(_DataView):
    endpoint = "orderbook"

    summary = "today's orders of the key's account, with statistics"
    data_field = doc.any_object("orders and statistics")
    data_of = staticmethod(_order_book)


def _instruments_of(rows) -> dict:
    """The desk's instruments of the broker's rows (fills, positions, holdings), each row
    read by its (segment, exchange instrument id)."""
    return selectors.instruments_by_key(
        {(row.exchange_segment, int(row.exchange_instrument_id)) for row in rows}
    )


def _trade_book(caller: services.Caller) -> list[dict[str, Any]]:
    trades = read_trade_book(caller.account)
    instruments = _instruments_of(trades)
    order_ids = selectors.order_ids_by_leg_identifier(
        account=caller.account, identifiers={t.unique_identifier for t in trades}
    )
    return [show.trade_data(t, instruments, order_ids) for t in trades]


class TradeBookView(_DataView):
    endpoint = "tradebook"

    summary = "the broker's fills (live read)"
    data_field = doc.any_list("fills")
    data_of = staticmethod(_trade_book)


def _position_book(caller: services.Caller) -> list[dict[str, Any]]:
    positions = read_positions(caller.account)
    instruments = _instruments_of(positions)
    return [show.position_data(p, instruments) for p in positions]


class PositionBookView(_DataView):
    endpoint = "positionbook"

    summary = "the broker's positions (live read)"
    data_field = doc.any_list("positions")
    data_of = staticmethod(_position_book)


def _holdings(caller: services.Caller) -> dict[str, Any]:
    holdings = account_holdings(caller.account)
    if holdings.error:
        raise BrokerUnavailableError(
            f"The broker's holdings could not be read: {holdings.error}",
            details={"account_id": caller.account.pk},
        )
    return show.holdings_data(holdings, _instruments_of(holdings.rows))


class HoldingsView(_DataView):
    endpoint = "holdings"

    summary = "the broker's delivery holdings, valued at the LTP, with statistics"
    data_field = doc.any_object("holdings and statistics")
    data_of = staticmethod(_holdings)


def _funds(caller: services.Caller) -> dict[str, Any]:
    return show.funds_data(read_balance(caller.account), read_positions(caller.account))


class FundsView(_DataView):
    endpoint = "funds"

    summary = "available cash, margin used and M2M (live read)"
    data_field = doc.any_object("funds")
    data_of = staticmethod(_funds)


# ---- market data and symbols ----------------------------------------------------------------


def _instrument_from(body: dict):
    reader = _read(body)
    symbol = reader.text("symbol", required=True)
    exchange = reader.text("exchange", required=True)
    reader.raise_errors()
    return selectors.resolve_instrument(exchange=exchange, symbol=symbol)


# One instrument, named by symbol and exchange, answered as `present` shows it. (No
# docstring: the schema describes an endpoint by the docstring its view inherits.)
class _InstrumentView(OpenAlgoView):
    request_fields = doc.INSTRUMENT_FIELDS
    present: Callable[[Instrument], dict[str, Any]]

    def respond(self, caller, body, claim_id):
        return _ok(data=self.present(_instrument_from(body)))


class QuotesView(_InstrumentView):
    endpoint = "quotes"

    summary = "LTP, bid and ask from the desk's fair prices"
    answer_fields = dict(data=doc.any_object("ltp, bid, ask (OHLC, volume: 0)"))
    present = staticmethod(show.quote_data)


class SymbolView(_InstrumentView):
    endpoint = "symbol"

    summary = "one instrument's details (lot size, tick size, token...)"
    answer_fields = dict(data=doc.any_object("the instrument"))
    present = staticmethod(show.instrument_data)


class SearchView(OpenAlgoView):
    endpoint = "search"

    summary = "instruments matching every word of the query (at most 100)"
    request_fields = dict(
        query=doc._text("e.g. NIFTY 26000 DEC CE", True),
        exchange=doc._text("NSE, BSE, NFO, BFO, CDS, MCX (optional)"),
    )
    answer_fields = dict(message=serializers.CharField(), data=doc.any_list("instruments"))

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        query = reader.text("query", required=True)
        exchange = reader.text("exchange")
        reader.raise_errors()
        found = selectors.search_instruments(query=query, exchange=exchange)
        return _ok(
            message=f"Found {len(found)} matching symbols",
            data=[show.instrument_data(i) for i in found],
        )


# ---- the calendar ---------------------------------------------------------------------------


class TimingsView(OpenAlgoView):
    endpoint = "market/timings"

    summary = "when the desk takes live orders on a date (epoch ms)"
    request_fields = dict(date=doc._text("YYYY-MM-DD (default: today)"))
    answer_fields = dict(data=doc.any_list("one row per exchange; [] closed"))

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        day = read_date(reader, "date", default=market_now().date())
        reader.raise_errors()
        session = selectors.trading_session(day)
        rows = []
        if session is not None:
            start, end = (epoch_millis(moment) for moment in session)
            rows = [{"exchange": ex, "start_time": start, "end_time": end} for ex in EXCHANGES]
        return _ok(data=rows)


class HolidaysView(OpenAlgoView):
    endpoint = "market/holidays"

    summary = "the desk's trading holidays of a year"
    request_fields = dict(year=doc._text("2020 to 2050 (default: this year)"))
    answer_fields = dict(
        year=serializers.IntegerField(),
        timezone=serializers.CharField(),
        data=doc.any_list("holidays"),
    )

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        year = read_year(reader, default=market_now().year)
        reader.raise_errors()
        rows = [
            {
                "date": holiday.date.isoformat(),
                "description": holiday.description,
                "holiday_type": "TRADING_HOLIDAY",
                "closed_exchanges": list(EXCHANGES),
                "open_exchanges": [],
            }
            for holiday in selectors.holidays_of_year(year)
        ]
        return _ok(year=year, timezone=str(MARKET_TZ), data=rows)


# ---- the analyzer ---------------------------------------------------------------------------


def _analyzer_data(caller: services.Caller) -> dict[str, Any]:
    twin = caller.account if caller.analyze else getattr(caller.bound_account, "paper_twin", None)
    return {
        "analyze_mode": caller.analyze,
        "mode": caller.mode,
        "total_logs": Order.objects.filter(account=twin).count() if twin is not None else 0,
        "paper_account": twin.account_name if twin is not None else "",
    }


class AnalyzerStatusView(_DataView):
    endpoint = "analyzer"

    summary = "is the key in analyzer mode (orders to the paper twin)?"
    schema_name = "Analyzer"
    data_field = doc.any_object("analyze_mode, mode, total_logs")
    data_of = staticmethod(_analyzer_data)


class AnalyzerToggleView(OpenAlgoView):
    # Where the key's orders go is a trading decision: a trade key's.
    places_orders = True
    switches_analyzer = True
    endpoint = "analyzer/toggle"

    summary = "mode true sends the key's orders to a paper twin"
    request_fields = dict(mode=serializers.BooleanField(help_text="true: analyze"))
    answer_fields = dict(data=doc.any_object("the new mode"))

    def respond(self, caller, body, claim_id):
        reader = _read(body)
        enabled = reader.flag("mode", required=True)
        reader.raise_errors()
        assert enabled is not None  # required: raise_errors refused it missing
        caller = services.set_analyzer(caller=caller, enabled=enabled)
        data = _analyzer_data(caller)
        data["message"] = f"Analyzer mode switched to {caller.mode}"
        return _ok(data=data, placed=True)
