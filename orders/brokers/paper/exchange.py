"""The PAPER broker: a simulated exchange whose book lives in the database.

The book is shared by every process (web, workers, the XTS simulator) through the paper tables
(orders.brokers.paper.models). The matching rules are in `matching` (pure), the book's reads in `book`;
this module runs matching ticks, takes orders in (submit, modify, cancel) and writes fills. Matching runs whenever a price is
written (orders.market.services.record_fair_prices) and whenever a gateway reads the book.

Rejections come the two ways a real broker answers them: a rule broken at placement (lot,
freeze quantity, tick, price band, margin, unknown instrument) is an `OrderRejected` at once
(the rejected order still appears in the book, as at a real OMS); the explicit reject rate
accepts the order and the order book then shows it Rejected with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from orders.brokers.base import (
    BrokerBalance,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
    ModifyOrderRequest,
    OrderRejected,
    PlaceOrderRequest,
)
from orders.brokers.paper import matching as rules_mod
from orders.brokers.paper.book import (
    BookOrder,
    BookState,
    book_orders,
    book_state,
    multiplier_of,
    order_row,
    order_state_of,
    paper_config,
    quote_of,
    resting_exposure,
    rules_of,
    snapshot_of,
)
from orders.brokers.paper.events import publish_on_commit
from orders.brokers.paper.matching import NewOrder, OrderState
from orders.brokers.paper.models import PaperBook, PaperOrder, PaperTrade
from orders.market.models import Instrument
from trading_site.core.bulk_rows import insert_rows, new_row
from trading_site.core.prepared import PreparedModels

APP_ORDER_ID_BASE = 1_000_000_000

SIMULATED_REJECT_REASON = "Rejected by the exchange (simulated reject rate)"

_ZERO = Decimal("0")


# ---- matching ticks -------------------------------------------------------------------


def _apply_tick(
    order: PaperOrder, instrument, config, now, *, market: tuple | None = None
) -> PaperTrade | None:
    """Match one locked open order against its instrument's quote; returns the new fill.
    `market`: the instrument's (quote, rules) when the caller has them already. `now`: the
    fill's time; None for the clock's when it fills (a batch's resting orders read none)."""
    quote, rules = market or (quote_of(instrument), rules_of(instrument))
    result = rules_mod.match_order(order_state_of(order), quote, rules, config)
    if result.state.triggered != order.triggered:
        order.triggered = result.state.triggered
    if result.fill is None:
        return None
    if now is None:
        now = timezone.now()
    order.filled_quantity = result.state.filled_quantity
    order.average_price = result.state.average_price
    order.status = result.state.status
    order.last_fill_at = now
    return PaperTrade(
        order=order,
        book_id=order.book_id,
        execution_id=f"{order.app_order_id}-{order.filled_quantity}",
        exchange_segment=order.exchange_segment,
        exchange_instrument_id=order.exchange_instrument_id,
        trading_symbol=order.trading_symbol,
        side=order.side,
        product_type=order.product_type,
        quantity=result.fill.quantity,
        price=result.fill.price,
        traded_at=now,
    )


def match_open_orders(*, instrument_ids=None, book: PaperBook | None = None) -> int:
    """Run one tick for the open orders of some instruments (pks) or of one book.

    Returns the number of fills written. Orders are locked for the tick so two processes
    matching at once never fill the same quantity twice.
    """
    config = paper_config()
    now = timezone.now()
    with transaction.atomic():
        open_orders = PaperOrder.objects.select_for_update().filter(
            status__in=PaperOrder.OPEN_STATUSES, instrument__isnull=False
        )
        if instrument_ids is not None:
            open_orders = open_orders.filter(instrument_id__in=list(instrument_ids))
        if book is not None:
            open_orders = open_orders.filter(book=book)
        orders = list(open_orders.order_by("id"))
        if not orders:
            return 0
        instruments = Instrument.objects.select_related("fair_price").in_bulk(
            {order.instrument_id for order in orders}
        )
        fills: list[PaperTrade] = []
        changed: list[PaperOrder] = []
        for order in orders:
            was_triggered = order.triggered
            fill = _apply_tick(order, instruments[order.instrument_id], config, now)
            if fill is not None:
                fills.append(fill)
            if fill is not None or order.triggered != was_triggered:
                order.updated_at = now
                changed.append(order)
        if changed:
            PaperOrder.objects.bulk_update(
                changed,
                [
                    "filled_quantity",
                    "average_price",
                    "status",
                    "triggered",
                    "last_fill_at",
                    "updated_at",
                ],
            )
        if fills:
            PaperTrade.objects.bulk_create(fills)
            # The fills' events go out once this transaction commits (none on a rollback).
            publish_on_commit(orders=[fill.order for fill in fills], fills=fills)
    return len(fills)


def _needs_matching(orders: Sequence[BookOrder], config) -> bool:
    """Whether a tick would fill or trigger any of these open orders at the current quotes:
    the same rules as `match_open_orders`, without locks or writes."""
    for order in orders:
        if order.status not in PaperOrder.OPEN_STATUSES or order.instrument_id is None:
            continue
        instrument = order.instrument
        result = rules_mod.match_order(
            order_state_of(order), quote_of(instrument), rules_of(instrument), config
        )
        if result.fill is not None or result.state.triggered != order.triggered:
            return True
    return False


# ---- placement, modification, cancellation ------------------------------------------


def _new_order(book: PaperBook, request: PlaceOrderRequest, instrument, **fields) -> PaperOrder:
    """An unsaved order row (inserted by `_insert_orders`, which also sets app_order_id)."""
    return new_row(
        PaperOrder,
        book=book,
        unique_identifier=request.unique_identifier,
        instrument=instrument,
        exchange_segment=request.exchange_segment,
        exchange_instrument_id=request.exchange_instrument_id,
        trading_symbol=instrument.trading_symbol if instrument is not None else "",
        side=request.side,
        order_type=request.order_type,
        product_type=request.product_type,
        time_in_force=request.time_in_force or "DAY",
        quantity=max(int(request.quantity), 0),
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        **fields,
    )


def _insert_orders(orders: list[PaperOrder]) -> None:
    """Insert in list order (ids ascend with it) and hand out AppOrderIDs from the ids: one
    INSERT and one UPDATE however many orders."""
    if not orders:
        return
    insert_rows(PaperOrder, orders)
    ids = [order.pk for order in orders]
    # Plain SQL: it runs on every placement, and the ORM's update cost more than the query.
    with connection.cursor() as cursor:
        ids_in = ", ".join(["%s"] * len(ids))
        sql = f"UPDATE paper_orders SET app_order_id = id + %s WHERE id IN ({ids_in})"  # noqa: S608
        cursor.execute(sql, [APP_ORDER_ID_BASE, *ids])
    for order in orders:
        order.app_order_id = APP_ORDER_ID_BASE + order.pk


def _instruments_for(requests) -> dict[tuple[str, int], Instrument]:
    """The requests' instruments with their prices: those the requests carry (read with
    their fair prices by the caller a moment ago), the others in one query."""
    keys = {(r.exchange_segment, int(r.exchange_instrument_id)) for r in requests}
    given: dict[tuple[str, int], Instrument] = {}
    for request in requests:
        instrument = request.instrument
        if (
            isinstance(instrument, Instrument)
            and Instrument.fair_price.is_cached(instrument)
            and (instrument.exchange_segment, instrument.exchange_instrument_id)
            == (request.exchange_segment, int(request.exchange_instrument_id))
        ):
            given[(instrument.exchange_segment, instrument.exchange_instrument_id)] = instrument
    missing = keys - given.keys()
    if not missing:
        return given
    found = Instrument.objects.select_related("fair_price").filter(
        exchange_instrument_id__in={iid for _, iid in missing}
    )
    return given | {
        (i.exchange_segment, i.exchange_instrument_id): i
        for i in found
        if (i.exchange_segment, i.exchange_instrument_id) in missing
    }


# Locked by every placement: compiled once (`PreparedModels`).
_BOOK_FOR_UPDATE = PreparedModels(
    PaperBook,
    lambda *, pk, account_id: PaperBook.objects.select_for_update().filter(
        pk=pk, account_id=account_id
    ),
)


def _locked_book(book: PaperBook) -> PaperBook:
    """The book read afresh and locked FOR UPDATE, by pk and owner (`book` may be a
    reference remembered by the gateway); a book of no account (the XTS simulator's)
    through the ORM, which reads a NULL owner."""
    if book.account_id is None:
        return PaperBook.objects.select_for_update().get(pk=book.pk, account_id=None)
    return _BOOK_FOR_UPDATE.get(pk=book.pk, account_id=book.account_id)


def _submit_many(
    book: PaperBook,
    requests: list[PlaceOrderRequest],
    client_id: str,
    *,
    in_callers_transaction: bool = False,
    rows: dict[int, BrokerOrderRow] | None = None,
) -> list[tuple[PaperOrder, str | None]]:
    """Place orders one after the other, exactly as separate submissions would, in one
    transaction with the book locked (concurrent orders of one login see each other's
    margin). Returns (order, reason) per request; reason is set for a rule rejection.
    `in_callers_transaction`: in the transaction the caller holds open, with no savepoint
    of its own: the caller rolls the whole of it back when this raises (half an order's rows
    must never be committed). `rows`: filled with each order's row as the submission leaves
    it, by pk (its events carry the same rows: built once for both).

    The book's margin state is read from the database once and then carried forward in
    memory: an order that rests adds its exposure; an order that deals at once changes
    positions and equity, so the state is read again (after writing) for the next order.
    """
    config = paper_config()
    results: list[tuple[PaperOrder, str | None]] = []
    fills: list[PaperTrade] = []
    nested = in_callers_transaction and transaction.get_connection().in_atomic_block
    with nullcontext() if nested else transaction.atomic():
        # By pk and owner: `book` may be a reference remembered by the gateway.
        book = _locked_book(book)
        instruments = _instruments_for(requests)
        state: BookState | None = None
        unsaved: list[PaperOrder] = []
        # Per instrument: its quote and rules, the same for every order of this submission
        # (its prices were read once, above).
        markets: dict[tuple[str, int], tuple] = {}
        for request in requests:
            key = (request.exchange_segment, int(request.exchange_instrument_id))
            instrument = instruments.get(key)
            reason: str | None
            if instrument is None:
                reason = (
                    f"Instrument {request.exchange_segment}:{request.exchange_instrument_id} "
                    "not found"
                )
                order = _new_order(
                    book,
                    request,
                    None,
                    status=PaperOrder.Status.REJECTED,
                    reject_reason=reason,
                    client_id=client_id,
                )
                unsaved.append(order)
                results.append((order, reason))
                continue
            new = NewOrder(
                unique_identifier=request.unique_identifier,
                side=request.side,
                order_type=request.order_type,
                quantity=int(request.quantity),
                limit_price=request.limit_price,
                stop_price=request.stop_price,
            )
            market = markets.get(key)
            if market is None:
                market = markets[key] = (quote_of(instrument), rules_of(instrument))
            quote, rules = market
            ref_price = rules_mod.reference_price(new, quote)
            margin_required = _ZERO
            margin_available = None
            if ref_price is not None and new.quantity > 0:
                if state is None:
                    # The database must hold every order placed so far before it is read.
                    _insert_orders(unsaved)
                    unsaved = []
                    state = book_state(book, config, instruments)
                margin_required = rules_mod.required_margin(
                    side=new.side,
                    quantity=new.quantity,
                    price=ref_price,
                    net_position=state.net_positions.get(
                        (request.exchange_segment, int(request.exchange_instrument_id)), 0
                    ),
                    config=config,
                    multiplier=rules.multiplier,
                )
                margin_available = state.net_margin
            reason = rules_mod.validate_new_order(
                new,
                rules,
                quote,
                margin_required=margin_required,
                margin_available=margin_available,
            )
            if reason is not None or rules_mod.is_randomly_rejected(
                request.unique_identifier, config
            ):
                order = _new_order(
                    book,
                    request,
                    instrument,
                    status=PaperOrder.Status.REJECTED,
                    reject_reason=reason or SIMULATED_REJECT_REASON,
                    client_id=client_id,
                )
                unsaved.append(order)
                results.append((order, reason))
                continue
            order = _new_order(book, request, instrument, client_id=client_id)
            unsaved.append(order)
            results.append((order, None))
            # Market orders (and limits already through the market) deal at once.
            fill = _apply_tick(order, instrument, config, None, market=market)
            if fill is None:
                if state is not None:
                    state.exposure += resting_exposure(order, instrument)
                continue
            _insert_orders(unsaved)
            unsaved = []
            fill.order = order
            fill.execution_id = f"{order.app_order_id}-{order.filled_quantity}"
            fill.save()
            fills.append(fill)
            state = None  # positions and equity changed: read them again when needed
        _insert_orders(unsaved)
        if rows is not None:
            rows.update((order.pk, order_row(order)) for order, _ in results)
        publish_on_commit(orders=[order for order, _ in results], fills=fills, book=book, rows=rows)
    return results


def _submit(book: PaperBook, request: PlaceOrderRequest, client_id: str):
    [result] = _submit_many(book, [request], client_id)
    return result


def submit_order(*, book: PaperBook, request: PlaceOrderRequest, client_id: str = "") -> PaperOrder:
    """Place an order; raises OrderRejected (after recording the rejected order) on a rule."""
    order, reason = _submit(book, request, client_id)
    if reason is not None:
        raise OrderRejected(reason, response={"AppOrderID": order.app_order_id})
    return order


def submit_orders(
    *,
    book: PaperBook,
    requests: list[PlaceOrderRequest],
    client_id: str = "",
    in_callers_transaction: bool = False,
    rows: dict[int, BrokerOrderRow] | None = None,
) -> list[PaperOrder | OrderRejected]:
    """Place many orders in one go (in order, each accepted or rejected on its own): the
    order, or the OrderRejected that `submit_order` would have raised for it.
    `in_callers_transaction`, `rows`: see `_submit_many` (the caller rolls back on an
    error)."""
    return [
        order
        if reason is None
        else OrderRejected(reason, response={"AppOrderID": order.app_order_id})
        for order, reason in _submit_many(
            book,
            list(requests),
            client_id,
            in_callers_transaction=in_callers_transaction,
            rows=rows,
        )
    ]


def _locked_order(book: PaperBook, broker_order_id: str) -> PaperOrder:
    try:
        app_order_id = int(broker_order_id)
    except (TypeError, ValueError):
        raise OrderRejected(f"Order {broker_order_id!r} not found") from None
    order = (
        PaperOrder.objects.select_for_update()
        .select_related("instrument__fair_price")
        .filter(book=book, app_order_id=app_order_id)
        .first()
    )
    if order is None:
        raise OrderRejected(f"Order {broker_order_id} not found")
    if order.status not in PaperOrder.OPEN_STATUSES:
        raise OrderRejected(f"Order {broker_order_id} is {order.status} and cannot be changed")
    return order


def modify_order(*, book: PaperBook, request: ModifyOrderRequest) -> PaperOrder:
    """Change an open order's type, quantity or prices; it is matched again at once. The
    changed order must pass the placement rules, its margin included (what the order holds
    now counts as available again), as at a real broker."""
    config = paper_config()
    with transaction.atomic():
        # The book first, as a submission locks it: margin checks of one login take turns.
        book = _locked_book(book)
        order = _locked_order(book, request.broker_order_id)
        new = NewOrder(
            unique_identifier=order.unique_identifier,
            side=order.side,
            order_type=request.order_type or order.order_type,
            quantity=int(request.quantity),
            limit_price=request.limit_price,
            stop_price=request.stop_price,
        )
        instrument = order.instrument
        quote = quote_of(instrument)
        required, available = _modify_margin(book, order, new, quote, config)
        reason = rules_mod.validate_new_order(
            new,
            rules_of(instrument),
            quote,
            margin_required=required,
            margin_available=available,
        )
        if reason is None and new.quantity < order.filled_quantity:
            reason = f"Quantity {new.quantity} is below the {order.filled_quantity} already filled"
        if reason is not None:
            raise OrderRejected(reason)
        if new.order_type != order.order_type or new.stop_price != order.stop_price:
            order.triggered = False
        order.order_type = new.order_type
        order.quantity = new.quantity
        order.limit_price = new.limit_price
        order.stop_price = new.stop_price
        if request.product_type:
            order.product_type = request.product_type
        order.status = OrderState(
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            filled_quantity=order.filled_quantity,
        ).status
        fill = _apply_tick(order, instrument, config, timezone.now())
        order.save()
        if fill is not None:
            fill.save()
        publish_on_commit(orders=[order], fills=[fill] if fill else [], book=book)
        return order


def _modify_margin(
    book: PaperBook, order: PaperOrder, new: NewOrder, quote, config
) -> tuple[Decimal, Decimal | None]:
    """(required, available) margin for `order` changed to `new`: its unfilled rest priced
    as a new order, against the book's free margin plus what the order holds now. A change
    that needs no more than the order holds (a reduction) is not checked: (0, None)."""
    ref_price = rules_mod.reference_price(new, quote)
    remaining = new.quantity - order.filled_quantity
    if ref_price is None or remaining <= 0:
        return _ZERO, None
    state = book_state(book, config)
    key = (order.exchange_segment, int(order.exchange_instrument_id))
    required = rules_mod.required_margin(
        side=new.side,
        quantity=remaining,
        price=ref_price,
        net_position=state.net_positions.get(key, 0),
        config=config,
        multiplier=multiplier_of(order.instrument),
    )
    held = (resting_exposure(order, order.instrument) * config.margin_rate).quantize(
        Decimal("0.01")
    )
    if required <= held:
        return _ZERO, None
    return required, state.net_margin + held


def cancel_order(*, book: PaperBook, broker_order_id: str) -> PaperOrder:
    with transaction.atomic():
        order = _locked_order(book, broker_order_id)
        order.status = PaperOrder.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        publish_on_commit(orders=[order], book=book)
        return order


# ---- the whole account at once (the monitoring loop's step 1) ---------------------------


def book_snapshot(
    book: PaperBook, orders: Sequence[BookOrder] | None = None
) -> tuple[list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance]:
    """Order book, trade book, positions and balance in one pass: the four reads' answers
    from one load of the book (`orders`, when the caller loaded them with the book:
    `account_book_and_orders`). Matching runs first, as before every read, but takes its
    locks only when a quote really fills or triggers an open order; otherwise the orders
    already loaded are the book."""
    config = paper_config()
    if orders is None:
        orders = book_orders(book)
    if _needs_matching(orders, config):
        match_open_orders(book=book)
        orders = book_orders(book)
    return snapshot_of(book, orders, config)
