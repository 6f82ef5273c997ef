"""The XTS wire format in one place: statuses, sides, order types, times, numbers and rows.

Both the XTS gateway (reading a broker's answers) and the XTS simulator (writing them) use
these functions, so the two cannot drift apart. Pure Python: no Django, no HTTP. The ground
truth is shared/xts-samples/real-answers.json (verbatim answers of a real XTS server):
tests/brokers/test_xts_real_answers.py reads every one of them through this module.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

from orders.brokers.base import (
    BrokerBalance,
    BrokerHoldingRow,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
)
from orders.domain.vocabulary import LegStatus, OrderType
from trading_site.core.market_hours import MARKET_TZ

logger = logging.getLogger(__name__)

EXCHANGE_TZ = MARKET_TZ
# The `...API` twins of the time fields (`OrderGeneratedDateTimeAPI`, ...).
TIME_FORMAT = "%d-%m-%Y %H:%M:%S"
# XTS writes 1980-01-01 00:00 for a time that has not happened yet (an expiry, a fill).
NOT_YET_ISO = "1980-01-01T00:00:00"
NOT_YET_API = "01-01-1980 00:00:00"

T = TypeVar("T")


class WireFormatError(ValueError):
    """An answer the gateway cannot read safely (e.g. a row whose instrument id is not a
    number): the whole read fails rather than a row being guessed at or dropped."""


# ---- statuses, sides, order types ---------------------------------------------------

_STATUS_FROM_XTS = {
    "pendingnew": LegStatus.OPEN,
    "new": LegStatus.OPEN,
    "open": LegStatus.OPEN,
    "pendingreplace": LegStatus.OPEN,
    "replaced": LegStatus.OPEN,
    "pendingcancel": LegStatus.OPEN,
    # A stop order whose trigger price has not been reached yet: working at the broker.
    "triggerpending": LegStatus.OPEN,
    "partiallyfilled": LegStatus.PARTIALLY_FILLED,
    "filled": LegStatus.FILLED,
    "cancelled": LegStatus.CANCELLED,
    "canceled": LegStatus.CANCELLED,
    "expired": LegStatus.CANCELLED,
    "rejected": LegStatus.REJECTED,
}
_STATUS_TO_XTS: dict[str, str] = {
    LegStatus.OPEN: "New",
    LegStatus.PARTIALLY_FILLED: "PartiallyFilled",
    LegStatus.FILLED: "Filled",
    LegStatus.CANCELLED: "Cancelled",
    LegStatus.REJECTED: "Rejected",
}
_ORDER_TYPE_FROM_XTS = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stoplimit": OrderType.STOPLIMIT,
    "sl": OrderType.STOPLIMIT,
    "stopmarket": OrderType.STOPMARKET,
    "slm": OrderType.STOPMARKET,
}

_ORDER_TYPE_TO_XTS: dict[str, str] = {
    OrderType.MARKET: "Market",
    OrderType.LIMIT: "Limit",
    OrderType.STOPLIMIT: "StopLimit",
    OrderType.STOPMARKET: "StopMarket",
}


def _letters(value: Any) -> str:
    return re.sub(r"[^a-z]", "", str(value or "").lower())


def status_from_xts(raw: Any, *, filled_quantity: int = 0) -> str:
    """Our status for an XTS OrderStatus; an unknown value is UNKNOWN (and logged)."""
    status = _STATUS_FROM_XTS.get(_letters(raw))
    if status is None:
        logger.warning("unknown XTS order status %r mapped to UNKNOWN", raw)
        return LegStatus.UNKNOWN
    if status == LegStatus.OPEN and filled_quantity > 0:
        return LegStatus.PARTIALLY_FILLED
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
# Amounts of 1,000 or more may carry thousands separators ("2,853.50", and lakh grouping
# such as "1,00,000.00"); anything else with a comma is not a number we dare read.
_GROUPED_NUMBER = re.compile(r"^[+-]?\d{1,3}(,\d{2,3})+(\.\d+)?$")


def parse_decimal(value: Any) -> Decimal | None:
    """A number that may come as a JSON number, a string (with thousands separators), or
    as "", "NaN" or null for "absent". Unreadable is None, never 0."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    if "," in text:
        if not _GROUPED_NUMBER.match(text):
            return None
        text = text.replace(",", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    # "NaN" / "Infinity" parse as Decimals but are no number: treat them as absent.
    return number if number.is_finite() else None


def parse_int(value: Any, default: int | None = None) -> int | None:
    """A whole number (a quantity, an id) or `default` when absent or unreadable; "75.5"
    is unreadable as a quantity, not 75."""
    number = parse_decimal(value)
    if number is None or number != number.to_integral_value():
        return default
    return int(number)


_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
# ISO-like exchange times: a seven-digit (.NET) fraction and an optional zone.
_ISO_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$"
)


