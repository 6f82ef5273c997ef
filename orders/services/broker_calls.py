"""The one path from our legs to a broker and back: send once, record the answer.

Write-ahead discipline (SPEC 5): callers commit the legs as PENDING_SUBMIT first (and their
Order as PENDING), then call `submit_legs`, which POSTs each leg once (never retried: a
timeout's outcome is unknown and the order book settles it) outside any transaction, then
writes every answer through the leg lifecycle (orders.services.lifecycle), with its audit
row, in one transaction; the owners hear of it after commit. Three answers: accepted;
rejected (the broker refused, or the request provably never reached it: "not sent", which a
client may place again: a new order's Idempotency-Key is released for that retry); unknown
(a timeout or 5xx after the request left: it may have reached the broker, so the leg stays
pending and is never re-sent). Placement, protection, the
kill switch's exits and regeneration all send through here. Modifications and
cancellations are one call each (`modify_at_broker`, `cancel_at_broker`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from django.db import OperationalError, transaction
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.brokers.base import (
    BrokerError,
    BrokerNotReached,
    BrokerUnavailable,
    ModifyOrderRequest,
    OrderAck,
    OrderNotSent,
    OrderRejected,
    PlaceOrderRequest,
    RateLimited,
    SessionContext,
    SessionExpired,
)
from orders.brokers.sessions import BrokerClient, broker_client, placing_client
from orders.domain.lifecycle import LegEvent, LegEventKind
from orders.domain.rollup import derive_order_status
from orders.domain.vocabulary import EventKind, LegStatus
from orders.models import Order, OrderEvent, OrderLeg
from orders.services.audit import (
    leg_change,
    leg_state,
    new_event,
    order_update_message,
    record_changes,
)
from orders.services.exclusion import (
    ExclusionLost,
    account_exclusion,
    default_wait,
    fence,
    holds,
)
from orders.services.lifecycle import (
    apply_leg_event,
    lock_legs,
    locked_values,
    save_leg_if_unchanged,
)
from orders.services.sync import LEG_SYNC_FIELDS, apply_book_row, is_stale_report
from orders.services.trading_lock import LOCKED_REASON, is_trading_locked
from trading_site.core import metrics
from trading_site.core.bulk_rows import bulk_update_rows
from trading_site.core.lock_conflicts import is_lock_conflict

logger = logging.getLogger("orders.services")

_T = TypeVar("_T")

# How many new legs one batch sends to a broker at the same time.
SEND_CONCURRENCY = 8

OUTCOME_ACCEPTED = "accepted"
OUTCOME_REJECTED = "rejected"
OUTCOME_UNKNOWN = "unknown"
OUTCOME_NOT_SENT = "not_sent"

# How a leg's reject reason starts when the order never reached the broker.
NOT_SENT_PREFIX = "not sent: "

# How many times the recording of answers (with the paper exchange: its placement too) is
# run when it loses lock conflicts, and the pause (seconds, growing) between runs.
RECORD_ATTEMPTS = 4
RECORD_RETRY_PAUSE = 0.05
PAPER_BUSY_REASON = "the paper exchange's book stayed busy with other changes"

# What recording a broker's answer may change on a leg: what a book row changes (the
# answer's own, `apply_answer_row`) and the submission time.
_SENT_LEG_FIELDS = [*LEG_SYNC_FIELDS, "submitted_at"]


def client_for(account: BrokerAccount) -> BrokerClient:
    return broker_client(account)


def count_metric(name: str, value: int = 1, **labels: str) -> None:
    """Counters on /metrics; a metrics failure never fails an order."""
    try:
        metrics.inc(name, value, **labels)
    except Exception:
        logger.debug("metric %s not recorded", name, exc_info=True)


def place_request(leg: OrderLeg, order: Order, *, instrument: bool = False) -> PlaceOrderRequest:
    """The leg's request to the broker. `instrument`: with the order's instrument row when
    it is in memory (validation read it, with its fair price, a moment ago), for a broker
    in our database to take instead of reading it again."""
    return PlaceOrderRequest(
        instrument=order.instrument if instrument and Order.instrument.is_cached(order) else None,
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
    or the request never reached it (`not_sent`: nothing placed, safe to place again);
    otherwise the outcome is unknown and the leg stays PENDING_SUBMIT."""

    leg: OrderLeg
    ack: OrderAck | None = None
    rejected_reason: str = ""
    unknown_reason: str = ""
    response: dict | None = None
    not_sent: bool = False
    # When a retry may succeed (not sent): seconds.
    retry_after: float | None = None
    # Not sent because the account's trading is locked (the kill switch).
    trading_locked: bool = False

    @property
    def accepted(self) -> bool:
        return self.ack is not None

    @property
    def result(self) -> str:
        if self.accepted:
            return OUTCOME_ACCEPTED
        if self.not_sent:
            return OUTCOME_NOT_SENT
        return OUTCOME_REJECTED if self.rejected_reason else OUTCOME_UNKNOWN


