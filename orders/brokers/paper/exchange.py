"""The PAPER broker: a simulated exchange whose book lives in the database.

The book is shared by every process (web, workers, the XTS simulator) through the paper tables
(orders.brokers.paper.models). The matching rules are in `paper_matching` (pure); this module
loads orders and prices, applies the rules and writes fills. Matching runs whenever a price is
written (orders.market.services.record_fair_prices) and whenever a gateway reads the book.

Rejections come the two ways a real broker answers them: a rule broken at placement (lot,
freeze quantity, tick, price band, margin, unknown instrument) is an `OrderRejected` at once
(the rejected order still appears in the book, as at a real OMS); the explicit reject rate
accepts the order and the order book then shows it Rejected with a reason.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from orders.brokers import base
from orders.brokers.base import (
    BrokerBalance,
    BrokerGateway,
    BrokerLogin,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
    BrokerUnavailable,
    Credentials,
    ModifyOrderRequest,
    OrderAck,
    OrderRejected,
    PlaceOrderRequest,
    SessionContext,
)
from orders.brokers.paper import matching as rules_mod
from orders.brokers.paper.matching import InstrumentRules, NewOrder, OrderState, Quote
from orders.brokers.paper.models import PaperBook, PaperOrder, PaperTrade

logger = logging.getLogger(__name__)

APP_ORDER_ID_BASE = 1_000_000_000
SIMULATED_REJECT_REASON = "Rejected by the exchange (simulated reject rate)"
_ZERO = Decimal("0")


def paper_config() -> rules_mod.PaperConfig:
    """The paper exchange's behaviour, read from settings at call time (tests override)."""
    return rules_mod.PaperConfig(
        seed=int(settings.PAPER_SEED),
        slippage_bps=Decimal(str(settings.PAPER_SLIPPAGE_BPS)),
        fill_cap=int(settings.PAPER_FILL_CAP),
        reject_rate=Decimal(str(settings.PAPER_REJECT_RATE)),
        margin_rate=Decimal(str(settings.PAPER_MARGIN_RATE)),
    )


# ---- books --------------------------------------------------------------------------


def book_for_account(account_id: int) -> PaperBook:
    """The paper book of a PAPER broker account (created with the starting cash)."""
    book, _ = PaperBook.objects.get_or_create(
        account_id=account_id,
        defaults={
            "name": f"account:{account_id}",
            "starting_cash": Decimal(str(settings.PAPER_STARTING_CASH)),
        },
    )
    return book


def book_named(name: str) -> PaperBook:
    """A book that is not tied to an account (the XTS simulator's logins)."""
    book, _ = PaperBook.objects.get_or_create(
        name=name, defaults={"starting_cash": Decimal(str(settings.PAPER_STARTING_CASH))}
    )
    return book


# ---- instruments and prices ---------------------------------------------------------


def rules_of(instrument) -> InstrumentRules:
    return InstrumentRules(
        lot_size=instrument.lot_size or 1,
        tick_size=instrument.tick_size or Decimal("0.05"),
        freeze_quantity=instrument.freeze_quantity,
        band_low=instrument.price_band_low,
        band_high=instrument.price_band_high,
    )


def quote_of(instrument) -> Quote:
    fair = getattr(instrument, "fair_price", None) if instrument is not None else None
    if fair is None:
        return Quote(buy_price=None, sell_price=None)
    return Quote.from_prices(
        buy_fair_price=fair.buy_fair_price,
        sell_fair_price=fair.sell_fair_price,
        avg_fair_price=fair.avg_fair_price,
        last_traded_price=fair.last_traded_price,
    )


def mark_price_of(instrument) -> Decimal | None:
    """The price positions are valued at: LTP, else the average fair price, else the mid."""
    fair = getattr(instrument, "fair_price", None) if instrument is not None else None
    if fair is None:
        return None
    for price in (fair.last_traded_price, fair.avg_fair_price):
        if price is not None:
            return price
    if fair.buy_fair_price is not None and fair.sell_fair_price is not None:
        return (fair.buy_fair_price + fair.sell_fair_price) / 2
    return fair.buy_fair_price or fair.sell_fair_price


def _state_of(order: PaperOrder) -> OrderState:
    return OrderState(
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        triggered=order.triggered,
        average_price=order.average_price,
    )


# ---- matching -----------------------------------------------------------------------


