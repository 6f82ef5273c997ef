"""The paper exchange's book: which book a login trades in, how an instrument's rules and
prices read, and everything read from the book: order and trade rows, positions from the
fills, the margin state and balance, the whole account at once (`snapshot_of`).

Money is in rupees, as a real XTS broker reports it: a position's amounts and MTM, and every
exposure and margin, are price x quantity x the instrument's contract multiplier (10 for some
MCX contracts; 1 for an instrument the master lacks). Averages and marks stay prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection

from orders.brokers.base import (
    BrokerBalance,
    BrokerHoldingRow,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
)
from orders.brokers.paper import matching as rules_mod
from orders.brokers.paper.matching import InstrumentRules, OrderState, Quote
from orders.brokers.paper.models import PaperBook, PaperOrder, PaperTrade
from orders.domain.vocabulary import OrderType, ProductType, Side
from orders.market.models import Instrument
from trading_site.core.prepared import PreparedRows

_ZERO = Decimal("0")
_PLACES = Decimal("0.0001")
_CENTS = Decimal("0.01")


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
        multiplier=multiplier_of(instrument),
    )


def multiplier_of(instrument) -> int:
    """The contract multiplier; 1 for no instrument (one the master lacks)."""
    return (instrument.multiplier or 1) if instrument is not None else 1


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


def order_state_of(order: BookOrder) -> OrderState:
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


# ---- reads --------------------------------------------------------------------------


def order_row(order: BookOrder, *, exchange_order_id: str | None = None) -> BrokerOrderRow:
    """One order's row, as the order book shows it (a gateway's answer carries it); the
    exchange's order id is ours unless given (the XTS simulator numbers its own)."""
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
        exchange_order_id=exchange_order_id or str(order.app_order_id),
        client_id=order.client_id,
        time_in_force=order.time_in_force,
        generated_at=order.created_at,
        transact_time=order.last_fill_at or order.updated_at,
        updated_at=order.updated_at,
    )


def order_rows(book: PaperBook) -> list[BrokerOrderRow]:
    return [order_row(order) for order in PaperOrder.objects.filter(book=book).order_by("id")]


def _trade_row(trade: PaperTrade | LoadedTrade, order: BookOrder) -> BrokerTradeRow:
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


def trade_row(trade: PaperTrade, order: PaperOrder) -> BrokerTradeRow:
    """One fill's row, as the trade book shows it (the paper exchange's events carry it)."""
    return _trade_row(trade, order)


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


def _exact(value) -> Decimal:
    """SQL sums of price x quantity: exact DECIMAL on MariaDB; SQLite computes them in
    floating point, which is exact again once rounded to the prices' four places."""
    return Decimal(str(value or 0)).quantize(_PLACES)


# Per instrument and product of a book's fills: the buy/sell quantities and amounts.
_POSITION_SUMS = (
    "SELECT exchange_segment, exchange_instrument_id, product_type, MAX(trading_symbol), "
    "SUM(CASE WHEN side = %s THEN quantity ELSE 0 END), "
    "SUM(CASE WHEN side = %s THEN quantity ELSE 0 END), "
    "SUM(CASE WHEN side = %s THEN price * quantity ELSE 0 END), "
    "SUM(CASE WHEN side = %s THEN price * quantity ELSE 0 END) "
    "FROM paper_trades WHERE book_id = %s "
    "GROUP BY exchange_segment, exchange_instrument_id, product_type"
)


def _position_sums_params(book: PaperBook) -> list:
    buy, sell = Side.BUY.value, Side.SELL.value
    return [buy, sell, buy, sell, book.pk]


def _totals_of_sums(grouped) -> dict[tuple[str, int, str], _PositionTotals]:
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


def _position_totals(book: PaperBook) -> dict[tuple[str, int, str], _PositionTotals]:
    """Buy/sell quantities and amounts per instrument and product, summed in the database
    (one grouped query, however many fills the book holds). Plain parameterised SQL: it runs
    on every order placement, and the ORM's expression building cost more than the query."""
    with connection.cursor() as cursor:
        cursor.execute(_POSITION_SUMS, _position_sums_params(book))
        return _totals_of_sums(cursor.fetchall())


