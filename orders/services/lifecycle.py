"""The one gate every change of a leg's status goes through (the table: orders.domain.lifecycle).

A writer locks the legs it is about to change (`lock_legs`, inside its transaction, so two
sources, say the sync and a cancel, apply their events one after the other to the state the
database holds), then hands each event to `apply_leg_event`. An allowed event is applied
to the leg in memory (status, quantity, filled quantity; the writer saves the leg); a
refused one changes nothing, is logged at WARNING and comes back as an unsaved
"illegal_transition" OrderEvent (before: the leg, after: the event and its source) that the
writer saves with its other audit rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction

from orders.domain.lifecycle import (
    INITIAL_STATUS,
    IllegalTransition,
    LegEvent,
    LegState,
    apply_event,
)
from orders.domain.vocabulary import EventKind, LegStatus
from orders.models import Order, OrderEvent, OrderLeg
from orders.services.audit import leg_state, new_event, record_changes
from orders.services.exclusion import fence
from trading_site.core.prepared import PreparedRows

logger = logging.getLogger("orders.lifecycle")

__all__ = [
    "INITIAL_STATUS",
    "LegTransition",
    "apply_accepted_change",
    "apply_leg_event",
    "lock_legs",
    "locked_values",
    "save_leg_if_unchanged",
]

# What the lock re-reads: every field a writer of a leg's state decides from.
_LOCKED_FIELDS = (
    "status",
    "quantity",
    "filled_quantity",
    "broker_order_id",
    "broker_status",
    "average_price",
    "reject_reason",
    "limit_price",
    "stop_price",
    "modification_count",
    "submitted_at",
)


@dataclass
class LegTransition:
    """The outcome of one event: `refusal` is the audit row of a refused event (unsaved)."""

    leg: OrderLeg
    before: LegStatus
    refusal: OrderEvent | None = None

    @property
    def applied(self) -> bool:
        return self.refusal is None


# Read by every leg change: compiled once (`PreparedRows`).
_LEGS_FOR_UPDATE = PreparedRows(
    tuple,
    lambda *, ids: (
        OrderLeg.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", *_LOCKED_FIELDS)
    ),
)


def lock_legs(legs: Iterable[OrderLeg]) -> None:
    """SELECT ... FOR UPDATE the legs (in id order: no deadlock between two writers) and
    bring the in-memory legs up to what the database holds, then check the writer still
    holds each account's exclusion (`orders.services.exclusion.fence`: a holder whose lease
    ended meanwhile must not write). Call inside a transaction."""
    by_pk = {leg.pk: leg for leg in legs}
    if not by_pk:
        return
    for pk, *values in _LEGS_FOR_UPDATE(ids=list(by_pk)):
        leg = by_pk[pk]
        for name, value in zip(_LOCKED_FIELDS, values, strict=True):
            setattr(leg, name, value)
    for account_id in sorted({leg.account_id for leg in by_pk.values()}):
        fence(account_id)


def locked_values(leg: OrderLeg) -> tuple[Any, ...]:
    """The leg's fields that `lock_legs` brings up to date, as they are in memory."""
    return tuple(getattr(leg, name) for name in _LOCKED_FIELDS)


