"""The paper exchange's matching rules: pure functions over dataclasses (no Django).

One price update is one "tick". On each tick every open order is matched against the
instrument's quote: a buyer deals at the buy price (the buy fair price, else the LTP), a
seller at the sell price. Market orders fill at once (with configurable slippage), limit
orders when the price crosses their limit (at the limit or better), stop orders trigger when
the price reaches their stop and then behave as limit or market orders. A fill cap limits how
much of one order fills per tick, so partial fills happen. Rejections at placement follow the
exchange's rules (lot, freeze quantity, tick, price band, margin) plus an explicit reject rate;
everything is deterministic given the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from orders.domain.vocabulary import LegStatus, OrderType, Side

_BPS = Decimal("10000")
_PRICE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class PaperConfig:
    """How the paper exchange behaves (settings.PAPER_* in the product)."""

    seed: int = 0
    slippage_bps: Decimal = Decimal("0")  # market orders pay this many basis points
    fill_cap: int = 0  # most quantity one order fills per tick; 0 = no cap
    reject_rate: Decimal = Decimal("0")  # share of accepted orders rejected afterwards
    margin_rate: Decimal = Decimal("0.2")  # margin blocked per rupee of exposure


@dataclass(frozen=True)
class InstrumentRules:
    lot_size: int = 1
    tick_size: Decimal = Decimal("0.05")
    freeze_quantity: int | None = None
    band_low: Decimal | None = None
    band_high: Decimal | None = None
    # Rupees per unit of quantity per rupee of price (the instrument master's Multiplier:
    # 10 for some MCX contracts): what a quantity at a price is worth, and so margins.
    multiplier: int = 1


@dataclass(frozen=True)
class Quote:
    """The prices a buyer and a seller deal at on this tick (None: no price yet)."""

    buy_price: Decimal | None
    sell_price: Decimal | None

    @classmethod
    def from_prices(
        cls,
        *,
        buy_fair_price: Decimal | None,
        sell_fair_price: Decimal | None,
        avg_fair_price: Decimal | None = None,
        last_traded_price: Decimal | None = None,
    ) -> Quote:
        fallback = last_traded_price if last_traded_price is not None else avg_fair_price
        return cls(
            buy_price=buy_fair_price if buy_fair_price is not None else fallback,
            sell_price=sell_fair_price if sell_fair_price is not None else fallback,
        )

    def price_for(self, side: str) -> Decimal | None:
        return self.buy_price if side == Side.BUY else self.sell_price


@dataclass(frozen=True)
class NewOrder:
    unique_identifier: str
    side: str
    order_type: str
    quantity: int
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class OrderState:
    """An open order as the matcher sees it."""

    side: str
    order_type: str
    quantity: int
    filled_quantity: int = 0
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    triggered: bool = False
    average_price: Decimal | None = None

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def status(self) -> str:
        if self.filled_quantity >= self.quantity:
            return LegStatus.FILLED
        return LegStatus.PARTIALLY_FILLED if self.filled_quantity else LegStatus.OPEN


@dataclass(frozen=True)
class Fill:
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class MatchResult:
    """The order after one tick, and the fill it got on this tick (if any)."""

    state: OrderState
    fill: Fill | None


# ---- prices -------------------------------------------------------------------------


def snap_up(price: Decimal, tick: Decimal) -> Decimal:
    return ((price / tick).to_integral_value(rounding=ROUND_CEILING) * tick).quantize(_PRICE_PLACES)


def snap_down(price: Decimal, tick: Decimal) -> Decimal:
    return ((price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick).quantize(_PRICE_PLACES)


def is_tick_multiple(price: Decimal, tick: Decimal) -> bool:
    return tick <= 0 or (price % tick) == 0


def within_band(price: Decimal, rules: InstrumentRules) -> Decimal:
    """No trade happens outside the instrument's price band (the exchange's circuit limits):
    a deal price beyond it is dealt at the band's edge."""
    if rules.band_high is not None and price > rules.band_high:
        return rules.band_high
    if rules.band_low is not None and price < rules.band_low:
        return rules.band_low
    return price


def market_fill_price(side: str, quote: Quote, rules: InstrumentRules, config: PaperConfig):
    """Where a market order deals: the quote moved against the order by the slippage, never
    outside the price band."""
    price = quote.price_for(side)
    if price is None:
        return None
    slip = config.slippage_bps / _BPS
    if side == Side.BUY:
        return within_band(snap_up(price * (1 + slip), rules.tick_size), rules)
    return within_band(max(snap_down(price * (1 - slip), rules.tick_size), rules.tick_size), rules)


# ---- placement ----------------------------------------------------------------------


def reference_price(order: NewOrder | OrderState, quote: Quote) -> Decimal | None:
    """The price that margin is blocked at: the order's own price, else the market."""
    if order.order_type in (OrderType.LIMIT, OrderType.STOPLIMIT) and order.limit_price is not None:
        return order.limit_price
    if order.order_type == OrderType.STOPMARKET and order.stop_price is not None:
        return order.stop_price
    return quote.price_for(order.side)


def required_margin(
    *,
    side: str,
    quantity: int,
    price: Decimal,
    net_position: int,
    config: PaperConfig,
    multiplier: int = 1,
) -> Decimal:
    """Margin for the part of an order that opens exposure (closing a position is free): its
    value (quantity x price x the contract multiplier) x the margin rate."""
    closable = max(0, -net_position) if side == Side.BUY else max(0, net_position)
    opening = max(0, quantity - closable)
    value = Decimal(opening * multiplier) * price
    return (value * config.margin_rate).quantize(_CENT)


_CENT = Decimal("0.01")


