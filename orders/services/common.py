"""What every order service shares: the audit trail, notifications, metrics and the broker.

Write-ahead discipline (SPEC 5): callers commit the Order and its legs as PENDING /
PENDING_SUBMIT first, then call `send_new_legs`, then record what the broker said. Nothing in
here holds a database transaction open across a broker call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.db import connection
from django.utils import timezone

from orders.brokers.base import (
    BrokerError,
    BrokerUnavailable,
    ModifyOrderRequest,
    OrderAck,
    OrderRejected,
    PlaceOrderRequest,
    RateLimited,
    SessionExpired,
)
from orders.brokers.sessions import broker_client
from orders.models import Order, OrderEvent, OrderLeg
from trading_site.core import metrics
from trading_site.core.realtime import ORDER_UPDATE, notify_user_on_commit, notify_users_on_commit

logger = logging.getLogger("orders.services")

LegStatus = OrderLeg.Status
OPEN_LEG_STATUSES = tuple(OrderLeg.OPEN_STATUSES)
FINAL_LEG_STATUSES = (LegStatus.FILLED, LegStatus.CANCELLED, LegStatus.REJECTED)
EXIT_ROLES = (OrderLeg.Role.STOP_LOSS, OrderLeg.Role.TAKE_PROFIT, OrderLeg.Role.EXIT)
# How many new legs one batch sends to a broker at the same time.
SEND_CONCURRENCY = 8


def user_actor(user) -> str:
    return f"user:{user.pk}"


def decimal_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def leg_state(leg: OrderLeg) -> dict[str, Any]:
    """The audited view of a leg (before/after in OrderEvent)."""
    return {
        "status": leg.status,
        "quantity": leg.quantity,
        "filled_quantity": leg.filled_quantity,
        "limit_price": decimal_or_none(leg.limit_price),
        "stop_price": decimal_or_none(leg.stop_price),
        "broker_order_id": leg.broker_order_id,
        "average_price": decimal_or_none(leg.average_price),
    }


def order_state(order: Order) -> dict[str, Any]:
    return {"status": order.status, "filled_quantity": order.filled_quantity}


def new_event(
    *,
    order: Order | None,
    kind: str,
    actor: str,
    leg: OrderLeg | None = None,
    message: str = "",
    before: dict | None = None,
    after: dict | None = None,
    broker_response: dict | None = None,
) -> OrderEvent:
    """An unsaved event (bulk_create them, or call .save())."""
    return OrderEvent(
        order=order,
        leg=leg,
        account_id=(order.account_id if order is not None else getattr(leg, "account_id", None)),
        user_id=order.user_id if order is not None else None,
        actor=actor,
        kind=kind,
        message=message[:4000],
        before=before,
        after=after,
        broker_response=_jsonable(broker_response),
    )


def record_event(**kwargs) -> OrderEvent:
    event = new_event(**kwargs)
    event.save()
    return event


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def order_update_message(order: Order, **details: Any) -> dict[str, Any]:
    payload = {
        "symbol": order.symbol,
        "side": order.side,
        "quantity": order.quantity,
        "filled_quantity": order.filled_quantity,
        "kind": order.kind,
        "account_id": order.account_id,
    }
    payload.update(details)
    return {"type": ORDER_UPDATE, "order_id": order.pk, "status": order.status, "details": payload}


def notify_order(order: Order, **details: Any) -> None:
    """The owner's order_update, sent once the current transaction commits."""
    notify_user_on_commit(order.user_id, order_update_message(order, **details))


def notify_orders_on_commit(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """Many order_updates (a batch) handed to the realtime publisher after commit, in one
    go (in order per user)."""
    notify_users_on_commit(messages)


def bulk_update_rows(model, rows: list, fields: list[str]) -> None:
    """`bulk_update` without its per-row CASE WHEN expressions (Python-heavy for hundreds of
    rows): on MariaDB one UPDATE joined to the new values as a derived table. Parameterised
    like every query; other databases use Django's bulk_update."""
    if not rows:
        return
    if len(rows) == 1:
        [row] = rows
        model.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in fields})
        return
    if connection.vendor != "mysql":
        model.objects.bulk_update(rows, fields)
        return
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    first = ", ".join(
        ["%s AS " + quote("__pk")] + [f"%s AS {quote(field.column)}" for field in columns]
    )
    rest = ", ".join(["%s"] * (len(columns) + 1))
    selects = [f"SELECT {first}"] + [f"SELECT {rest}"] * (len(rows) - 1)
    params: list = []
    for row in rows:
        params.append(pk.get_db_prep_save(row.pk, connection))
        params.extend(
            field.get_db_prep_save(getattr(row, field.attname), connection) for field in columns
        )
    table = quote(meta.db_table)
    assignments = ", ".join(
        f"{table}.{quote(field.column)} = v.{quote(field.column)}" for field in columns
    )
    # Only quoted names from the model's metadata are formatted in; every value is a %s.
    derived = " UNION ALL ".join(selects)
    join = f"{table}.{quote(pk.column)} = v.{quote('__pk')}"
    sql = f"UPDATE {table} JOIN ({derived}) v ON {join} SET {assignments}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def count_metric(name: str, value: int = 1, **labels: str) -> None:
    """Counters on /metrics; a metrics failure never fails an order."""
    try:
        metrics.inc(name, value, **labels)
    except Exception:
        logger.debug("metric %s not recorded", name, exc_info=True)


# ---- talking to the broker ------------------------------------------------------------------


def client_for(account):
    return broker_client(account)


