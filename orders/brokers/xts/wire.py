"""The XTS wire format in one place: statuses, sides, order types, times, numbers and rows.

Both the XTS gateway (reading a broker's answers) and the XTS simulator (writing them) use
these functions, so the two cannot drift apart. Pure Python: no Django, no HTTP.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from orders.brokers.base import (
    CANCELLED,
    FILLED,
    OPEN,
    PARTIALLY_FILLED,
    REJECTED,
    UNKNOWN,
    BrokerBalance,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
)
from trading_site.core.market_hours import MARKET_TZ

logger = logging.getLogger(__name__)

EXCHANGE_TZ = MARKET_TZ
TIME_FORMAT = "%d-%m-%Y %H:%M:%S"

# ---- statuses, sides, order types ---------------------------------------------------

_STATUS_FROM_XTS = {
    "pendingnew": OPEN,
    "new": OPEN,
    "open": OPEN,
    "pendingreplace": OPEN,
    "replaced": OPEN,
    "pendingcancel": OPEN,
    "partiallyfilled": PARTIALLY_FILLED,
    "filled": FILLED,
    "cancelled": CANCELLED,
    "canceled": CANCELLED,
    "expired": CANCELLED,
    "rejected": REJECTED,
}
_STATUS_TO_XTS = {
    OPEN: "New",
    PARTIALLY_FILLED: "PartiallyFilled",
    FILLED: "Filled",
    CANCELLED: "Cancelled",
    REJECTED: "Rejected",
}
_ORDER_TYPE_FROM_XTS = {
    "market": "MARKET",
    "limit": "LIMIT",
    "stoplimit": "STOPLIMIT",
    "sl": "STOPLIMIT",
    "stopmarket": "STOPMARKET",
    "slm": "STOPMARKET",
}

_ORDER_TYPE_TO_XTS = {
    "MARKET": "Market",
    "LIMIT": "Limit",
    "STOPLIMIT": "StopLimit",
    "STOPMARKET": "StopMarket",
}


def _letters(value: Any) -> str:
    return re.sub(r"[^a-z]", "", str(value or "").lower())


def status_from_xts(raw: Any, *, filled_quantity: int = 0) -> str:
    """Our status for an XTS OrderStatus; an unknown value is UNKNOWN (and logged)."""
    status = _STATUS_FROM_XTS.get(_letters(raw))
    if status is None:
        logger.warning("unknown XTS order status %r mapped to UNKNOWN", raw)
        return UNKNOWN
    if status == OPEN and filled_quantity > 0:
        return PARTIALLY_FILLED
    return status


def status_to_xts(status: str) -> str:
    return _STATUS_TO_XTS.get(status, "New")


def side_from_xts(raw: Any) -> str:
    """BUY / SELL, whatever the case the broker used."""
    return str(raw or "").strip().upper()


def side_to_xts(side: str) -> str:
    return side.upper()


def order_type_from_xts(raw: Any) -> str:
    return _ORDER_TYPE_FROM_XTS.get(_letters(raw), str(raw or "").upper())


def order_type_to_xts(order_type: str) -> str:
    return _ORDER_TYPE_TO_XTS.get(order_type, order_type)


# ---- numbers and times --------------------------------------------------------------


def parse_decimal(value: Any) -> Decimal | None:
    """A price that may come as a number, a string, or empty (before a fill)."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    # "NaN" / "Infinity" parse as Decimals but are no price: treat them as absent.
    return number if number.is_finite() else None


def parse_int(value: Any, default: int = 0) -> int:
    number = parse_decimal(value)
    return int(number) if number is not None else default


def _money(value: Any) -> Decimal:
    return parse_decimal(value) or Decimal("0")