def _totals_of(
    trades: Iterable[PaperTrade | LoadedTrade],
) -> dict[tuple[str, int, str], _PositionTotals]:
    """`_position_totals` from the book's trades already loaded (the snapshot reads them
    all anyway): the same sums, without the grouped query."""
    totals: dict[tuple[str, int, str], _PositionTotals] = {}
    for trade in trades:
        key = (trade.exchange_segment, trade.exchange_instrument_id, trade.product_type)
        t = totals.get(key)
        if t is None:
            t = totals[key] = _PositionTotals(trading_symbol=trade.trading_symbol)
        else:
            t.trading_symbol = max(t.trading_symbol, trade.trading_symbol)
        if trade.side == Side.BUY:
            t.buy_qty += trade.quantity
            t.buy_amount += trade.price * trade.quantity
        elif trade.side == Side.SELL:
            t.sell_qty += trade.quantity
            t.sell_amount += trade.price * trade.quantity
    for t in totals.values():
        t.buy_amount = _exact(t.buy_amount)
        t.sell_amount = _exact(t.sell_amount)
    return totals


class Valuation(NamedTuple):
    """What values an instrument's position: its mark price (None: unpriced) and its
    contract multiplier."""

    mark: Decimal | None
    multiplier: int


# An instrument the master lacks: no price, and a unit worth its price.
_UNKNOWN = Valuation(mark=None, multiplier=1)


def valuation_of(instrument) -> Valuation:
    return Valuation(mark=mark_price_of(instrument), multiplier=multiplier_of(instrument))


def _valuations(
    keys, known: dict[tuple[str, int], Instrument] | None = None
) -> dict[tuple[str, int], Valuation]:
    """The valuation of each instrument of `keys`; `known`: instruments (with their fair
    prices) the caller has read just now, used when they cover every key."""
    if not keys:
        return {}
    if known is not None and keys <= known.keys():
        return {key: valuation_of(known[key]) for key in keys}
    instruments = Instrument.objects.select_related("fair_price").filter(
        exchange_instrument_id__in={instrument_id for _, instrument_id in keys}
    )
    return {
        (i.exchange_segment, i.exchange_instrument_id): valuation_of(i)
        for i in instruments
        if (i.exchange_segment, i.exchange_instrument_id) in keys
    }


def position_rows(book: PaperBook) -> list[BrokerPositionRow]:
    """Net positions from the fills, valued at the mark (average-cost realized PnL)."""
    totals = _position_totals(book)
    return _positions_from(totals, _valuations({(segment, iid) for segment, iid, _ in totals}))


def _positions_from(
    totals: dict[tuple[str, int, str], _PositionTotals],
    valuations: dict[tuple[str, int], Valuation],
) -> list[BrokerPositionRow]:
    rows = []
    for (segment, instrument_id, product), t in sorted(totals.items()):
        net = t.buy_qty - t.sell_qty
        # The averages are prices (the totals are price x quantity); the amounts and MTM
        # below are rupees: x the multiplier.
        buy_avg = (t.buy_amount / t.buy_qty).quantize(_PLACES) if t.buy_qty else None
        sell_avg = (t.sell_amount / t.sell_qty).quantize(_PLACES) if t.sell_qty else None
        mark, multiplier = valuations.get((segment, instrument_id), _UNKNOWN)
        if mark is None:
            mark = (buy_avg if net > 0 else sell_avg) or _ZERO
        closed = min(t.buy_qty, t.sell_qty)
        # Something closed: both sides traded, so both averages are there.
        realized = (
            (sell_avg - buy_avg) * closed * multiplier
            if closed and sell_avg is not None and buy_avg is not None
            else _ZERO
        )
        # Long: something was bought, so its average is there (short: sold, likewise).
        if net > 0 and buy_avg is not None:
            unrealized = (mark - buy_avg) * net * multiplier
        elif net < 0 and sell_avg is not None:
            unrealized = (sell_avg - mark) * -net * multiplier
        else:
            unrealized = _ZERO
        buy_amount, sell_amount = t.buy_amount * multiplier, t.sell_amount * multiplier
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
                buy_amount=buy_amount.quantize(_CENTS),
                sell_amount=sell_amount.quantize(_CENTS),
                net_amount=(sell_amount - buy_amount).quantize(_CENTS),
                realized_mtm=realized.quantize(_CENTS),
                unrealized_mtm=unrealized.quantize(_CENTS),
                mtm=(realized + unrealized).quantize(_CENTS),
            )
        )
    return rows