def _parse_iso(match: re.Match) -> datetime:
    day, clock, fraction, zone = match.groups()
    text = f"{day}T{clock}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    if zone:
        text += "+00:00" if zone == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    return datetime.fromisoformat(text)


def parse_time(value: Any) -> datetime | None:
    """XTS times: ISO-like exchange-local ('2020-12-21T14:49:16.0287269', maybe '+05:30'),
    'DD-MM-YYYY HH:MM:SS' (the ...API twins), or '/Date(ms)/'. The 1980-01-01 placeholder
    means "not yet" and reads as None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    parsed: datetime | None
    match = _DOTNET_DATE.match(text)
    if match:
        parsed = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
        return None if parsed.year <= 1980 else parsed
    parsed = None
    iso = _ISO_TIME.match(text)
    if iso:
        try:
            parsed = _parse_iso(iso)
        except ValueError:
            parsed = None
    else:
        for fmt in (TIME_FORMAT, "%d-%m-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"):
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        logger.warning("unparseable XTS time %r", text)
        return None
    if parsed.year <= 1980:  # 1980-01-01T00:00:00 / 01-01-1980 00:00:00: not yet
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=EXCHANGE_TZ)
    return parsed


# ---- envelopes and tokens -------------------------------------------------------------

SESSION_EXPIRED = "session_expired"
RATE_LIMITED = "rate_limited"
REFUSED = "refused"


def error_kind(envelope: dict) -> str | None:
    """What an answer's envelope says went wrong, by its `type` and `code` (never the
    wording or the HTTP status): `e-session-*` / `e-token-*` a dead session, `e-apirl-*`
    a rate limit (brokers send it with HTTP 400 or even 200), any other error a refusal.
    None for a success."""
    code = str(envelope.get("code") or "").strip().lower()
    if code.startswith("e-apirl-"):
        return RATE_LIMITED
    if code.startswith(("e-session-", "e-token-")):
        return SESSION_EXPIRED
    if str(envelope.get("type") or "").strip().lower() == "error" or code.startswith("e-"):
        return REFUSED
    return None


# The wording of a refusal that carries no code and is about the token: XTS's own `44"Invalid
# Token"`, "Please Provide token to Authenticate" (e-token-0002), an expired JWT.
_TOKEN_WORDING = re.compile(r"\btoken\b|\bjwt\b|unauthori[sz]ed|authenticat", re.IGNORECASE)


def stream_refused_token(data: Any) -> bool:
    """Whether a stream refusal (the data of a Socket.IO `44`) refuses the session's token,
    rather than the connection for another reason (the user already connected, a server
    error, a rate limit). A refusal with a code is judged as an answer's envelope is
    (`error_kind`: only `e-session-*` / `e-token-*`); one without (a bare message, as
    `44"Invalid Token"`) by whether its message is about the token."""
    if isinstance(data, dict):
        code = str(data.get("code") or "").strip()
        if code:
            return error_kind({"type": "error", "code": code}) == SESSION_EXPIRED
        data = " ".join(str(data.get(key) or "") for key in ("message", "description"))
    return isinstance(data, str) and bool(_TOKEN_WORDING.search(data))


def has_envelope(answer: Any) -> bool:
    """Every XTS answer is {"type", "code", "description", "result"}; a bare JSON value
    (or a dict without type and result) is not an answer to trust, even with HTTP 200."""
    return isinstance(answer, dict) and "type" in answer and "result" in answer


def error_text(envelope: dict) -> str:
    """The broker's description, with the field errors of a "Bad Request" appended."""
    description = str(envelope.get("description") or envelope.get("message") or "").strip()
    result = envelope.get("result")
    details = result.get("errors") if isinstance(result, dict) else None
    if details:
        description = f"{description}: {json.dumps(details, default=str)[:500]}"
    return storable(description)