def place_request(leg: OrderLeg, order: Order) -> PlaceOrderRequest:
    return PlaceOrderRequest(
        exchange_segment=order.exchange_segment,
        exchange_instrument_id=int(order.exchange_instrument_id),
        side=leg.side,
        order_type=leg.order_type,
        product_type=order.product_type,
        quantity=int(leg.quantity),
        unique_identifier=leg.unique_identifier,
        limit_price=leg.limit_price,
        stop_price=leg.stop_price,
    )


@dataclass
class SendOutcome:
    """What happened to one broker POST. `accepted` -> ack; `rejected` -> the broker refused
    (nothing placed); otherwise the outcome is unknown and the leg stays PENDING_SUBMIT."""

    leg: OrderLeg
    ack: OrderAck | None = None
    rejected_reason: str = ""
    unknown_reason: str = ""
    response: dict | None = None

    @property
    def accepted(self) -> bool:
        return self.ack is not None


def _outcome_of_error(leg: OrderLeg, exc: Exception) -> SendOutcome:
    if isinstance(exc, OrderRejected):
        return SendOutcome(leg=leg, rejected_reason=exc.message, response=exc.response)
    if isinstance(exc, (SessionExpired, RateLimited)):
        # Refused before the broker acted (bad token after a re-login, or our own
        # outbound limit): nothing was placed, so the leg is rejected, not pending.
        return SendOutcome(leg=leg, rejected_reason=f"not sent: {exc.message}")
    if isinstance(exc, (BrokerUnavailable, BrokerError)):
        return SendOutcome(leg=leg, unknown_reason=exc.message, response=exc.response)
    # A bug or a raw network error: the outcome is unknown.
    logger.error("order POST failed", exc_info=exc, extra={"leg": leg.unique_identifier})
    return SendOutcome(leg=leg, unknown_reason=f"{type(exc).__name__}: {exc}")


async def _send_one(client, leg: OrderLeg, order: Order, gate: asyncio.Semaphore) -> SendOutcome:
    async with gate:
        try:
            ack = await client.place_order(place_request(leg, order))
            return SendOutcome(leg=leg, ack=ack, response=ack.raw)
        except Exception as exc:
            return _outcome_of_error(leg, exc)


async def _send_bulk(client, pairs: list[tuple[OrderLeg, Order]]) -> list[SendOutcome]:
    """One broker call for many legs (the paper exchange): each answer stands alone."""
    try:
        answers = await client.place_orders([place_request(leg, order) for leg, order in pairs])
    except Exception as exc:
        return [_outcome_of_error(leg, exc) for leg, _ in pairs]
    outcomes = []
    for (leg, _order), answer in zip(pairs, answers, strict=True):
        if isinstance(answer, OrderAck):
            outcomes.append(SendOutcome(leg=leg, ack=answer, response=answer.raw))
        else:
            outcomes.append(_outcome_of_error(leg, answer))
    return outcomes


async def _send_all(account, pairs: list[tuple[OrderLeg, Order]]) -> list[SendOutcome]:
    client = client_for(account)
    if len(pairs) > 1 and client.can_place_in_bulk:
        return await _send_bulk(client, pairs)
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    return list(
        await asyncio.gather(*(_send_one(client, leg, order, gate) for leg, order in pairs))
    )


def send_new_legs(account, pairs: list[tuple[OrderLeg, Order]]) -> list[SendOutcome]:
    """POST each (leg, order) once, concurrently; never retried (SPEC 5)."""
    if not pairs:
        return []
    return async_to_sync(_send_all)(account, pairs)


def apply_send_outcome(outcome: SendOutcome, order: Order, actor: str) -> list[OrderEvent]:
    """Write the broker's answer onto the (already saved, PENDING_SUBMIT) leg in memory and
    return the events; the caller saves the leg and the events in one transaction."""
    leg = outcome.leg
    before = leg_state(leg)
    now = timezone.now()
    if outcome.accepted:
        leg.status = LegStatus.OPEN
        leg.broker_order_id = outcome.ack.broker_order_id
        leg.submitted_at = now
        # A broker that names the new order's status in its answer (the paper broker)
        # gives the raw status the first sync would store: stored now, that sync finds the
        # leg unchanged. Only when it agrees with OPEN (a fill is left for the sync).
        raw_status = (outcome.ack.raw or {}).get("status")
        if isinstance(raw_status, str) and raw_status == LegStatus.OPEN:
            leg.broker_status = raw_status[:32]
        kind, message = "leg_accepted", f"broker order {leg.broker_order_id}"
    elif outcome.rejected_reason:
        leg.status = LegStatus.REJECTED
        leg.reject_reason = outcome.rejected_reason[:2000]
        broker_id = (outcome.response or {}).get("AppOrderID")
        if broker_id and not leg.broker_order_id:
            leg.broker_order_id = str(broker_id)
        kind, message = "leg_rejected", outcome.rejected_reason
    else:
        leg.submitted_at = now
        kind = "leg_submit_unknown"
        message = (
            f"broker did not answer ({outcome.unknown_reason}); the leg stays pending until "
            "the order book shows it (never re-sent)"
        )
    return [
        new_event(
            order=order,
            leg=leg,
            kind=kind,
            actor=actor,
            message=message,
            before=before,
            after=leg_state(leg),
            broker_response=outcome.response,
        )
    ]


def modify_at_broker(leg: OrderLeg, order: Order, *, quantity: int, limit_price, stop_price):
    request = ModifyOrderRequest(
        broker_order_id=leg.broker_order_id,
        unique_identifier=leg.unique_identifier,
        order_type=leg.order_type,
        product_type=order.product_type,
        quantity=int(quantity),
        limit_price=limit_price,
        stop_price=stop_price,
    )
    return async_to_sync(client_for(order.account).modify_order)(request)


def cancel_at_broker(leg: OrderLeg, account) -> OrderAck:
    return async_to_sync(client_for(account).cancel_order)(
        leg.broker_order_id, leg.unique_identifier
    )