def validate_new_order(
    order: NewOrder,
    rules: InstrumentRules,
    quote: Quote,
    *,
    margin_required: Decimal = Decimal("0"),
    margin_available: Decimal | None = None,
) -> str | None:
    """The exchange's placement rules; returns the reject reason, or None when accepted."""
    if order.side not in (Side.BUY, Side.SELL):
        return f"Invalid order side {order.side!r}"
    if order.order_type not in OrderType:
        return f"Invalid order type {order.order_type!r}"
    if order.quantity <= 0:
        return "Order quantity must be positive"
    if order.quantity % max(rules.lot_size, 1):
        return f"Quantity {order.quantity} is not a multiple of the lot size {rules.lot_size}"
    if rules.freeze_quantity and order.quantity > rules.freeze_quantity:
        return f"Quantity {order.quantity} exceeds the freeze quantity {rules.freeze_quantity}"
    needs_limit = order.order_type in (OrderType.LIMIT, OrderType.STOPLIMIT)
    needs_stop = order.order_type in (OrderType.STOPLIMIT, OrderType.STOPMARKET)
    if needs_limit and order.limit_price is None:
        return f"A {order.order_type} order needs a limit price"
    if needs_stop and order.stop_price is None:
        return f"A {order.order_type} order needs a stop price"
    for label, price in (("Limit", order.limit_price), ("Stop", order.stop_price)):
        if price is None or not (
            (label == "Limit" and needs_limit) or (label == "Stop" and needs_stop)
        ):
            continue
        if price <= 0:
            return f"{label} price must be positive"
        if not is_tick_multiple(price, rules.tick_size):
            return f"{label} price {price} is not a multiple of the tick size {rules.tick_size}"
        if (rules.band_low is not None and price < rules.band_low) or (
            rules.band_high is not None and price > rules.band_high
        ):
            return (
                f"{label} price {price} is outside the price band "
                f"[{rules.band_low}, {rules.band_high}]"
            )
    if order.order_type == OrderType.STOPLIMIT:
        # Both prices are there: checked above for every limit and stop order.
        assert order.limit_price is not None and order.stop_price is not None
        if order.side == Side.BUY and order.limit_price < order.stop_price:
            return "A buy stop-limit order's limit price must be at or above its stop price"
        if order.side == Side.SELL and order.limit_price > order.stop_price:
            return "A sell stop-limit order's limit price must be at or below its stop price"
    if order.order_type == OrderType.MARKET and quote.price_for(order.side) is None:
        return "No market price is available for this instrument"
    if margin_available is not None and margin_required > margin_available:
        return f"Insufficient margin: required {margin_required}, available {margin_available}"
    return None


def order_rng(seed: int, unique_identifier: str) -> random.Random:
    """One deterministic random stream per order: the same seed and id give the same fate."""
    return random.Random(f"{seed}:{unique_identifier}")


def is_randomly_rejected(unique_identifier: str, config: PaperConfig) -> bool:
    if config.reject_rate <= 0:
        return False
    return Decimal(str(order_rng(config.seed, unique_identifier).random())) < config.reject_rate


# ---- matching -----------------------------------------------------------------------


def _fill_quantity(remaining: int, rules: InstrumentRules, config: PaperConfig) -> int:
    if config.fill_cap <= 0:
        return remaining
    lot = max(rules.lot_size, 1)
    cap = max(lot, config.fill_cap - config.fill_cap % lot)
    return min(remaining, cap)


def _apply_fill(state: OrderState, fill: Fill) -> OrderState:
    filled = state.filled_quantity + fill.quantity
    previous_value = (state.average_price or Decimal("0")) * state.filled_quantity
    average = ((previous_value + fill.price * fill.quantity) / filled).quantize(_PRICE_PLACES)
    return replace(state, filled_quantity=filled, average_price=average)


def is_stop_reached(state: OrderState, quote: Quote) -> bool:
    price = quote.price_for(state.side)
    if price is None or state.stop_price is None:
        return False
    return price >= state.stop_price if state.side == Side.BUY else price <= state.stop_price


def limit_fill_price(state: OrderState, quote: Quote, rules: InstrumentRules) -> Decimal | None:
    """The deal price when the market crosses the limit (the limit or better, inside the
    price band), else None."""
    price = quote.price_for(state.side)
    if price is None or state.limit_price is None:
        return None
    limit = state.limit_price
    if state.side == Side.BUY and price <= limit:
        deal = within_band(min(snap_up(price, rules.tick_size), limit), rules)
        return deal if deal <= limit else None  # a limit below the band cannot deal
    if state.side == Side.SELL and price >= limit:
        deal = within_band(max(snap_down(price, rules.tick_size), limit), rules)
        return deal if deal >= limit else None
    return None


def match_order(
    state: OrderState, quote: Quote, rules: InstrumentRules, config: PaperConfig
) -> MatchResult:
    """One tick for one open order: trigger stops, then fill up to the fill cap."""
    if state.remaining <= 0:
        return MatchResult(state=state, fill=None)
    if state.order_type in (OrderType.STOPLIMIT, OrderType.STOPMARKET) and not state.triggered:
        if not is_stop_reached(state, quote):
            return MatchResult(state=state, fill=None)
        state = replace(state, triggered=True)
    if state.order_type in (OrderType.MARKET, OrderType.STOPMARKET):
        price = market_fill_price(state.side, quote, rules, config)
    else:
        price = limit_fill_price(state, quote, rules)
    if price is None:
        return MatchResult(state=state, fill=None)
    fill = Fill(quantity=_fill_quantity(state.remaining, rules, config), price=price)
    return MatchResult(state=_apply_fill(state, fill), fill=fill)