def storable(text: str) -> str:
    """A broker's text as our database can store it: a lone surrogate (an unpaired
    "\\ud800" escape in its JSON) has no UTF-8 form, so the driver could not write it, and one
    such character in a reject reason would fail every sync of the account. It becomes "?";
    any other text is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def token_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (XTS session tokens are JWTs), unverified: we only read `iat` and
    `exp` to know how long the session lives. None when the token is not a JWT."""
    parts = str(token or "").split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


# ---- rows from the wire (the gateway) -----------------------------------------------


def _text(row: dict, *keys: str) -> str:
    for key in keys:
        value = row.get(key)
        if value not in (None, ""):
            return storable(str(value).strip())
    return ""


def _first(parse: Callable[[Any], T | None], row: dict, keys: tuple[str, ...]) -> T | None:
    """The first of these fields that `parse` can read (the main field, then its `...API`
    twin)."""
    for key in keys:
        value = parse(row.get(key))
        if value is not None:
            return value
    return None


def _number(row: dict, *keys: str) -> Decimal | None:
    return _first(parse_decimal, row, keys)


def _whole(row: dict, *keys: str) -> int | None:
    return _first(parse_int, row, keys)


def _time(row: dict, *keys: str) -> datetime | None:
    return _first(parse_time, row, keys)


def client_code(row: dict) -> str:
    """The client code a row belongs to (order and trade rows: `ClientID`; position rows:
    `AccountID`); "" when it names none."""
    return _text(row, "ClientID", "AccountID")


def is_for_client(row: dict, client_id: str) -> bool:
    """Whether a row of a dealer login (which trades for several client codes) is this
    client's: its own code, or none named."""
    code = client_code(row)
    return not code or code == client_id


def _instrument_id(row: dict) -> int:
    value = row.get("ExchangeInstrumentID", row.get("ExchangeInstrumentId"))
    number = parse_int(value)
    if number is None:
        raise WireFormatError(f"unreadable ExchangeInstrumentID {value!r} in an XTS row")
    return number


def _order_of(row: dict) -> dict[str, Any]:
    """What an order-book row and a trade row tell alike of their order: its ids, instrument,
    side and product."""
    return {
        "broker_order_id": _text(row, "AppOrderID"),
        "unique_identifier": _text(row, "OrderUniqueIdentifier"),
        "exchange_segment": _text(row, "ExchangeSegment"),
        "exchange_instrument_id": _instrument_id(row),
        "trading_symbol": _text(row, "TradingSymbol"),
        "side": side_from_xts(_text(row, "OrderSide", "OrderSideAPI")),
        "product_type": _text(row, "ProductType"),
    }


