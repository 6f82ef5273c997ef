"""What an alert says, read from the JSON that TradingView and similar tools send (pure: no
Django, no database).

Lenient about form, strict about meaning:
- keys in any case, with `-` or spaces for `_` ("Stop-Loss" is `stop_loss`), and a few
  common aliases (`ticker` for `symbol`, `qty` for `quantity`, `sl` for `stop_loss`...);
  unknown keys are ignored (alert templates carry notes, times, indicator values);
- numbers as JSON numbers or strings ("2450.5", " 10 ", "1,250", "1,25,000"; a comma
  that groups no thousands, a decimal comma's "1,5", is refused, not read as 15);
- but an alert that could mean two things is refused: a key given twice under two names
  with different values, both `quantity` and `lots`, a fractional quantity, a target
  without a stop-loss, a limit order without a price, an unknown action or order type.

`AlertInvalid.details` names the alert's own fields, so the sender sees which one to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from orders.openalgo.fields import finite_decimal, unstorable_text
from orders.openalgo.mapping import MappingError, webhook_target

MAX_ALERT_ID_LENGTH = 64
MAX_SYMBOL_LENGTH = 100
MAX_INTEGER = 2**31 - 1
MAX_TARGETS = 5

# The alert's words for the desk's (exchange names as TradingView and OpenAlgo write them,
# and the desk's XTS segments themselves).
EXCHANGES = {
    "NSE": "NSECM",
    "BSE": "BSECM",
    "NFO": "NSEFO",
    "BFO": "BSEFO",
    "CDS": "NSECD",
    "MCX": "MCXFO",
    "NSECM": "NSECM",
    "BSECM": "BSECM",
    "NSEFO": "NSEFO",
    "BSEFO": "BSEFO",
    "NSECD": "NSECD",
    "MCXFO": "MCXFO",
}
ORDER_TYPES = {
    "MARKET": "MARKET",
    "MKT": "MARKET",
    "LIMIT": "LIMIT",
    "LMT": "LIMIT",
    "SL": "STOPLIMIT",
    "STOPLIMIT": "STOPLIMIT",
    "STOP_LIMIT": "STOPLIMIT",
    "SL_M": "STOPMARKET",
    "SLM": "STOPMARKET",
    "STOPMARKET": "STOPMARKET",
    "STOP_MARKET": "STOPMARKET",
}
PRODUCTS = {"MIS": "MIS", "INTRADAY": "MIS", "NRML": "NRML", "CNC": "CNC", "DELIVERY": "CNC"}
ACTIONS = {"BUY": "BUY", "SELL": "SELL"}

# Other spellings of a field -> the field.
ALIASES = {
    "ticker": "symbol",
    "tradingsymbol": "symbol",
    "trading_symbol": "symbol",
    "side": "action",
    "transaction_type": "action",
    "qty": "quantity",
    "no_of_lots": "lots",
    "limit_price": "price",
    "type": "order_type",
    "ordertype": "order_type",
    "pricetype": "order_type",
    "price_type": "order_type",
    "triggerprice": "trigger_price",
    "stop_price": "trigger_price",
    "sl": "stop_loss",
    "stoploss": "stop_loss",
    "sl_price": "stop_loss",
    "tp": "target",
    "take_profit": "target",
    "targets": "target",
    "product_type": "product",
    "exchange_segment": "exchange",
    "alert_id": "id",
    "client_order_id": "id",
}


class AlertInvalid(Exception):
    """The alert cannot be placed as sent; `details` maps each bad field to its messages."""

    def __init__(self, details: dict[str, list[str]]):
        self.details = details
        first_field, messages = next(iter(details.items()))
        super().__init__(f"{first_field}: {messages[0]}")


@dataclass(frozen=True)
class AlertOrder:
    """An alert's order in the desk's words."""

    symbol: str
    exchange_segment: str  # "" = the webhook's default, or wherever the symbol is unique
    side: str
    quantity: int | None  # units, or
    lots: int | None  # lots (exactly one of the two)
    order_type: str
    price: Decimal | None
    trigger_price: Decimal | None
    stop_loss: Decimal | None
    targets: tuple[Decimal, ...]
    product: str  # "" = the webhook's default
    alert_id: str
    # OpenAlgo's strategy webhook: the signed position to reach (quantity and lots are None).
    target_position: int | None = None

    @property
    def is_bracket(self) -> bool:
        return self.stop_loss is not None


def _key(raw: Any) -> str:
    return "_".join(str(raw).strip().lower().replace("-", " ").split())


def normalize_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """The alert's keys folded to field names; a field given twice with different values
    is refused (which one did the sender mean?)."""
    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    conflicts: dict[str, list[str]] = {}
    for raw_key, value in body.items():
        key = _key(raw_key)
        field = ALIASES.get(key, key)
        if field in fields and _same(fields[field], value) is False:
            conflicts[field] = [
                f"given twice ({sources[field]!r} and {raw_key!r}) with different values"
            ]
            continue
        fields[field] = value
        sources[field] = str(raw_key)
    if conflicts:
        raise AlertInvalid(conflicts)
    return fields


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a == b
    return _text(a) == _text(b)


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip()


def parse_decimal(value: Any) -> Decimal | None:
    """A positive finite number from a JSON number or a string; None when it is not one."""
    number = finite_decimal(value)
    return number if number is not None and number > 0 else None


def _is_zero(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return Decimal(str(value).strip().replace(",", "")) == 0
    except InvalidOperation:
        return False


def parse_positive_int(value: Any) -> int | None:
    number = parse_decimal(value)
    if number is None or number != number.to_integral_value() or number > MAX_INTEGER:
        return None
    return int(number)


def _choice(fields: dict, name: str, table: dict[str, str], errors: dict) -> str:
    value = fields.get(name)
    if value is None or _text(value) == "":
        return ""
    key = _key(value).upper()
    if key not in table:
        allowed = ", ".join(sorted({k for k in table if "_" not in k}))
        errors.setdefault(name, []).append(f"{_text(value)!r} is not one of {allowed}")
        return ""
    return table[key]


def _price(fields: dict, name: str, errors: dict) -> Decimal | None:
    value = fields.get(name)
    if value is None or _text(value) == "":
        return None
    number = parse_decimal(value)
    if number is None:
        errors.setdefault(name, []).append(f"{_text(value)!r} is not a positive number")
    return number


def _targets(fields: dict, errors: dict) -> tuple[Decimal, ...]:
    value = fields.get("target")
    if value is None or value == "" or value == []:
        return ()
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_TARGETS:
        errors.setdefault("target", []).append(f"at most {MAX_TARGETS} targets")
        return ()
    targets = []
    for item in items:
        number = parse_decimal(item)
        if number is None:
            errors.setdefault("target", []).append(f"{_text(item)!r} is not a positive number")
        else:
            targets.append(number)
    return tuple(targets)


def parse_alert(body: Mapping[str, Any]) -> AlertOrder:
    """The order an alert asks for, or AlertInvalid naming every field to fix."""
    fields = normalize_keys(body)
    errors: dict[str, list[str]] = {}

    symbol = _text(fields.get("symbol"))
    if not symbol:
        errors["symbol"] = ["is required"]
    elif len(symbol) > MAX_SYMBOL_LENGTH:
        errors["symbol"] = [f"must be at most {MAX_SYMBOL_LENGTH} characters"]
    elif (unstorable := unstorable_text(symbol)) is not None:
        errors["symbol"] = [unstorable]
    exchange = _choice(fields, "exchange", EXCHANGES, errors)
    if fields.get("action") is None or _text(fields.get("action")) == "":
        errors["action"] = ["is required: BUY or SELL"]
        side = ""
    else:
        side = _choice(fields, "action", ACTIONS, errors)

    quantity = lots = None
    has_quantity = _text(fields.get("quantity")) != ""
    has_lots = _text(fields.get("lots")) != ""
    if has_quantity and has_lots:
        errors["quantity"] = ["give quantity (units) or lots, not both"]
    elif has_quantity:
        quantity = parse_positive_int(fields["quantity"])
        if quantity is None:
            errors["quantity"] = [f"{_text(fields['quantity'])!r} is not a positive whole number"]
    elif has_lots:
        lots = parse_positive_int(fields["lots"])
        if lots is None:
            errors["lots"] = [f"{_text(fields['lots'])!r} is not a positive whole number"]
    else:
        errors["quantity"] = ["is required (units), or give lots"]

    price = _price(fields, "price", errors)
    trigger = _price(fields, "trigger_price", errors)
    stop_loss = _price(fields, "stop_loss", errors)
    targets = _targets(fields, errors)
    product = _choice(fields, "product", PRODUCTS, errors)
    order_type = _choice(fields, "order_type", ORDER_TYPES, errors)
    if not order_type and "order_type" not in errors:
        # No type named: a price means a limit order at it, no price a market order.
        order_type = "LIMIT" if price is not None else "MARKET"

    alert_id = _text(fields.get("id"))
    if len(alert_id) > MAX_ALERT_ID_LENGTH:
        errors["id"] = [f"must be at most {MAX_ALERT_ID_LENGTH} characters"]
    elif (unstorable := unstorable_text(alert_id)) is not None:
        errors["id"] = [unstorable]

    if order_type == "MARKET":
        price = None  # a reference price sent with a market order is not a limit
        if trigger is not None:
            errors.setdefault("trigger_price", []).append("a MARKET order has no trigger price")
    elif order_type == "LIMIT":
        if price is None and "price" not in errors:
            errors["price"] = ["a LIMIT order needs a price"]
        if trigger is not None:
            errors.setdefault("trigger_price", []).append(
                "a LIMIT order has no trigger price (use order_type SL)"
            )
    elif order_type == "STOPLIMIT":
        if price is None and "price" not in errors:
            errors["price"] = ["an SL (stop-limit) order needs a price"]
        if trigger is None and "trigger_price" not in errors:
            errors["trigger_price"] = ["an SL (stop-limit) order needs a trigger_price"]
    elif order_type == "STOPMARKET":
        if trigger is None and "trigger_price" not in errors:
            errors["trigger_price"] = ["an SL-M (stop-market) order needs a trigger_price"]
        price = None

    if targets and stop_loss is None and "stop_loss" not in errors:
        errors.setdefault("target", []).append(
            "a target needs a stop_loss too (together they make a bracket order)"
        )
    if stop_loss is not None and order_type in ("MARKET", "STOPMARKET"):
        errors.setdefault("order_type", []).append(
            "a bracket (stop_loss given) enters with a limit order: give a price "
            "(order_type LIMIT, or SL with a trigger_price)"
        )

    if errors:
        raise AlertInvalid(errors)
    return AlertOrder(
        symbol=symbol,
        exchange_segment=exchange,
        side=side,
        quantity=quantity,
        lots=lots,
        order_type=order_type,
        price=price,
        trigger_price=trigger,
        stop_loss=stop_loss,
        targets=targets,
        product=product,
        alert_id=alert_id,
    )


def parse_openalgo_strategy_alert(body: Mapping[str, Any]) -> AlertOrder:
    """OpenAlgo's strategy webhook (`symbol`, `action`, `position_size`; optionally
    `exchange`, `product`, `pricetype`, `price`, `id`): `position_size` is the position to
    reach, as OpenAlgo's BOTH mode reads it (orders.openalgo.mapping.webhook_target): BUY 5
    is long 5, SELL 0 (or BUY 0) is flat, SELL -5 (or SELL 5, the openalgo client's own
    example) is short 5. The order placed is the difference to the live position.

    Without `position_size` the alert is refused: OpenAlgo's long-only and short-only modes
    take the quantity from the strategy's settings in OpenAlgo, which the desk does not
    have. A `quantity` beside it, a stop-loss or a target could mean something else than
    the target: refused too.
    """
    fields = normalize_keys(body)
    errors: dict[str, list[str]] = {}
    if _text(fields.get("position_size")) == "":
        raise AlertInvalid(
            {
                "position_size": [
                    "is required: the position to reach (OpenAlgo's long-only mode takes its "
                    "quantity from settings the desk does not have)"
                ]
            }
        )
    size = _signed_int(fields.pop("position_size"))
    if size is None:
        errors["position_size"] = ["is not a whole number (the signed position to reach)"]
    for name in ("quantity", "lots"):
        if _text(fields.pop(name, None)) != "":
            errors[name] = ["position_size is the position to reach: leave quantity out"]
    for name in ("stop_loss", "target"):
        if fields.get(name) not in (None, "", []) and not _is_zero(fields.get(name)):
            errors[name] = ["is not taken by OpenAlgo's strategy webhook (use /hooks/alerts/)"]
        fields.pop(name, None)
    # Validated by the plain alert's rules, with a stand-in quantity.
    try:
        plain = parse_alert({**fields, "quantity": 1})
    except AlertInvalid as exc:
        errors = {**exc.details, **errors}
        plain = None
    target = None
    if plain is not None and size is not None:
        try:
            target = webhook_target(action=plain.side, position_size=size)
        except MappingError as exc:
            errors[exc.field] = [exc.message]
    if errors:
        raise AlertInvalid(errors)
    assert plain is not None  # its errors were raised above
    # The plain alert's order, its stand-in quantity (and any exits) replaced by the target.
    return replace(
        plain, quantity=None, lots=None, stop_loss=None, targets=(), target_position=target
    )


def _signed_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    number = finite_decimal(value)
    if number is None or number != number.to_integral_value() or abs(number) > MAX_INTEGER:
        return None
    return int(number)
