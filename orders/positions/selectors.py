"""Positions as the trader sees them: the broker's last position rows (synced each cycle)
valued at the latest price, per account and for all accounts, and the accounts a price tick
moves. Reads only.

Quantities, averages and amounts come from the last broker sync (`BrokerPosition`, with its
`synced_at`); the LTP and so the MTM are live (orders.domain.positions). Paper and live money
are never added together: totals are per account and per kind of money.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import Broker, BrokerAccount, User
from orders.domain.positions import PositionFigures, average_price, live_mtm
from orders.market.selectors import instruments_filter
from orders.models import BrokerPosition, Instrument
from trading_site.core.prepared import PreparedModels

ZERO = Decimal("0")
PAPER, LIVE = "paper", "live"

InstrumentKey = tuple[str, int]


@dataclass
class PositionRow:
    account_id: int
    account_name: str
    money: str  # PAPER or LIVE
    exchange_segment: str
    exchange_instrument_id: int
    product_type: str
    trading_symbol: str
    net_qty: int | None  # None: the broker's number was unreadable
    buy_qty: int | None
    sell_qty: int | None
    average_price: Decimal | None
    ltp: Decimal | None
    mtm: Decimal | None
    lot_size: int
    synced_at: datetime | None

    @property
    def key(self) -> str:
        """Names the row in the page and in positions_update messages."""
        return (
            f"{self.account_id}:{self.exchange_segment}:{self.exchange_instrument_id}:"
            f"{self.product_type}"
        )

    @property
    def is_open(self) -> bool:
        return bool(self.net_qty)


@dataclass
class AccountPositions:
    account_id: int
    account_name: str
    money: str
    rows: list[PositionRow] = field(default_factory=list)

    @property
    def mtm(self) -> Decimal:
        return sum((row.mtm for row in self.rows if row.mtm is not None), ZERO)

    @property
    def open_rows(self) -> list[PositionRow]:
        return [row for row in self.rows if row.is_open]

    @property
    def synced_at(self) -> datetime | None:
        times = [row.synced_at for row in self.rows if row.synced_at is not None]
        return max(times) if times else None


@dataclass
class PositionBook:
    accounts: list[AccountPositions]

    @property
    def rows(self) -> list[PositionRow]:
        return [row for account in self.accounts for row in account.rows]

    def total(self, money: str) -> Decimal | None:
        """The MTM of one kind of money (None when the user has no such account here)."""
        chosen = [a for a in self.accounts if a.money == money]
        return sum((a.mtm for a in chosen), ZERO) if chosen else None


def money_of(account: BrokerAccount) -> str:
    return PAPER if account.broker == Broker.PAPER else LIVE


def instrument_prices(
    keys: Iterable[InstrumentKey],
) -> dict[InstrumentKey, tuple[Decimal | None, Instrument]]:
    keys = set(keys)
    if not keys:
        return {}
    found = {}
    instruments = Instrument.objects.filter(instruments_filter(keys)).select_related("fair_price")
    for instrument in instruments:
        fair = getattr(instrument, "fair_price", None)
        ltp = None
        if fair is not None:
            ltp = (
                fair.last_traded_price
                if fair.last_traded_price is not None
                else fair.avg_fair_price
            )
        found[(instrument.exchange_segment, instrument.exchange_instrument_id)] = (ltp, instrument)
    return found


def _row(
    position: BrokerPosition,
    account: BrokerAccount,
    priced: tuple[Decimal | None, Instrument] | None,
) -> PositionRow:
    ltp, instrument = priced if priced is not None else (None, None)
    net = position.net_qty
    figures = PositionFigures(
        net_qty=net or 0,
        buy_qty=position.buy_qty or 0,
        sell_qty=position.sell_qty or 0,
        buy_avg_price=position.buy_avg_price,
        sell_avg_price=position.sell_avg_price,
        buy_amount=position.buy_amount,
        sell_amount=position.sell_amount,
        broker_mtm=position.mtm,
    )
    multiplier = instrument.multiplier if instrument is not None else 1
    unreadable = net is None or position.buy_qty is None or position.sell_qty is None
    return PositionRow(
        account_id=account.pk,
        account_name=account.account_name,
        money=money_of(account),
        exchange_segment=position.exchange_segment,
        exchange_instrument_id=position.exchange_instrument_id,
        product_type=position.product_type,
        trading_symbol=position.trading_symbol
        or (instrument.trading_symbol if instrument is not None else ""),
        net_qty=net,
        buy_qty=position.buy_qty,
        sell_qty=position.sell_qty,
        average_price=average_price(figures) if net is not None else None,
        ltp=ltp,
        mtm=position.mtm if unreadable else live_mtm(figures, ltp=ltp, multiplier=multiplier),
        lot_size=instrument.lot_size if instrument is not None else 1,
        synced_at=position.synced_at,
    )


def _accounts(*, user: User, account_id: int | None) -> QuerySet[BrokerAccount]:
    queryset = BrokerAccount.objects.filter(user=user, is_active=True)
    if account_id is not None:
        queryset = queryset.filter(pk=account_id)
    return queryset.order_by("account_name", "pk")


# Read by every cycle (its sync and its position book) and every position event: compiled
# once (`PreparedModels`).
_POSITIONS_OF_ACCOUNTS = PreparedModels(
    BrokerPosition,
    lambda *, account_ids: BrokerPosition.objects.filter(account_id__in=account_ids).order_by(
        "trading_symbol", "exchange_instrument_id", "product_type"
    ),
)


def stored_positions(*, account_ids: list[int]) -> list[BrokerPosition]:
    """The accounts' stored position rows (as the broker last reported them), by symbol."""
    return _POSITIONS_OF_ACCOUNTS(account_ids=account_ids)


def position_book(*, accounts: Iterable[BrokerAccount]) -> PositionBook:
    """The positions of these accounts at the latest prices (two queries)."""
    accounts = list(accounts)
    by_id = {account.pk: account for account in accounts}
    positions = stored_positions(account_ids=list(by_id))
    prices = instrument_prices((p.exchange_segment, p.exchange_instrument_id) for p in positions)
    book = {
        account.pk: AccountPositions(
            account_id=account.pk, account_name=account.account_name, money=money_of(account)
        )
        for account in accounts
    }
    for position in positions:
        account = by_id[position.account_id]
        priced = prices.get((position.exchange_segment, position.exchange_instrument_id))
        book[account.pk].rows.append(_row(position, account, priced))
    return PositionBook(accounts=list(book.values()))


def positions_for(*, user: User, account_id: int | None = None) -> PositionBook:
    """The user's positions (one account, or all their active accounts)."""
    return position_book(accounts=_accounts(user=user, account_id=account_id))


def accounts_holding(keys: Iterable[InstrumentKey]) -> list[BrokerAccount]:
    """Active accounts with an open position in any of these instruments (a price tick's
    audience); one query on the positions' instrument index."""
    keys = set(keys)
    if not keys:
        return []
    account_ids = (
        BrokerPosition.objects.filter(instruments_filter(keys))
        .exclude(net_qty=0)
        .exclude(net_qty__isnull=True)
        .values_list("account_id", flat=True)
        .distinct()
    )
    return list(BrokerAccount.objects.filter(pk__in=list(account_ids), is_active=True))