def holding_rows(book: PaperBook, *, before) -> list[BrokerHoldingRow]:
    """Delivery holdings: CNC positions carried over from the days before `before` (the
    current trading day's start), bought net long, at their average buy price. Grouped in SQL
    like the positions."""
    sql = (
        "SELECT exchange_segment, exchange_instrument_id, MAX(trading_symbol), "
        "SUM(CASE WHEN side = %s THEN quantity ELSE 0 END), "
        "SUM(CASE WHEN side = %s THEN quantity ELSE 0 END), "
        "SUM(CASE WHEN side = %s THEN price * quantity ELSE 0 END) "
        "FROM paper_trades WHERE book_id = %s AND product_type = %s AND traded_at < %s "
        "GROUP BY exchange_segment, exchange_instrument_id"
    )
    buy, sell = Side.BUY.value, Side.SELL.value
    # A raw query gets the instant as the column stores it (UTC): handed over as it is, the
    # driver would write Asia/Kolkata's wall clock, and until 05:30 IST a trade of the day
    # would count as a holding.
    stored_before = connection.ops.adapt_datetimefield_value(before)
    with connection.cursor() as cursor:
        cursor.execute(sql, [buy, sell, buy, book.pk, ProductType.CNC.value, stored_before])
        grouped = cursor.fetchall()
    rows = []
    for segment, instrument_id, symbol, bought, sold, amount in sorted(grouped):
        held = int(bought or 0) - int(sold or 0)
        if held <= 0:
            continue
        average = (_exact(amount) / int(bought)).quantize(_PLACES) if bought else None
        rows.append(
            BrokerHoldingRow(
                exchange_segment=segment,
                exchange_instrument_id=int(instrument_id),
                isin="",
                quantity=held,
                average_price=average,
                pledged_quantity=0,
                trading_symbol=symbol or "",
            )
        )
    return rows


# ---- exposure, margin and balance -----------------------------------------------------


# The rupees blocked by a book's open orders: priced orders summed in SQL, and how many are
# market orders (rare: they fill at once unless there is no price), valued at the market
# (`_open_order_exposure`). Index-only on the orders (see paper_book_open_exposure), each
# instrument's multiplier by its primary key. Laid out as a row of `_POSITION_SUMS` (eight
# columns), to be read with it in one statement: no segment (a position always has one),
# the market orders' count where a position's bought quantity is and the priced sum where
# its bought amount is (the same kinds of sums: no cast in the union).
_OPEN_EXPOSURE_SUMS = (
    "SELECT NULL, NULL, NULL, NULL, "
    "SUM(CASE WHEN o.order_type = %s THEN 1 ELSE 0 END), NULL, "
    "SUM(CASE WHEN o.order_type <> %s THEN (o.quantity - o.filled_quantity) * "
    "COALESCE(o.limit_price, o.stop_price, 0) * COALESCE(i.multiplier, 1) ELSE 0 END), NULL "
    "FROM paper_orders o LEFT JOIN instruments i ON i.id = o.instrument_id "
    "WHERE o.book_id = %s AND o.status IN (%s, %s)"
)


def _open_order_exposure(book: PaperBook, markets, priced) -> Decimal:
    """Rupees blocked by open orders (x their contracts' multipliers), from the sums of
    `_OPEN_EXPOSURE_SUMS`: the market orders' read only when there are any."""
    exposure = _exact(priced)
    if markets:
        open_market = PaperOrder.objects.filter(
            book=book, status__in=PaperOrder.OPEN_STATUSES, order_type=OrderType.MARKET.value
        ).select_related("instrument__fair_price")
        for order in open_market:
            exposure += resting_exposure(order, order.instrument)
    return exposure


def _book_sums(book: PaperBook) -> tuple[dict[tuple[str, int, str], _PositionTotals], Decimal]:
    """The book's position totals (`_position_totals`) and its open orders' exposure
    (`_open_order_exposure`), read in one statement: the margin check of every placement."""
    market = OrderType.MARKET.value
    params = [*_position_sums_params(book), market, market, book.pk, *PaperOrder.OPEN_STATUSES]
    with connection.cursor() as cursor:
        cursor.execute(f"{_POSITION_SUMS} UNION ALL {_OPEN_EXPOSURE_SUMS}", params)
        rows = cursor.fetchall()
    [(_, _, _, _, markets, _, priced, _)] = [row for row in rows if row[0] is None]
    totals = _totals_of_sums(row for row in rows if row[0] is not None)
    return totals, _open_order_exposure(book, markets, priced)


def resting_exposure(order: BookOrder, instrument) -> Decimal:
    """What a new, unfilled open order adds to `_open_order_exposure` (same pricing)."""
    if order.status not in PaperOrder.OPEN_STATUSES:
        return _ZERO
    if order.order_type == OrderType.MARKET:
        price = quote_of(instrument).price_for(order.side)
    else:
        price = order.limit_price if order.limit_price is not None else order.stop_price
    return (price or _ZERO) * (order.leaves_quantity * multiplier_of(instrument))


