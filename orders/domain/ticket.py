"""What the order ticket shows before sending: order value, a margin estimate, the rupee risk
to the stop-loss and the reward at the targets. No Django.

The browser computes the same figures in static/js/ticket.js from the instrument facts the
page already has; tests/browser/test_order_ticket.py checks the two agree. Estimates only:
the broker's own margin calculation (SPAN, exposure, peak margin) decides what it blocks.

- order value = quantity x price x multiplier; the price is the limit price, else the trigger
  (stop-market), else the LTP (market);
- margin = value x the rate for the instrument's class and product (see MARGIN_RATES); a sold
  option is margined like its underlying: strike x quantity x the futures rate; a paper
  account blocks its own flat rate (PAPER_MARGIN_RATE) on every order;
- risk = |entry - stop-loss limit| x quantity x multiplier (the stop-loss limit is the worst
  price it fills at); reward = the sum over targets of |target - entry| x its quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from orders.domain.vocabulary import OrderType, ProductType, Side

EQUITY = "EQUITY"
FUTURES = "FUTURES"
OPTIONS = "OPTIONS"
OTHER = "OTHER"

CENTS = Decimal("0.01")

# Margin per rupee of order value, by instrument class and product. Under SEBI's peak-margin
# rules (circular SEBI/HO/MRD2/DCAP/CIR/P/2020/127, phased in by September 2021) intraday
# equity needs at least the VaR + ELM margin, about 20 % for liquid stocks (5x); delivery is
# paid in full; index and stock futures need SPAN + exposure, about 12-20 % of the contract
# value (15 % here); a bought option costs its premium.
MARGIN_RATES: dict[tuple[str, str], Decimal] = {
    (EQUITY, ProductType.MIS): Decimal("0.20"),
    (EQUITY, ProductType.CNC): Decimal("1"),
    (EQUITY, ProductType.NRML): Decimal("1"),
    (FUTURES, ProductType.MIS): Decimal("0.15"),
    (FUTURES, ProductType.NRML): Decimal("0.15"),
    (FUTURES, ProductType.CNC): Decimal("0.15"),
}
OPTION_SELL_RATE = Decimal("0.15")


def instrument_class(
    *, segment: str, instrument_type: str = "", series: str = "", option_type: str = ""
) -> str:
    """EQUITY (cash segments), FUTURES or OPTIONS (F&O segments), OTHER (currency,
    commodity): the classes Indian charges and margins are set by. XTS masters name the type
    as a number (2 future, 3 option) or as a series (FUTIDX, OPTSTK, ...)."""
    segment = (segment or "").upper()
    if segment in ("NSECM", "BSECM"):
        return EQUITY
    if segment in ("NSEFO", "BSEFO"):
        text = f"{instrument_type} {series}".upper()
        if option_type.upper() in ("CE", "PE") or "OPT" in text or instrument_type == "3":
            return OPTIONS
        return FUTURES
    return OTHER


@dataclass(frozen=True)
class TicketFacts:
    """What the page knows of the instrument and the account."""

    instrument_class: str
    multiplier: int = 1
    ltp: Decimal | None = None
    strike: Decimal | None = None
    paper_margin_rate: Decimal | None = None  # set for a paper account


@dataclass(frozen=True)
class TicketTarget:
    price: Decimal
    quantity: int


@dataclass(frozen=True)
class TicketEstimate:
    price: Decimal | None
    value: Decimal | None
    margin: Decimal | None
    risk: Decimal | None
    reward: Decimal | None


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def order_price(
    *,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    ltp: Decimal | None,
) -> Decimal | None:
    """The price the order is valued at."""
    if order_type in (OrderType.LIMIT, OrderType.STOPLIMIT) and limit_price is not None:
        return limit_price
    if order_type == OrderType.STOPMARKET and stop_price is not None:
        return stop_price
    if order_type == OrderType.MARKET:
        return ltp
    return None


def margin_estimate(
    *, facts: TicketFacts, side: str, product: str, quantity: int, value: Decimal
) -> Decimal | None:
    if facts.paper_margin_rate is not None:
        return _money(value * facts.paper_margin_rate)
    if facts.instrument_class == OPTIONS:
        if side == Side.BUY:
            return _money(value)
        if facts.strike is None:
            return None
        return _money(facts.strike * quantity * facts.multiplier * OPTION_SELL_RATE)
    rate = MARGIN_RATES.get((facts.instrument_class, product))
    return None if rate is None else _money(value * rate)


def estimate(
    *,
    facts: TicketFacts,
    side: str,
    product: str,
    order_type: str,
    quantity: int,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    sl_price: Decimal | None = None,
    targets: tuple[TicketTarget, ...] = (),
) -> TicketEstimate:
    """The ticket's figures (None where an input is missing)."""
    price = order_price(
        order_type=order_type, limit_price=limit_price, stop_price=stop_price, ltp=facts.ltp
    )
    if price is None or quantity <= 0:
        return TicketEstimate(price=price, value=None, margin=None, risk=None, reward=None)
    value = _money(price * quantity * facts.multiplier)
    margin = margin_estimate(
        facts=facts, side=side, product=product, quantity=quantity, value=value
    )
    risk = None
    if sl_price is not None:
        risk = _money(abs(price - sl_price) * quantity * facts.multiplier)
    reward = None
    if targets:
        reward = _money(
            sum(
                (abs(t.price - price) * t.quantity * facts.multiplier for t in targets),
                Decimal("0"),
            )
        )
    return TicketEstimate(price=price, value=value, margin=margin, risk=risk, reward=reward)
