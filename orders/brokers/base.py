"""The one broker interface (strategy pattern): typed requests, results and errors.

Everything the product does with a broker goes through a `BrokerGateway`. Gateways speak
our vocabulary (these dataclasses, `Decimal` prices, our status names) and map to and from
their wire format; nothing but the errors below escapes a gateway.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from asgiref.sync import async_to_sync

# ---- errors -------------------------------------------------------------------------


class BrokerError(Exception):
    """Base of every error a gateway raises."""

    def __init__(self, message: str, *, response: dict | None = None):
        super().__init__(message)
        self.message = message
        self.response = response or {}


class SessionExpired(BrokerError):
    """The broker no longer accepts the access token: log in again."""


class OrderRejected(BrokerError):
    """The broker refused the request; `message` is the broker's reason."""


class AccountMisconfigured(OrderRejected):
    """The broker accepted the login but the account's settings do not fit it (a dealer
    login without the client code to act for). `message` is our own words telling the
    trader what to set, safe to show as it is (orders.brokers.messages)."""


class BrokerUnavailable(BrokerError):
    """Timeout, connection error or 5xx. For an order POST the outcome is UNKNOWN."""


class BrokerNotReached(BrokerUnavailable):
    """No connection to the broker could be made (refused, no route, connect timeout, a name
    that does not resolve): the request never left, so for an order nothing was sent."""