def _apply_tick(order: PaperOrder, instrument, config, now) -> PaperTrade | None:
    """Match one locked open order against its instrument's quote; returns the new fill."""
    result = rules_mod.match_order(
        _state_of(order), quote_of(instrument), rules_of(instrument), config
    )
    if result.state.triggered != order.triggered:
        order.triggered = result.state.triggered
    if result.fill is None:
        return None
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
    from orders.models import Instrument

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
    return len(fills)


# ---- placement, modification, cancellation ------------------------------------------


def _new_order(book: PaperBook, request: PlaceOrderRequest, instrument, **fields) -> PaperOrder:
    """An unsaved order row (inserted by `_insert_orders`, which also sets app_order_id)."""
    return PaperOrder(
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
    if len(orders) == 1:
        orders[0].save(force_insert=True)
    else:
        PaperOrder.objects.bulk_create(orders)
        if any(order.pk is None for order in orders):  # a database that cannot return ids
            raise RuntimeError("paper order bulk insert did not return primary keys")
    PaperOrder.objects.filter(pk__in=[order.pk for order in orders]).update(
        app_order_id=F("id") + APP_ORDER_ID_BASE
    )
    for order in orders:
        order.app_order_id = APP_ORDER_ID_BASE + order.pk


def _instruments_for(requests) -> dict[tuple[str, int], object]:
    """The requests' instruments with their prices, in one query."""
    from orders.models import Instrument

    keys = {(r.exchange_segment, int(r.exchange_instrument_id)) for r in requests}
    found = Instrument.objects.select_related("fair_price").filter(
        exchange_instrument_id__in={iid for _, iid in keys}
    )
    return {
        (i.exchange_segment, i.exchange_instrument_id): i
        for i in found
        if (i.exchange_segment, i.exchange_instrument_id) in keys
    }


def _resting_exposure(order: PaperOrder, instrument) -> Decimal:
    """What a new, unfilled open order adds to `_open_order_exposure` (same pricing)."""
    if order.status not in PaperOrder.OPEN_STATUSES:
        return _ZERO
    if order.order_type == rules_mod.MARKET:
        price = quote_of(instrument).price_for(order.side)
    else:
        price = order.limit_price if order.limit_price is not None else order.stop_price
    return (price or _ZERO) * order.leaves_quantity


def _submit_many(
    book: PaperBook, requests: list[PlaceOrderRequest], client_id: str
) -> list[tuple[PaperOrder, str | None]]:
    """Place orders one after the other, exactly as separate submissions would, in one
    transaction with the book locked (concurrent orders of one login see each other's
    margin). Returns (order, reason) per request; reason is set for a rule rejection.

    The book's margin state is read from the database once and then carried forward in
    memory: an order that rests adds its exposure; an order that deals at once changes
    positions and equity, so the state is read again (after writing) for the next order.
    """
    config = paper_config()
    results: list[tuple[PaperOrder, str | None]] = []
    with transaction.atomic():
        book = PaperBook.objects.select_for_update().get(pk=book.pk)
        instruments = _instruments_for(requests)
        state: _BookState | None = None
        unsaved: list[PaperOrder] = []
        for request in requests:
            instrument = instruments.get(
                (request.exchange_segment, int(request.exchange_instrument_id))
            )
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
            quote = quote_of(instrument)
            ref_price = rules_mod.reference_price(new, quote)
            margin_required = _ZERO
            margin_available = None
            if ref_price is not None and new.quantity > 0:
                if state is None:
                    # The database must hold every order placed so far before it is read.
                    _insert_orders(unsaved)
                    unsaved = []
                    state = _book_state(book, config)
                margin_required = rules_mod.required_margin(
                    side=new.side,
                    quantity=new.quantity,
                    price=ref_price,
                    net_position=state.net_positions.get(
                        (request.exchange_segment, int(request.exchange_instrument_id)), 0
                    ),
                    config=config,
                )
                margin_available = state.net_margin
            reason = rules_mod.validate_new_order(
                new,
                rules_of(instrument),
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
            fill = _apply_tick(order, instrument, config, timezone.now())
            if fill is None:
                if state is not None:
                    state.exposure += _resting_exposure(order, instrument)
                continue
            _insert_orders(unsaved)
            unsaved = []
            fill.order = order
            fill.execution_id = f"{order.app_order_id}-{order.filled_quantity}"
            fill.save()
            state = None  # positions and equity changed: read them again when needed
        _insert_orders(unsaved)
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
    *, book: PaperBook, requests: list[PlaceOrderRequest], client_id: str = ""
) -> list[PaperOrder | OrderRejected]:
    """Place many orders in one go (in order, each accepted or rejected on its own): the
    order, or the OrderRejected that `submit_order` would have raised for it."""
    return [
        order
        if reason is None
        else OrderRejected(reason, response={"AppOrderID": order.app_order_id})
        for order, reason in _submit_many(book, list(requests), client_id)
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
    """Change an open order's type, quantity or prices; it is matched again at once."""
    with transaction.atomic():
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
        reason = rules_mod.validate_new_order(new, rules_of(instrument), quote_of(instrument))
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
        fill = _apply_tick(order, instrument, paper_config(), timezone.now())
        order.save()
        if fill is not None:
            fill.save()
        return order


def cancel_order(*, book: PaperBook, broker_order_id: str) -> PaperOrder:
    with transaction.atomic():
        order = _locked_order(book, broker_order_id)
        order.status = PaperOrder.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        return order


# ---- reads --------------------------------------------------------------------------


def _order_row(order: PaperOrder) -> BrokerOrderRow:
    return BrokerOrderRow(
        broker_order_id=str(order.app_order_id),
        unique_identifier=order.unique_identifier,
        exchange_segment=order.exchange_segment,
        exchange_instrument_id=order.exchange_instrument_id,
        trading_symbol=order.trading_symbol,
        side=order.side,
        order_type=order.order_type,
        product_type=order.product_type,
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        leaves_quantity=order.leaves_quantity,
        status=order.status,
        raw_status=order.status,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        average_price=order.average_price,
        reject_reason=order.reject_reason,
        exchange_order_id=str(order.app_order_id),
        client_id=order.client_id,
        time_in_force=order.time_in_force,
        generated_at=order.created_at,
        transact_time=order.last_fill_at or order.updated_at,
        updated_at=order.updated_at,
    )


def order_rows(book: PaperBook) -> list[BrokerOrderRow]:
    return [_order_row(order) for order in PaperOrder.objects.filter(book=book).order_by("id")]


def _trade_row(trade: PaperTrade, order: PaperOrder) -> BrokerTradeRow:
    return BrokerTradeRow(
        execution_id=trade.execution_id,
        broker_order_id=str(order.app_order_id),
        unique_identifier=order.unique_identifier,
        exchange_segment=trade.exchange_segment,
        exchange_instrument_id=trade.exchange_instrument_id,
        trading_symbol=trade.trading_symbol,
        side=trade.side,
        product_type=trade.product_type,
        quantity=trade.quantity,
        price=trade.price,
        traded_at=trade.traded_at,
    )


def trade_rows(book: PaperBook) -> list[BrokerTradeRow]:
    return [
        _trade_row(trade, trade.order)
        for trade in PaperTrade.objects.filter(book=book).select_related("order").order_by("id")
    ]


@dataclass
class _PositionTotals:
    trading_symbol: str = ""
    buy_qty: int = 0
    sell_qty: int = 0
    buy_amount: Decimal = _ZERO
    sell_amount: Decimal = _ZERO


_PLACES = Decimal("0.0001")
_CENTS = Decimal("0.01")


def _exact(value) -> Decimal:
    """SQL sums of price x quantity: exact DECIMAL on MariaDB; SQLite computes them in
    floating point, which is exact again once rounded to the prices' four places."""
    return Decimal(str(value or 0)).quantize(_PLACES)


def _position_totals(book: PaperBook) -> dict[tuple[str, int, str], _PositionTotals]:
    """Buy/sell quantities and amounts per instrument and product, summed in the database
    (one grouped query, however many fills the book holds). Plain parameterised SQL: it runs
    on every order placement, and the ORM's expression building cost more than the query."""
    sql = (
        "SELECT exchange_segment, exchange_instrument_id, product_type, MAX(trading_symbol), "
        "SUM(CASE WHEN side = %s THEN quantity ELSE 0 END), "
        "SUM(CASE WHEN side = %s THEN quantity ELSE 0 END), "
        "SUM(CASE WHEN side = %s THEN price * quantity ELSE 0 END), "
        "SUM(CASE WHEN side = %s THEN price * quantity ELSE 0 END) "
        "FROM paper_trades WHERE book_id = %s "
        "GROUP BY exchange_segment, exchange_instrument_id, product_type"
    )
    buy, sell = rules_mod.BUY, rules_mod.SELL
    with connection.cursor() as cursor:
        cursor.execute(sql, [buy, sell, buy, sell, book.pk])
        grouped = cursor.fetchall()
    return {
        (segment, int(instrument_id), product): _PositionTotals(
            trading_symbol=symbol or "",
            buy_qty=int(buy_qty or 0),
            sell_qty=int(sell_qty or 0),
            buy_amount=_exact(buy_amount),
            sell_amount=_exact(sell_amount),
        )
        for segment, instrument_id, product, symbol, buy_qty, sell_qty, buy_amount, sell_amount in (
            grouped
        )
    }


def _marks(keys) -> dict[tuple[str, int], Decimal | None]:
    from orders.models import Instrument

    if not keys:
        return {}
    instruments = Instrument.objects.select_related("fair_price").filter(
        exchange_instrument_id__in={instrument_id for _, instrument_id in keys}
    )
    return {
        (i.exchange_segment, i.exchange_instrument_id): mark_price_of(i)
        for i in instruments
        if (i.exchange_segment, i.exchange_instrument_id) in keys
    }


def position_rows(book: PaperBook) -> list[BrokerPositionRow]:
    """Net positions from the fills, valued at the mark (average-cost realized PnL)."""
    totals = _position_totals(book)
    return _positions_from(totals, _marks({(segment, iid) for segment, iid, _ in totals}))


def _positions_from(totals, marks) -> list[BrokerPositionRow]:
    rows = []
    for (segment, instrument_id, product), t in sorted(totals.items()):
        net = t.buy_qty - t.sell_qty
        buy_avg = (t.buy_amount / t.buy_qty).quantize(_PLACES) if t.buy_qty else None
        sell_avg = (t.sell_amount / t.sell_qty).quantize(_PLACES) if t.sell_qty else None
        mark = marks.get((segment, instrument_id))
        if mark is None:
            mark = (buy_avg if net > 0 else sell_avg) or _ZERO
        closed = min(t.buy_qty, t.sell_qty)
        realized = (sell_avg - buy_avg) * closed if closed else _ZERO
        if net > 0:
            unrealized = (mark - buy_avg) * net
        elif net < 0:
            unrealized = (sell_avg - mark) * -net
        else:
            unrealized = _ZERO
        rows.append(
            BrokerPositionRow(
                exchange_segment=segment,
                exchange_instrument_id=instrument_id,
                trading_symbol=t.trading_symbol,
                product_type=product,
                net_qty=net,
                buy_qty=t.buy_qty,
                sell_qty=t.sell_qty,
                buy_avg_price=buy_avg,
                sell_avg_price=sell_avg,
                buy_amount=t.buy_amount.quantize(_CENTS),
                sell_amount=t.sell_amount.quantize(_CENTS),
                net_amount=(t.sell_amount - t.buy_amount).quantize(_CENTS),
                realized_mtm=realized.quantize(_CENTS),
                unrealized_mtm=unrealized.quantize(_CENTS),
                mtm=(realized + unrealized).quantize(_CENTS),
            )
        )
    return rows


def _open_order_exposure(book: PaperBook) -> Decimal:
    """Rupees blocked by open orders: priced orders summed in SQL, market orders (rare: they
    fill at once unless there is no price) at the market. One query (index-only, see
    paper_book_open_exposure) when there are no open market orders."""
    sql = (
        "SELECT SUM(CASE WHEN order_type <> %s THEN (quantity - filled_quantity) * "
        "COALESCE(limit_price, stop_price, 0) ELSE 0 END), "
        "SUM(CASE WHEN order_type = %s THEN 1 ELSE 0 END) "
        "FROM paper_orders WHERE book_id = %s AND status IN (%s, %s)"
    )
    market = rules_mod.MARKET
    with connection.cursor() as cursor:
        cursor.execute(sql, [market, market, book.pk, *PaperOrder.OPEN_STATUSES])
        priced, markets = cursor.fetchone()
    exposure = _exact(priced)
    if markets:
        open_market = PaperOrder.objects.filter(
            book=book, status__in=PaperOrder.OPEN_STATUSES, order_type=market
        ).select_related("instrument__fair_price")
        for order in open_market:
            price = quote_of(order.instrument).price_for(order.side)
            exposure += (price or _ZERO) * order.leaves_quantity
    return exposure


@dataclass
class _BookState:
    """A book's margin inputs: equity (to the paisa), raw exposure, net quantity per
    instrument. `compute_balance` derives the balance from it; a submission carries it
    forward in memory while it holds the book's lock."""

    equity: Decimal
    exposure: Decimal
    net_positions: dict[tuple[str, int], int]
    margin_rate: Decimal

    @property
    def margin(self) -> Decimal:
        return (self.exposure * self.margin_rate).quantize(_CENTS)

    @property
    def net_margin(self) -> Decimal:
        return self.equity - self.margin


def _book_state(book: PaperBook, config) -> _BookState:
    totals = _position_totals(book)
    marks = _marks({(segment, iid) for segment, iid, _ in totals})
    positions = _positions_from(totals, marks)
    equity = book.starting_cash + sum((p.mtm for p in positions), _ZERO)
    exposure = _open_order_exposure(book)
    net_positions: dict[tuple[str, int], int] = {}
    for p in positions:
        key = (p.exchange_segment, p.exchange_instrument_id)
        mark = marks.get(key)
        if mark is None:
            mark = p.buy_avg_price if p.net_qty > 0 else p.sell_avg_price
        exposure += abs(p.net_qty) * (mark or _ZERO)
        net_positions[key] = net_positions.get(key, 0) + p.net_qty
    return _BookState(
        equity=equity.quantize(_CENTS),
        exposure=exposure,
        net_positions=net_positions,
        margin_rate=config.margin_rate,
    )


def compute_balance(book: PaperBook) -> BrokerBalance:
    """Equity = starting cash + MTM; margin = exposure of positions and open orders x rate."""
    state = _book_state(book, paper_config())
    return BrokerBalance(
        cash_available=state.equity, margin_utilized=state.margin, net_margin=state.net_margin
    )


# ---- the whole account at once (the monitoring loop's step 1) ---------------------------


def _needs_matching(orders: list[PaperOrder], config) -> bool:
    """Whether a tick would fill or trigger any of these open orders at the current quotes:
    the same rules as `match_open_orders`, without locks or writes."""
    for order in orders:
        if order.status not in PaperOrder.OPEN_STATUSES or order.instrument_id is None:
            continue
        instrument = order.instrument
        result = rules_mod.match_order(
            _state_of(order), quote_of(instrument), rules_of(instrument), config
        )
        if result.fill is not None or result.state.triggered != order.triggered:
            return True
    return False


def _book_orders(book: PaperBook) -> list[PaperOrder]:
    return list(
        PaperOrder.objects.filter(book=book).select_related("instrument__fair_price").order_by("id")
    )


def _open_exposure_of(orders: list[PaperOrder]) -> Decimal:
    """`_open_order_exposure` over orders already loaded (with their instruments' prices)."""
    return sum((_resting_exposure(order, order.instrument) for order in orders), _ZERO)


def book_snapshot(
    book: PaperBook,
) -> tuple[list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance]:
    """Order book, trade book, positions and balance in one pass: the four reads' answers
    from one load of the book (about five queries instead of some thirty). Matching runs
    first, as before every read, but takes its locks only when a quote really fills or
    triggers an open order; otherwise the orders already loaded are the book."""
    config = paper_config()
    orders = _book_orders(book)
    if _needs_matching(orders, config):
        match_open_orders(book=book)
        orders = _book_orders(book)
    by_id = {order.pk: order for order in orders}
    trades = [
        _trade_row(trade, by_id[trade.order_id])
        for trade in PaperTrade.objects.filter(book=book).order_by("id")
    ]
    totals = _position_totals(book)
    keys = {(segment, iid) for segment, iid, _ in totals}
    marks: dict[tuple[str, int], Decimal | None] = {}
    for order in orders:
        instrument = order.instrument
        if instrument is not None:
            key = (instrument.exchange_segment, instrument.exchange_instrument_id)
            if key in keys:
                marks[key] = mark_price_of(instrument)
    missing = keys - marks.keys()
    if missing:
        marks.update(_marks(missing))
    positions = _positions_from(totals, marks)
    equity = book.starting_cash + sum((p.mtm for p in positions), _ZERO)
    exposure = _open_exposure_of(orders)
    for p in positions:
        mark = marks.get((p.exchange_segment, p.exchange_instrument_id))
        if mark is None:
            mark = p.buy_avg_price if p.net_qty > 0 else p.sell_avg_price
        exposure += abs(p.net_qty) * (mark or _ZERO)
    state = _BookState(
        equity=equity.quantize(_CENTS),
        exposure=exposure,
        net_positions={},
        margin_rate=config.margin_rate,
    )
    balance = BrokerBalance(
        cash_available=state.equity, margin_utilized=state.margin, net_margin=state.net_margin
    )
    return [_order_row(order) for order in orders], trades, positions, balance


# ---- the gateway --------------------------------------------------------------------


def _guard_database(function):
    """Only broker errors leave a gateway: a database failure is 'unavailable'."""

    async def wrapper(*args, **kwargs):
        try:
            return await function(*args, **kwargs)
        except base.BrokerError:
            raise
        except DatabaseError as exc:
            logger.warning("paper exchange database error: %s", exc)
            raise BrokerUnavailable(f"paper exchange unavailable: {exc}") from exc

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _book_for_session(session: SessionContext) -> PaperBook:
    return book_for_account(session.account_id)


def _ack(order: PaperOrder) -> OrderAck:
    return OrderAck(
        broker_order_id=str(order.app_order_id),
        unique_identifier=order.unique_identifier,
        raw={"AppOrderID": order.app_order_id, "status": order.status},
    )


class PaperGateway(BrokerGateway):
    """The PAPER broker behind the one interface; every call is a short DB transaction."""

    @_guard_database
    async def login(self, credentials: Credentials) -> BrokerLogin:
        ttl = int(settings.PAPER_SESSION_TTL_SECONDS)
        return BrokerLogin(
            access_token=secrets.token_urlsafe(24),
            expires_at=timezone.now() + timedelta(seconds=ttl),
            broker_user_id=credentials.user_id or "PAPER",
            is_investor_client=True,
        )

    async def logout(self, session: SessionContext) -> None:
        return None

    @_guard_database
    async def place_order(self, session: SessionContext, request: PlaceOrderRequest) -> OrderAck:
        def place():
            return submit_order(book=_book_for_session(session), request=request)

        return _ack(await sync_to_async(place)())

    @_guard_database
    async def place_orders(
        self, session: SessionContext, requests: list[PlaceOrderRequest]
    ) -> list[OrderAck | OrderRejected]:
        """Many orders in one transaction (a batch): the ack, or the rejection, per request."""

        def place():
            return submit_orders(book=_book_for_session(session), requests=requests)

        return [
            answer if isinstance(answer, OrderRejected) else _ack(answer)
            for answer in await sync_to_async(place)()
        ]

    @_guard_database
    async def modify_order(self, session: SessionContext, request: ModifyOrderRequest) -> OrderAck:
        def modify():
            return modify_order(book=_book_for_session(session), request=request)

        return _ack(await sync_to_async(modify)())

    @_guard_database
    async def cancel_order(
        self, session: SessionContext, broker_order_id: str, unique_identifier: str
    ) -> OrderAck:
        def cancel():
            return cancel_order(book=_book_for_session(session), broker_order_id=broker_order_id)

        return _ack(await sync_to_async(cancel)())

    async def _read(self, session: SessionContext, reader):
        def read():
            book = _book_for_session(session)
            match_open_orders(book=book)
            return reader(book)

        return await sync_to_async(read)()

    @_guard_database
    async def order_book(self, session: SessionContext) -> list[BrokerOrderRow]:
        return await self._read(session, order_rows)

    @_guard_database
    async def trade_book(self, session: SessionContext) -> list[BrokerTradeRow]:
        return await self._read(session, trade_rows)

    @_guard_database
    async def positions(self, session: SessionContext) -> list[BrokerPositionRow]:
        return await self._read(session, position_rows)

    @_guard_database
    async def balance(self, session: SessionContext) -> BrokerBalance:
        return await self._read(session, compute_balance)

    @_guard_database
    async def snapshot(
        self, session: SessionContext
    ) -> tuple[list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance]:
        """order_book, trade_book, positions and balance of one moment, in one read."""

        def read():
            return book_snapshot(_book_for_session(session))

        return await sync_to_async(read)()