def _open_exposure_of(orders: Sequence[BookOrder]) -> Decimal:
    """`_open_order_exposure` over orders already loaded (with their instruments' prices)."""
    return sum((resting_exposure(order, order.instrument) for order in orders), _ZERO)


@dataclass
class BookState:
    """A book's margin inputs: equity (to the paisa), raw exposure, net quantity per
    instrument. A submission carries it forward in memory while it holds the book's lock."""

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

    @property
    def balance(self) -> BrokerBalance:
        return BrokerBalance(
            cash_available=self.equity, margin_utilized=self.margin, net_margin=self.net_margin
        )


def _state_from(
    book: PaperBook,
    positions: list[BrokerPositionRow],
    valuations: dict[tuple[str, int], Valuation],
    open_exposure: Decimal,
    config: rules_mod.PaperConfig,
) -> BookState:
    """The margin maths, in one place: equity = starting cash + the positions' MTM; exposure =
    the open orders' plus each net position at its mark (its average price when unpriced)
    x its contract multiplier."""
    # The paper book's own rows (position_rows) always carry their numbers: `or` only types.
    equity = book.starting_cash + sum((p.mtm or _ZERO for p in positions), _ZERO)
    exposure = open_exposure
    net_positions: dict[tuple[str, int], int] = {}
    for p in positions:
        key = (p.exchange_segment, p.exchange_instrument_id)
        net = p.net_qty or 0
        mark, multiplier = valuations.get(key, _UNKNOWN)
        if mark is None:
            mark = p.buy_avg_price if net > 0 else p.sell_avg_price
        exposure += abs(net) * multiplier * (mark or _ZERO)
        net_positions[key] = net_positions.get(key, 0) + net
    return BookState(
        equity=equity.quantize(_CENTS),
        exposure=exposure,
        net_positions=net_positions,
        margin_rate=config.margin_rate,
    )


def book_state(
    book: PaperBook,
    config: rules_mod.PaperConfig,
    instruments: dict[tuple[str, int], Instrument] | None = None,
) -> BookState:
    """The book's positions, equity and margin now. `instruments`: those the caller read
    with their fair prices just now (a submission's), whose marks need no read of their
    own when the book holds positions in them only."""
    totals, open_exposure = _book_sums(book)
    valuations = _valuations({(segment, iid) for segment, iid, _ in totals}, instruments)
    positions = _positions_from(totals, valuations)
    return _state_from(book, positions, valuations, open_exposure, config)


def compute_balance(book: PaperBook) -> BrokerBalance:
    """Equity = starting cash + MTM; margin = exposure of positions and open orders x rate."""
    return book_state(book, paper_config()).balance


def book_orders(book: PaperBook) -> list[PaperOrder]:
    return list(
        PaperOrder.objects.filter(book=book).select_related("instrument__fair_price").order_by("id")
    )


class _LoadedFairPrice(NamedTuple):
    buy_fair_price: Decimal | None
    sell_fair_price: Decimal | None
    avg_fair_price: Decimal | None
    last_traded_price: Decimal | None


class _LoadedInstrument(NamedTuple):
    exchange_segment: str
    exchange_instrument_id: int
    lot_size: int
    tick_size: Decimal
    freeze_quantity: int | None
    price_band_low: Decimal | None
    price_band_high: Decimal | None
    multiplier: int
    fair_price: _LoadedFairPrice | None


class LoadedOrder(NamedTuple):
    """A book's order as the monitoring snapshot reads it: the order's own columns (the
    names of `PaperOrder`'s), with its instrument's rules and fair prices, from one joined
    read of plain values (no model instances). The snapshot's functions read it as they
    read a `PaperOrder` (`pk`, `leaves_quantity`, `instrument`, `instrument.fair_price`)."""

    id: int
    app_order_id: int | None
    unique_identifier: str
    instrument_id: int | None
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    side: str
    order_type: str
    product_type: str
    time_in_force: str
    quantity: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    filled_quantity: int
    average_price: Decimal | None
    status: str
    reject_reason: str
    triggered: bool
    client_id: str
    created_at: datetime
    updated_at: datetime
    last_fill_at: datetime | None
    instrument: _LoadedInstrument | None

    @property
    def pk(self) -> int:
        return self.id

    @property
    def leaves_quantity(self) -> int:
        if self.status in PaperOrder.OPEN_STATUSES:
            return self.quantity - self.filled_quantity
        return 0


