"""FIFO PnL of a broker account, persisted (the monitoring loop's step 2; SPEC 7).

`compute_account_pnl` reads the account's fills, re-matches with `pnl.fifo` only the
instruments whose fills changed since the last run, and in one transaction (holding the
account row's lock, taken first, so two runs for one account never interleave, and the
account's exclusion: orders.services.account_lock):
- replaces the lots of the re-matched instruments (delete those instruments' rows of this
  account, then bulk insert; nothing of any other account or instrument is touched, and
  never a table-wide truncate), and re-values every open lot at the current fair prices;
- upserts today's `PnlDaily`;
- attributes each order's `pnl` and `open_position` from the lots of its legs;
- writes the account's realized / unrealized / total MTM.

Fills come from the trade book (`BrokerTrade`, one row per execution). An account with no
trade rows at all falls back to its order book (`BrokerOrder`): one fill per order that
traded, its cumulative quantity at its average price, at its exchange transact time.

Money is in rupees: each fill's figures (lots, marks, turnover) are x its instrument's
contract multiplier from the instrument master (1 for an instrument the master lacks), as
XTS's own position amounts are.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.audit import change_words, field_values
from accounts.models import BrokerAccount
from orders.domain.vocabulary import EventKind
from orders.market.selectors import instruments_filter
from orders.models import BrokerOrder, BrokerTrade, Order, OrderLeg
from orders.services.account_lock import conflicts_are_busy
from orders.services.audit import record_account_event, record_account_setting_saved
from orders.services.exclusion import account_exclusion
from pnl import fifo, selectors
from pnl.models import BrokeragePlanSetting, PnlDaily, PnlInstrumentState, PnlLot
from trading_site.core.bulk_rows import bulk_update_rows
from trading_site.core.errors import Busy, Conflict
from trading_site.core.market_hours import MARKET_TZ
from trading_site.core.prepared import PreparedModels, PreparedRows

logger = logging.getLogger(__name__)

TRADING_TZ = MARKET_TZ
CENTS = Decimal("0.01")
ZERO = Decimal("0")

InstrumentKey = tuple[str, int]  # (exchange segment, exchange instrument id)
Terms = dict[InstrumentKey, selectors.InstrumentTerms]  # multiplier and marks per instrument


def to_money(value: Decimal) -> Decimal:
    """Quantize to paise at the edge (half up, as brokers' contract notes round)."""
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class InstrumentPnl:
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    realized: Decimal  # exact
    unrealized: Decimal  # exact, at this run's marks
    open_quantity: int  # signed: + long, - short
    fill_count: int
    rematched: bool  # False: fills unchanged since the last run, stored lots kept


@dataclass(frozen=True)
class DailyFigures:
    trading_date: date
    realized: Decimal
    unrealized: Decimal
    turnover: Decimal
    fills: int


@dataclass(frozen=True)
class AccountPnl:
    """What one run computed. Account figures are quantized to 2 places; total = the sum."""

    account_id: int
    realized: Decimal
    unrealized: Decimal
    total: Decimal
    computed_at: datetime
    today: DailyFigures
    instruments: list[InstrumentPnl] = field(default_factory=list)
    lots_written: int = 0
    orders_updated: int = 0

    @property
    def rematched_instruments(self) -> list[InstrumentKey]:
        return [
            (i.exchange_segment, i.exchange_instrument_id) for i in self.instruments if i.rematched
        ]


@dataclass
class _AccountFills:
    by_instrument: dict[InstrumentKey, list[fifo.Fill]]
    symbols: dict[InstrumentKey, str]


def trading_day_bounds(at: datetime) -> tuple[date, datetime, datetime]:
    """The Asia/Kolkata trading date of `at` and its [start, end) instants."""
    day = timezone.localtime(at, TRADING_TZ).date()
    return day, *day_bounds(day)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The [start, end) instants of an Asia/Kolkata trading date."""
    start = datetime.combine(day, clock.min, tzinfo=TRADING_TZ)
    return start, start + timedelta(days=1)


# Read by every PnL computation (each cycle's, each broker event's): compiled once.
_TRADES = PreparedRows(
    tuple,
    lambda *, account_id: (
        BrokerTrade.objects.filter(account_id=account_id, quantity__gt=0)
        .order_by("traded_at", "id")
        .values_list(
            "execution_id",
            "broker_order_id",
            "exchange_segment",
            "exchange_instrument_id",
            "trading_symbol",
            "side",
            "quantity",
            "price",
            "traded_at",
        )
    ),
)
_LEGS_AT_BROKER = PreparedRows(
    tuple,
    lambda *, account_id: (
        OrderLeg.objects.filter(account_id=account_id, broker_order_id__isnull=False)
        .exclude(broker_order_id="")
        .order_by("id")
        .values_list("broker_order_id", "id", "order_id")
    ),
)
_STATES = PreparedModels(
    PnlInstrumentState,
    lambda *, account_id: PnlInstrumentState.objects.filter(account_id=account_id),
)
_ACCOUNT_FOR_UPDATE = PreparedModels(
    BrokerAccount, lambda *, id: BrokerAccount.objects.select_for_update().filter(pk=id)
)


def _read_fills(account: BrokerAccount) -> _AccountFills:
    by_instrument: dict[InstrumentKey, list[fifo.Fill]] = defaultdict(list)
    symbols: dict[InstrumentKey, str] = {}
    rows: list[tuple[Any, ...]] = _TRADES(account_id=account.pk)
    if not rows:
        # No trade book: one fill per traded order, from the order book snapshot.
        rows = list(
            BrokerOrder.objects.filter(
                account=account, cumulative_quantity__gt=0, average_traded_price__isnull=False
            )
            .annotate(
                fill_time=Coalesce(
                    "exchange_transact_time", "last_update_time", "generated_at", "synced_at"
                )
            )
            .order_by("fill_time", "id")
            .values_list(
                "broker_order_id",
                "broker_order_id",
                "exchange_segment",
                "exchange_instrument_id",
                "trading_symbol",
                "side",
                "cumulative_quantity",
                "average_traded_price",
                "fill_time",
            )
        )
        rows = [(f"order:{row[0]}", *row[1:]) for row in rows]
    for fill_id, order_id, segment, instrument_id, symbol, side, quantity, price, at in rows:
        key = (segment, instrument_id)
        by_instrument[key].append(fifo.Fill(fill_id, order_id, side, quantity, price, at))
        if symbol and key not in symbols:
            symbols[key] = symbol
    return _AccountFills(by_instrument=dict(by_instrument), symbols=symbols)


def _legs_by_broker_order_id(account: BrokerAccount) -> dict[str, tuple[int, int]]:
    """broker order id -> (leg id, order id) for the account's legs the broker knows."""
    legs: dict[str, tuple[int, int]] = {}
    for broker_order_id, leg_id, order_id in _LEGS_AT_BROKER(account_id=account.pk):
        assert broker_order_id is not None  # filtered out above
        legs.setdefault(broker_order_id, (leg_id, order_id))
    return legs


def _leg_salt(fills: list[fifo.Fill], legs: dict[str, tuple[int, int]]) -> str:
    """Which legs the instrument's order ids map to: a leg learning its broker order id later
    must re-link the stored lots, so it changes the fingerprint too."""
    order_ids = sorted({fill.order_id for fill in fills})
    text = ";".join(f"{oid}={legs.get(oid, ('', ''))[0]}" for oid in order_ids)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _quote(terms: Terms, key: InstrumentKey) -> fifo.Quote | None:
    found = terms.get(key)
    if found is None:
        return None
    return fifo.Quote(
        buy_fair_price=found.buy_fair_price,
        sell_fair_price=found.sell_fair_price,
        last_traded_price=found.last_traded_price,
    )


def _multipliers(terms: Terms, keys: Iterable[InstrumentKey]) -> dict[InstrumentKey, int]:
    """Each instrument's contract multiplier; 1 for one the instrument master lacks (a fill of
    it is re-matched when the master brings another: the multiplier is in its fingerprint)."""
    return {key: terms[key].multiplier if key in terms else 1 for key in keys}


def _new_lot_rows(
    *,
    account: BrokerAccount,
    key: InstrumentKey,
    symbol: str,
    result: fifo.FifoResult,
    valuation: fifo.Valuation,
    legs: dict[str, tuple[int, int]],
    now: datetime,
) -> list[dict]:
    """PnlLot column values (by attname) for one instrument's FIFO result."""
    segment, instrument_id = key
    common = {
        "account_id": account.pk,
        "exchange_segment": segment,
        "exchange_instrument_id": instrument_id,
        "trading_symbol": symbol[:100],
        "computed_at": now,
    }
    no_leg = (None, None)
    rows = []
    for lot in result.matched:
        entry, exit_ = lot.entry, lot.exit
        rows.append(
            {
                **common,
                "kind": PnlLot.Kind.MATCHED.value,
                "entry_side": entry.side,
                "quantity": lot.quantity,
                "entry_order_id": entry.order_id,
                "entry_leg_id": legs.get(entry.order_id, no_leg)[0],
                "entry_time": entry.time,
                "entry_price": entry.price,
                "exit_order_id": exit_.order_id,
                "exit_leg_id": legs.get(exit_.order_id, no_leg)[0],
                "exit_time": exit_.time,
                "exit_price": exit_.price,
                "realized_pnl": lot.realized_pnl,
            }
        )
    for valued in valuation.lots:
        entry = valued.lot.entry
        rows.append(
            {
                **common,
                "kind": PnlLot.Kind.OPEN.value,
                "entry_side": entry.side,
                "quantity": valued.lot.quantity,
                "entry_order_id": entry.order_id,
                "entry_leg_id": legs.get(entry.order_id, no_leg)[0],
                "entry_time": entry.time,
                "entry_price": entry.price,
                "fair_price_used": valued.mark_price,
                "unrealized_pnl": valued.unrealized_pnl,
            }
        )
    return rows


def _insert_lot_rows(rows: list[dict], *, batch_size: int = 1000) -> None:
    """Insert PnlLot rows with one parameterised executemany per batch.

    A busy instrument re-matched every minute writes thousands of lots; `bulk_create` spends
    most of its time building model instances and compiling SQL per value, this about a
    fifth. Values are adapted by each field's own `get_db_prep_save` where the type needs it
    (datetimes, decimals); fields a row does not name get the field's default.
    """
    if not rows:
        return
    fields = [f for f in PnlLot._meta.concrete_fields if not f.primary_key]
    adapt = [isinstance(f, (models.DateTimeField, models.DecimalField)) for f in fields]
    defaults = [f.get_default() for f in fields]
    table = connection.ops.quote_name(PnlLot._meta.db_table)
    # A concrete field always has its column (Field.column is Optional only before setup).
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)  # type: ignore[arg-type]
    placeholders = ", ".join(["%s"] * len(fields))
    # Identifiers come from the model's metadata (quoted), values only through parameters.
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
    plan = list(zip(fields, adapt, defaults, strict=True))
    params = [
        [
            field.get_db_prep_save(row.get(field.attname, default), connection)
            if needs_adapting
            else row.get(field.attname, default)
            for field, needs_adapting, default in plan
        ]
        for row in rows
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(params), batch_size):
            cursor.executemany(sql, params[start : start + batch_size])