def order_row_from_xts(row: dict) -> BrokerOrderRow:
    quantity = _whole(row, "OrderQuantity")
    filled = _whole(row, "CumulativeQuantity")
    leaves = _whole(row, "LeavesQuantity")
    if leaves is None and quantity is not None and filled is not None:
        leaves = max(quantity - filled, 0)
    average = _number(row, "OrderAverageTradedPrice", "OrderAverageTradedPriceAPI")
    if filled == 0 or (average is not None and average <= 0):
        average = None  # "" (or 0) before the first fill
    return BrokerOrderRow(
        **_order_of(row),
        order_type=order_type_from_xts(row.get("OrderType")),
        quantity=quantity,
        filled_quantity=filled,
        leaves_quantity=leaves,
        status=status_from_xts(row.get("OrderStatus"), filled_quantity=filled or 0),
        raw_status=_text(row, "OrderStatus"),
        limit_price=_number(row, "OrderPrice"),
        stop_price=_number(row, "OrderStopPrice"),
        average_price=average,
        reject_reason=_text(row, "CancelRejectReason"),
        exchange_order_id=_text(row, "ExchangeOrderID"),
        client_id=_text(row, "ClientID"),
        time_in_force=_text(row, "TimeInForce"),
        generated_at=_time(row, "OrderGeneratedDateTime", "OrderGeneratedDateTimeAPI"),
        transact_time=_time(row, "ExchangeTransactTime", "ExchangeTransactTimeAPI"),
        updated_at=_time(row, "LastUpdateDateTime", "LastUpdateDateTimeAPI"),
    )


def trade_row_from_xts(row: dict) -> BrokerTradeRow:
    return BrokerTradeRow(
        execution_id=_text(row, "ExecutionID"),
        **_order_of(row),
        quantity=_whole(row, "LastTradedQuantity"),
        price=_number(row, "LastTradedPrice"),
        traded_at=_time(
            row,
            "LastExecutionTransactTime",
            "LastExecutionTransactTimeAPI",
            "ExchangeTransactTime",
            "ExchangeTransactTimeAPI",
        )
        or datetime.now(tz=UTC),
    )


def _average(value: Any) -> Decimal | None:
    # An average of 0.00 means "no buys" (or sells): there is no price to show.
    number = parse_decimal(value)
    return number if number else None


