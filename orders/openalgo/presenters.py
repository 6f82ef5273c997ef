"""OpenAlgo's answer shapes, built from the desk's rows (the serializers of this API: plain
functions, as every answer is a fixed JSON shape the `openalgo` client's users read).

Numbers follow OpenAlgo's own answers: prices are JSON numbers in order, trade and quote
answers, strings in funds and the position book; quantities are strings where OpenAlgo's
are. Money is Decimal inside the desk and becomes a number only here, at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from orders.brokers.base import BrokerBalance, BrokerPositionRow, BrokerTradeRow
from orders.models import Instrument, Order
from orders.openalgo.mapping import (
    CASH_EXCHANGES,
    COMPLETE,
    EQUITY,
    OPEN_WORDS,
    REJECTED,
    MasterRow,
    exchange_of_segment,
    expiry_text,
    openalgo_symbol,
    openalgo_timestamp,
    order_status_text,
    price_type_of_order_type,
    spec_of_instrument,
)
from orders.positions.holdings import AccountHoldings

_ZERO = Decimal("0")
_CENTS = Decimal("0.01")


def number(value: Decimal | None) -> float:
    return float(value) if value is not None else 0.0


def money_text(value: Decimal | None) -> str:
    return str((value or _ZERO).quantize(_CENTS))


def success(**fields: Any) -> dict[str, Any]:
    return {"status": "success", **fields}


def error(message: str, **fields: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, **fields}


# ---- instruments ----------------------------------------------------------------------------


def _base(instrument: Instrument) -> str:
    return instrument.name or instrument.underlying


def _master_row(instrument: Instrument) -> MasterRow:
    """The instrument as `spec_of_instrument` and `openalgo_symbol` read it."""
    return {
        "segment": instrument.exchange_segment,
        "trading_symbol": instrument.trading_symbol,
        "base": _base(instrument),
        "expiry": instrument.expiry,
        "strike": instrument.strike_price,
        "option_type": instrument.option_type,
    }


def symbol_of(instrument: Instrument) -> str:
    return openalgo_symbol(**_master_row(instrument))


def exchange_of(instrument: Instrument) -> str:
    return exchange_of_segment(instrument.exchange_segment)


def instrument_data(instrument: Instrument) -> dict[str, Any]:
    """An instrument as OpenAlgo's symbol and search answers show it."""
    spec = spec_of_instrument(**_master_row(instrument))
    kind = spec.kind if spec is not None else (instrument.instrument_type or "")
    exchange = exchange_of(instrument)
    if kind == EQUITY or exchange in CASH_EXCHANGES:
        strike = -0.01  # OpenAlgo's "no strike" for an equity
    else:
        strike = number(instrument.strike_price) if kind in ("CE", "PE") else 0.0
    return {
        "id": instrument.pk,
        "symbol": symbol_of(instrument),
        "brsymbol": instrument.trading_symbol,
        "name": _base(instrument) or instrument.trading_symbol,
        "exchange": exchange,
        "brexchange": instrument.exchange_segment,
        "instrumenttype": kind,
        "expiry": expiry_text(instrument.expiry),
        "strike": strike,
        "lotsize": instrument.lot_size,
        "tick_size": number(instrument.tick_size),
        "freeze_qty": instrument.freeze_quantity or 0,
        "token": str(instrument.exchange_instrument_id),
    }


def quote_data(instrument: Instrument) -> dict[str, Any]:
    """The desk's prices of an instrument: its fair prices (the price a buyer deals at is
    the ask, a seller's the bid) and LTP. The desk keeps no day OHLC, volume or previous
    close: those are 0."""
    fair = getattr(instrument, "fair_price", None)
    ltp = ask = bid = None
    if fair is not None:
        ltp = fair.last_traded_price if fair.last_traded_price is not None else fair.avg_fair_price
        ask, bid = fair.buy_fair_price, fair.sell_fair_price
    return {
        "ltp": number(ltp),
        "bid": number(bid),
        "ask": number(ask),
        "open": 0.0,
        "high": 0.0,
        "low": 0.0,
        "prev_close": 0.0,
        "volume": 0,
        "oi": 0,
    }


# ---- orders ---------------------------------------------------------------------------------


def _entry(order: Order):
    legs = sorted(order.legs.all(), key=lambda leg: leg.pk)
    return next((leg for leg in legs if leg.role == "ENTRY"), legs[0] if legs else None)


def order_data(order: Order) -> dict[str, Any]:
    """One desk order as an OpenAlgo order-book row / orderstatus answer. Its price and
    trigger price are the entry's at the broker (the entry leg's: where the desk's
    re-pricing moved it), as a broker's order book shows them; the order keeps the
    trader's."""
    entry = _entry(order)
    average = entry.average_price if entry is not None else None
    working = entry if entry is not None else order
    return {
        "orderid": str(order.pk),
        "symbol": symbol_of(order.instrument),
        "exchange": exchange_of(order.instrument),
        "action": order.side,
        "quantity": str(order.quantity),
        "filled_quantity": str(order.filled_quantity),
        "price": number(working.limit_price),
        "trigger_price": number(working.stop_price),
        "average_price": number(average),
        "pricetype": price_type_of_order_type(order.order_type),
        "product": order.product_type,
        "order_status": order_status_text(order.status, order.order_type),
        "timestamp": openalgo_timestamp(order.created_at),
        "strategy": order.strategy.name if order.strategy is not None else "",
        "kind": order.kind,
        "rejection_reason": (entry.reject_reason if entry is not None else "") or "",
    }


