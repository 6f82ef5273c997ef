"""OpenAlgo's conventions and the desk's, mapped once, both ways (pure: no Django).

- exchanges (NSE, BSE, NFO, BFO, CDS, MCX) <-> XTS segments (NSECM, BSECM, NSEFO, BSEFO,
  NSECD, MCXFO);
- OpenAlgo symbols <-> the instrument master's fields: equities are the base symbol
  (`RELIANCE`), futures `[base][DDMMMYY]FUT` (`NIFTY28MAR24FUT`), options
  `[base][DDMMMYY][strike][CE|PE]` (`NIFTY28MAR2420800CE`, `VEDL25APR24292.5CE`);
- price types MARKET, LIMIT, SL (stop-limit), SL-M (stop-market) <-> the desk's order types;
  actions BUY/SELL; products MIS, NRML, CNC;
- the desk's order statuses -> OpenAlgo's words; timestamps and expiries in OpenAlgo's
  formats;
- the arithmetic of OpenAlgo's position-sized calls: placesmartorder's order for the
  difference to a target, the strategy webhook's target, splitorder's pieces.

Everything here takes and returns plain values; `MappingError` names the OpenAlgo field that
cannot be mapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TypedDict, Unpack
from zoneinfo import ZoneInfo

from orders.domain.vocabulary import (
    ExchangeSegment,
    OrderStatus,
    OrderType,
    ProductType,
    Side,
)

MARKET_TZ = ZoneInfo("Asia/Kolkata")


class MappingError(ValueError):
    """An OpenAlgo value the desk cannot map; `field` is OpenAlgo's name for it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ---- exchanges ------------------------------------------------------------------------------

SEGMENT_OF_EXCHANGE: dict[str, str] = {
    "NSE": ExchangeSegment.NSECM,
    "BSE": ExchangeSegment.BSECM,
    "NFO": ExchangeSegment.NSEFO,
    "BFO": ExchangeSegment.BSEFO,
    "CDS": ExchangeSegment.NSECD,
    "MCX": ExchangeSegment.MCXFO,
}
EXCHANGE_OF_SEGMENT: dict[str, str] = {segment: ex for ex, segment in SEGMENT_OF_EXCHANGE.items()}
EXCHANGES = tuple(SEGMENT_OF_EXCHANGE)
# Equities: the symbol is the base symbol, nothing to parse.
CASH_EXCHANGES = frozenset({"NSE", "BSE"})
# OpenAlgo exchange codes the desk's brokers (XTS) do not trade: named in the error.
_UNTRADED_EXCHANGES = {
    "BCD": "BSE currency derivatives are not on the desk's XTS segments",
    "NCDEX": "NCDEX is not on the desk's XTS segments",
    "NSE_INDEX": "an index is not tradable (trade its futures or options on NFO)",
    "BSE_INDEX": "an index is not tradable (trade its futures or options on BFO)",
    "MCX_INDEX": "an index is not tradable",
}


def segment_of_exchange(exchange: str) -> str:
    """The XTS segment of an OpenAlgo exchange code (any case)."""
    code = (exchange or "").strip().upper()
    if not code:
        raise MappingError("exchange", "is required: one of " + ", ".join(EXCHANGES))
    if code in SEGMENT_OF_EXCHANGE:
        return SEGMENT_OF_EXCHANGE[code]
    if code in _UNTRADED_EXCHANGES:
        raise MappingError("exchange", f"{code}: {_UNTRADED_EXCHANGES[code]}")
    raise MappingError("exchange", f"{exchange!r} is not one of " + ", ".join(EXCHANGES))


def exchange_of_segment(segment: str) -> str:
    return EXCHANGE_OF_SEGMENT.get(segment, segment)


def is_cash_exchange(exchange: str) -> bool:
    return exchange.strip().upper() in CASH_EXCHANGES


# ---- price types, actions, products --------------------------------------------------------