def position_row_from_xts(row: dict) -> BrokerPositionRow:
    return BrokerPositionRow(
        exchange_segment=_text(row, "ExchangeSegment"),
        exchange_instrument_id=_instrument_id(row),
        trading_symbol=_text(row, "TradingSymbol"),
        product_type=_text(row, "ProductType"),
        net_qty=parse_int(row.get("Quantity")),
        buy_qty=parse_int(row.get("OpenBuyQuantity")),
        sell_qty=parse_int(row.get("OpenSellQuantity")),
        buy_avg_price=_average(row.get("BuyAveragePrice")),
        sell_avg_price=_average(row.get("SellAveragePrice")),
        buy_amount=parse_decimal(row.get("BuyAmount")),
        sell_amount=parse_decimal(row.get("SellAmount")),
        net_amount=parse_decimal(row.get("NetAmount")),
        realized_mtm=parse_decimal(row.get("RealizedMTM")),
        unrealized_mtm=parse_decimal(row.get("UnrealizedMTM")),
        mtm=parse_decimal(row.get("MTM")),
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
    """`result.BalanceList[0].limitObject.RMSSubLimits` (real XTS); brokers that name the
    fields differently are read leniently (the first known name found). A figure the
    broker did not send readably is None."""
    entries = result.get("BalanceList") if isinstance(result, dict) else result
    first = entries[0] if isinstance(entries, list) and entries else (entries or {})
    limits = first.get("limitObject") if isinstance(first, dict) else None
    sub_limits = limits.get("RMSSubLimits") if isinstance(limits, dict) else None
    # The RMS sub-limits first: `marginUtilized` is also the name of a sibling breakdown.
    leaves = _flatten(first, _flatten(sub_limits or {}, {}))

    def pick(keys: tuple[str, ...]) -> Decimal | None:
        for key in keys:
            number = parse_decimal(leaves.get(key))
            if number is not None:
                return number
        return None

    return BrokerBalance(
        cash_available=pick(_CASH_KEYS),
        margin_utilized=pick(_UTILIZED_KEYS),
        net_margin=pick(_NET_KEYS),
    )


# ---- rows to the wire (the simulator) -----------------------------------------------
#
# Shaped like real-answers.json: every key the real rows carry, strings where they have
# strings (amounts with thousands separators, switchable), numbers where they have numbers,
# ISO-like exchange-local main times and DD-MM-YYYY twins. Beyond the 2020 rows' keys the
# simulator also sends the 2024 rows' `...API` twins, `MessageSynchronizeUniqueKey` and
# `TradingSymbol` (ORDER_EXTRA_KEYS and TRADE_EXTRA_KEYS below): a documented superset.

ORDER_EXTRA_KEYS = frozenset(
    {
        "TradingSymbol",
        "OrderAverageTradedPriceAPI",
        "OrderSideAPI",
        "OrderGeneratedDateTimeAPI",
        "ExchangeTransactTimeAPI",
        "LastUpdateDateTimeAPI",
        "OrderExpiryDateAPI",
        "MessageSynchronizeUniqueKey",
    }
)
TRADE_EXTRA_KEYS = ORDER_EXTRA_KEYS | {"LastExecutionTransactTimeAPI", "OrderExpiryDate"}
_CENTS = Decimal("0.01")


def format_amount(value: Decimal | None, *, separators: bool = True) -> str:
    """'2,853.50' (or '2853.50' without separators); '' for an absent amount."""
    if value is None:
        return ""
    amount = Decimal(value).quantize(_CENTS, rounding=ROUND_HALF_UP)
    return f"{amount:,.2f}" if separators else f"{amount:.2f}"


def plain_number(value: Decimal | int | None) -> str:
    """A number as the balance strings carry it: '1000000000', '20163.6'."""
    if value is None:
        return "NaN"
    number = Decimal(value).normalize()
    return f"{number:f}"


def json_number(value: Decimal | None) -> int | float:
    """A JSON number: 0 and 1540 as integers, 1540.5 as a float (as XTS sends them)."""
    if value is None:
        return 0
    number = Decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


def _local(value: datetime) -> datetime:
    return value.astimezone(EXCHANGE_TZ) if value.tzinfo else value


def format_time(value: datetime | None) -> str:
    """The `...API` twin: 'DD-MM-YYYY HH:MM:SS' exchange-local; 'not yet' is 1980-01-01."""
    if value is None:
        return NOT_YET_API
    return _local(value).strftime(TIME_FORMAT)


def format_order_time(value: datetime | None) -> str:
    """'2020-12-21T14:49:16.0287269': exchange-local, no zone, a seven-digit fraction."""
    if value is None:
        return NOT_YET_ISO
    local = _local(value)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond * 10:07d}"


def format_transact_time(value: datetime | None) -> str:
    """'2020-12-21T14:49:16+05:30' (ExchangeTransactTime)."""
    if value is None:
        return NOT_YET_ISO
    return f"{_local(value):%Y-%m-%dT%H:%M:%S}+05:30"


def format_execution_time(value: datetime | None) -> str:
    """'2020-12-21T14:49:16' (LastExecutionTransactTime)."""
    if value is None:
        return NOT_YET_ISO
    return f"{_local(value):%Y-%m-%dT%H:%M:%S}"


def sequence_number(value: datetime) -> int:
    """XTS SequenceNumbers grow with time (15-16 digits): microseconds since the epoch."""
    return int(value.timestamp() * 1_000_000)


