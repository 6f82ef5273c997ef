"""An order leg's lifecycle as data: which event may move a leg from which status to which.

Written the way a venue's order state machine is (Nautilus Trader's order FSM): one table of
allowed (status, event) -> status, and one function, `apply_event`, that returns the leg's
next state or raises `IllegalTransition`. Every writer of a leg's status goes through it, by
way of orders.services.lifecycle (the gate that records a refusal as an audit event); no
other code assigns a leg's status. Pure: no Django.

The rules, before the table:
- A leg is born PENDING_SUBMIT: written ahead, before the broker is called.
- Pending submit -> OPEN (the broker accepted it), REJECTED (it refused it, or the leg is
  not in the broker's book once the grace period is over), or stays pending when the
  broker's answer is unknown: never re-sent, the order book settles it.
- A working leg (OPEN, PARTIALLY_FILLED) fills (-> PARTIALLY_FILLED / FILLED), is cancelled
  (our cancel confirmed, or the broker cancelled or expired it), rejected later (the
  broker's risk checks), or replaced (a modification: it stays working with the new
  quantity and prices).
- FILLED, CANCELLED and REJECTED are final: nothing moves them back to working and none
  becomes another, with one exception, a fill. A fill is the exchange's fact: one that
  raced our cancel, or reached a leg we held rejected because the book did not show it in
  time, wins (FILLED once complete; a partial one leaves the leg cancelled or rejected,
  with its fills).
- Fills only grow: a report of fewer fills than we know is old news and never lowers them.
- A report of what we already know (the same status) is a no-op, not an error.
- UNKNOWN is a leg whose broker status we could not read: any broker news settles it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from orders.domain.vocabulary import FINAL_LEG_STATUSES, OPEN_LEG_STATUSES, LegStatus

PENDING = LegStatus.PENDING_SUBMIT
UNKNOWN = LegStatus.UNKNOWN
OPEN = LegStatus.OPEN
PARTIAL = LegStatus.PARTIALLY_FILLED
FILLED = LegStatus.FILLED
CANCELLED = LegStatus.CANCELLED
REJECTED = LegStatus.REJECTED

# Where every leg starts.
INITIAL_STATUS = PENDING


class LegEventKind(StrEnum):
    """What can happen to a leg."""

    # Our POST's answer.
    SUBMIT_ACCEPTED = "submit_accepted"
    SUBMIT_REJECTED = "submit_rejected"
    SUBMIT_OUTCOME_UNKNOWN = "submit_outcome_unknown"  # timeout, 5xx: it may have arrived
    NOT_FOUND_AFTER_GRACE = "not_found_after_grace"  # still absent from the broker's book
    # The broker's status for the leg (an order-book row, a stream's order event).
    REPORTED_HELD = "reported_held"  # in the book, its status unreadable or not yet given
    REPORTED_OPEN = "reported_open"
    REPORTED_PARTIALLY_FILLED = "reported_partially_filled"
    REPORTED_FILLED = "reported_filled"
    REPORTED_CANCELLED = "reported_cancelled"
    REPORTED_REJECTED = "reported_rejected"
    # More quantity traded (a trade, or a report bringing new fills to a final leg).
    FILL = "fill"
    # Our requests' confirmations.
    CANCEL_CONFIRMED = "cancel_confirmed"
    MODIFY_ACCEPTED = "modify_accepted"  # replaced: quantity and prices changed
    EXPIRED = "expired"  # the day ended with the leg working (validity DAY)


E = LegEventKind
_WORKING = (OPEN, PARTIAL)
_ALL = tuple(LegStatus)

TRANSITIONS: dict[tuple[LegStatus, LegEventKind], LegStatus] = {
    # The POST's answer. A late acknowledgement (the book told us more first) changes
    # nothing; an acknowledgement of a leg we hold rejected is a contradiction.
    **{(s, E.SUBMIT_ACCEPTED): OPEN for s in (PENDING, UNKNOWN)},
    **{(s, E.SUBMIT_ACCEPTED): s for s in (OPEN, PARTIAL, FILLED, CANCELLED)},
    **{(s, E.SUBMIT_REJECTED): REJECTED for s in (PENDING, UNKNOWN, REJECTED)},
    **{(s, E.SUBMIT_OUTCOME_UNKNOWN): s for s in _ALL},
    (PENDING, E.NOT_FOUND_AFTER_GRACE): REJECTED,
    # The broker's word. In its book means it holds the leg.
    (PENDING, E.REPORTED_HELD): OPEN,
    **{(s, E.REPORTED_HELD): s for s in _ALL if s != PENDING},
    **{(s, E.REPORTED_OPEN): OPEN for s in (PENDING, UNKNOWN, OPEN)},
    (PARTIAL, E.REPORTED_OPEN): PARTIAL,  # an older row: fills never shrink
    **{(s, E.REPORTED_PARTIALLY_FILLED): PARTIAL for s in (PENDING, UNKNOWN, *_WORKING)},
    **{(s, E.REPORTED_FILLED): FILLED for s in _ALL},  # a fill wins, even over a final leg
    **{(s, E.REPORTED_CANCELLED): CANCELLED for s in (PENDING, UNKNOWN, *_WORKING, CANCELLED)},
    **{(s, E.REPORTED_REJECTED): REJECTED for s in (PENDING, UNKNOWN, *_WORKING, REJECTED)},
    # Fills (FILLED instead once the whole quantity traded: see apply_event).
    **{(s, E.FILL): PARTIAL for s in (PENDING, UNKNOWN, *_WORKING)},
    **{(s, E.FILL): s for s in (FILLED, CANCELLED, REJECTED)},
    # Our cancel and modification, confirmed by the broker; the day's end.
    **{(s, E.CANCEL_CONFIRMED): CANCELLED for s in (UNKNOWN, *_WORKING, CANCELLED)},
    **{(s, E.MODIFY_ACCEPTED): s for s in _WORKING},
    **{(s, E.EXPIRED): CANCELLED for s in (UNKNOWN, *_WORKING, CANCELLED)},
}

FINAL_STATUSES = frozenset(FINAL_LEG_STATUSES)
# The broker's statuses as the event that reports them.
_REPORTS = {
    PENDING: E.REPORTED_HELD,
    UNKNOWN: E.REPORTED_HELD,
    OPEN: E.REPORTED_OPEN,
    PARTIAL: E.REPORTED_PARTIALLY_FILLED,
    FILLED: E.REPORTED_FILLED,
    CANCELLED: E.REPORTED_CANCELLED,
    REJECTED: E.REPORTED_REJECTED,
}
_REPORT_KINDS = frozenset(_REPORTS.values())
_CARRIES_QUANTITY = _REPORT_KINDS | {E.MODIFY_ACCEPTED}


@dataclass(frozen=True)
class LegState:
    """What the lifecycle governs of a leg: its status, quantity and filled quantity."""

    status: LegStatus
    quantity: int
    filled_quantity: int = 0


@dataclass(frozen=True)
class LegEvent:
    """One thing that happened to a leg. `filled_quantity` is cumulative (the leg's total
    traded so far, as brokers report it), so the same fill told twice, by two sources,
    changes nothing the second time. `quantity` is the leg's quantity at the broker (a
    modification's new quantity)."""

    kind: LegEventKind
    filled_quantity: int | None = None
    quantity: int | None = None