def _revalue_stored_open_lots(
    *,
    account: BrokerAccount,
    keys: set[InstrumentKey],
    terms: Terms,
    multipliers: dict[InstrumentKey, int],
    now: datetime,
) -> dict[InstrumentKey, Decimal]:
    """Fills unchanged, prices moved: re-mark the stored open lots of these instruments (their
    multipliers are unchanged too: a new one changes the fingerprint, and so re-matches)."""
    unrealized: dict[InstrumentKey, Decimal] = dict.fromkeys(keys, ZERO)
    if not keys:
        return unrealized
    lots = list(
        PnlLot.objects.filter(account=account, kind=PnlLot.Kind.OPEN).filter(
            instruments_filter(keys)
        )
    )
    for lot in lots:
        key = (lot.exchange_segment, lot.exchange_instrument_id)
        mark = fifo.mark_price_for(lot.entry_side, _quote(terms, key))
        if mark is None:
            lot.fair_price_used, lot.unrealized_pnl = None, ZERO
        else:
            lot.fair_price_used = mark
            lot.unrealized_pnl = fifo.lot_unrealized_pnl(
                lot.entry_side, lot.entry_price, lot.quantity, mark, multiplier=multipliers[key]
            )
        lot.computed_at = now
        unrealized[key] += lot.unrealized_pnl
    bulk_update_rows(PnlLot, lots, ["fair_price_used", "unrealized_pnl", "computed_at"])
    return unrealized