ORDER_TYPE_OF_PRICE_TYPE: dict[str, str] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "SL": OrderType.STOPLIMIT,
    "SL-M": OrderType.STOPMARKET,
}
PRICE_TYPE_OF_ORDER_TYPE: dict[str, str] = {
    order_type: price_type for price_type, order_type in ORDER_TYPE_OF_PRICE_TYPE.items()
}
PRICE_TYPES = tuple(ORDER_TYPE_OF_PRICE_TYPE)
ACTIONS = (Side.BUY.value, Side.SELL.value)
PRODUCTS = tuple(ProductType.values)


def order_type_of_price_type(price_type: str | None, *, field: str = "pricetype") -> str:
    """MARKET, LIMIT, SL, SL-M (any case; `SLM` and `SL_M` too) -> the desk's order type.
    Absent means MARKET, OpenAlgo's default."""
    code = (price_type or "").strip().upper().replace("_", "-")
    if not code:
        return OrderType.MARKET
    if code == "SLM":
        code = "SL-M"
    if code not in ORDER_TYPE_OF_PRICE_TYPE:
        raise MappingError(field, f"{price_type!r} is not one of " + ", ".join(PRICE_TYPES))
    return ORDER_TYPE_OF_PRICE_TYPE[code]


def price_type_of_order_type(order_type: str) -> str:
    return PRICE_TYPE_OF_ORDER_TYPE.get(order_type, order_type)


def side_of_action(action: str | None, *, field: str = "action") -> str:
    code = (action or "").strip().upper()
    if not code:
        raise MappingError(field, "is required: BUY or SELL")
    if code not in ACTIONS:
        raise MappingError(field, f"{action!r} is not BUY or SELL")
    return code


def product_type_of_product(product: str | None, *, field: str = "product") -> str:
    """MIS, NRML, CNC (any case). Absent means MIS, OpenAlgo's default."""
    code = (product or "").strip().upper()
    if not code:
        return ProductType.MIS
    if code not in PRODUCTS:
        raise MappingError(field, f"{product!r} is not one of " + ", ".join(PRODUCTS))
    return code


# ---- symbols --------------------------------------------------------------------------------

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_EXPIRY = re.compile(r"(\d{2})(" + "|".join(MONTHS) + r")(\d{2})")
_TAIL = re.compile(r"FUT|(?P<strike>\d+(?:\.\d+)?)(?P<type>CE|PE)")

FUTURE = "FUT"
CALL = "CE"
PUT = "PE"
EQUITY = "EQ"


@dataclass(frozen=True)
class SymbolSpec:
    """An instrument in OpenAlgo's terms. `kind` is OpenAlgo's instrument type: EQ, FUT, CE
    or PE; expiry and strike are None where the kind has none."""

    base: str
    kind: str
    expiry: date | None = None
    strike: Decimal | None = None


def expiry_code(expiry: date) -> str:
    """28MAR24: the expiry as it sits in a symbol."""
    return f"{expiry.day:02d}{MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


def expiry_text(expiry: date | None) -> str:
    """25-AUG-26: the expiry as OpenAlgo's symbol and search answers show it."""
    if expiry is None:
        return ""
    return f"{expiry.day:02d}-{MONTHS[expiry.month - 1]}-{expiry.year % 100:02d}"


def strike_text(strike: Decimal) -> str:
    """20800, 292.5: no trailing zeros, no exponent."""
    normalized = strike.normalize()
    if normalized == normalized.to_integral_value():
        return str(int(normalized))
    return format(normalized, "f")