_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_time(value: Any) -> datetime | None:
    """XTS times: 'DD-MM-YYYY HH:MM:SS' (exchange-local), ISO-like, or '/Date(ms)/'."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.startswith("01-01-1980"):
        return None
    match = _DOTNET_DATE.match(text)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
    parsed = None
    for fmt in (TIME_FORMAT, "%d-%m-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"):
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            logger.warning("unparseable XTS time %r", text)
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=EXCHANGE_TZ)
    return parsed


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(EXCHANGE_TZ).strftime(TIME_FORMAT)


# ---- rows from the wire (the gateway) -----------------------------------------------


def order_row_from_xts(row: dict) -> BrokerOrderRow:
    quantity = parse_int(row.get("OrderQuantity"))
    filled = parse_int(row.get("CumulativeQuantity"))
    leaves = row.get("LeavesQuantity")
    status = status_from_xts(row.get("OrderStatus"), filled_quantity=filled)
    return BrokerOrderRow(
        broker_order_id=str(row.get("AppOrderID", "")),
        unique_identifier=str(row.get("OrderUniqueIdentifier") or ""),
        exchange_segment=str(row.get("ExchangeSegment") or ""),
        exchange_instrument_id=parse_int(row.get("ExchangeInstrumentID")),
        trading_symbol=str(row.get("TradingSymbol") or ""),
        side=side_from_xts(row.get("OrderSide")),
        order_type=order_type_from_xts(row.get("OrderType")),
        product_type=str(row.get("ProductType") or ""),
        quantity=quantity,
        filled_quantity=filled,
        leaves_quantity=parse_int(leaves)
        if leaves not in (None, "")
        else max(quantity - filled, 0),
        status=status,
        raw_status=str(row.get("OrderStatus") or ""),
        limit_price=parse_decimal(row.get("OrderPrice")),
        stop_price=parse_decimal(row.get("OrderStopPrice")),
        average_price=parse_decimal(row.get("OrderAverageTradedPrice")) if filled else None,
        reject_reason=str(row.get("CancelRejectReason") or ""),
        exchange_order_id=str(row.get("ExchangeOrderID") or ""),
        client_id=str(row.get("ClientID") or ""),
        time_in_force=str(row.get("TimeInForce") or ""),
        generated_at=parse_time(row.get("OrderGeneratedDateTime")),
        transact_time=parse_time(row.get("ExchangeTransactTime")),
        updated_at=parse_time(row.get("LastUpdateDateTime")),
    )


def trade_row_from_xts(row: dict) -> BrokerTradeRow:
    return BrokerTradeRow(
        execution_id=str(row.get("ExecutionID") or ""),
        broker_order_id=str(row.get("AppOrderID", "")),
        unique_identifier=str(row.get("OrderUniqueIdentifier") or ""),
        exchange_segment=str(row.get("ExchangeSegment") or ""),
        exchange_instrument_id=parse_int(row.get("ExchangeInstrumentID")),
        trading_symbol=str(row.get("TradingSymbol") or ""),
        side=side_from_xts(row.get("OrderSide")),
        product_type=str(row.get("ProductType") or ""),
        quantity=parse_int(row.get("LastTradedQuantity")),
        price=_money(row.get("LastTradedPrice")),
        traded_at=parse_time(row.get("LastExecutionTransactTime"))
        or parse_time(row.get("ExchangeTransactTime"))
        or datetime.now(tz=UTC),
    )


def position_row_from_xts(row: dict) -> BrokerPositionRow:
    return BrokerPositionRow(
        exchange_segment=str(row.get("ExchangeSegment") or ""),
        exchange_instrument_id=parse_int(
            row.get("ExchangeInstrumentId", row.get("ExchangeInstrumentID"))
        ),
        trading_symbol=str(row.get("TradingSymbol") or ""),
        product_type=str(row.get("ProductType") or ""),
        net_qty=parse_int(row.get("Quantity")),
        buy_qty=parse_int(row.get("OpenBuyQuantity")),
        sell_qty=parse_int(row.get("OpenSellQuantity")),
        buy_avg_price=parse_decimal(row.get("BuyAveragePrice")) or None,
        sell_avg_price=parse_decimal(row.get("SellAveragePrice")) or None,
        buy_amount=_money(row.get("BuyAmount")),
        sell_amount=_money(row.get("SellAmount")),
        net_amount=_money(row.get("NetAmount")),
        realized_mtm=_money(row.get("RealizedMTM")),
        unrealized_mtm=_money(row.get("UnrealizedMTM")),
        mtm=_money(row.get("MTM")),
    )


_CASH_KEYS = ("cashavailable", "cashmarginavailable", "availablecash", "cash")
_UTILIZED_KEYS = ("marginutilized", "marginutilised", "utilizedmargin", "utilisedmargin")
_NET_KEYS = ("netmarginavailable", "netmargin", "availablemargin", "marginavailable")


def _flatten(value: Any, into: dict[str, Any]) -> dict[str, Any]:
    """Every scalar leaf by its lower-cased key; the first occurrence wins."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, (dict, list)):
                _flatten(inner, into)
            else:
                into.setdefault(_letters(key), inner)
    elif isinstance(value, list):
        for inner in value:
            _flatten(inner, into)
    return into