def _attribute_orders(
    *, account: BrokerAccount, legs: dict[str, tuple[int, int]], now: datetime
) -> int:
    """Each order's pnl and open_position from the lots whose ENTRY leg is one of its legs.

    Rule: a matched lot's realized PnL belongs to the order owning the lot's entry leg (the
    position it opened was closed, whether by its own SL/TP legs or by a manual exit order);
    an open lot's unrealized PnL and signed quantity belong to the order owning its entry
    leg. So order.pnl = realized of its matched lots + unrealized of its open lots (2 places),
    order.open_position = long open units - short open units of its open lots. An exit-only
    order (a square-off) owns no lot and shows 0. Orders of the account with no lots get 0.
    Returns the number of orders whose figures changed.
    """
    totals: dict[int, list] = defaultdict(lambda: [ZERO, 0])
    grouped = (
        PnlLot.objects.filter(account=account)
        .values("entry_order_id", "kind", "entry_side")
        .annotate(
            realized=Sum("realized_pnl"), unrealized=Sum("unrealized_pnl"), qty=Sum("quantity")
        )
        .order_by()
    )
    for row in grouped:
        owner = legs.get(row["entry_order_id"])
        if owner is None:
            continue  # a fill of an order placed outside this system
        figures = totals[owner[1]]
        if row["kind"] == PnlLot.Kind.MATCHED:
            figures[0] += row["realized"] or ZERO
        else:
            figures[0] += row["unrealized"] or ZERO
            figures[1] += row["qty"] if row["entry_side"] == fifo.BUY else -row["qty"]
    candidates = Order.objects.filter(account=account).filter(
        Q(pk__in=list(totals)) | ~Q(pnl=0) | ~Q(open_position=0)
    )
    changed = []
    for order in candidates.only("id", "pnl", "open_position"):
        pnl, open_position = totals.get(order.pk, (ZERO, 0))
        pnl = to_money(pnl)
        if order.pnl != pnl or order.open_position != open_position:
            order.pnl, order.open_position, order.updated_at = pnl, open_position, now
            changed.append(order)
    bulk_update_rows(Order, changed, ["pnl", "open_position", "updated_at"])
    return len(changed)