def parse_derivative_symbol(symbol: str) -> SymbolSpec | None:
    """A future or option symbol read into its parts; None when it is not in OpenAlgo's
    derivative format. The leftmost DDMMMYY that leaves a valid date and a valid tail wins
    (a base may itself hold digits: `726GS203225APR2497PE`)."""
    text = (symbol or "").strip().upper()
    for match in _EXPIRY.finditer(text):
        start = match.start()
        if start == 0:
            continue
        tail = _TAIL.fullmatch(text, match.end())
        if tail is None:
            continue
        day, month, year = match.groups()
        try:
            expiry = date(2000 + int(year), MONTHS.index(month) + 1, int(day))
        except ValueError:
            continue
        base = text[:start]
        if tail.group("type") is None:
            return SymbolSpec(base=base, kind=FUTURE, expiry=expiry)
        try:
            strike = Decimal(tail.group("strike"))
        except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
            continue
        return SymbolSpec(base=base, kind=tail.group("type"), expiry=expiry, strike=strike)
    return None


def parse_symbol(symbol: str, exchange: str) -> SymbolSpec | None:
    """An OpenAlgo symbol on an OpenAlgo exchange. Equities (NSE, BSE) are the symbol
    itself; on the derivative exchanges None means "not OpenAlgo's format" (the desk then
    looks the symbol up as the broker's trading symbol)."""
    text = (symbol or "").strip().upper()
    if not text:
        raise MappingError("symbol", "is required")
    if is_cash_exchange(exchange):
        return SymbolSpec(base=text, kind=EQUITY)
    return parse_derivative_symbol(text)


def format_symbol(spec: SymbolSpec) -> str:
    """The OpenAlgo symbol of `spec` (the inverse of parse_symbol for canonical symbols)."""
    if spec.kind == EQUITY:
        return spec.base
    if spec.expiry is None:
        raise ValueError("a derivative symbol needs an expiry")
    if spec.kind == FUTURE:
        return f"{spec.base}{expiry_code(spec.expiry)}FUT"
    if spec.kind in (CALL, PUT):
        if spec.strike is None:
            raise ValueError("an option symbol needs a strike")
        return f"{spec.base}{expiry_code(spec.expiry)}{strike_text(spec.strike)}{spec.kind}"
    raise ValueError(f"unknown instrument kind {spec.kind!r}")


class MasterRow(TypedDict):
    """An instrument-master row as the symbol format reads it (`spec_of_instrument`'s and
    `openalgo_symbol`'s keywords)."""

    segment: str
    trading_symbol: str
    base: str
    expiry: date | None
    strike: Decimal | None
    option_type: str


def spec_of_instrument(
    *,
    segment: str,
    trading_symbol: str,
    base: str,
    expiry: date | None,
    strike: Decimal | None,
    option_type: str,
) -> SymbolSpec | None:
    """The OpenAlgo reading of an instrument-master row; None when the row lacks what the
    format needs (a derivative without an expiry: its trading symbol is shown as it is)."""
    exchange = exchange_of_segment(segment)
    if exchange in CASH_EXCHANGES:
        return SymbolSpec(base=trading_symbol.upper(), kind=EQUITY)
    if expiry is None or not base:
        return None
    kind = (option_type or "").strip().upper()
    if kind in (CALL, PUT):
        if strike is None:
            return None
        return SymbolSpec(base=base.upper(), kind=kind, expiry=expiry, strike=strike)
    return SymbolSpec(base=base.upper(), kind=FUTURE, expiry=expiry)


def openalgo_symbol(**row: Unpack[MasterRow]) -> str:
    spec = spec_of_instrument(**row)
    return format_symbol(spec) if spec is not None else row["trading_symbol"]


# ---- statuses and times ---------------------------------------------------------------------

OPEN = "open"
COMPLETE = "complete"
CANCELLED = "cancelled"
REJECTED = "rejected"
TRIGGER_PENDING = "trigger pending"
PENDING = "pending"

_STATUS_OF_ORDER: dict[str, str] = {
    OrderStatus.PENDING: PENDING,
    OrderStatus.OPEN: OPEN,
    OrderStatus.PARTIALLY_FILLED: OPEN,
    OrderStatus.FILLED: COMPLETE,
    OrderStatus.COMPLETED: COMPLETE,
    OrderStatus.CANCELLED: CANCELLED,
    OrderStatus.REJECTED: REJECTED,
}
# What OpenAlgo's order-book statistics count as still open.
OPEN_WORDS = frozenset({OPEN, PENDING, TRIGGER_PENDING})


