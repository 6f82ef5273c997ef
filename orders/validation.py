"""Validation of order requests before anything is written or sent (SPEC 5).

The request dataclasses carry the API's own field names, so every failure names the field
the client sent. `validate_*` functions raise `ValidationFailed` (400) with every broken rule in
`details`, `NotFound` (404) for an account that is not the caller's or not active, and
`MarketClosed` for a live broker outside the trading window. They only read the database.

Every rule is checked in one round: a price off the tick is still compared with the band and
with the bracket's other prices, and `*_order_errors` run on a request whose other fields
failed to parse (None), so a form or API answer lists all that is wrong at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from accounts.models import BrokerAccount, Strategy
from accounts.selectors import active_account_with_session
from orders.market.selectors import priced_instruments
from orders.models import Instrument, OrderType, ProductType, Side
from trading_site.core.errors import MarketClosed, NotFound, ValidationFailed
from trading_site.core.market_hours import is_trading_window_open, next_opening

FieldErrors = dict[str, list[str]]

# What the database can hold (orders.models: prices are 15 digits with 4 places, quantities
# positive 32-bit integers, ids 64-bit). Larger values are a 400 here, for every way an
# order enters (API, web form, batch CSV, scheduled template), not a crash further down:
# `1e40 % tick` raises decimal.InvalidOperation, and an id or quantity past the column's
# range makes the database raise.
PRICE_PLACES = 4
MAX_PRICE = Decimal("99999999999.9999")
MAX_QUANTITY = 2**31 - 1
MAX_ID = 2**63 - 1


def as_id(value) -> int | None:
    """A database id from outside input (int, integral float or digits), or None when it
    is not one or lies outside 1..MAX_ID."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, str):
        value = value.strip()
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if not value.isdecimal() or len(value) > 19:
            return None
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= MAX_ID:
        return None
    return value


@dataclass(kw_only=True)
class OrderRequest:
    """What every kind of order request carries. Each kind names its own instrument fields
    (the names its errors are reported under): `symbol_field` and `id_field`."""

    symbol_field: ClassVar[str]
    id_field: ClassVar[str]

    account_id: int
    product_type: str = "MIS"
    exchange_segment: str = ""
    strategy_name: str = ""
    client_order_id: str = ""
    external_id: str = ""


@dataclass
class SingleOrderRequest(OrderRequest):
    """POST /api/orders (and scheduled single orders)."""

    symbol_field: ClassVar[str] = "symbol"
    id_field: ClassVar[str] = "exchange_instrument_id"

    order_side: str
    order_type: str
    order_quantity: int
    symbol: str = ""
    exchange_instrument_id: int | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass
class TargetSpec:
    price: Decimal
    lots: int | None = None
    percent: Decimal | None = None


@dataclass
class BracketOrderRequest(OrderRequest):
    """POST /api/algo-orders and each item of POST /api/algo-place-batch-orders."""

    symbol_field: ClassVar[str] = "trading_symbol"
    id_field: ClassVar[str] = "exchange_token"

    no_of_lots: int
    entry_price: Decimal | None
    sl_price: Decimal | None
    order_side: str = "BUY"
    trading_symbol: str = ""
    exchange_token: int | None = None
    entry_stop_price: Decimal | None = None
    sl_stop_price: Decimal | None = None
    targets: list[TargetSpec] = field(default_factory=list)
    regenerated_from_id: int | None = None
    # The name errors about targets are reported under ("tp_price" for /api/algo-orders).
    targets_field: str = "targets"


@dataclass
class ValidatedOrder:
    """What every validated order has (the order plan takes it the same way for each kind)."""

    account: BrokerAccount
    instrument: Instrument
    strategy: Strategy | None
    side: str
    product_type: str
    quantity: int


@dataclass
class ValidatedSingle(ValidatedOrder):
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None


