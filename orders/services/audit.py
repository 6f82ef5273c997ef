"""The audit trail and the owner's order_update: every order service records through here.

Zulip's `do_*` actions in one helper: a service changes the state, then `record_change`
writes the OrderEvent and hands the owner's order_update to the realtime publisher once the
transaction commits, so nothing is announced that was rolled back and nothing is announced
without its audit row. `record_changes` does the same for a batch (one INSERT).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypedDict, Unpack

# Who did it, and what a save changed: defined with the users (accounts audits its own
# changes too), named here for the order services.
from accounts.audit import admin_actor as admin_actor
from accounts.audit import change_words
from accounts.audit import user_actor as user_actor
from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError, OrderAck
from orders.domain.vocabulary import EventKind
from orders.models import Order, OrderEvent, OrderLeg
from trading_site.core.bulk_rows import insert_rows, new_row
from trading_site.core.realtime import ORDER_UPDATE, notify_user_on_commit, notify_users_on_commit


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
    kind: EventKind,
    actor: str,
    leg: OrderLeg | None = None,
    message: str = "",
    before: dict | None = None,
    after: dict | None = None,
    broker_response: dict | None = None,
) -> OrderEvent:
    """An unsaved event (bulk_create them, or call .save())."""
    return new_row(
        OrderEvent,
        order=order,
        leg=leg,
        account_id=(order.account_id if order is not None else getattr(leg, "account_id", None)),
        user_id=order.user_id if order is not None else None,
        actor=actor,
        kind=EventKind(kind),
        message=message[:4000],
        before=before,
        after=after,
        broker_response=_jsonable(broker_response),
    )


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


class EventDetails(TypedDict, total=False):
    """`new_event`'s optional arguments, as `record_change` passes them on."""

    leg: OrderLeg | None
    message: str
    before: dict | None
    after: dict | None
    broker_response: dict | None


def record_change(
    *,
    order: Order | None,
    kind: EventKind,
    actor: str,
    notify: dict[str, Any] | None = None,
    **details: Unpack[EventDetails],
) -> OrderEvent:
    """Write one audit row (`new_event`); with `notify` (the order_update's details), the
    owner hears of the change once the transaction commits."""
    return record_event(new_event(order=order, kind=kind, actor=actor, **details), notify=notify)


def record_event(event: OrderEvent, *, notify: dict[str, Any] | None = None) -> OrderEvent:
    """Save an audit row built ahead (`new_event`, `leg_change`); with `notify`, as in
    `record_change`."""
    event.save()
    if notify is not None and event.order is not None:
        notify_order(event.order, **notify)
    return event


def leg_change(
    order: Order,
    leg: OrderLeg,
    *,
    kind: EventKind,
    actor: str,
    message: str,
    before: dict | None = None,
    broker_response: dict | None = None,
) -> OrderEvent:
    """The unsaved audit row of a change to `leg`: `before` as the writer read the leg ahead
    of the change (None for a leg it just created), after as the leg stands now."""
    return new_event(
        order=order,
        leg=leg,
        kind=kind,
        actor=actor,
        message=message,
        before=before,
        after=leg_state(leg),
        broker_response=broker_response,
    )


def record_accepted_change(
    order: Order,
    leg: OrderLeg,
    ack: OrderAck,
    *,
    kind: EventKind,
    actor: str,
    message: str,
    before: dict,
    notify: dict[str, Any] | None = None,
    noted: dict[str, Any] | None = None,
) -> OrderEvent:
    """The audit row of a leg change the broker accepted (a modification, a cancellation):
    the leg before and after (with what the writer `noted` of the change beside it), and the
    broker's answer; with `notify`, as in `record_change`."""
    event = leg_change(
        order, leg, kind=kind, actor=actor, message=message, before=before, broker_response=ack.raw
    )
    if noted:
        event.after = {**(event.after or {}), **noted}
    return record_event(event, notify=notify)


def record_changes(
    events: list[OrderEvent],
    notifications: list[tuple[int, dict[str, Any]]] | None = None,
    *,
    batch_size: int | None = None,
) -> None:
    """Many audit rows in one INSERT and their order_updates after commit (in order per
    user); `notifications` are (user id, order_update_message(...)) pairs."""
    if events:
        insert_rows(OrderEvent, events, batch_size=batch_size or len(events))
    if notifications:
        notify_users_on_commit(notifications)


def record_broker_error(
    exc: BrokerError,
    *,
    order: Order,
    leg: OrderLeg,
    kind: EventKind,
    actor: str,
    doing: str = "",
) -> OrderEvent:
    """A broker call on a leg failed: the audit row names the error (after `doing`, what the
    call was for, when given) and keeps the broker's answer, with the leg as it stands
    (unchanged)."""
    return record_change(
        order=order,
        leg=leg,
        kind=kind,
        actor=actor,
        message=f"{doing}: {exc.message}" if doing else exc.message,
        before=leg_state(leg),
        broker_response=exc.response,
    )


def record_account_event(
    account: BrokerAccount | None,
    *,
    kind: EventKind | str,
    actor: str,
    message: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    user_id: int | None = None,
) -> OrderEvent:
    """An audit row of the account as a whole, of no one order (trading locked, positions
    exited); with no account, the user `user_id`'s (a strategy, the entry-regenerate
    permission: `record_user_event`). A kind outside the vocabulary is refused (ValueError),
    and the change with it."""
    return OrderEvent.objects.create(
        account=account,
        user_id=account.user_id if account is not None else user_id,
        actor=actor,
        kind=EventKind(kind),
        message=message,
        before=before,
        after=after,
    )


def record_user_event(*, user_id: int, **fields: Any) -> OrderEvent:
    """`record_account_event` of no account: a row of the user's own. Accounts' changes
    reach it through settings.USER_AUDIT_RECORDER (accounts may not import orders)."""
    return record_account_event(None, user_id=user_id, **fields)


def record_account_setting_saved(
    account: BrokerAccount,
    *,
    what: str,
    kinds: tuple[EventKind, EventKind],
    before: dict[str, Any] | None,
    after: dict[str, Any],
    actor: str,
) -> OrderEvent | None:
    """The audit row of a standing instruction on the account just saved (a schedule, an
    alert webhook): `kinds` (created, changed), created when there is no `before`, else
    changed from `before` (as the writer read it ahead of the change), its message `what`
    and the fields that differ; none when nothing did."""
    words = change_words(before, after)
    if words is None:
        return None
    return record_account_event(
        account,
        kind=kinds[0] if before is None else kinds[1],
        actor=actor,
        message=f"{what} {words}",
        before=before,
        after=after,
    )