def order_row_to_xts(
    row: BrokerOrderRow,
    *,
    xts_status: str,
    login_id: str,
    separators: bool = True,
    exchange_order_id: str | None = None,
) -> dict[str, Any]:
    """One order-book (or order-history) row; `row.updated_at` is the row's moment."""
    filled = row.filled_quantity or 0
    average = row.average_price if filled and row.average_price else None
    updated = row.updated_at or row.generated_at
    transact = row.transact_time or updated
    return {
        "LoginID": login_id,
        "ClientID": row.client_id,
        "AppOrderID": int(row.broker_order_id),
        "OrderReferenceID": "",
        "GeneratedBy": "TWSAPI",
        "ExchangeOrderID": row.exchange_order_id
        if exchange_order_id is None
        else exchange_order_id,
        "OrderCategoryType": "NORMAL",
        "ExchangeSegment": row.exchange_segment,
        "ExchangeInstrumentID": row.exchange_instrument_id,
        "OrderSide": row.side.capitalize(),
        "OrderType": order_type_to_xts(row.order_type),
        "ProductType": row.product_type,
        "TimeInForce": row.time_in_force or "DAY",
        "OrderPrice": json_number(row.limit_price),
        "OrderQuantity": row.quantity or 0,
        "OrderStopPrice": json_number(row.stop_price),
        "OrderStatus": xts_status,
        # Real brokers send a string here (with separators), and "" before the first fill.
        "OrderAverageTradedPrice": format_amount(average, separators=separators),
        "LeavesQuantity": row.leaves_quantity or 0,
        "CumulativeQuantity": filled,
        "OrderDisclosedQuantity": 0,
        "OrderGeneratedDateTime": format_order_time(row.generated_at),
        "ExchangeTransactTime": format_transact_time(transact),
        "LastUpdateDateTime": format_order_time(updated),
        "OrderExpiryDate": NOT_YET_ISO,
        "CancelRejectReason": row.reject_reason,
        "OrderUniqueIdentifier": row.unique_identifier,
        "OrderLegStatus": "SingleOrderLeg",
        "IsSpread": False,
        "OrderAverageTradedPriceAPI": json_number(average),
        "OrderSideAPI": row.side.upper(),
        "OrderGeneratedDateTimeAPI": format_time(row.generated_at),
        "ExchangeTransactTimeAPI": format_time(transact),
        "LastUpdateDateTimeAPI": format_time(updated),
        "OrderExpiryDateAPI": NOT_YET_API,
        "MessageSynchronizeUniqueKey": row.client_id,
        "MessageCode": 9004,
        "MessageVersion": 4,
        "TokenID": 0,
        "ApplicationType": 0,
        "SequenceNumber": sequence_number(updated) if updated else 0,
        "TradingSymbol": row.trading_symbol,
    }


def trade_row_to_xts(
    order_row: dict[str, Any], trade: BrokerTradeRow, *, execution_report_index: int
) -> dict[str, Any]:
    """A trade-book row: the whole order row as of this fill plus the execution fields."""
    row = dict(order_row)
    sequence = row.pop("SequenceNumber")
    for key in ("MessageCode", "MessageVersion", "TokenID", "ApplicationType"):
        row.pop(key)
    trading_symbol = row.pop("TradingSymbol")
    row.update(
        {
            "LastTradedPrice": json_number(trade.price),
            "LastTradedQuantity": trade.quantity or 0,
            "LastExecutionTransactTime": format_execution_time(trade.traded_at),
            "ExecutionID": trade.execution_id,
            "ExecutionReportIndex": execution_report_index,
            "LastExecutionTransactTimeAPI": format_time(trade.traded_at),
            "MessageCode": 9005,
            "MessageVersion": 4,
            "TokenID": 0,
            "ApplicationType": 0,
            "SequenceNumber": sequence,
            "TradingSymbol": trading_symbol,
        }
    )
    return row