def not_sent_outcome(
    leg: OrderLeg,
    reason: str,
    *,
    retry_after: float | None = None,
    trading_locked: bool = False,
    response: dict | None = None,
) -> SendOutcome:
    return SendOutcome(
        leg=leg,
        rejected_reason=NOT_SENT_PREFIX + reason,
        response=response or None,
        not_sent=True,
        retry_after=retry_after,
        trading_locked=trading_locked,
    )


def _outcome_of_error(leg: OrderLeg, exc: Exception) -> SendOutcome:
    if isinstance(exc, OrderRejected):
        return SendOutcome(leg=leg, rejected_reason=exc.message, response=exc.response)
    if isinstance(exc, (SessionExpired, RateLimited, OrderNotSent, BrokerNotReached)):
        # Refused before the broker acted (bad token after a re-login, a rate limit, ours
        # or the broker's), or never sent (no session, no connection): nothing was placed,
        # so the leg is rejected, not pending, and placing it again is safe.
        return not_sent_outcome(
            leg,
            exc.message,
            retry_after=getattr(exc, "retry_after", 1.0),
            response=exc.response,
        )
    if isinstance(exc, (BrokerUnavailable, BrokerError)):
        return SendOutcome(leg=leg, unknown_reason=exc.message, response=exc.response)
    # A bug or a raw network error: the outcome is unknown.
    logger.error("order POST failed", exc_info=exc, extra={"leg": leg.unique_identifier})
    return SendOutcome(leg=leg, unknown_reason=f"{type(exc).__name__}: {exc}")


async def _send_one(
    client: BrokerClient, leg: OrderLeg, order: Order, gate: asyncio.Semaphore
) -> SendOutcome:
    async with gate:
        try:
            ack = await client.place_order(place_request(leg, order))
            return SendOutcome(leg=leg, ack=ack, response=ack.raw)
        except Exception as exc:
            return _outcome_of_error(leg, exc)


async def _send_bulk(
    client: BrokerClient, pairs: list[tuple[OrderLeg, Order]]
) -> list[SendOutcome]:
    """One broker call for many legs (the paper exchange): each answer stands alone."""
    try:
        answers = await client.place_orders([place_request(leg, order) for leg, order in pairs])
    except Exception as exc:
        return [_outcome_of_error(leg, exc) for leg, _ in pairs]
    return _outcomes_of_answers(pairs, answers)


async def _send_all(
    account: BrokerAccount, pairs: list[tuple[OrderLeg, Order]]
) -> list[SendOutcome]:
    client = client_for(account)
    if len(pairs) > 1 and client.can_place_in_bulk:
        return await _send_bulk(client, pairs)
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    return list(
        await asyncio.gather(*(_send_one(client, leg, order, gate) for leg, order in pairs))
    )


def _outcomes_of_answers(
    pairs: list[tuple[OrderLeg, Order]], answers: Sequence[OrderAck | Exception]
) -> list[SendOutcome]:
    outcomes: list[SendOutcome] = []
    for (leg, _order), answer in zip(pairs, answers, strict=True):
        if isinstance(answer, OrderAck):
            outcomes.append(SendOutcome(leg=leg, ack=answer, response=answer.raw))
        else:
            outcomes.append(_outcome_of_error(leg, answer))
    return outcomes


class _FailedHere(Exception):
    """A broker in our database raised while placing: its transaction (our unit) must be
    rolled back whole, since the broker may have written half its rows (it opens no
    savepoint of its own); its answers, from the error, are recorded afterwards."""

    def __init__(self, outcomes: list[SendOutcome]) -> None:
        super().__init__("the broker in our database failed while placing")
        self.outcomes = outcomes


