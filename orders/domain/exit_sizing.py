"""How much of a bracket's position an exit path (the kill switch, a position exit or change)
may exit or protect, given what the broker holds. No Django.

The broker may hold less than the desk's brackets: a trade in the broker's own terminal, its
risk system squaring off or converting a position. An exit or a stop-loss larger than what
the broker holds would, once it fills, open a position the other way; so the part of the
brackets' position the broker does not hold (their shortfall) is left out of both.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orders.domain.vocabulary import Side


def held_toward(net: int, side: str, opposite: int = 0) -> int:
    """What a broker's net position holds in the direction of brackets whose entry is on
    `side`: its long part for BUY brackets, its short part for SELL ones (0 when flat or
    held the other way). `opposite`: what the desk's brackets the other way hold of the
    same position, which the broker nets against them (long 10 and short 5 are a net 5).
    """
    toward = net if side == Side.BUY else -net
    return max(0, toward + max(0, opposite))


def broker_shortfalls(opens: list[tuple[int, int]], held: int) -> dict[int, int]:
    """Of the brackets sharing one position and direction (`opens`: id and open position,
    oldest first), how much of each the broker does not hold when it holds `held` in their
    direction: their total's excess over `held`, taken from the newest first (exits go to
    the oldest first: orders.services.position_changes.allocate_to_brackets). Every id is
    in the answer, 0 for one the broker holds whole."""
    excess = max(0, sum(max(0, quantity) for _id, quantity in opens) - max(0, held))
    shortfalls: dict[int, int] = {}
    for order_id, quantity in reversed(opens):
        take = min(max(0, quantity), excess)
        shortfalls[order_id] = take
        excess -= take
    return shortfalls


def protectable(position: int, shortfall: int) -> int:
    """What of a bracket's open position the broker holds: what its exits, stop-loss and
    targets may cover."""
    return max(0, position - shortfall)


def lowered_shortfall(recorded: int, measured: int) -> int | None:
    """What a monitoring cycle that measured a bracket's shortfall at `measured` (against the
    positions it just read) stores in place of the `recorded` one: the measured one when
    the broker holds more of the bracket now (a buy back in its terminal), else None (left
    as recorded). Only lowered, never raised: a positions read lagging the order book must
    never strip a bracket's protection (an exit path, reading them live, raises it)."""
    measured = max(0, measured)
    return measured if measured < recorded else None


def read_is_current(read_at: datetime, last_change: datetime | None, margin: timedelta) -> bool:
    """Whether a positions read begun at `read_at` may lower the shortfalls of a position
    whose desk legs last changed (a fill, a status) at `last_change` (None: never): only when
    that change came more than `margin` before the read. A fill the desk recorded after the
    read began (the cycle's own order sync, a broker event) may be missing from it, and the
    broker applies a fill to its positions after its order book and events show it (the
    margin); measured against such a read, the desk's own exit looks like a buy back in the
    terminal, and protection grows over what the broker holds. Left to the next cycle."""
    return last_change is None or last_change < read_at - margin