def order_status_text(status: str, order_type: str) -> str:
    """The desk's order status in OpenAlgo's words; an untriggered stop order is
    `trigger pending`. (A bracket whose entry filled is `complete`: its protection is the
    desk's business.)"""
    word = _STATUS_OF_ORDER.get(status, status.lower())
    if (
        word == OPEN
        and status == OrderStatus.OPEN
        and order_type
        in (
            OrderType.STOPLIMIT,
            OrderType.STOPMARKET,
        )
    ):
        return TRIGGER_PENDING
    return word


def openalgo_timestamp(moment: datetime | None) -> str:
    """08-Apr-2025 13:58:03, in Asia/Kolkata."""
    if moment is None:
        return ""
    local = moment.astimezone(MARKET_TZ)
    return f"{local.day:02d}-{MONTHS[local.month - 1].title()}-{local.year} {local:%H:%M:%S}"


def epoch_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# ---- position-sized calls -------------------------------------------------------------------


@dataclass(frozen=True)
class PositionChange:
    side: str
    quantity: int


def smart_order_change(
    *, action: str, quantity: int, position_size: int, current: int
) -> PositionChange | None:
    """placesmartorder: the order that takes the position from `current` to
    `position_size`, or None when it is there already. OpenAlgo's one exception: with a
    target of 0 and no position, `quantity` is placed in `action`'s direction (a plain
    order)."""
    if position_size == 0 and current == 0:
        return PositionChange(side=action, quantity=quantity) if quantity > 0 else None
    return change_to_target(target=position_size, current=current)


def change_to_target(*, target: int, current: int) -> PositionChange | None:
    """The order that takes the position from `current` to `target` (None: nothing to do)."""
    if target == current:
        return None
    delta = target - current
    return PositionChange(side=Side.BUY if delta > 0 else Side.SELL, quantity=abs(delta))


def webhook_target(*, action: str, position_size: int) -> int:
    """The position OpenAlgo's strategy webhook asks for: BUY with a size >= 0 is that long
    position (0: flat, the short exit); SELL with a size <= 0 is that short position (0:
    flat, the long exit), and SELL with a positive size is read as that many short (the
    openalgo client's own example, `strategyorder("RELIANCE", "SELL", 10)`). BUY with a
    negative size could mean either: refused."""
    if action == Side.BUY:
        if position_size < 0:
            raise MappingError(
                "position_size", "a BUY names a long (or flat) position: give 0 or more"
            )
        return position_size
    return -abs(position_size)


def whole_lots(quantity: int, lot_size: int) -> int:
    """`quantity` in lots (a bracket is placed in lots): one that is not a whole number of
    lots is refused on `quantity`."""
    if quantity % lot_size:
        raise MappingError(
            "quantity", f"{quantity} is not a whole number of lots (lot size {lot_size})"
        )
    return quantity // lot_size


MAX_SPLIT_ORDERS = 100


def split_quantities(total: int, size: int) -> list[int]:
    """splitorder: `total` in pieces of `size`, the remainder last (105 by 20: five of 20
    and one of 5); at most MAX_SPLIT_ORDERS pieces."""
    if total <= 0:
        raise MappingError("quantity", "must be a positive whole number")
    if size <= 0:
        raise MappingError("splitsize", "must be a positive whole number")
    full, rest = divmod(total, size)
    count = full + (1 if rest else 0)
    # Counted before any piece is made: 2,147,483,647 in pieces of 1 is a list of two
    # billion pieces (17 GB), which took the web process down before it was refused.
    if count > MAX_SPLIT_ORDERS:
        raise MappingError(
            "splitsize",
            f"{total} in pieces of {size} is {count} orders; at most {MAX_SPLIT_ORDERS}",
        )
    return [size] * full + ([rest] if rest else [])