def _send_here(
    client: BrokerClient, context: Any, pairs: list[tuple[OrderLeg, Order]], *, first_try: bool
) -> list[SendOutcome]:
    """One call to a broker in our database, in this thread and transaction. Raises
    `_FailedHere` (the unit is rolled back) when the broker raises. On the first try the
    requests carry the instruments validation read a moment ago (with their prices); a
    try after a lock wait lets the broker read them afresh."""
    try:
        answers = client.place_orders_here(
            context,
            [place_request(leg, order, instrument=first_try) for leg, order in pairs],
        )
    except Exception as exc:
        if is_lock_conflict(exc):
            raise  # the whole unit's, with our record (_submit_in_one_transaction)
        raise _FailedHere([_outcome_of_error(leg, exc) for leg, _ in pairs]) from exc
    return _outcomes_of_answers(pairs, answers)


def send_new_legs(account: BrokerAccount, pairs: list[tuple[OrderLeg, Order]]) -> list[SendOutcome]:
    """POST each (leg, order) once, concurrently; never retried (SPEC 5). Writes nothing."""
    if not pairs:
        return []
    return async_to_sync(_send_all)(account, pairs)


def record_send_outcome(
    outcome: SendOutcome, order: Order, actor: str, *, now: datetime | None = None
) -> list[OrderEvent]:
    """Write the broker's answer onto the (locked, PENDING_SUBMIT) leg in memory, through
    the lifecycle, and return the audit rows; the caller saves both in its transaction.
    `now`: the caller's instant for every answer it records (one submission time for a
    batch's legs: `bulk_update_rows` then sets it once, not per row)."""
    leg = outcome.leg
    before = leg_state(leg)
    now = now or timezone.now()
    if outcome.accepted:
        event = LegEvent(LegEventKind.SUBMIT_ACCEPTED)
    elif outcome.rejected_reason:
        event = LegEvent(LegEventKind.SUBMIT_REJECTED)
    else:
        event = LegEvent(LegEventKind.SUBMIT_OUTCOME_UNKNOWN)
    transition = apply_leg_event(leg, event, actor=actor, source="submit", order=order)
    if transition.refusal is not None:  # not applied
        return [transition.refusal]
    if outcome.ack is not None:  # accepted
        leg.broker_order_id = outcome.ack.broker_order_id
        leg.submitted_at = now
        # A broker that names the new order's status in its answer (the paper broker)
        # gives the raw status the first sync would store: stored now, that sync finds the
        # leg unchanged. Only when it agrees with OPEN (a fill is left for the sync).
        raw_status = (outcome.ack.raw or {}).get("status")
        if isinstance(raw_status, str) and raw_status == LegStatus.OPEN == leg.status:
            leg.broker_status = raw_status[:32]
        kind, message = EventKind.LEG_ACCEPTED, f"broker order {leg.broker_order_id}"
    elif outcome.rejected_reason:
        leg.reject_reason = outcome.rejected_reason[:2000]
        broker_id = (outcome.response or {}).get("AppOrderID")
        if broker_id and not leg.broker_order_id:
            leg.broker_order_id = str(broker_id)
        kind, message = EventKind.LEG_REJECTED, outcome.rejected_reason
    else:
        leg.submitted_at = now
        kind = EventKind.LEG_SUBMIT_UNKNOWN
        message = (
            f"broker did not answer ({outcome.unknown_reason}); the leg stays pending until "
            "the order book shows it (never re-sent)"
        )
    answered = leg_change(
        order,
        leg,
        kind=kind,
        actor=actor,
        message=message,
        before=before,
        broker_response=outcome.response,
    )
    if outcome.ack is not None:
        # The broker said more than "accepted" (the paper exchange filled a market order
        # at once): known now, not at the next sync.
        return [answered, *apply_answer_row(leg, order, outcome.ack, actor=actor)]
    return [answered]


def _release_key(order: Order, actor: str) -> OrderEvent:
    """A new order that provably never reached the broker gives its Idempotency-Key (and
    its client's external_id for the day) back: a retry with the key places the order anew
    (once: the key's unique constraint)."""
    key = order.client_order_id
    day = order.external_id_day
    order.client_order_id = None
    order.external_id_day = None
    before: dict = {"client_order_id": key}
    after: dict = {"client_order_id": None}
    if day is not None:
        before["external_id_day"], after["external_id_day"] = day.isoformat(), None
    freed = f"the Idempotency-Key {key!r}" if key else "its external_id"
    return new_event(
        order=order,
        kind=EventKind.KEY_RELEASED,
        actor=actor,
        message=f"not sent to the broker: {freed} is free again, a retry with it places the "
        "order anew",
        before=before,
        after=after,
    )