class OrderNotSent(BrokerError):
    """An order call failed before its request left for the broker: no session could be had
    (the login failed or its lock could not be taken), or our side failed on the way. The
    broker never saw it; placing it again is safe."""

    def __init__(self, message: str, *, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(BrokerError):
    """The broker (or our own outbound limit) says slow down."""

    def __init__(self, message: str, *, retry_after: float = 1.0, response: dict | None = None):
        super().__init__(message, response=response)
        self.retry_after = retry_after


# ---- our vocabulary (orders.domain.vocabulary: sides, types, a broker order's LegStatus) ---


@dataclass(frozen=True)
class Credentials:
    """What a gateway needs to log in (decrypted only for the call)."""

    app_key: str = ""
    secret_key: str = ""
    client_id: str = ""
    user_id: str = ""
    password: str = ""
    totp_secret: str = ""
    base_url: str = ""


@dataclass(frozen=True)
class BrokerLogin:
    access_token: str
    expires_at: datetime
    broker_user_id: str = ""
    is_investor_client: bool = True
    # A dealer login acts for client codes; `client_id` is the one this account uses.
    client_id: str = ""
    client_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionContext:
    """What every call after login needs: the token and who we act for."""

    account_id: int
    access_token: str
    client_id: str = ""
    is_investor_client: bool = True
    base_url: str = ""


@dataclass(frozen=True)
class PlaceOrderRequest:
    exchange_segment: str
    exchange_instrument_id: int
    side: str  # a Side
    order_type: str  # an OrderType
    product_type: str  # a ProductType
    quantity: int
    unique_identifier: str  # ours, <= 20 characters
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "DAY"
    # The instrument's row with its fair price, as the caller read it a moment ago (an
    # orders.market Instrument), or None: a broker in our database (the paper exchange)
    # takes it instead of reading it again; a broker elsewhere never looks at it.
    instrument: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ModifyOrderRequest:
    broker_order_id: str
    unique_identifier: str
    order_type: str
    product_type: str
    quantity: int
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "DAY"


@dataclass(frozen=True)
class OrderAck:
    """The broker accepted the request (it may still reject the order later)."""

    broker_order_id: str
    unique_identifier: str
    raw: dict = field(default_factory=dict)
    # The order as the broker holds it right after the call, when its answer says (the paper
    # exchange: a market order may already be filled); None when it does not (XTS: accepted
    # means open, the stream and the order book tell the rest).
    row: BrokerOrderRow | None = None


@dataclass(frozen=True)
class BrokerOrderRow:
    """One order-book row in our vocabulary. A number the broker sent unreadable (or not at
    all) is None, never 0: consumers keep what they knew instead."""

    broker_order_id: str
    unique_identifier: str
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    side: str
    order_type: str
    product_type: str
    quantity: int | None
    filled_quantity: int | None
    leaves_quantity: int | None
    status: str  # a LegStatus
    raw_status: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    average_price: Decimal | None = None
    reject_reason: str = ""
    exchange_order_id: str = ""
    client_id: str = ""
    time_in_force: str = ""
    generated_at: datetime | None = None
    transact_time: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class BrokerTradeRow:
    execution_id: str
    broker_order_id: str
    unique_identifier: str
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    side: str
    product_type: str
    quantity: int | None  # None: the broker's number was unreadable (never read as 0)
    price: Decimal | None
    traded_at: datetime


@dataclass(frozen=True)
class BrokerPositionRow:
    """One position row; None marks a number the broker sent unreadable (never 0)."""

    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    product_type: str
    net_qty: int | None
    buy_qty: int | None
    sell_qty: int | None
    buy_avg_price: Decimal | None = None
    sell_avg_price: Decimal | None = None
    buy_amount: Decimal | None = None
    sell_amount: Decimal | None = None
    net_amount: Decimal | None = None
    realized_mtm: Decimal | None = None
    unrealized_mtm: Decimal | None = None
    mtm: Decimal | None = None


@dataclass(frozen=True)
class BrokerHoldingRow:
    """One delivery holding (shares in the demat account); None marks an unreadable number."""

    exchange_segment: str
    exchange_instrument_id: int
    isin: str
    quantity: int | None
    average_price: Decimal | None
    pledged_quantity: int | None = 0
    trading_symbol: str = ""


@dataclass(frozen=True)
class BrokerBalance:
    """None: the broker sent no readable figure (the stored one is kept)."""

    cash_available: Decimal | None
    margin_utilized: Decimal | None
    net_margin: Decimal | None


@dataclass(frozen=True)
class BrokerSnapshot:
    """One account's four reads, each independent of the others: what could be read, and
    per failed read ("order_book", "trades", "positions", "balance") its error. `balance`
    is None without an error when the login has no balance to read (XTS dealer logins)."""

    order_book: list[BrokerOrderRow] | None = None
    trades: list[BrokerTradeRow] | None = None
    positions: list[BrokerPositionRow] | None = None
    balance: BrokerBalance | None = None
    errors: dict[str, BrokerError] = field(default_factory=dict)


# ---- the interface ------------------------------------------------------------------


class BrokerGateway(abc.ABC):
    """One implementation per broker family. Every method is a coroutine; use `sync` from
    synchronous code. Reads may retry internally; order POSTs never do.

    Everything orders.brokers.sessions and the services use is declared here: the abstract
    methods every gateway implements, and two capabilities with working defaults that a
    gateway switches on when it does better (the paper exchange does both)."""

    # Places many orders in one call (`place_orders`) rather than one POST each.
    can_place_in_bulk: ClassVar[bool] = False
    # Reads the order book, trades, positions and balance of one moment in one call
    # (`snapshot`) rather than four independent reads.
    reads_snapshot_at_once: ClassVar[bool] = False
    # Lives in our own database (the paper exchange): `place_orders_here` places and
    # `snapshot_here` reads from synchronous code, in the caller's thread (and transaction),
    # with no event loop in between.
    shares_database: ClassVar[bool] = False

    def place_orders_here(
        self, session: SessionContext, requests: list[PlaceOrderRequest]
    ) -> list[OrderAck | BrokerError]:
        """`place_orders` in the caller's thread and transaction (only `shares_database`).
        The caller rolls its transaction back whole when this raises: a broker here may
        leave half its rows written then (it opens no savepoint of its own)."""
        raise NotImplementedError("this broker is not in our database")

    def snapshot_here(
        self, session: SessionContext
    ) -> tuple[
        list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance | None
    ]:
        """`snapshot` in the caller's thread (only `shares_database`)."""
        raise NotImplementedError("this broker is not in our database")

    @abc.abstractmethod
    async def login(self, credentials: Credentials) -> BrokerLogin: ...

    @abc.abstractmethod
    async def logout(self, session: SessionContext) -> None: ...

    @abc.abstractmethod
    async def place_order(
        self, session: SessionContext, request: PlaceOrderRequest
    ) -> OrderAck: ...

    async def place_orders(
        self, session: SessionContext, requests: list[PlaceOrderRequest]
    ) -> list[OrderAck | BrokerError]:
        """Per request, the ack or the broker's refusal; an error of the whole call is
        raised as for one order. The default POSTs them one by one (each once)."""
        answers: list[OrderAck | BrokerError] = []
        for request in requests:
            try:
                answers.append(await self.place_order(session, request))
            except OrderRejected as refused:
                answers.append(refused)
        return answers

    @abc.abstractmethod
    async def modify_order(
        self, session: SessionContext, request: ModifyOrderRequest
    ) -> OrderAck: ...

    @abc.abstractmethod
    async def cancel_order(
        self, session: SessionContext, broker_order_id: str, unique_identifier: str
    ) -> OrderAck: ...

    @abc.abstractmethod
    async def order_book(self, session: SessionContext) -> list[BrokerOrderRow]: ...

    @abc.abstractmethod
    async def trade_book(self, session: SessionContext) -> list[BrokerTradeRow]: ...

    @abc.abstractmethod
    async def positions(self, session: SessionContext) -> list[BrokerPositionRow]: ...

    @abc.abstractmethod
    async def balance(self, session: SessionContext) -> BrokerBalance | None:
        """The balance, or None when the login has none to read (an XTS dealer)."""

    async def snapshot(
        self, session: SessionContext
    ) -> tuple[
        list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance | None
    ]:
        """The order book, trades, positions and balance together (they stand or fall
        together). The default reads them one after the other."""
        return (
            await self.order_book(session),
            await self.trade_book(session),
            await self.positions(session),
            await self.balance(session),
        )

    async def holdings(self, session: SessionContext) -> list[BrokerHoldingRow] | None:
        """Delivery holdings, or None when the broker has none to tell (not abstract: a
        gateway without holdings says so)."""
        return None

    async def aclose(self) -> None:
        """Release pooled connections."""


def sync(coroutine_function):
    """Call a gateway coroutine from synchronous code (views, services, tasks)."""
    return async_to_sync(coroutine_function)
