"""OpenAlgo request bodies read into typed values (pure: no Django).

OpenAlgo's clients send every number as a string (`"quantity": "1"`, `"price": "0"`), and
`"0"` for a price or trigger that does not apply. Lenient about that form, strict about
meaning: a value that cannot be read, or a field the desk cannot honour (a disclosed
quantity, a per-order trailing stop), is an error naming OpenAlgo's field, and nothing is
placed. Unknown fields are ignored (they still count for idempotency: see services).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation, getcontext
from typing import Any

from orders.domain.vocabulary import OrderType
from orders.openalgo.mapping import (
    MappingError,
    order_type_of_price_type,
    product_type_of_product,
    side_of_action,
)

MAX_INTEGER = 2**31 - 1
MAX_TEXT = 100


class OpenAlgoInvalid(ValueError):
    """The request cannot be honoured as sent; `details` maps OpenAlgo field names to
    messages (the first one is the message)."""

    def __init__(self, details: dict[str, list[str]]):
        self.details = details
        field, messages = next(iter(details.items()))
        self.message = f"{field}: {messages[0]}"
        super().__init__(self.message)


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return str(value).strip()


def unstorable_text(text: str) -> str | None:
    """Why `text` is refused as a value to store or look up, or None: a lone surrogate
    (JSON's "\\ud800") has no UTF-8 form, so the database driver cannot send it (a 500);
    NUL is refused as the desk's REST API (DRF's text fields) refuses it."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain surrogate characters"
    return None