def save_leg_if_unchanged(leg: OrderLeg, read: tuple[Any, ...], fields: Sequence[str]) -> bool:
    """`lock_legs` and the save of one leg in one statement, for a writer that decided from
    the leg in memory without locking it first (`read`: its `locked_values` then, before
    any event was applied): the UPDATE of `fields` locks the row and writes only when the
    row still holds `read`, what `lock_legs` would have brought into memory, so the writer
    decided exactly as it would have after locking. True: saved, the row locked till commit,
    the writer's exclusion checked (`fence`). False: the row changed meanwhile and nothing
    was written: the writer puts the leg back as it was, locks it (`lock_legs`) and decides
    again. MariaDB and MySQL only (elsewhere always False). Text compares byte for byte
    (not by the column's collation), NULL with NULL."""
    db = transaction.get_connection()
    if db.vendor != "mysql":
        return False
    meta: Any = OrderLeg._meta  # its fields here are all concrete columns
    quote = db.ops.quote_name
    written = [meta.get_field(name) for name in fields]
    guarded = [meta.get_field(name) for name in _LOCKED_FIELDS]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in written)
    guards = " AND ".join(
        f"{'BINARY ' if isinstance(field, models.CharField | models.TextField) else ''}"
        f"{quote(field.column)} <=> %s"
        for field in guarded
    )
    # Only quoted names from the model's metadata are formatted in; every value is a %s.
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {quote(meta.pk.column)} = %s AND {guards}"
    )
    params = [
        *(field.get_db_prep_save(getattr(leg, field.attname), db) for field in written),
        leg.pk,
        *(field.get_db_prep_save(value, db) for field, value in zip(guarded, read, strict=True)),
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        # Rows matched, not only changed (Django connects to MySQL with FOUND_ROWS).
        if cursor.rowcount != 1:
            return False
    fence(leg.account_id)
    return True


def apply_leg_event(
    leg: OrderLeg,
    event: LegEvent,
    *,
    actor: str,
    source: str,
    order: Order | None = None,
    detail: dict[str, Any] | None = None,
) -> LegTransition:
    """Apply `event` to the leg in memory, or refuse it (see the module docstring).
    `source` names the writer in a refusal ("sync", "cancel", "submit", ...); `detail` is
    kept with it (e.g. the broker's raw status)."""
    state = LegState(
        status=LegStatus(leg.status),
        quantity=int(leg.quantity),
        filled_quantity=int(leg.filled_quantity),
    )
    try:
        after = apply_event(state, event)
    except IllegalTransition as refused:
        return LegTransition(
            leg=leg,
            before=state.status,
            refusal=_refusal(
                leg, refused, actor=actor, source=source, order=order, detail=detail or {}
            ),
        )
    leg.status, leg.quantity, leg.filled_quantity = (
        after.status,
        after.quantity,
        after.filled_quantity,
    )
    return LegTransition(leg=leg, before=state.status)


def apply_accepted_change(
    leg: OrderLeg, event: LegEvent, *, actor: str, source: str, order: Order
) -> dict[str, Any] | None:
    """The broker accepted a change of `leg` (a modify or a cancel): inside the writer's
    transaction, lock the leg and apply `event`. Returns the leg's audited state from before
    the event (`leg_state`), for the writer's audit row once it saved the leg; None when the
    leg had moved on meanwhile, the refusal then recorded and the leg left as it is."""
    lock_legs([leg])
    before = leg_state(leg)
    transition = apply_leg_event(leg, event, actor=actor, source=source, order=order)
    if transition.refusal is not None:
        record_changes([transition.refusal])
        return None
    return before


def _refusal(
    leg: OrderLeg,
    refused: IllegalTransition,
    *,
    actor: str,
    source: str,
    order: Order | None,
    detail: dict[str, Any],
) -> OrderEvent:
    event = refused.event
    logger.warning(
        "illegal leg transition refused: leg %s %s + %s from %s (%s)",
        leg.unique_identifier,
        refused.state.status,
        event.kind,
        source,
        refused.reason,
        extra={"leg_id": leg.pk, "order_id": leg.order_id, "source": source},
    )
    return new_event(
        order=order if order is not None else leg.order,
        leg=leg,
        kind=EventKind.ILLEGAL_TRANSITION,
        actor=actor,
        message=f"{source}: {event.kind} refused for a {refused.state.status} leg: "
        f"{refused.reason}",
        before=leg_state(leg),
        after={
            "event": str(event.kind),
            "filled_quantity": event.filled_quantity,
            "quantity": event.quantity,
            "source": source,
            **detail,
        },
    )