def holding_rows_from_xts(result: Any) -> list[BrokerHoldingRow]:
    """`GET /interactive/portfolio/holdings`: `RMSHoldings.Holdings` is an object keyed by
    ISIN (not a list). Each entry names the stock on both exchanges,
    `ExchangeNSEInstrumentId` and `ExchangeBSEInstrumentId` (0 where not listed): NSE's is
    used when there is one. `HoldingQuantity` is the quantity, `BuyAvgPrice` the average,
    `CollateralQuantity` (or `PledgeQuantity`) what is pledged. A holding listed on neither
    exchange is kept with segment "" and id 0 (shown by its ISIN)."""
    wrapper = result.get("RMSHoldings") if isinstance(result, dict) else None
    holdings = wrapper.get("Holdings") if isinstance(wrapper, dict) else None
    if holdings in (None, "", []):
        return []
    if not isinstance(holdings, dict):
        raise WireFormatError(f"XTS holdings are a {type(holdings).__name__}, not an object")
    rows = []
    for isin, row in holdings.items():
        if not isinstance(row, dict):
            continue
        nse = _whole(row, "ExchangeNSEInstrumentId") or 0
        bse = _whole(row, "ExchangeBSEInstrumentId") or 0
        segment, instrument_id = (
            ("NSECM", nse) if nse > 0 else ("BSECM", bse) if bse > 0 else ("", 0)
        )
        rows.append(
            BrokerHoldingRow(
                exchange_segment=segment,
                exchange_instrument_id=instrument_id,
                isin=_text(row, "ISIN") or str(isin),
                quantity=_whole(row, "HoldingQuantity"),
                average_price=_number(row, "BuyAvgPrice"),
                pledged_quantity=_whole(row, "CollateralQuantity", "PledgeQuantity"),
            )
        )
    return rows


def holding_row_to_xts(row: BrokerHoldingRow, *, isin: str, at: datetime) -> dict[str, Any]:
    """One entry of `RMSHoldings.Holdings` as XTS writes it (the simulator's answer)."""
    stamp = format_time(at)
    return {
        "ISIN": isin,
        "HoldingQuantity": row.quantity or 0,
        "UsedQuantity": 0,
        "UnusedQuantity": row.quantity or 0,
        "IsNeedToDelete": False,
        "IsBuyAvgPriceProvided": row.average_price is not None,
        "BuyAvgPrice": json_number(row.average_price),
        "ExchangeNSEInstrumentId": row.exchange_instrument_id
        if row.exchange_segment == "NSECM"
        else 0,
        "ExchangeBSEInstrumentId": row.exchange_instrument_id
        if row.exchange_segment == "BSECM"
        else 0,
        "IsCollateralHolding": False,
        "CollateralQuantity": row.pledged_quantity or 0,
        "CollateralValue": 0,
        "CreatedOn": stamp,
        "LastUpdatedOn": stamp,
    }