class IllegalTransition(Exception):
    """The event may not happen to a leg in this state: nothing is applied."""

    def __init__(self, state: LegState, event: LegEvent, reason: str):
        self.state = state
        self.event = event
        self.reason = reason
        super().__init__(f"{state.status} + {event.kind}: {reason}")


def reported(status: str, *, filled_quantity: int | None, quantity: int | None) -> LegEvent:
    """The event of a broker's report of a leg (an order-book row's status and numbers)."""
    return LegEvent(
        kind=_REPORTS.get(LegStatus(status) if status in LegStatus else UNKNOWN, E.REPORTED_HELD),
        filled_quantity=filled_quantity,
        quantity=quantity,
    )


def apply_event(state: LegState, event: LegEvent) -> LegState:
    """The leg's state after `event`, or IllegalTransition when the table forbids it."""
    kind = event.kind
    filled = max(state.filled_quantity, event.filled_quantity or 0)
    if (
        (state.status, kind) not in TRANSITIONS
        and kind in _REPORT_KINDS
        and filled > state.filled_quantity
    ):
        # A report that brings new fills to a final leg is a late fill (it wins).
        kind = E.FILL
    target = TRANSITIONS.get((state.status, kind))
    if target is None:
        raise IllegalTransition(state, event, _why_not(state.status, kind))
    if kind == E.FILL and target != FILLED and filled >= state.quantity > 0:
        target = FILLED
    quantity = state.quantity
    if kind in _CARRIES_QUANTITY and event.quantity and target in OPEN_LEG_STATUSES:
        if event.quantity < filled:
            if kind == E.MODIFY_ACCEPTED:
                raise IllegalTransition(
                    state, event, f"a quantity of {event.quantity} is below the {filled} filled"
                )
        else:
            quantity = event.quantity  # a modification at the broker is the truth
    return replace(state, status=target, quantity=quantity, filled_quantity=filled)


def _why_not(status: LegStatus, kind: LegEventKind) -> str:
    if status in FINAL_STATUSES:
        return f"a {status} leg is final"
    if status == PENDING:
        return "the broker has not acknowledged the leg yet"
    return f"a {status} leg cannot be {kind.replace('_', ' ')}"
