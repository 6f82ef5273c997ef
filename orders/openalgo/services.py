"""The OpenAlgo API's actions, on the desk's own services: every order goes through the one
write-ahead placement path (validation, idempotency keys, audit, the owner's live updates),
changes through orders.services.changes, position targets and square-offs through
orders.services.position_changes (which keep brackets' protection consistent).

A caller is an API key bound to one broker account (OpenAlgo's one-broker model). In the
key's analyzer mode it acts on the account's paper twin instead (made on first use), so a
strategy can be tried on paper with the same key and code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from accounts.api_keys import set_analyzer_mode
from accounts.models import ApiKey, BrokerAccount, User
from accounts.services import paper_twin_for, strategy_named
from orders.domain.vocabulary import OrderType
from orders.models import Instrument, Order
from orders.openalgo.fields import OpenAlgoInvalid, OrderFields
from orders.openalgo.mapping import MappingError, smart_order_change, split_quantities, whole_lots
from orders.openalgo.selectors import order_on_account, resolve_instrument, working_orders
from orders.positions.services import ExitOrders, ExitResult, exit_positions
from orders.services import cancel_order, modify_order, place_bracket_order, place_single_order
from orders.services.broker_reads import read_positions
from orders.services.placement import PlacementResult
from orders.services.position_changes import (
    PositionChangeResult,
    PositionDecision,
    change_position_live,
    net_quantity,
)
from orders.services.trading_lock import ensure_trading_allowed_now
from orders.validation import (
    BracketOrderRequest,
    SingleOrderRequest,
    TargetSpec,
    check_trading_window,
    validate_bracket_order,
    validate_single_order,
)
from trading_site.core.errors import DomainError, PermissionDenied, ValidationFailed

SOURCE = Order.Source.OPENALGO
MAX_BASKET_ORDERS = 100


# ---- who is calling -------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """An OpenAlgo request's key, its owner, its bound account and the account its orders
    go to now (the bound account, or in analyzer mode its paper twin)."""

    api_key: ApiKey
    user: User
    bound_account: BrokerAccount
    account: BrokerAccount

    @property
    def analyze(self) -> bool:
        return self.account.pk != self.bound_account.pk

    @property
    def mode(self) -> str:
        return "analyze" if self.analyze else "live"

    @property
    def actor(self) -> str:
        return f"openalgo:key:{self.api_key.pk}"


def caller_for(api_key: ApiKey, *, switching_analyzer: bool = False) -> Caller:
    """The key's caller; `switching_analyzer`: for analyzer/toggle, which acts on the key
    itself, so a deactivated paper twin does not refuse it (switching off is the way out)."""
    bound = (
        BrokerAccount.objects.filter(pk=api_key.bound_account_id, user_id=api_key.user_id).first()
        if api_key.bound_account_id is not None
        else None
    )
    if bound is None or not bound.is_active:
        raise PermissionDenied(
            "The broker account this API key is bound to is deactivated",
            details={"apikey": ["bound to a deactivated broker account"]},
        )
    account = bound
    if api_key.analyzer_mode and not switching_analyzer:
        account = _active_twin(bound)
    return Caller(api_key=api_key, user=api_key.user, bound_account=bound, account=account)


def _active_twin(bound: BrokerAccount) -> BrokerAccount:
    twin = paper_twin_for(account=bound)
    if not twin.is_active:
        raise PermissionDenied(
            f"The analyzer's paper account {twin.account_name!r} is deactivated: "
            "reactivate it, or switch analyzer mode off",
            details={"apikey": ["analyzer mode on a deactivated paper account"]},
        )
    return twin


def set_analyzer(*, caller: Caller, enabled: bool) -> Caller:
    """Switch the key's analyzer mode; the twin is made now when switching it on (and a
    deactivated twin refuses that before the mode changes)."""
    if enabled:
        _active_twin(caller.bound_account)
    set_analyzer_mode(api_key=caller.api_key, enabled=enabled)
    return caller_for(caller.api_key)


def strategy_name_for(*, caller: Caller, name: str) -> str:
    """OpenAlgo's `strategy` as one of the user's strategies (made on first use: call it
    once the request is known to be valid); "" for none."""
    name = (name or "").strip()
    if not name:
        return ""
    try:
        return strategy_named(user=caller.user, name=name, actor=caller.actor).name
    except ValidationFailed as exc:
        raise OpenAlgoInvalid(
            {"strategy": [exc.details.get("strategy", [exc.message])[0]]}
        ) from None


def order_key(claim_id: int | None, index: int = 0) -> str:
    """The client_order_id of the `index`th order of an OpenAlgo request (its claim in the
    request ledger): unique per request and order, so the placement path's own idempotency
    guards each order too."""
    return f"openalgo:{claim_id}:{index}" if claim_id else ""


# ---- the desk's field names in OpenAlgo's words ---------------------------------------------

_OPENALGO_FIELD = {
    "order_side": "action",
    "order_type": "pricetype",
    "order_quantity": "quantity",
    "no_of_lots": "quantity",
    "quantity": "quantity",
    "product_type": "product",
    "limit_price": "price",
    "entry_price": "price",
    "stop_price": "trigger_price",
    "entry_stop_price": "trigger_price",
    "sl_price": "stoploss",
    "sl_stop_price": "stoploss",
    "target": "target",
    "targets": "target",
    "symbol": "symbol",
    "trading_symbol": "symbol",
    "exchange_instrument_id": "symbol",
    "exchange_token": "symbol",
    "exchange_segment": "exchange",
    "strategy_name": "strategy",
    "account_id": "apikey",
}


def in_openalgo_words(exc: ValidationFailed, *, prefix: str = "") -> OpenAlgoInvalid:
    details: dict[str, list[str]] = {}
    for name, messages in (exc.details or {}).items():
        renamed = prefix + _OPENALGO_FIELD.get(name, name)
        listed = messages if isinstance(messages, list) else [str(messages)]
        details.setdefault(renamed, []).extend(str(m) for m in listed)
    return OpenAlgoInvalid(details or {prefix.rstrip(".") or "request": [exc.message]})


# ---- placing --------------------------------------------------------------------------------


def _request_fields(
    *, caller: Caller, order: OrderFields, instrument: Instrument, key: str
) -> dict[str, Any]:
    """What an OpenAlgo order gives either kind of request: the caller's account, the
    order's side and product, the instrument's segment, and the key as both client ids."""
    return {
        "account_id": caller.account.pk,
        "order_side": order.side,
        "product_type": order.product_type,
        "exchange_segment": instrument.exchange_segment,
        "client_order_id": key,
        "external_id": key,
    }


def _single_request(
    *, caller: Caller, order: OrderFields, instrument: Instrument, key: str, quantity: int
) -> SingleOrderRequest:
    return SingleOrderRequest(
        **_request_fields(caller=caller, order=order, instrument=instrument, key=key),
        order_type=order.order_type,
        order_quantity=quantity,
        exchange_instrument_id=instrument.exchange_instrument_id,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
    )


def _bracket_request(
    *, caller: Caller, order: OrderFields, instrument: Instrument, key: str
) -> BracketOrderRequest:
    assert order.quantity is not None  # placeorder requires it (orders.openalgo.fields)
    try:
        lots = whole_lots(order.quantity, instrument.lot_size)
    except MappingError as exc:
        raise OpenAlgoInvalid({exc.field: [exc.message]}) from None
    stop_limit = order.order_type == OrderType.STOPLIMIT
    return BracketOrderRequest(
        **_request_fields(caller=caller, order=order, instrument=instrument, key=key),
        no_of_lots=lots,
        entry_price=order.limit_price,
        entry_stop_price=order.stop_price if stop_limit else None,
        sl_price=order.stop_loss,
        exchange_token=instrument.exchange_instrument_id,
        targets=(
            [TargetSpec(price=order.target, percent=Decimal("100"))]
            if order.target is not None
            else []
        ),
        targets_field="target",
    )


def place_order(
    *, caller: Caller, order: OrderFields, strategy_name: str, key: str, prefix: str = ""
) -> PlacementResult:
    """placeorder (and one basket item): a single order, or with stoploss/target a desk
    bracket whose stop-loss and target the desk places once the entry fills. The request is
    validated before the strategy is made (a refused order leaves nothing behind)."""
    instrument = resolve_instrument(exchange=order.exchange, symbol=order.symbol)
    try:
        if order.is_bracket:
            request = _bracket_request(caller=caller, order=order, instrument=instrument, key=key)
            validate_bracket_order(user=caller.user, request=request)
            request.strategy_name = strategy_name_for(caller=caller, name=strategy_name)
            return place_bracket_order(
                user=caller.user, request=request, source=SOURCE, actor=caller.actor
            )
        assert order.quantity is not None  # placeorder requires it (orders.openalgo.fields)
        single = _single_request(
            caller=caller, order=order, instrument=instrument, key=key, quantity=order.quantity
        )
        validate_single_order(user=caller.user, request=single)
        single.strategy_name = strategy_name_for(caller=caller, name=strategy_name)
        return place_single_order(
            user=caller.user, request=single, source=SOURCE, actor=caller.actor
        )
    except ValidationFailed as exc:
        raise in_openalgo_words(exc, prefix=prefix) from None


@dataclass
class ItemResult:
    """One basket or split order: its result, or why it was not placed."""

    index: int
    order: OrderFields | None
    quantity: int | None = None
    placement: PlacementResult | None = None
    error: str = ""


def place_basket(
    *,
    caller: Caller,
    items: list[OrderFields | OpenAlgoInvalid],
    strategy_name: str,
    claim_id: int | None,
) -> list[ItemResult]:
    """basketorder: each order stands or falls alone; BUY orders go before SELL orders (as
    OpenAlgo does, so a hedge's margin benefit is there when the sell goes). Results follow
    the input order. A locked account refuses the whole basket (TradingLocked)."""
    ensure_trading_allowed_now(caller.account.pk)
    if not items:
        raise OpenAlgoInvalid({"orders": ["is required: a list of orders"]})
    if len(items) > MAX_BASKET_ORDERS:
        raise OpenAlgoInvalid({"orders": [f"at most {MAX_BASKET_ORDERS} orders per basket"]})
    results = [ItemResult(index=i, order=None) for i in range(len(items))]
    runnable: list[tuple[int, OrderFields]] = []
    for index, item in enumerate(items):
        if isinstance(item, OpenAlgoInvalid):
            results[index].error = item.message
        else:
            results[index].order = item
            runnable.append((index, item))
    runnable.sort(key=lambda pair: (pair[1].side != "BUY", pair[0]))
    for index, fields in runnable:
        try:
            results[index].placement = place_order(
                caller=caller,
                order=fields,
                strategy_name=strategy_name,
                key=order_key(claim_id, index),
            )
        except OpenAlgoInvalid as exc:
            results[index].error = exc.message
        except DomainError as exc:
            results[index].error = exc.message
    return results


def place_split(
    *,
    caller: Caller,
    order: OrderFields,
    split_size: int,
    strategy_name: str,
    claim_id: int | None,
) -> list[ItemResult]:
    """splitorder: `quantity` in orders of `split_size` (the remainder last), each placed on
    its own; one refused does not stop the rest. The first piece is validated before
    anything is placed: it speaks for them all (same symbol, prices and sizes but the
    remainder), so a bad request is one refusal rather than N identical ones. A locked
    account refuses the whole split (TradingLocked)."""
    ensure_trading_allowed_now(caller.account.pk)
    instrument = resolve_instrument(exchange=order.exchange, symbol=order.symbol)
    assert order.quantity is not None  # splitorder requires it (orders.openalgo.fields)
    pieces = split_quantities(order.quantity, split_size)
    requests = [
        _single_request(
            caller=caller,
            order=order,
            instrument=instrument,
            key=order_key(claim_id, index),
            quantity=quantity,
        )
        for index, quantity in enumerate(pieces)
    ]
    try:
        validate_single_order(user=caller.user, request=requests[0])
    except ValidationFailed as exc:
        raise in_openalgo_words(exc) from None
    name = strategy_name_for(caller=caller, name=strategy_name)
    results = []
    for index, (quantity, request) in enumerate(zip(pieces, requests, strict=True)):
        result = ItemResult(index=index, order=order, quantity=quantity)
        request.strategy_name = name
        try:
            result.placement = place_single_order(
                user=caller.user, request=request, source=SOURCE, actor=caller.actor
            )
        except ValidationFailed as exc:
            result.error = in_openalgo_words(exc).message
        except DomainError as exc:
            result.error = exc.message
        results.append(result)
    return results


@dataclass
class SmartOrderResult:
    current: int
    change: PositionDecision | None
    result: PositionChangeResult | None = None


def place_smart_order(
    *,
    caller: Caller,
    order: OrderFields,
    position_size: int,
    strategy_name: str,
    claim_id: int | None,
) -> SmartOrderResult:
    """placesmartorder: the order for the difference between the live position (this
    symbol and product) and `position_size`; none when it already matches. The position is
    read and changed under the account's exclusion; a locked account refuses it before
    anything is read (TradingLocked), even a change that would only reduce."""
    instrument = resolve_instrument(exchange=order.exchange, symbol=order.symbol)
    try:
        live = change_position_live(
            account=caller.account,
            instrument=instrument,
            product_type=order.product_type,
            decide=lambda current: smart_order_change(
                action=order.side,
                quantity=order.quantity or 0,
                position_size=position_size,
                current=current,
            ),
            user=caller.user,
            actor=caller.actor,
            source=SOURCE,
            strategy_name=strategy_name,
            order_type=order.order_type,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            client_order_id=order_key(claim_id),
            external_id=order_key(claim_id),
        )
    except ValidationFailed as exc:
        raise in_openalgo_words(exc) from None
    return SmartOrderResult(current=live.current, change=live.change, result=live.result)


def open_position(*, caller: Caller, exchange: str, symbol: str, product_type: str) -> int:
    instrument = resolve_instrument(exchange=exchange, symbol=symbol)
    return net_quantity(
        instrument=instrument,
        product_type=product_type,
        positions=read_positions(caller.account),
    )


def close_positions(*, caller: Caller, strategy_name: str) -> ExitResult:
    """closeposition: MARKET exits of every open position of the account, the desk's own
    position exit (orders.positions.services.exit_positions: under the account's
    exclusion, the brackets holding a position stripped of their working legs and exited
    through their own legs, a position with an exit still working left alone). Positions
    are the account's at the broker, not a strategy's; the strategy is credited with the
    new closing orders (made once there is a position to close). Exits close positions: the kill
    switch's trading lock does not refuse them."""
    check_trading_window(caller.account)
    return exit_positions(
        account=caller.account,
        actor=caller.actor,
        orders=ExitOrders(
            source=SOURCE, external_id="close-position", strategy_name=strategy_name.strip()
        ),
    )


# ---- changing -------------------------------------------------------------------------------


def modify(*, caller: Caller, order_id: int, order: OrderFields) -> Order:
    """modifyorder: OpenAlgo sends the whole order; the desk changes what may change (price,
    trigger price, a single order's quantity) and refuses a different symbol, action,
    product or price type (cancel and place a new order for those)."""
    existing = order_on_account(account=caller.account, order_id=order_id)
    instrument = resolve_instrument(exchange=order.exchange, symbol=order.symbol)
    errors: dict[str, list[str]] = {}
    if instrument.pk != existing.instrument_id:
        errors["symbol"] = ["differs from the order's: cancel and place a new order"]
    if order.side != existing.side:
        errors["action"] = ["differs from the order's: cancel and place a new order"]
    if order.product_type != existing.product_type:
        errors["product"] = ["differs from the order's: cancel and place a new order"]
    if order.order_type != existing.order_type:
        errors["pricetype"] = ["differs from the order's: cancel and place a new order"]
    if errors:
        raise OpenAlgoInvalid(errors)
    entry = next(
        (leg for leg in sorted(existing.legs.all(), key=lambda leg: leg.pk) if leg.role == "ENTRY"),
        None,
    )
    quantity, limit, stop = order.quantity, order.limit_price, order.stop_price
    if entry is not None:
        # What is as the entry stands is not asked for: its quantity (a bracket's cannot
        # change), and its prices, which orderstatus answered (the working ones, maybe the
        # desk's re-priced limit) and every modifyorder must send again. The working limit
        # echoed beside a new quantity is not the trader's new price (the web form sends
        # only what the trader changed of the values it shows, too); nothing changed at all
        # is refused, as a PATCH of nothing is.
        quantity = None if quantity == entry.quantity else quantity
        limit = None if limit == entry.limit_price else limit
        stop = None if stop == entry.stop_price else stop
        if quantity is None and limit is None and stop is None:
            raise OpenAlgoInvalid(
                {
                    "request": [
                        "nothing to change: price, trigger_price and quantity are the order's"
                    ]
                }
            )
    try:
        return modify_order(
            order=existing,
            actor=caller.actor,
            limit_price=limit,
            stop_price=stop,
            quantity=quantity,
        )
    except ValidationFailed as exc:
        raise in_openalgo_words(exc) from None


def cancel(*, caller: Caller, order_id: int) -> Order:
    """cancelorder: an order already cancelled answers success (as OpenAlgo's does)."""
    existing = order_on_account(account=caller.account, order_id=order_id)
    if existing.status == Order.Status.CANCELLED:
        return existing
    return cancel_order(order=existing, actor=caller.actor)


@dataclass
class CancelAllResult:
    cancelled: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def cancel_all(*, caller: Caller) -> CancelAllResult:
    """cancelallorder: every working order of the account (the key acts for the whole
    account, as OpenAlgo's does for its broker account). A bracket whose entry filled in
    part keeps protecting the filled part."""
    result = CancelAllResult()
    for order in working_orders(account=caller.account):
        try:
            cancel_order(order=order, actor=caller.actor)
        except DomainError as exc:
            result.failed.append((order.pk, exc.message))
        else:
            result.cancelled.append(order.pk)
    return result