def finite_decimal(value: Any) -> Decimal | None:
    """A finite number from a JSON number or string; None when it is not one. A number
    past decimal's exponent range (1e999999999) is not one either: its first arithmetic (an
    abs, a difference) would raise Overflow."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, float):
        value = repr(value)
    text = str(value).strip().replace(",", "")
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() and number.adjusted() <= getcontext().Emax else None


class FieldReader:
    """Reads fields of one body (or one basket item), collecting every error."""

    def __init__(self, body: Mapping[str, Any], *, prefix: str = ""):
        if not isinstance(body, Mapping):
            raise OpenAlgoInvalid({prefix.rstrip(".") or "body": ["must be a JSON object"]})
        self.body = body
        self.prefix = prefix
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(self.prefix + name, []).append(message)

    def present(self, name: str) -> bool:
        return _text(self.body.get(name)) != ""

    def raise_errors(self) -> None:
        if self.errors:
            raise OpenAlgoInvalid(self.errors)

    def text(self, name: str, *, required: bool = False, max_length: int = MAX_TEXT) -> str:
        value = self.body.get(name)
        if isinstance(value, dict | list):
            self.fail(name, "must be a string")
            return ""
        text = _text(value)
        unstorable = unstorable_text(text)
        if required and not text:
            self.fail(name, "is required")
        elif len(text) > max_length:
            self.fail(name, f"must be at most {max_length} characters")
            return ""
        elif unstorable is not None:
            self.fail(name, unstorable)
            return ""
        return text

    def integer(
        self,
        name: str,
        *,
        required: bool = False,
        default: int | None = None,
        minimum: int | None = 1,
    ) -> int | None:
        """A whole number (OpenAlgo's "5" or 5); fractions are refused (only OpenAlgo's
        CRYPTO exchange takes them, and the desk has none)."""
        if not self.present(name):
            if required:
                self.fail(name, "is required")
            return default
        number = self._number(name)
        if number is None:
            return None
        if number != number.to_integral_value():
            self.fail(name, f"{_text(self.body.get(name))!r} is not a whole number")
            return None
        # Before int(): converting 1e999999 alone takes half a minute.
        if abs(number) > MAX_INTEGER:
            self.fail(name, f"must be at most {MAX_INTEGER} in size")
            return None
        value = int(number)
        if minimum is not None and value < minimum:
            self.fail(name, "must be positive" if minimum == 1 else f"must be at least {minimum}")
            return None
        return value

    def price(self, name: str) -> Decimal | None:
        """A price; absent or 0 (OpenAlgo's "does not apply") is None, a negative is refused."""
        if not self.present(name):
            return None
        number = self._number(name)
        if number is None:
            return None
        if number < 0:
            self.fail(name, "must not be negative")
            return None
        return number if number != 0 else None

    def _number(self, name: str) -> Decimal | None:
        """The field as a finite number, or None with the field refused as not one."""
        raw = self.body.get(name)
        number = finite_decimal(raw)
        if number is None:
            self.fail(name, f"{_text(raw)!r} is not a number")
        return number

    def mapped(self, name: str, mapper, *, required: bool = False):
        value = self.body.get(name)
        if required and not self.present(name):
            self.fail(name, "is required")
            return None
        try:
            return mapper(_text(value), field=self.prefix + name)
        except MappingError as exc:
            self.errors.setdefault(exc.field, []).append(exc.message)
            return None

    def flag(self, name: str, *, required: bool = False) -> bool | None:
        value = self.body.get(name)
        if isinstance(value, bool):
            return value
        text = _text(value).lower()
        if text in ("true", "1", "yes", "on", "analyze"):
            return True
        if text in ("false", "0", "no", "off", "live"):
            return False
        if text or required:
            self.fail(name, "must be true or false")
        return None


# ---- orders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFields:
    """One order as OpenAlgo sends it (placeorder, a basket item, a split, a smart order),
    in the desk's words. `stop_loss`/`target` make it a bracket."""

    symbol: str
    exchange: str
    side: str
    order_type: str
    product_type: str
    quantity: int | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_loss: Decimal | None = None
    target: Decimal | None = None

    @property
    def is_bracket(self) -> bool:
        return self.stop_loss is not None or self.target is not None


def read_order(
    reader: FieldReader, *, quantity_minimum: int = 1, brackets: bool = True
) -> OrderFields:
    """Symbol, exchange, action, pricetype, product, quantity, price, trigger_price (and
    for placeorder stoploss and target), checked against each other: LIMIT needs price, SL
    price and trigger_price, SL-M trigger_price; a trigger on MARKET or LIMIT is refused
    (which was meant?). A price sent with MARKET or SL-M is only a reference, not sent."""
    symbol = reader.text("symbol", required=True)
    exchange = reader.text("exchange", required=True).upper()
    side = reader.mapped("action", side_of_action, required=True)
    order_type = reader.mapped("pricetype", order_type_of_price_type)
    product = reader.mapped("product", product_type_of_product)
    quantity = reader.integer("quantity", required=True, minimum=quantity_minimum)
    price = reader.price("price")
    trigger = reader.price("trigger_price")
    disclosed = reader.integer("disclosed_quantity", minimum=0)
    if disclosed:
        reader.fail(
            "disclosed_quantity",
            "a disclosed quantity is not supported by the desk: send 0 or leave it out",
        )
    stop_loss = target = None
    if brackets:
        stop_loss = reader.price("stoploss")
        target = reader.price("target")
        if reader.price("trailing_sl") is not None:
            reader.fail(
                "trailing_sl",
                "a per-order trailing stop is not supported: set the trailing stop-loss on "
                "the strategy in the desk (its settings page), and send 0 or leave it out",
            )
    else:
        for name in ("stoploss", "target", "trailing_sl"):
            if reader.price(name) is not None:
                reader.fail(name, "is only taken by placeorder (a bracket)")
    if order_type == OrderType.MARKET:
        price = None
        if trigger is not None:
            reader.fail("trigger_price", "a MARKET order has no trigger price")
    elif order_type == OrderType.LIMIT:
        if price is None and "price" not in reader.errors:
            reader.fail("price", "a LIMIT order needs a price above 0")
        if trigger is not None:
            reader.fail("trigger_price", "a LIMIT order has no trigger price (use pricetype SL)")
    elif order_type == OrderType.STOPLIMIT:
        if price is None and "price" not in reader.errors:
            reader.fail("price", "an SL (stop-limit) order needs a price above 0")
        if trigger is None and "trigger_price" not in reader.errors:
            reader.fail("trigger_price", "an SL (stop-limit) order needs a trigger_price above 0")
    elif order_type == OrderType.STOPMARKET:
        price = None
        if trigger is None and "trigger_price" not in reader.errors:
            reader.fail("trigger_price", "an SL-M (stop-market) order needs a trigger_price")
    if (stop_loss is not None or target is not None) and order_type in (
        OrderType.MARKET,
        OrderType.STOPMARKET,
    ):
        reader.fail(
            "pricetype",
            "stoploss/target make a desk bracket, which enters with a limit order: send "
            "pricetype LIMIT with a price (or SL with price and trigger_price)",
        )
    if target is not None and stop_loss is None and "stoploss" not in reader.errors:
        reader.fail("stoploss", "a target needs a stoploss too (together they make a bracket)")
    return OrderFields(
        symbol=symbol,
        exchange=exchange,
        side=side or "",
        order_type=order_type or "",
        product_type=product or "",
        quantity=quantity,
        limit_price=price,
        stop_price=trigger,
        stop_loss=stop_loss,
        target=target,
    )


def read_strategy(reader: FieldReader) -> str:
    return reader.text("strategy")


def read_order_id(reader: FieldReader) -> int | None:
    """OpenAlgo's `orderid` (a string of digits): the desk's order id."""
    if not reader.present("orderid"):
        reader.fail("orderid", "is required")
        return None
    raw = _text(reader.body.get("orderid"))
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if not raw.isdecimal() or len(raw) > 18 or int(raw) < 1:
        reader.fail("orderid", f"{raw!r} is not an order id of this desk")
        return None
    return int(raw)


YEARS = (2020, 2050)


def read_year(reader: FieldReader, *, default: int) -> int:
    year = reader.integer("year", default=default, minimum=None)
    if year is not None and not YEARS[0] <= year <= YEARS[1]:
        reader.fail("year", f"must be between {YEARS[0]} and {YEARS[1]}")
    return year if year is not None else default


def read_date(reader: FieldReader, name: str, *, default: date) -> date:
    text = reader.text(name)
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        reader.fail(name, f"{text!r} is not a date in YYYY-MM-DD")
        return default
    if not YEARS[0] <= day.year <= YEARS[1]:
        reader.fail(name, f"must be between {YEARS[0]}-01-01 and {YEARS[1]}-12-31")
    return day