def _day_figures(
    *,
    account: BrokerAccount,
    fills: _AccountFills,
    multipliers: dict[InstrumentKey, int],
    unrealized: Decimal,
    day: date,
) -> DailyFigures:
    """One trading day (Asia/Kolkata), from the stored lots and the fills: realized of the
    lots whose EXIT happened that day (the day the profit was booked, wherever the entry
    was), `unrealized` as given (the caller's valuation), turnover = sum(quantity x price x
    multiplier) of the day's fills of both sides (rupees, as the charges count it), fills =
    how many of them. Today's row (each run) and a past day's (`recompute_past_days`)."""
    start, end = day_bounds(day)
    realized = (
        PnlLot.objects.filter(
            account=account, kind=PnlLot.Kind.MATCHED, exit_time__gte=start, exit_time__lt=end
        ).aggregate(total=Sum("realized_pnl"))["total"]
        or ZERO
    )
    turnover, count = ZERO, 0
    for key, instrument_fills in fills.by_instrument.items():
        multiplier = multipliers[key]
        for fill in instrument_fills:
            if start <= fill.time < end:
                turnover += fill.price * fill.quantity * multiplier
                count += 1
    return DailyFigures(
        trading_date=day,
        realized=to_money(realized),
        unrealized=to_money(unrealized),
        turnover=to_money(turnover),
        fills=count,
    )


def compute_account_pnl(*, account: BrokerAccount, now: datetime | None = None) -> AccountPnl:
    """FIFO PnL of one account, persisted in one transaction (see the module docstring).

    Only instruments whose fills (or fill-to-leg links) changed since the last run are
    re-matched (`PnlInstrumentState.fingerprint`); the open lots of all instruments are
    re-valued every time. `now` (default: the current time) stamps the rows and picks the
    trading day; tests pass it. Raises ValueError on a fill the FIFO cannot take (a side
    other than BUY/SELL); nothing is written then.
    """
    now = now or timezone.now()
    given = account
    # Under the account's exclusion, as every writer of its orders and legs: this run holds
    # the account row while it writes lots (their legs in share mode) and orders' figures,
    # which a protection, an answer or a cancel (that reach the account row only after their
    # order and legs) must not hold meanwhile (orders.services.account_lock). Re-entrant:
    # the cycle and the broker events' finish already hold it.
    # A lock conflict rolls the run back whole: RowsBusy (a recompute from the stored rows is
    # idempotent; the broker events' finish tries it again, the cycle next minute).
    with (
        account_exclusion(given.pk, purpose="PnL"),
        conflicts_are_busy(given.pk, work="PnL"),
        transaction.atomic(),
    ):
        # The account row first (the lock order: orders.services.account_lock); it also
        # serialises runs for this account (the loop and a fresh API read).
        account = _ACCOUNT_FOR_UPDATE.get(id=given.pk)
        fills = _read_fills(account)
        legs = _legs_by_broker_order_id(account)
        states = {
            (s.exchange_segment, s.exchange_instrument_id): s
            for s in _STATES(account_id=account.pk)
        }
        salts = {key: _leg_salt(f, legs) for key, f in fills.by_instrument.items()}
        terms = selectors.instrument_terms(keys=fills.by_instrument.keys())
        multipliers = _multipliers(terms, fills.by_instrument)
        outcome = fifo.match_changed_instruments(
            fills.by_instrument,
            {key: state.fingerprint for key, state in states.items()},
            salts=salts,
            multipliers=multipliers,
        )

        stale = set(outcome.results) | set(outcome.removed)
        if stale:
            PnlLot.objects.filter(account=account).filter(instruments_filter(stale)).delete()
        new_rows: list[dict] = []
        unrealized_by_key: dict[InstrumentKey, Decimal] = {}
        for key, result in outcome.results.items():
            valuation = fifo.value_open_lots(
                result.open_lots, _quote(terms, key), multiplier=multipliers[key]
            )
            unrealized_by_key[key] = valuation.unrealized
            new_rows += _new_lot_rows(
                account=account,
                key=key,
                symbol=fills.symbols.get(key, ""),
                result=result,
                valuation=valuation,
                legs=legs,
                now=now,
            )
        _insert_lot_rows(new_rows)
        unrealized_by_key.update(
            _revalue_stored_open_lots(
                account=account,
                keys=set(outcome.unchanged),
                terms=terms,
                multipliers=multipliers,
                now=now,
            )
        )

        instruments = _save_states(
            account=account,
            fills=fills,
            outcome=outcome,
            states=states,
            unrealized_by_key=unrealized_by_key,
            now=now,
        )
        realized = sum((i.realized for i in instruments), ZERO)
        unrealized = sum((i.unrealized for i in instruments), ZERO)
        today = _day_figures(
            account=account,
            fills=fills,
            multipliers=multipliers,
            unrealized=unrealized,  # at this computation
            day=trading_day_bounds(now)[0],
        )
        _save_daily(account=account, today=today)
        orders_updated = _attribute_orders(account=account, legs=legs, now=now)
        realized_mtm, unrealized_mtm = to_money(realized), to_money(unrealized)
        total_mtm = realized_mtm + unrealized_mtm  # the shown parts add up to the shown total
        # Written only when a figure moved: an unchanged cycle commits no row change (and
        # so costs MariaDB no log flush). `account` was read under the lock just above.
        if (account.realized_mtm, account.unrealized_mtm, account.total_mtm) != (
            realized_mtm,
            unrealized_mtm,
            total_mtm,
        ):
            BrokerAccount.objects.filter(pk=account.pk).update(
                realized_mtm=realized_mtm,
                unrealized_mtm=unrealized_mtm,
                total_mtm=total_mtm,
                updated_at=now,
            )
    # Whatever this run stored, the monitoring loop's input fingerprint no longer vouches
    # for it (it may have run on other prices): the loop's next run recomputes.
    try:
        cache.delete(_inputs_cache_key(account))
    except Exception:  # the run is committed; a cache outage must not turn it into an error
        logger.warning(
            "cache unavailable; the loop's PnL input fingerprint not dropped",
            extra={"account_id": account.pk},
            exc_info=True,
        )
    # The caller's instance shows the new figures too (e.g. for the pnl_update message).
    given.realized_mtm, given.unrealized_mtm, given.total_mtm = (
        realized_mtm,
        unrealized_mtm,
        total_mtm,
    )
    return AccountPnl(
        account_id=account.pk,
        realized=realized_mtm,
        unrealized=unrealized_mtm,
        total=total_mtm,
        computed_at=now,
        today=today,
        instruments=instruments,
        lots_written=len(new_rows),
        orders_updated=orders_updated,
    )