def apply_answer_row(leg: OrderLeg, order: Order, ack: OrderAck, *, actor: str) -> list[OrderEvent]:
    """Apply the order's state a broker's answer carries (`OrderAck.row`) to the leg in
    memory, through the lifecycle as a sync would, when it tells more than the leg shows
    (a fill, a rejection after acceptance). Returns the audit rows; the caller saves."""
    row = ack.row
    if row is None or is_stale_report(leg, row):
        return []
    if leg.status == row.status and leg.filled_quantity == (row.filled_quantity or 0):
        return []
    before = leg_state(leg)
    leg.order = order
    changed, refusal = apply_book_row(leg, row, actor=actor)
    if refusal is not None:
        return [refusal]
    if not changed or leg_state(leg) == before:
        return []
    return [
        leg_change(
            order,
            leg,
            kind=EventKind.LEG_SYNCED,
            actor=actor,
            message=f"broker status {row.raw_status or row.status} (in its answer)",
            before=before,
        )
    ]


def submit_legs(
    *,
    account: BrokerAccount,
    pairs: list[tuple[OrderLeg, Order]],
    actor: str,
    new_orders: bool = False,
    unless_trading_locked: bool = False,
) -> list[SendOutcome]:
    """Send legs already written ahead, once each, then record every answer (leg, audit)
    in one transaction. With `new_orders` each pair is a new order and its entry leg: the
    order's status is derived from the answer and its owner told "placed" or "rejected",
    and an order not sent gives its Idempotency-Key back; otherwise the caller rolls the
    orders up (orders.services.sync.roll_up_orders). With `unless_trading_locked` nothing
    is sent once the account's trading is locked (the kill switch fired meanwhile)."""
    if not pairs:
        return []
    fence(account.pk)  # a holder whose exclusion ended sends nothing more
    client = placing_client(account)
    context = _session_here(client) if client.shares_database else None
    if context is not None:
        return _submit_in_one_transaction(
            account,
            client,
            context,
            pairs,
            actor=actor,
            new_orders=new_orders,
            unless_trading_locked=unless_trading_locked,
        )
    if unless_trading_locked and is_trading_locked(account.pk):
        outcomes = [
            not_sent_outcome(leg, LOCKED_REASON, trading_locked=True) for leg, _order in pairs
        ]
    else:
        outcomes = send_new_legs(account, pairs)
    # The broker has acted: its answer is written, again after a lost lock conflict.
    _recorded_under_the_exclusion(
        account.pk,
        lambda: _again_after_lock_conflicts(
            lambda: _record_outcomes(outcomes, pairs, actor=actor, new_orders=new_orders),
            pairs,
            doing="recording broker answers",
        ),
        pairs,
    )
    return outcomes


def _session_here(client: BrokerClient) -> SessionContext | None:
    """A usable session of a broker in our database: the stored one, or a login now (the
    paper broker's is local), so that even an account's first placement of the day is one
    transaction with our record of the answers. None when the login fails: the ordinary
    path then tries once more and reports it, as for any broker."""
    context = client.session_here()
    if context is not None:
        return context
    try:
        return async_to_sync(client.session)()
    except Exception:
        logger.info("login before placing failed", extra={"account_id": client.account_id})
        return None