@dataclass
class ValidatedBracket(ValidatedOrder):
    entry_type: str
    entry_price: Decimal | None
    entry_stop_price: Decimal | None
    sl_price: Decimal
    sl_stop_price: Decimal | None
    targets: list[dict]  # [{"price": "123.45", "quantity": 50}] in the order given


# ---- lookups -----------------------------------------------------------------------------


def resolve_account(*, user, account_id) -> BrokerAccount:
    """The caller's active account, or a 404 that says nothing about anyone else's."""
    try:
        account_pk = int(account_id)
    except (TypeError, ValueError):
        raise ValidationFailed(
            "account_id must be an integer", details={"account_id": ["must be an integer"]}
        ) from None
    if as_id(account_pk) is None:  # out of any id's range: nobody's account
        raise NotFound("Account not found", details={"account_id": account_pk})
    # With its stored broker session: a placement's broker call takes it (no second read).
    account = active_account_with_session(account_id=account_pk, user_id=user.pk)
    if account is None:
        raise NotFound("Account not found", details={"account_id": account_pk})
    return account


def check_trading_window(account: BrokerAccount) -> None:
    """Live brokers take orders only inside the trading window; the paper exchange always."""
    if account.is_paper:
        return

    if not is_trading_window_open():
        opening = next_opening()
        raise MarketClosed(
            "The market is closed for live orders",
            details={"next_opening": opening.isoformat() if opening else None},
        )


class InstrumentResolver:
    """Finds instruments by (segment, id) or symbol, remembering answers for one batch."""

    def __init__(self) -> None:
        self._cache: dict[tuple, list[Instrument]] = {}

    def _lookup(self, key: tuple, **filters) -> list[Instrument]:
        if key not in self._cache:
            # With its fair price: the write-ahead shows it on the new order and the paper
            # exchange takes it (no second read).
            self._cache[key] = priced_instruments(**filters)
        return self._cache[key]

    def resolve(
        self,
        *,
        symbol: str,
        instrument_id: int | None,
        segment: str,
        symbol_field: str,
        id_field: str,
        errors: FieldErrors,
    ) -> Instrument | None:
        segment = (segment or "").strip().upper()
        filters: dict[str, object]
        shown: object
        if instrument_id is not None:
            if as_id(instrument_id) is None:
                _add(errors, id_field, "must be a positive integer (an exchange instrument id)")
                return None
            instrument_id = as_id(instrument_id)
            filters = {"exchange_instrument_id": instrument_id}
            if segment:
                filters["exchange_segment"] = segment
            found = self._lookup(("id", instrument_id, segment), **filters)
            field_name, shown = id_field, instrument_id
        elif symbol:
            # Exchange symbols are upper case: "reliance" names RELIANCE on every database
            # (MariaDB's column compares without case, SQLite's exactly), as on OpenAlgo's.
            text = symbol.strip().upper()
            filters = {"trading_symbol": text}
            if segment:
                filters["exchange_segment"] = segment
            found = self._lookup(("symbol", text, segment), **filters)
            field_name, shown = symbol_field, symbol
        else:
            _add(errors, symbol_field, f"give {symbol_field} or {id_field}")
            return None
        if not found:
            _add(errors, field_name, f"unknown instrument {shown!r}")
            return None
        if len(found) > 1:
            _add(errors, "exchange_segment", f"{shown!r} is listed on several segments: name one")
            return None
        return found[0]


def resolve_strategy(*, user, name: str, errors: FieldErrors) -> Strategy | None:
    if not name:
        return None
    strategy = Strategy.objects.filter(user=user, name=name).first()
    if strategy is None:
        _add(errors, "strategy_name", f"unknown strategy {name!r}")
    return strategy


# ---- rules -------------------------------------------------------------------------------