def _inputs_cache_key(account: BrokerAccount) -> str:
    return f"pnl:inputs:{account.pk}"


def _snapshot_inputs_fingerprint(
    *, account: BrokerAccount, order_book: list, trades: list, now: datetime
) -> str:
    """What the stored PnL of the account is a function of, as the broker just reported it:
    the filled order-book rows and the trade book (the fills), the legs those orders map to
    (the lots' attribution), the multipliers and fair prices of the traded instruments (the
    money per unit, the open lots' marks) and the trading day (the daily row).
    Over-inclusive on purpose: any doubt means a recompute. With no fill at all it costs no
    query; otherwise two small ones."""
    # An unreadable quantity (None) is no fill to fingerprint.
    filled = [row for row in order_book if (row.filled_quantity or 0) > 0]
    traded = [row for row in trades if (row.quantity or 0) > 0]
    order_ids = sorted(
        {row.broker_order_id for row in filled} | {t.broker_order_id for t in traded}
    )
    keys = sorted(
        {(row.exchange_segment, row.exchange_instrument_id) for row in filled}
        | {(t.exchange_segment, t.exchange_instrument_id) for t in traded}
    )
    legs: list = []
    terms: list = []
    if order_ids:
        legs = sorted(
            OrderLeg.objects.filter(account=account, broker_order_id__in=order_ids).values_list(
                "broker_order_id", "id", "order_id"
            )
        )
        found = selectors.instrument_terms(keys=keys)
        terms = [(key, found.get(key)) for key in keys]
    text = repr(
        (
            settings.DATABASES["default"]["NAME"],
            account.pk,
            account.created_at,
            trading_day_bounds(now)[0],
            filled,
            traded,
            legs,
            terms,
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def compute_account_pnl_if_changed(
    *,
    account: BrokerAccount,
    order_book: list,
    trades: list,
    now: datetime | None = None,
) -> AccountPnl | None:
    """The monitoring loop's step 2: `compute_account_pnl`, unless nothing it depends on
    changed since this function last computed it (same broker fills, same leg links, same
    multipliers and fair prices of the traded instruments, same trading day), in which case
    the stored figures are still right and nothing is read or written: returns None then.

    `order_book` and `trades` are the broker's answer that step 1 just stored. The
    fingerprint lives in the cache; `compute_account_pnl` from anywhere else clears it."""
    now = now or timezone.now()
    fingerprint = _snapshot_inputs_fingerprint(
        account=account, order_book=order_book, trades=trades, now=now
    )
    key = _inputs_cache_key(account)
    try:
        if cache.get(key) == fingerprint:
            # Still right as of now: readers must not take the newer sync for staleness.
            selectors.mark_pnl_verified(account=account, at=now)
            return None
    except Exception:  # a cache outage: computed, not failed (the cycle goes on)
        logger.warning(
            "cache unavailable; the PnL is computed without its input fingerprint",
            extra={"account_id": account.pk},
            exc_info=True,
        )
        return compute_account_pnl(account=account, now=now)
    result = compute_account_pnl(account=account, now=now)
    try:
        cache.set(key, fingerprint, timeout=24 * 3600)
    except Exception:  # the next cycle computes it again
        logger.warning(
            "cache unavailable; the PnL input fingerprint not kept",
            extra={"account_id": account.pk},
            exc_info=True,
        )
    return result


def _save_daily(*, account: BrokerAccount, today: DailyFigures) -> None:
    """Today's row: created, or updated when a figure moved (the caller holds the account's
    lock, so no other run writes it meanwhile)."""
    figures = {
        "realized": today.realized,
        "unrealized": today.unrealized,
        "turnover": today.turnover,
        "fills": today.fills,
    }
    daily = PnlDaily.objects.filter(account=account, trading_date=today.trading_date).first()
    if daily is None:
        PnlDaily.objects.create(account=account, trading_date=today.trading_date, **figures)
    elif any(getattr(daily, name) != value for name, value in figures.items()):
        for name, value in figures.items():
            setattr(daily, name, value)
        daily.save(update_fields=[*figures, "updated_at"])


def _save_states(
    *,
    account: BrokerAccount,
    fills: _AccountFills,
    outcome: fifo.IncrementalResult,
    states: dict[InstrumentKey, PnlInstrumentState],
    unrealized_by_key: dict[InstrumentKey, Decimal],
    now: datetime,
) -> list[InstrumentPnl]:
    """Write what this run saw per instrument, so the next run can skip unchanged ones."""
    if outcome.removed:
        PnlInstrumentState.objects.filter(account=account).filter(
            instruments_filter(outcome.removed)
        ).delete()
    instruments = []
    to_create, to_update = [], []
    for key in sorted(fills.by_instrument):
        segment, instrument_id = key
        state = states.get(key)
        result = outcome.results.get(key)
        if result is not None:
            if state is None:
                state = PnlInstrumentState(
                    account=account, exchange_segment=segment, exchange_instrument_id=instrument_id
                )
                to_create.append(state)
            else:
                to_update.append(state)
            state.trading_symbol = fills.symbols.get(key, "")[:100]
            state.fingerprint = outcome.fingerprints[key]
            state.fill_count = result.fill_count
            state.realized = result.realized
            state.open_quantity = result.open_quantity
            state.matched_at = now
        else:
            assert state is not None  # an instrument FIFO did not rematch has a stored state
            to_update.append(state)
        state.unrealized = unrealized_by_key.get(key, ZERO)
        state.computed_at = now
        instruments.append(
            InstrumentPnl(
                exchange_segment=segment,
                exchange_instrument_id=instrument_id,
                trading_symbol=state.trading_symbol,
                realized=state.realized,
                unrealized=state.unrealized,
                open_quantity=state.open_quantity,
                fill_count=state.fill_count,
                rematched=result is not None,
            )
        )
    PnlInstrumentState.objects.bulk_create(to_create)
    bulk_update_rows(
        PnlInstrumentState,
        to_update,
        ["trading_symbol", "fingerprint", *PnlInstrumentState.RESULT_FIELDS],
    )
    return instruments


# A read waits this long for a change of the account in progress (a cycle, a broker event)
# before answering the stored figures (which that change is about to refresh anyway).
PNL_READ_WAIT_SECONDS = 2.0


def refresh_account_pnl_if_stale(*, account: BrokerAccount) -> AccountPnl | None:
    """Compute now when the stored result is older than the account's last broker sync (or
    there is none); otherwise leave it. Returns the fresh result, or None when it was fresh
    or the account stayed busy for PNL_READ_WAIT_SECONDS (the stored result is answered)."""
    if not selectors.pnl_is_stale(account=account):
        return None
    try:
        with account_exclusion(account.pk, purpose="PnL read", wait=PNL_READ_WAIT_SECONDS):
            return compute_account_pnl(account=account)
    except Busy:  # the exclusion, or the rows (RowsBusy)
        return None


# ---- a past day recomputed (manage.py recompute_pnl) -----------------------------------------

RECOMPUTE_ACTOR = "recompute_pnl"


def _day_state(trading_date: date, figures: PnlDaily | DailyFigures) -> dict[str, Any]:
    """A daily row as the audit trail keeps it (before/after): amounts as strings."""
    return {
        "trading_date": trading_date.isoformat(),
        "realized": str(figures.realized),
        "unrealized": str(figures.unrealized),
        "turnover": str(figures.turnover),
        "fills": figures.fills,
    }


@dataclass(frozen=True)
class DayRecomputed:
    """One stored day of an account as `recompute_past_days` found and left it, and why its
    unrealized was kept or scaled (`note`; "" when there is nothing to say)."""

    account_id: int
    trading_date: date
    before: dict[str, Any]
    after: dict[str, Any]
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        moved = [
            f"{name} {self.before[name]} -> {self.after[name]}"
            for name in ("realized", "unrealized", "turnover", "fills")
            if self.before[name] != self.after[name]
        ]
        return ", ".join(moved) or "unchanged"


def _open_multipliers(
    fills: _AccountFills, multipliers: dict[InstrumentKey, int], *, start: datetime, end: datetime
) -> set[int]:
    """The multipliers of the instruments with a position open at some moment of [start,
    end): carried in (a net quantity before `start`) or traded in it. Whatever a run valued
    in that day, it valued lots of these instruments only."""
    found = set()
    for key, instrument_fills in fills.by_instrument.items():
        carried = sum(
            (f.quantity if f.side == fifo.BUY else -f.quantity)
            for f in instrument_fills
            if f.time < start
        )
        if carried or any(start <= f.time < end for f in instrument_fills):
            found.add(multipliers[key])
    return found


def _realized_at_multiplier_one(
    *, account: BrokerAccount, start: datetime, end: datetime
) -> Decimal:
    """What the day's realized was before PnL honoured the contract multiplier: the stored
    lots' (now in rupees), each instrument's divided by its multiplier again."""
    rows = (
        PnlLot.objects.filter(
            account=account, kind=PnlLot.Kind.MATCHED, exit_time__gte=start, exit_time__lt=end
        )
        .values("exchange_segment", "exchange_instrument_id")
        .annotate(total=Sum("realized_pnl"))
    )
    keys = {(row["exchange_segment"], row["exchange_instrument_id"]) for row in rows}
    multipliers = _multipliers(selectors.instrument_terms(keys=keys), keys)
    return to_money(
        sum(
            (
                row["total"] / multipliers[(row["exchange_segment"], row["exchange_instrument_id"])]
                for row in rows
            ),
            ZERO,
        )
    )


def _past_unrealized(
    *,
    stored: PnlDaily,
    right: DailyFigures,
    at_one: tuple[Decimal, Decimal],
    open_multipliers: set[int],
) -> tuple[Decimal, str]:
    """A past day's unrealized, and what to say about it. It was valued at that day's marks,
    which are not stored: it is never recomputed, only corrected when that is exact. That is
    when every instrument open that day has one multiplier m and the row provably holds the
    figures of before the multiplier fix (its realized and turnover are the multiplier-1
    ones, `at_one`, and those differ from the right ones): then it is m x as stored. A row
    corrected once holds the right figures, so a second run scales nothing again."""
    if open_multipliers <= {1}:
        return stored.unrealized, ""  # every open position was x1: right as stored
    written_before_fix = (
        (stored.realized, stored.turnover)
        == at_one
        != (
            right.realized,
            right.turnover,
        )
    )
    written_after_fix = (stored.realized, stored.turnover) == (right.realized, right.turnover)
    if written_after_fix and at_one != (right.realized, right.turnover):
        return stored.unrealized, ""  # valued with the multipliers already
    if not stored.unrealized:
        return stored.unrealized, ""  # nothing was open at the last valuation
    shown = ", ".join(f"x{m}" for m in sorted(open_multipliers))
    if not written_before_fix:
        return stored.unrealized, (
            f"unrealized {stored.unrealized} kept: contracts ({shown}) were open but the "
            "row's figures do not tell whether it was valued with their multiplier; that "
            "day's marks are not stored, so it cannot be recomputed"
        )
    if len(open_multipliers) > 1:
        return stored.unrealized, (
            f"unrealized {stored.unrealized} kept: it was valued at x1, but positions of "
            f"several multipliers ({shown}) were open and that day's marks are not stored, "
            "so it cannot be split between them"
        )
    [multiplier] = open_multipliers
    return to_money(stored.unrealized * multiplier), (
        f"unrealized x{multiplier}: every position open that day was a x{multiplier} "
        "contract, valued at x1 before the multiplier fix"
    )


def recompute_past_days(
    *,
    account: BrokerAccount,
    first: date | None = None,
    last: date | None = None,
    dry_run: bool = False,
    actor: str = RECOMPUTE_ACTOR,
    now: datetime | None = None,
) -> list[DayRecomputed]:
    """Recompute the account's stored daily rows from `first` to `last` (None: unbounded)
    from the stored trades, by the daily run's own code: `compute_account_pnl` first (it
    re-matches the lots with the multipliers and rewrites today's row), then each past row's
    realized, turnover and fills as `_day_figures` makes today's, and its unrealized
    corrected only where that is exact (`_past_unrealized`). Rows are changed only where a
    figure moved, each change with a `pnl_day_recomputed` audit row of the account by
    `actor` (before and after); a second run finds nothing to change. No row is made for a
    day that has none. Under the account's exclusion, in one transaction: `dry_run` rolls
    it back (nothing written, the same answer). Returns every row of the range, in date
    order."""
    now = now or timezone.now()
    today = trading_day_bounds(now)[0]
    last = min(last, today) if last is not None else today
    with account_exclusion(account.pk, purpose="PnL recompute"), transaction.atomic():
        days = PnlDaily.objects.filter(account=account, trading_date__lte=last)
        if first is not None:
            days = days.filter(trading_date__gte=first)
        before = {row.trading_date: _day_state(row.trading_date, row) for row in days}
        compute_account_pnl(account=account, now=now)
        fills = _read_fills(account)
        terms = selectors.instrument_terms(keys=fills.by_instrument.keys())
        multipliers = _multipliers(terms, fills.by_instrument)
        at_one = dict.fromkeys(multipliers, 1)
        found: list[DayRecomputed] = []
        for row in days.select_for_update().order_by("trading_date"):
            note = ""
            if row.trading_date < today:  # today's: compute_account_pnl wrote it just now
                start, end = day_bounds(row.trading_date)
                # The day by the daily run's code: with the multipliers, and as it was
                # figured before PnL honoured them (every multiplier 1).
                right, old = (
                    _day_figures(
                        account=account,
                        fills=fills,
                        multipliers=by_key,
                        unrealized=row.unrealized,
                        day=row.trading_date,
                    )
                    for by_key in (multipliers, at_one)
                )
                unrealized, note = _past_unrealized(
                    stored=row,
                    right=right,
                    at_one=(
                        _realized_at_multiplier_one(account=account, start=start, end=end),
                        old.turnover,
                    ),
                    open_multipliers=_open_multipliers(fills, multipliers, start=start, end=end),
                )
                figures = {
                    "realized": right.realized,
                    "unrealized": unrealized,
                    "turnover": right.turnover,
                    "fills": right.fills,
                }
                if any(getattr(row, name) != value for name, value in figures.items()):
                    for name, value in figures.items():
                        setattr(row, name, value)
                    row.save(update_fields=[*figures, "updated_at"])
            day = DayRecomputed(
                account_id=account.pk,
                trading_date=row.trading_date,
                before=before.get(row.trading_date) or _day_state(row.trading_date, row),
                after=_day_state(row.trading_date, row),
                note=note,
            )
            if day.changed:
                record_account_event(
                    account,
                    kind=EventKind.PNL_DAY_RECOMPUTED,
                    actor=actor,
                    message=f"PnL of {row.trading_date} recomputed from the stored trades: "
                    + day.describe()
                    + (f" ({note})" if note else ""),
                    before=day.before,
                    after=day.after,
                )
            found.append(day)
        if dry_run:
            transaction.set_rollback(True)
    return found


BROKERAGE_PLAN_FIELDS = ("mode", "flat_per_order", "percent", "cap_per_order", "delivery_free")


def brokerage_plan_state(plan: BrokeragePlanSetting) -> dict[str, Any]:
    """The audited view of a brokerage plan (before/after): its terms."""
    return field_values(plan, BROKERAGE_PLAN_FIELDS)


def _record_brokerage_plan_saved(
    account: BrokerAccount, *, before: dict[str, Any], plan: BrokeragePlanSetting, actor: str
) -> None:
    # Never "created": an account without a row has the default plan, so its first save
    # changes that one (and a first save of the default terms changes nothing).
    record_account_setting_saved(
        account,
        what="brokerage plan",
        kinds=(EventKind.BROKERAGE_PLAN_CHANGED, EventKind.BROKERAGE_PLAN_CHANGED),
        before=before,
        after=brokerage_plan_state(plan),
        actor=actor,
    )


def save_brokerage_plan(*, account: BrokerAccount, actor: str, **plan: Any) -> None:
    """The account's brokerage plan set to `plan` (mode, flat_per_order, percent,
    cap_per_order, delivery_free): its row made the first time, changed after, audited on
    the account with who did it and the plan before and after (none when nothing changed;
    before the first save, the default plan). The first save inserts in a transaction of
    its own: two first saves at once (two tabs, a double post) cannot both make one, and
    the one that lost the insert, its transaction over, changes the other's in the next
    under the row's lock (no lock held while asking for another, so no deadlock), so each
    audit row's before is what the save before it left. A row deleted (by an admin) between
    the check and its lock: Conflict, nothing saved."""
    if not BrokeragePlanSetting.objects.filter(account=account).exists():
        try:
            with transaction.atomic():
                made = BrokeragePlanSetting.objects.create(account=account, **plan)
                default = brokerage_plan_state(BrokeragePlanSetting())
                _record_brokerage_plan_saved(account, before=default, plan=made, actor=actor)
                return
        except IntegrityError:
            pass  # made at this moment by another save: that one is changed below
    with transaction.atomic():
        row = BrokeragePlanSetting.objects.select_for_update().filter(account=account).first()
        if row is None:
            raise Conflict(
                "The brokerage plan was deleted while this save ran (the default plan "
                "applies); nothing was saved: save again to set it"
            )
        before = brokerage_plan_state(row)
        for name, value in plan.items():
            setattr(row, name, value)
        row.save()
        _record_brokerage_plan_saved(account, before=before, plan=row, actor=actor)


def delete_brokerage_plan(*, plan: BrokeragePlanSetting, actor: str) -> None:
    """The account's plan row deleted: its charges follow the default plan again. Audited on
    the account as a change of its plan (an account without a row has the default plan, as
    before its first save), before it the plan deleted, after it the default, always (even
    one of the default terms: the row went). Under the row's lock, so a save at the same
    moment is recorded before or after it, never lost; a row already gone is left alone."""
    with transaction.atomic():
        row = BrokeragePlanSetting.objects.select_for_update().filter(pk=plan.pk).first()
        if row is None:
            return
        before = brokerage_plan_state(row)
        after = brokerage_plan_state(BrokeragePlanSetting())
        changed = change_words(before, after)
        record_account_event(
            row.account,
            kind=EventKind.BROKERAGE_PLAN_CHANGED,
            actor=actor,
            message="brokerage plan deleted: the default plan applies"
            + (f", {changed}" if changed else ""),
            before=before,
            after=after,
        )
        row.delete()