def _submit_in_one_transaction(
    account: BrokerAccount,
    client: BrokerClient,
    context: Any,
    pairs: list[tuple[OrderLeg, Order]],
    *,
    actor: str,
    new_orders: bool,
    unless_trading_locked: bool,
) -> list[SendOutcome]:
    """A broker in our own database (the paper exchange): its placement and our record of
    the answers are one transaction, under the account's exclusion (the legs were
    committed ahead by the caller). No event loop, no transaction (nor savepoint) of the
    exchange's own: either both the exchange's orders and our answers are written, or
    neither is; when the exchange raises, the unit is rolled back whole and the answers
    its error gives are recorded after (`_FailedHere`). A unit
    that loses a lock conflict was rolled back whole and is run again
    (`_again_after_lock_conflicts`); when every try loses, nothing was placed: the legs are
    recorded not sent (a new order's Idempotency-Key is free again)."""

    tries = 0

    def unit() -> list[SendOutcome]:
        nonlocal tries
        tries += 1
        with transaction.atomic():
            if unless_trading_locked and is_trading_locked(account.pk):
                outcomes = [
                    not_sent_outcome(leg, LOCKED_REASON, trading_locked=True)
                    for leg, _order in pairs
                ]
            else:
                outcomes = _send_here(client, context, pairs, first_try=tries == 1)
            _record_outcomes(
                outcomes, pairs, actor=actor, new_orders=new_orders, own_transaction=False
            )
        return outcomes

    # The legs and orders as they are now, for both levels below to put back (one copy of
    # a batch's 1,000 rows' attributes, not two: nothing changes them between the two).
    as_before = _memory_of(pairs)

    def placed_and_recorded() -> list[SendOutcome]:
        try:
            return _again_after_lock_conflicts(
                unit, pairs, doing="placing on the paper exchange", as_before=as_before
            )
        except _FailedHere as failed:
            # Rolled back whole, whatever the exchange wrote before it failed with it: its
            # answers (from the error) are recorded on their own.
            answers = failed.outcomes
            _again_after_lock_conflicts(
                lambda: _record_outcomes(answers, pairs, actor=actor, new_orders=new_orders),
                pairs,
                doing="recording the exchange's failure",
            )
            return answers
        except OperationalError as exc:
            if not is_lock_conflict(exc) or transaction.get_connection().in_atomic_block:
                raise
            # Rolled back whole each time, the exchange's orders with it: none was placed.
            outcomes = [
                not_sent_outcome(leg, PAPER_BUSY_REASON, retry_after=1.0) for leg, _order in pairs
            ]
            _again_after_lock_conflicts(
                lambda: _record_outcomes(outcomes, pairs, actor=actor, new_orders=new_orders),
                pairs,
                doing="recording the legs not sent",
            )
            return outcomes

    return _recorded_under_the_exclusion(
        account.pk, placed_and_recorded, pairs, as_before=as_before
    )


def _recorded_under_the_exclusion(
    account_id: int,
    work: Callable[[], _T],
    pairs: list[tuple[OrderLeg, Order]],
    *,
    as_before: list[tuple[Order | OrderLeg, dict]] | None = None,
) -> _T:
    """`work()`, the recording of answers a broker gave (on the paper exchange, its
    placement with them), under the account's exclusion: after an event or a cycle that is
    applying the same legs, never in between. The broker has acted, so it runs even when the
    exclusion stays busy (the leg row locks keep the writes atomic), and likewise when the
    exclusion this call took ends while it runs (Redis lost the lease, or a stall past its
    ttl): the fence rolled `work` back whole (a paper unit's orders with it: nothing was
    placed), and it runs again without the exclusion, the legs and orders in memory put back
    as they were. A caller that held the exclusion before is the stale holder: it stops.
    `as_before`: the caller's `_memory_of(pairs)`, taken just now."""
    held_before = holds(account_id)
    if as_before is None:
        as_before = _memory_of(pairs)
    try:
        with account_exclusion(
            account_id, purpose="recording broker answers", wait=2 * default_wait(), required=False
        ):
            return work()
    except ExclusionLost:
        if held_before:
            raise
        logger.warning(
            "the account's exclusion ended while recording broker answers; recorded without it",
            extra={"account_id": account_id, "legs": len(pairs)},
        )
        _put_back(as_before)
        return work()


def _memory_of(pairs: list[tuple[OrderLeg, Order]]) -> list[tuple[Order | OrderLeg, dict]]:
    """The legs and orders in memory as they are now, for `_put_back`."""
    return [(row, dict(row.__dict__)) for pair in pairs for row in pair]


def _put_back(memory: list[tuple[Order | OrderLeg, dict]]) -> None:
    for row, state in memory:
        row.__dict__.clear()
        row.__dict__.update(state)


def _again_after_lock_conflicts(
    work: Callable[[], _T],
    pairs: list[tuple[OrderLeg, Order]],
    *,
    doing: str,
    as_before: list[tuple[Order | OrderLeg, dict]] | None = None,
) -> _T:
    """`work()` (one transaction of its own, on these legs and orders), run again after it
    lost a lock conflict (MariaDB rolled it back whole: with Redis down the account's
    exclusion is held per process, so a sync or a broker event can meet it on the same rows),
    up to RECORD_ATTEMPTS times, with the legs and orders in memory put back as they were
    before it (the legs are read afresh under their locks, but an order's released key, say,
    must be released again). The last conflict is raised. Nested in a caller's transaction,
    the conflict rolled back the caller's too: raised at once. `as_before`: the caller's
    `_memory_of(pairs)`, taken just now."""
    if transaction.get_connection().in_atomic_block:
        return work()
    if as_before is None:
        as_before = _memory_of(pairs)
    attempt = 1
    while True:
        try:
            return work()
        except OperationalError as exc:
            if not is_lock_conflict(exc):
                raise
            _put_back(as_before)
            if attempt == RECORD_ATTEMPTS:
                raise
            logger.warning(
                f"{doing} lost a lock conflict; trying again",
                extra={"attempt": attempt, "error": exc.args[0], "legs": len(pairs)},
            )
        time.sleep(RECORD_RETRY_PAUSE * attempt)
        attempt += 1


