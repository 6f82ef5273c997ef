"""A position's MTM at the latest price, as broker terminals compute it. No Django.

MTM = (sell amount - buy amount) + net quantity x LTP x multiplier: the realized part of what
was bought and sold, plus the open quantity at the market. With average-cost positions (the
paper exchange's, XTS's) this equals realized + unrealized; it moves with every price tick
while the amounts stay as the last broker sync left them. Amounts are rupees, already x the
contract multiplier (XTS's BuyAmount and SellAmount are); an amount the broker left out is
average price x quantity x multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENTS = Decimal("0.01")
ZERO = Decimal("0")


@dataclass(frozen=True)
class PositionFigures:
    net_qty: int
    buy_qty: int
    sell_qty: int
    buy_avg_price: Decimal | None
    sell_avg_price: Decimal | None
    buy_amount: Decimal | None
    sell_amount: Decimal | None
    broker_mtm: Decimal | None  # what the broker said at the last sync


def _amount(
    amount: Decimal | None, average: Decimal | None, quantity: int, multiplier: int
) -> Decimal | None:
    if amount is not None:
        return amount
    if average is not None:
        return average * quantity * multiplier
    return ZERO if quantity == 0 else None


def average_price(figures: PositionFigures) -> Decimal | None:
    """The average price of the open side (None when flat)."""
    if figures.net_qty > 0:
        return figures.buy_avg_price
    if figures.net_qty < 0:
        return figures.sell_avg_price
    return None


def live_mtm(
    figures: PositionFigures, *, ltp: Decimal | None, multiplier: int = 1
) -> Decimal | None:
    """MTM at `ltp`; without a price (or the amounts), the broker's last figure."""
    bought = _amount(figures.buy_amount, figures.buy_avg_price, figures.buy_qty, multiplier)
    sold = _amount(figures.sell_amount, figures.sell_avg_price, figures.sell_qty, multiplier)
    if bought is None or sold is None:
        return figures.broker_mtm
    if figures.net_qty == 0:
        return (sold - bought).quantize(CENTS, rounding=ROUND_HALF_UP)
    if ltp is None:
        return figures.broker_mtm
    value = sold - bought + Decimal(figures.net_qty) * ltp * multiplier
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)