def balance_from_xts(result: Any) -> BrokerBalance:
    """Brokers name the balance fields differently: take the first known name found."""
    entries = result.get("BalanceList") if isinstance(result, dict) else result
    first = entries[0] if isinstance(entries, list) and entries else (entries or {})
    leaves = _flatten(first, {})

    def pick(keys: tuple[str, ...]) -> Decimal:
        for key in keys:
            if key in leaves and parse_decimal(leaves[key]) is not None:
                return parse_decimal(leaves[key])
        return Decimal("0")

    return BrokerBalance(
        cash_available=pick(_CASH_KEYS),
        margin_utilized=pick(_UTILIZED_KEYS),
        net_margin=pick(_NET_KEYS),
    )


# ---- rows to the wire (the simulator) -----------------------------------------------


def _num(value: Decimal | None) -> float:
    return float(value) if value is not None else 0.0


def order_row_to_xts(row: BrokerOrderRow) -> dict[str, Any]:
    return {
        "AppOrderID": int(row.broker_order_id),
        "ExchangeOrderID": row.exchange_order_id,
        "ClientID": row.client_id,
        "ExchangeSegment": row.exchange_segment,
        "ExchangeInstrumentID": row.exchange_instrument_id,
        "TradingSymbol": row.trading_symbol,
        "OrderSide": row.side.capitalize(),
        "OrderType": order_type_to_xts(row.order_type),
        "ProductType": row.product_type,
        "TimeInForce": row.time_in_force,
        "OrderPrice": _num(row.limit_price),
        "OrderStopPrice": _num(row.stop_price),
        "OrderQuantity": row.quantity,
        "CumulativeQuantity": row.filled_quantity,
        "LeavesQuantity": row.leaves_quantity,
        # Real brokers send a string here, and nothing at all before the first fill.
        "OrderAverageTradedPrice": str(row.average_price) if row.average_price else "",
        "OrderStatus": status_to_xts(row.status),
        "CancelRejectReason": row.reject_reason,
        "OrderUniqueIdentifier": row.unique_identifier,
        "OrderGeneratedDateTime": format_time(row.generated_at),
        "ExchangeTransactTime": format_time(row.transact_time),
        "LastUpdateDateTime": format_time(row.updated_at),
    }


def trade_row_to_xts(row: BrokerTradeRow, client_id: str = "") -> dict[str, Any]:
    return {
        "AppOrderID": int(row.broker_order_id),
        "ClientID": client_id,
        "ExchangeSegment": row.exchange_segment,
        "ExchangeInstrumentID": row.exchange_instrument_id,
        "TradingSymbol": row.trading_symbol,
        "OrderSide": row.side.capitalize(),
        "ProductType": row.product_type,
        "OrderUniqueIdentifier": row.unique_identifier,
        "ExecutionID": row.execution_id,
        "LastTradedPrice": _num(row.price),
        "LastTradedQuantity": row.quantity,
        "LastExecutionTransactTime": format_time(row.traded_at),
        "ExchangeTransactTime": format_time(row.traded_at),
    }


def position_row_to_xts(row: BrokerPositionRow, lot_size: int = 1) -> dict[str, Any]:
    return {
        "ExchangeSegment": row.exchange_segment,
        "ExchangeInstrumentId": str(row.exchange_instrument_id),
        "TradingSymbol": row.trading_symbol,
        "ProductType": row.product_type,
        "Quantity": str(row.net_qty),
        "OpenBuyQuantity": str(row.buy_qty),
        "OpenSellQuantity": str(row.sell_qty),
        "BuyAveragePrice": str(row.buy_avg_price or 0),
        "SellAveragePrice": str(row.sell_avg_price or 0),
        "BuyAmount": str(row.buy_amount),
        "SellAmount": str(row.sell_amount),
        "NetAmount": str(row.net_amount),
        "RealizedMTM": str(row.realized_mtm),
        "UnrealizedMTM": str(row.unrealized_mtm),
        "MTM": str(row.mtm),
        "Marketlot": str(lot_size),
        "Multiplier": "1",
    }


def balance_to_xts(balance: BrokerBalance, client_id: str = "") -> dict[str, Any]:
    return {
        "BalanceList": [
            {
                "limitHeader": f"ALL|ALL|{client_id or 'ALL'}",
                "limitObject": {
                    "RMSSubLimits": {
                        "cashAvailable": str(balance.cash_available),
                        "marginUtilized": str(balance.margin_utilized),
                        "netMarginAvailable": str(balance.net_margin),
                        "MTM": "0",
                    },
                    "AccountID": client_id,
                },
            }
        ]
    }