def _answers_saved(
    outcomes: list[SendOutcome],
    pairs: list[tuple[OrderLeg, Order]],
    *,
    actor: str,
    now: datetime,
) -> list[OrderEvent]:
    """Each answer written onto its leg through the lifecycle and the legs saved (and so
    locked); returns the audit rows. One leg (a placement's entry leg, as written ahead) is
    decided from memory and saved only if its row still holds what memory held
    (`save_leg_if_unchanged`: the lock's read and the save in one statement); otherwise,
    and for several legs, the legs are locked and read first (`lock_legs`)."""

    def answered() -> list[OrderEvent]:
        events: list[OrderEvent] = []
        for outcome, (_leg, order) in zip(outcomes, pairs, strict=True):
            events.extend(record_send_outcome(outcome, order, actor, now=now))
            outcome.leg.updated_at = now
        return events

    if len(pairs) == 1:
        [(leg, _order)] = pairs
        as_before, read = _memory_of(pairs), locked_values(leg)
        events = answered()
        if save_leg_if_unchanged(leg, read, _SENT_LEG_FIELDS):
            return events
        _put_back(as_before)
    lock_legs(leg for leg, _ in pairs)
    events = answered()
    bulk_update_rows(OrderLeg, [outcome.leg for outcome in outcomes], _SENT_LEG_FIELDS)
    return events


def _record_outcomes(
    outcomes: list[SendOutcome],
    pairs: list[tuple[OrderLeg, Order]],
    *,
    actor: str,
    new_orders: bool,
    own_transaction: bool = True,
) -> None:
    now = timezone.now()
    # Without `own_transaction` (inside `_submit_in_one_transaction`'s): one unit with it,
    # no savepoint.
    with transaction.atomic(savepoint=own_transaction):
        events = _answers_saved(outcomes, pairs, actor=actor, now=now)
        notifications: list[tuple[int, dict[str, Any]]] = []
        if new_orders:
            orders = [order for _leg, order in pairs]
            order_fields = ["status", "filled_quantity", "updated_at"]
            for outcome, order in zip(outcomes, orders, strict=True):
                status, filled = derive_order_status(
                    kind=order.kind, current=order.status, legs=[outcome.leg]
                )
                order.status, order.filled_quantity, order.updated_at = status, filled, now
                if outcome.not_sent and (order.client_order_id or order.external_id_day):
                    events.append(_release_key(order, actor))
                    for name in ("client_order_id", "external_id_day"):
                        if name not in order_fields:
                            order_fields.append(name)
                notifications.append(
                    (
                        order.user_id,
                        order_update_message(
                            order,
                            event="placed" if outcome.rejected_reason == "" else "rejected",
                            reject_reason=outcome.leg.reject_reason or None,
                            broker_order_id=outcome.leg.broker_order_id,
                        ),
                    )
                )
            bulk_update_rows(Order, orders, order_fields)
        record_changes(events, notifications)


def modify_at_broker(
    leg: OrderLeg,
    order: Order,
    *,
    quantity: int,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> OrderAck:
    assert leg.broker_order_id  # only a leg the broker acknowledged is modified
    request = ModifyOrderRequest(
        broker_order_id=leg.broker_order_id,
        unique_identifier=leg.unique_identifier,
        order_type=leg.order_type,
        product_type=order.product_type,
        quantity=int(quantity),
        limit_price=limit_price,
        stop_price=stop_price,
    )
    fence(order.account_id)
    return async_to_sync(client_for(order.account).modify_order)(request)


def cancel_at_broker(leg: OrderLeg, account: BrokerAccount) -> OrderAck:
    assert leg.broker_order_id  # only a leg the broker acknowledged is cancelled
    fence(account.pk)
    return async_to_sync(client_for(account).cancel_order)(
        leg.broker_order_id, leg.unique_identifier
    )