# The joined read's columns, in `LoadedOrder`'s order: the book's, the order's own (every
# field but `instrument`), the instrument's rules, then its fair price (its instrument id
# first: None when it has none).
_BOOK_FIELDS = ("id", "name", "account_id", "starting_cash", "created_at")
_BOOK_COLUMNS = tuple(f"book__{name}" for name in _BOOK_FIELDS)
_ORDER_COLUMNS = LoadedOrder._fields[:-1]
_INSTRUMENT_COLUMNS = tuple(f"instrument__{name}" for name in _LoadedInstrument._fields[:-1])
_FAIR_COLUMNS = tuple(
    f"instrument__fair_price__{name}" for name in ("instrument_id", *_LoadedFairPrice._fields)
)
_ORDER_AT = len(_BOOK_COLUMNS)
_INSTRUMENT_ID_AT = _ORDER_AT + _ORDER_COLUMNS.index("instrument_id")
_INSTRUMENT_AT = _ORDER_AT + len(_ORDER_COLUMNS)
_FAIR_AT = _INSTRUMENT_AT + len(_INSTRUMENT_COLUMNS)


# Read by every cycle for every paper account: compiled once (`PreparedRows`).
_BOOK_AND_ORDERS = PreparedRows(
    tuple,
    lambda *, account_id: (
        PaperOrder.objects.filter(book__account_id=account_id)
        .order_by("id")
        .values_list(*_BOOK_COLUMNS, *_ORDER_COLUMNS, *_INSTRUMENT_COLUMNS, *_FAIR_COLUMNS)
    ),
)


# What the snapshot's functions take: a model row, or the same columns read as values.
BookOrder = PaperOrder | LoadedOrder


class LoadedTrade(NamedTuple):
    """A book's fill as the monitoring snapshot reads it (the names of `PaperTrade`'s)."""

    order_id: int
    execution_id: str
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    side: str
    product_type: str
    quantity: int
    price: Decimal
    traded_at: datetime


_BOOK_TRADES = PreparedRows(
    LoadedTrade,
    lambda *, book_id: (
        PaperTrade.objects.filter(book_id=book_id).order_by("id").values_list(*LoadedTrade._fields)
    ),
)


def _loaded_order(row: tuple[Any, ...]) -> LoadedOrder:
    instrument = None
    if row[_INSTRUMENT_ID_AT] is not None:
        fair = None
        if row[_FAIR_AT] is not None:
            fair = _LoadedFairPrice._make(row[_FAIR_AT + 1 :])
        instrument = _LoadedInstrument._make((*row[_INSTRUMENT_AT:_FAIR_AT], fair))
    return LoadedOrder._make((*row[_ORDER_AT:_INSTRUMENT_AT], instrument))


def account_book_and_orders(account_id: int) -> tuple[PaperBook, list[LoadedOrder]]:
    """The account's book and its orders (as `book_orders` lists them, read as
    `LoadedOrder`s) in one query, the book joined to every order row; a book without orders
    (or none yet) is read (or created) on its own."""
    rows = _BOOK_AND_ORDERS(account_id=account_id)
    if not rows:
        return book_for_account(account_id), []
    book = PaperBook.from_db(PaperBook.objects.db, list(_BOOK_FIELDS), rows[0][:_ORDER_AT])
    return book, [_loaded_order(row) for row in rows]


def snapshot_of(
    book: PaperBook, orders: Sequence[BookOrder], config: rules_mod.PaperConfig
) -> tuple[list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance]:
    """Order book, trade book, positions and balance from the book's orders already loaded
    (with their instruments' prices): about five queries instead of some thirty."""
    by_id = {order.pk: order for order in orders}
    book_trades = _BOOK_TRADES(book_id=book.pk)
    trades = [_trade_row(trade, by_id[trade.order_id]) for trade in book_trades]
    totals = _totals_of(book_trades)
    keys = {(segment, iid) for segment, iid, _ in totals}
    valuations: dict[tuple[str, int], Valuation] = {}
    for order in orders:
        instrument = order.instrument
        if instrument is not None:
            key = (instrument.exchange_segment, instrument.exchange_instrument_id)
            if key in keys:
                valuations[key] = valuation_of(instrument)
    missing = keys - valuations.keys()
    if missing:
        valuations.update(_valuations(missing))
    positions = _positions_from(totals, valuations)
    balance = _state_from(book, positions, valuations, _open_exposure_of(orders), config).balance
    return [order_row(order) for order in orders], trades, positions, balance