def _add(errors: FieldErrors, name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


def _raise_if(errors: FieldErrors) -> None:
    if errors:
        first_field, messages = next(iter(errors.items()))
        raise ValidationFailed(f"{first_field}: {messages[0]}", details=errors)


def check_choice(errors: FieldErrors, name: str, value: str, choices) -> None:
    # `in choices`: a vocabulary's lookup by value, without building its list of values.
    if not (isinstance(value, str) and value in choices):
        _add(errors, name, f"must be one of {', '.join(choices.values)}")


def check_quantity(errors: FieldErrors, name: str, quantity: int, instrument: Instrument) -> None:
    if quantity is None or quantity <= 0:
        _add(errors, name, "must be a positive integer")
        return
    if quantity > MAX_QUANTITY:
        _add(errors, name, f"must be at most {MAX_QUANTITY}")
        return
    if quantity % instrument.lot_size:
        _add(errors, name, f"must be a multiple of the lot size {instrument.lot_size}")
    if instrument.freeze_quantity and quantity > instrument.freeze_quantity:
        _add(errors, name, f"exceeds the freeze quantity {instrument.freeze_quantity}")


_PLACES = Decimal(1).scaleb(-PRICE_PLACES)


def plain(value: Decimal) -> str:
    """150.00 -> "150", 0.05 -> "0.05" (normalize() alone writes 150 as 1.5E+2)."""
    return format(value.normalize(), "f")


def comparable_price(price: Decimal | None) -> bool:
    """A number the bracket's price relations can use, whatever its tick or band."""
    return price is not None and price.is_finite() and 0 < price <= MAX_PRICE


def check_price(errors: FieldErrors, name: str, price: Decimal, instrument: Instrument) -> bool:
    """Positive, a multiple of the tick size, inside the price band. True when it passes."""
    before = len(errors.get(name, []))
    if not price.is_finite() or abs(price) > MAX_PRICE:
        _add(errors, name, f"must be a number below {MAX_PRICE:,.0f}")
        return False
    exponent = price.as_tuple().exponent  # an int: the price is finite
    if isinstance(exponent, int) and exponent < -PRICE_PLACES and price != price.quantize(_PLACES):
        _add(errors, name, f"may have at most {PRICE_PLACES} decimal places")
        return False
    if price <= 0:
        _add(errors, name, "must be positive")
        return False
    tick = instrument.tick_size
    if tick and price % tick:
        _add(errors, name, f"must be a multiple of the tick size {plain(tick)}")
    if instrument.price_band_low is not None and price < instrument.price_band_low:
        _add(errors, name, f"is below the price band {plain(instrument.price_band_low)}")
    if instrument.price_band_high is not None and price > instrument.price_band_high:
        _add(errors, name, f"is above the price band {plain(instrument.price_band_high)}")
    return len(errors.get(name, [])) == before


def check_type_prices(
    errors: FieldErrors,
    *,
    side: str,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> None:
    """Each order type needs exactly its prices, and a stop-limit's limit must sit on the
    side of its trigger that lets it fill (BUY: limit >= stop; SELL: limit <= stop)."""
    limit_field, stop_field = "limit_price", "stop_price"
    needs_limit = order_type in (OrderType.LIMIT, OrderType.STOPLIMIT)
    needs_stop = order_type in (OrderType.STOPLIMIT, OrderType.STOPMARKET)
    if needs_limit and limit_price is None:
        _add(errors, limit_field, f"is required for a {order_type} order")
    if not needs_limit and limit_price is not None:
        _add(errors, limit_field, f"must be empty for a {order_type} order")
    if needs_stop and stop_price is None:
        _add(errors, stop_field, f"is required for a {order_type} order")
    if not needs_stop and stop_price is not None:
        _add(errors, stop_field, f"must be empty for a {order_type} order")
    if order_type == OrderType.STOPLIMIT and limit_price is not None and stop_price is not None:
        if side == Side.BUY and limit_price < stop_price:
            _add(errors, limit_field, f"must be at or above {stop_field} for a BUY stop-limit")
        if side == Side.SELL and limit_price > stop_price:
            _add(errors, limit_field, f"must be at or below {stop_field} for a SELL stop-limit")


def check_leg_change(
    *,
    side: str,
    order_type: str,
    instrument: Instrument,
    quantity: int,
    filled_quantity: int,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> None:
    """The rules a modification of a working leg must keep (PATCH /api/orders/{id})."""
    errors: FieldErrors = {}
    check_quantity(errors, "quantity", quantity, instrument)
    if quantity is not None and quantity <= filled_quantity:
        _add(errors, "quantity", f"must be above the {filled_quantity} already filled")
    for name, price in (("limit_price", limit_price), ("stop_price", stop_price)):
        if price is not None:
            check_price(errors, name, price, instrument)
    check_type_prices(
        errors, side=side, order_type=order_type, limit_price=limit_price, stop_price=stop_price
    )
    _raise_if(errors)


# ---- whole requests ----------------------------------------------------------------------


@dataclass
class OrderFindings:
    """Every broken rule of an order, and what could be looked up on the way."""

    errors: FieldErrors
    instrument: Instrument | None
    strategy: Strategy | None


@dataclass
class BracketOrderFindings(OrderFindings):
    quantity: int
    targets: list[dict]


def single_order_errors(
    *, user, request: SingleOrderRequest, resolver: InstrumentResolver | None = None
) -> OrderFindings:
    """Every rule of a single order checked at once; raises nothing. Fields the caller could
    not parse may be None: their own rule reports them, the others are still checked."""
    errors: FieldErrors = {}
    check_choice(errors, "order_side", request.order_side, Side)
    check_choice(errors, "order_type", request.order_type, OrderType)
    instrument, strategy = _check_subject(errors, user=user, request=request, resolver=resolver)
    if instrument is not None:
        check_quantity(errors, "order_quantity", request.order_quantity, instrument)
        for name in ("limit_price", "stop_price"):
            price = getattr(request, name)
            if price is not None:
                check_price(errors, name, price, instrument)
    elif request.order_quantity is None or request.order_quantity <= 0:
        _add(errors, "order_quantity", "must be a positive integer")
    if request.order_type in OrderType.values and request.order_side in Side.values:
        check_type_prices(
            errors,
            side=request.order_side,
            order_type=request.order_type,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
        )
    return OrderFindings(errors=errors, instrument=instrument, strategy=strategy)


def validate_single_order(
    *, user, request: SingleOrderRequest, resolver: InstrumentResolver | None = None
) -> ValidatedSingle:
    account = resolve_account(user=user, account_id=request.account_id)
    found = single_order_errors(user=user, request=request, resolver=resolver)
    accepted = _accepted(found, account=account, request=request, quantity=request.order_quantity)
    return ValidatedSingle(
        **accepted,
        order_type=request.order_type,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
    )


def bracket_order_errors(
    *, user, request: BracketOrderRequest, resolver: InstrumentResolver | None = None
) -> BracketOrderFindings:
    """Every rule of a bracket checked at once; raises nothing (see single_order_errors).
    The price relations (stop-loss below the entry of a BUY, targets above it) are checked
    on every price that is a number, even one off the tick or outside the band."""
    errors: FieldErrors = {}
    side = request.order_side
    check_choice(errors, "order_side", side, Side)
    instrument, strategy = _check_subject(errors, user=user, request=request, resolver=resolver)
    lots: int | None = request.no_of_lots
    if lots is None or lots <= 0:
        _add(errors, "no_of_lots", "must be a positive integer")
    elif instrument is not None and lots * instrument.lot_size > MAX_QUANTITY:
        _add(errors, "no_of_lots", f"{lots} lots is more than {MAX_QUANTITY} units")
        lots = None
    if request.entry_price is None:
        _add(errors, "entry_price", "is required")
    if request.sl_price is None:
        _add(errors, "sl_price", "is required")
    target_rows: list[dict] = []
    quantity = 0
    if instrument is not None:
        for name in ("entry_price", "entry_stop_price", "sl_price", "sl_stop_price"):
            price = getattr(request, name)
            if price is not None:
                check_price(errors, name, price, instrument)
        for target in request.targets:
            check_price(errors, request.targets_field, target.price, instrument)
        if lots is not None and lots > 0:
            quantity = lots * instrument.lot_size
            if instrument.freeze_quantity and quantity > instrument.freeze_quantity:
                _add(
                    errors,
                    "no_of_lots",
                    f"{lots} lots = {quantity} exceeds the freeze quantity "
                    f"{instrument.freeze_quantity}",
                )
            target_rows = _split_targets(
                errors, request.targets, lots, instrument.lot_size, request.targets_field
            )
    if isinstance(side, str) and side in Side:  # by value, without building Side.values
        _check_bracket_relation(errors, request, side)
    return BracketOrderFindings(
        errors=errors,
        instrument=instrument,
        strategy=strategy,
        quantity=quantity,
        targets=target_rows,
    )


def validate_bracket_order(
    *,
    user,
    request: BracketOrderRequest,
    account: BrokerAccount | None = None,
    resolver: InstrumentResolver | None = None,
) -> ValidatedBracket:
    """A bracket: entry (LIMIT, or STOPLIMIT with entry_stop_price), a stop-loss below the
    entry for a BUY (above for a SELL) and targets beyond it, split into whole lots."""
    account = account or resolve_account(user=user, account_id=request.account_id)
    found = bracket_order_errors(user=user, request=request, resolver=resolver)
    accepted = _accepted(found, account=account, request=request, quantity=found.quantity)
    assert request.sl_price is not None  # a missing stop-loss is among the errors
    return ValidatedBracket(
        **accepted,
        entry_type=OrderType.STOPLIMIT if request.entry_stop_price else OrderType.LIMIT,
        entry_price=request.entry_price,
        entry_stop_price=request.entry_stop_price,
        sl_price=request.sl_price,
        sl_stop_price=request.sl_stop_price,
        targets=found.targets,
    )


def _accepted(
    found: OrderFindings,
    *,
    account: BrokerAccount,
    request: SingleOrderRequest | BracketOrderRequest,
    quantity: int,
) -> dict[str, Any]:
    """The fields of ValidatedOrder, once the request breaks no rule (ValidationFailed with
    every broken one otherwise) and its account may trade now (MarketClosed otherwise)."""
    _raise_if(found.errors)
    assert found.instrument is not None  # an unknown instrument is among the errors
    check_trading_window(account)
    return {
        "account": account,
        "instrument": found.instrument,
        "strategy": found.strategy,
        "side": request.order_side,
        "product_type": request.product_type,
        "quantity": quantity,
    }


def _check_subject(
    errors: FieldErrors, *, user, request: OrderRequest, resolver: InstrumentResolver | None
) -> tuple[Instrument | None, Strategy | None]:
    """The rules every kind of order shares: its product, client order id, instrument (by
    symbol or id, in the request's own fields) and strategy."""
    _check_product(errors, request.product_type)
    _check_client_id(errors, request.client_order_id)
    instrument = (resolver or InstrumentResolver()).resolve(
        symbol=getattr(request, request.symbol_field),
        instrument_id=getattr(request, request.id_field),
        segment=request.exchange_segment,
        symbol_field=request.symbol_field,
        id_field=request.id_field,
        errors=errors,
    )
    strategy = resolve_strategy(user=user, name=request.strategy_name, errors=errors)
    return instrument, strategy


def _check_product(errors: FieldErrors, product_type: str) -> None:
    check_choice(errors, "product_type", product_type, ProductType)


def _check_client_id(errors: FieldErrors, client_order_id: str) -> None:
    if client_order_id and len(client_order_id) > 64:
        _add(errors, "client_order_id", "must be at most 64 characters")


def _check_bracket_relation(errors: FieldErrors, request: BracketOrderRequest, side: str) -> None:
    """BUY: every stop-loss price < every entry price < every target; SELL mirrored. The
    stop-loss leg is the opposite side, so its stop-limit relation is the opposite too.
    Prices that are not numbers at all (missing, negative, too large) are left out."""

    def usable(price: Decimal | None) -> Decimal | None:
        return price if comparable_price(price) else None

    entry = usable(request.entry_price)
    entry_stop = usable(request.entry_stop_price)
    sl, sl_stop = usable(request.sl_price), usable(request.sl_stop_price)
    entry_prices = [p for p in (entry, entry_stop) if p is not None]
    sl_prices = [p for p in (sl, sl_stop) if p is not None]
    buy = side == Side.BUY
    if entry is not None and entry_stop is not None:
        if buy and entry < entry_stop:
            _add(errors, "entry_price", "must be at or above entry_stop_price for a BUY entry")
        if not buy and entry > entry_stop:
            _add(errors, "entry_price", "must be at or below entry_stop_price for a SELL entry")
    if sl_stop is not None and sl is not None:
        # The stop-loss of a long position sells: its limit sits at or below its trigger.
        if buy and sl > sl_stop:
            _add(errors, "sl_price", "must be at or below sl_stop_price for a BUY bracket")
        if not buy and sl < sl_stop:
            _add(errors, "sl_price", "must be at or above sl_stop_price for a SELL bracket")
    if not entry_prices:
        return
    if sl_prices:
        if buy and max(sl_prices) >= min(entry_prices):
            _add(errors, "sl_price", "must be below the entry price for a BUY bracket")
        if not buy and min(sl_prices) <= max(entry_prices):
            _add(errors, "sl_price", "must be above the entry price for a SELL bracket")
    for target in request.targets:
        if not comparable_price(target.price):
            continue
        if buy and target.price <= max(entry_prices):
            _add(errors, request.targets_field, "must be above the entry price for a BUY bracket")
            break
        if not buy and target.price >= min(entry_prices):
            _add(errors, request.targets_field, "must be below the entry price for a SELL bracket")
            break


def _split_targets(
    errors: FieldErrors, targets: list[TargetSpec], lots: int, lot_size: int, name: str
) -> list[dict]:
    """Targets given in lots or percent -> quantities in whole lots. Percentages round down
    and the last percent target takes the remainder, so 3 lots at 50/50 become 1 and 2.
    Together the targets must cover exactly the order's lots (or be absent: SL only)."""
    if not targets:
        return []
    if len(targets) > 10:
        _add(errors, name, "at most 10 targets")
        return []
    split: list[int] = []
    last_percent_index = None
    for index, target in enumerate(targets):
        if (target.lots is None) == (target.percent is None):
            _add(errors, name, "each target needs exactly one of lots or percent")
            return []
        if target.lots is not None:
            if target.lots <= 0:
                _add(errors, name, "target lots must be positive")
                return []
            split.append(target.lots)
        else:
            assert target.percent is not None  # exactly one of lots or percent
            if target.percent <= 0 or target.percent > 100:
                _add(errors, name, "target percent must be above 0 and at most 100")
                return []
            split.append(int(lots * target.percent / 100))
            last_percent_index = index
    percent_total = sum(t.percent for t in targets if t.percent is not None)
    if last_percent_index is not None and percent_total == 100:
        split[last_percent_index] += lots - sum(split)
    if sum(split) != lots:
        _add(errors, name, f"targets cover {sum(split)} lots; they must cover all {lots}")
        return []
    if any(part <= 0 for part in split):
        _add(errors, name, "every target must get at least one lot")
        return []
    return [
        {"price": str(target.price), "quantity": part * lot_size}
        for target, part in zip(targets, split, strict=True)
    ]