def position_row_to_xts(
    row: BrokerPositionRow,
    *,
    account_id: str,
    lot_size: int = 1,
    multiplier: int = 1,
    separators: bool = True,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A position row as XTS sends it: quantities in units, averages and BEP prices, the
    amounts and MTM in rupees (the row's own: already x `multiplier`, the contract's)."""

    def amount(value: Decimal | None) -> str:
        return format_amount(value or Decimal("0"), separators=separators)

    net = row.net_qty or 0
    # Break-even price of what is still open (0.00 when flat), as XTS reports it.
    bep = abs((row.net_amount or Decimal("0")) / (net * multiplier)) if net else Decimal("0")
    return {
        "AccountID": account_id,
        "TradingSymbol": row.trading_symbol,
        "ExchangeSegment": row.exchange_segment,
        "ExchangeInstrumentId": str(row.exchange_instrument_id),
        "ProductType": row.product_type,
        "Marketlot": str(lot_size),
        "Multiplier": str(multiplier),
        "BuyAveragePrice": amount(row.buy_avg_price),
        "SellAveragePrice": amount(row.sell_avg_price),
        "OpenBuyQuantity": str(row.buy_qty or 0),
        "OpenSellQuantity": str(row.sell_qty or 0),
        "Quantity": str(net),
        "BuyAmount": amount(row.buy_amount),
        "SellAmount": amount(row.sell_amount),
        "NetAmount": amount(row.net_amount),
        "UnrealizedMTM": amount(row.unrealized_mtm),
        "RealizedMTM": amount(row.realized_mtm),
        "MTM": amount(row.mtm),
        "BEP": amount(bep),
        # Quantity x price, as named (equal to the amounts at a multiplier of 1).
        "SumOfTradedQuantityAndPriceBuy": amount((row.buy_amount or Decimal("0")) / multiplier),
        "SumOfTradedQuantityAndPriceSell": amount((row.sell_amount or Decimal("0")) / multiplier),
        "MessageCode": 9002,
        "MessageVersion": 1,
        "TokenID": 0,
        "ApplicationType": 0,
        "SequenceNumber": sequence_number(at or datetime.now(tz=UTC)),
    }


def balance_to_xts(
    balance: BrokerBalance,
    *,
    account_id: str,
    realized_mtm: Decimal = Decimal("0"),
    unrealized_mtm: Decimal = Decimal("0"),
) -> dict[str, Any]:
    """`result` of the balance call, shaped like the real answer (plain number strings,
    `collateral` a JSON number, "NaN" where real brokers send it)."""
    cash = plain_number(balance.cash_available)
    margin = plain_number(balance.margin_utilized)
    zero = "0"
    return {
        "BalanceList": [
            {
                "limitHeader": "ALL|ALL|ALL",
                "limitObject": {
                    "RMSSubLimits": {
                        "cashAvailable": cash,
                        "collateral": 0,
                        "marginUtilized": margin,
                        "netMarginAvailable": plain_number(balance.net_margin),
                        "MTM": plain_number(realized_mtm + unrealized_mtm),
                        "UnrealizedMTM": plain_number(unrealized_mtm),
                        "RealizedMTM": plain_number(realized_mtm),
                    },
                    "marginAvailable": {
                        "CashMarginAvailable": cash,
                        "AdhocMargin": zero,
                        "NotinalCash": zero,
                        "PayInAmount": zero,
                        "PayOutAmount": zero,
                        "CNCSellBenifit": zero,
                        "DirectCollateral": zero,
                        "HoldingCollateral": zero,
                        "ClientBranchAdhoc": zero,
                        "SellOptionsPremium": zero,
                        "TotalBranchAdhoc": zero,
                        "AdhocFOMargin": "NaN",
                        "AdhocCurrencyMargin": "NaN",
                        "AdhocCommodityMargin": "NaN",
                    },
                    "marginUtilized": {
                        "GrossExposureMarginPresent": zero,
                        "BuyExposureMarginPresent": zero,
                        "SellExposureMarginPresent": zero,
                        "VarELMarginPresent": zero,
                        "ScripBasketMarginPresent": zero,
                        "GrossExposureLimitPresent": zero,
                        "BuyExposureLimitPresent": zero,
                        "SellExposureLimitPresent": zero,
                        "CNCLimitUsed": zero,
                        "CNCAmountUsed": zero,
                        "MarginUsed": margin,
                        "LimitUsed": "NaN",
                        "TotalSpanMargin": zero,
                        "ExposureMarginPresent": margin,
                    },
                    "limitsAssigned": {
                        "CNCLimit": zero,
                        "TurnoverLimitPresent": zero,
                        "MTMLossLimitPresent": zero,
                        "BuyExposureLimit": zero,
                        "SellExposureLimit": zero,
                        "GrossExposureLimit": zero,
                        "GrossExposureDerivativesLimit": zero,
                        "BuyExposureFuturesLimit": zero,
                        "BuyExposureOptionsLimit": zero,
                        "SellExposureOptionsLimit": zero,
                        "SellExposureFuturesLimit": zero,
                    },
                    "AccountID": account_id,
                },
            }
        ]
    }