def order_book(orders: Iterable[Order]) -> dict[str, Any]:
    rows = [order_data(order) for order in orders]
    statuses = [row["order_status"] for row in rows]
    return {
        "orders": rows,
        "statistics": {
            "total_buy_orders": float(sum(1 for row in rows if row["action"] == "BUY")),
            "total_sell_orders": float(sum(1 for row in rows if row["action"] == "SELL")),
            "total_completed_orders": float(statuses.count(COMPLETE)),
            "total_open_orders": float(sum(1 for s in statuses if s in OPEN_WORDS)),
            "total_rejected_orders": float(statuses.count(REJECTED)),
        },
    }


# ---- books ----------------------------------------------------------------------------------


def _key(segment: str, instrument_id) -> tuple[str, int]:
    return segment, int(instrument_id)


def trade_data(
    trade: BrokerTradeRow,
    instruments: dict[tuple[str, int], Instrument],
    order_ids: dict[str, int],
) -> dict[str, Any]:
    """A fill; `orderid` is the desk order the fill belongs to (matched by the leg's unique
    identifier), else the broker's order id (an order placed outside the desk). Its value is
    in rupees, with its contract's multiplier, as the desk's trade book shows it."""
    instrument = instruments.get(_key(trade.exchange_segment, trade.exchange_instrument_id))
    quantity = trade.quantity or 0
    price = trade.price or _ZERO
    multiplier = instrument.multiplier if instrument is not None else 1
    order_id = order_ids.get(trade.unique_identifier)
    return {
        "orderid": str(order_id) if order_id is not None else trade.broker_order_id,
        "symbol": symbol_of(instrument) if instrument is not None else trade.trading_symbol,
        "exchange": exchange_of_segment(trade.exchange_segment),
        "action": trade.side,
        "product": trade.product_type,
        "quantity": float(quantity),
        "average_price": number(price),
        "trade_value": number(price * quantity * multiplier),
        "timestamp": openalgo_timestamp(trade.traded_at),
    }


def _average_price(row: BrokerPositionRow) -> Decimal | None:
    if row.net_qty and row.net_qty > 0:
        return row.buy_avg_price
    if row.net_qty and row.net_qty < 0:
        return row.sell_avg_price
    return None


def _ltp(instrument: Instrument | None) -> Decimal | None:
    fair = getattr(instrument, "fair_price", None) if instrument is not None else None
    if fair is None:
        return None
    return fair.last_traded_price if fair.last_traded_price is not None else fair.avg_fair_price


def position_data(
    row: BrokerPositionRow, instruments: dict[tuple[str, int], Instrument]
) -> dict[str, Any]:
    instrument = instruments.get(_key(row.exchange_segment, row.exchange_instrument_id))
    average = _average_price(row)
    return {
        "symbol": symbol_of(instrument) if instrument is not None else row.trading_symbol,
        "exchange": exchange_of_segment(row.exchange_segment),
        "product": row.product_type,
        "quantity": str(row.net_qty if row.net_qty is not None else 0),
        "average_price": str((average or _ZERO).quantize(_CENTS)),
        "ltp": str((_ltp(instrument) or _ZERO).quantize(_CENTS)),
        "pnl": money_text(row.mtm),
    }


def funds_data(balance: BrokerBalance | None, positions: list[BrokerPositionRow]) -> dict:
    """availablecash is what new orders may use (the broker's net margin), utiliseddebits
    the margin blocked; the M2M figures are the positions' realized and unrealized MTM."""
    net = balance.net_margin if balance is not None else None
    used = balance.margin_utilized if balance is not None else None
    return {
        "availablecash": money_text(net),
        "collateral": "0.00",
        "m2mrealized": money_text(sum((p.realized_mtm or _ZERO for p in positions), _ZERO)),
        "m2munrealized": money_text(sum((p.unrealized_mtm or _ZERO for p in positions), _ZERO)),
        "utiliseddebits": money_text(used),
    }


def holdings_data(
    holdings: AccountHoldings, instruments: dict[tuple[str, int], Instrument]
) -> dict[str, Any]:
    """Delivery holdings as the broker reports them (orders.positions.holdings: XTS
    portfolio/holdings; the paper exchange: CNC bought on earlier days), valued at the LTP
    (at cost while no price is known), in OpenAlgo's shape."""
    rows = []
    total_value = total_cost = _ZERO
    for row in holdings.rows:
        if not row.quantity or row.quantity <= 0:
            continue
        instrument = instruments.get(_key(row.exchange_segment, row.exchange_instrument_id))
        cost_price = row.average_price or _ZERO
        ltp = row.ltp if row.ltp is not None else cost_price
        cost = cost_price * row.quantity
        value = ltp * row.quantity
        pnl = value - cost
        total_value += value
        total_cost += cost
        rows.append(
            {
                "symbol": symbol_of(instrument) if instrument is not None else row.trading_symbol,
                "exchange": exchange_of_segment(row.exchange_segment),
                "product": "CNC",
                "quantity": row.quantity,
                "t1_quantity": 0,
                "pledged_quantity": row.pledged_quantity or 0,
                "average_price": number(cost_price),
                "ltp": number(ltp),
                "pnl": number(pnl.quantize(_CENTS)),
                "pnlpercent": number((pnl / cost * 100).quantize(_CENTS)) if cost else 0.0,
            }
        )
    total_pnl = total_value - total_cost
    return {
        "holdings": rows,
        "statistics": {
            "totalholdingvalue": number(total_value.quantize(_CENTS)),
            "totalinvvalue": number(total_cost.quantize(_CENTS)),
            "totalprofitandloss": number(total_pnl.quantize(_CENTS)),
            "totalpnlpercentage": (
                number((total_pnl / total_cost * 100).quantize(_CENTS)) if total_cost else 0.0
            ),
        },
    }
