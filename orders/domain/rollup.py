"""An Order's status and filled quantity, derived from its legs (one place for the rules).

Pure (no Django): works on any objects with the OrderLeg attributes, so the rules are testable
alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from orders.domain.vocabulary import FINAL_LEG_STATUSES, LegStatus, OrderKind, OrderStatus
from orders.domain.vocabulary import LegRole as Role

_SINGLE_STATUS = {
    LegStatus.PENDING_SUBMIT: OrderStatus.PENDING,
    LegStatus.OPEN: OrderStatus.OPEN,
    LegStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    LegStatus.FILLED: OrderStatus.FILLED,
    LegStatus.CANCELLED: OrderStatus.CANCELLED,
    LegStatus.REJECTED: OrderStatus.REJECTED,
}
# When several legs share a role (partial-fill SLs, several targets), the one that is most
# "alive" speaks for the role in the order list.
_ROLE_PRECEDENCE = (
    LegStatus.PARTIALLY_FILLED,
    LegStatus.OPEN,
    LegStatus.PENDING_SUBMIT,
    LegStatus.FILLED,
    LegStatus.CANCELLED,
    LegStatus.REJECTED,
    LegStatus.UNKNOWN,
)


class LegLike(Protocol):
    """What the roll-up reads of a leg (an OrderLeg, or a plain object in the tests)."""

    @property
    def pk(self) -> int | None: ...
    @property
    def role(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def filled_quantity(self) -> int: ...


_Leg = TypeVar("_Leg", bound=LegLike)


def primary_leg(kind: str, legs: list[_Leg]) -> _Leg | None:
    """The leg whose fate is the order's: a bracket's entry, a single order's only leg."""
    ordered = sorted(legs, key=lambda leg: leg.pk or 0)
    if kind == OrderKind.BRACKET:
        return next((leg for leg in ordered if leg.role == Role.ENTRY), None)
    return ordered[0] if ordered else None


def derive_order_status(*, kind: str, current: str, legs: list) -> tuple[str, int]:
    """(status, filled quantity) of an order from its legs."""
    entry = primary_leg(kind, legs)
    if entry is None:
        return current, 0
    filled = entry.filled_quantity
    if kind != OrderKind.BRACKET:
        return _SINGLE_STATUS.get(entry.status, current), filled
    if entry.status == LegStatus.PENDING_SUBMIT:
        return OrderStatus.PENDING, filled
    if filled == 0:
        if entry.status in (LegStatus.OPEN, LegStatus.PARTIALLY_FILLED):
            return OrderStatus.OPEN, 0
        return _SINGLE_STATUS.get(entry.status, current), 0
    exited = sum(leg.filled_quantity for leg in legs if leg.role != Role.ENTRY)
    if entry.status in FINAL_LEG_STATUSES:
        return (OrderStatus.COMPLETED if exited >= filled else OrderStatus.FILLED), filled
    return OrderStatus.PARTIALLY_FILLED, filled


def role_status(legs: Iterable, role: str) -> str | None:
    """The status shown for a role (entry_order_status, sl_order_status, tp_order_status)."""
    statuses = {leg.status for leg in legs if leg.role == role}
    if not statuses:
        return None
    for status in _ROLE_PRECEDENCE:
        if status in statuses:
            return str(status)
    return str(next(iter(statuses)))


def open_position_of(legs: list) -> int:
    """Entry filled minus exits filled (never negative): what the exits must still cover."""
    entry_filled = sum(leg.filled_quantity for leg in legs if leg.role == Role.ENTRY)
    exited = sum(leg.filled_quantity for leg in legs if leg.role != Role.ENTRY)
    return max(0, entry_filled - exited)
