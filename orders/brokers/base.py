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


class BrokerUnavailable(BrokerError):
    """Timeout, connection error or 5xx. For an order POST the outcome is UNKNOWN."""


class RateLimited(BrokerError):
    """The broker (or our own outbound limit) says slow down."""

    def __init__(self, message: str, *, retry_after: float = 1.0, response: dict | None = None):
        super().__init__(message, response=response)
        self.retry_after = retry_after


# ---- our vocabulary -----------------------------------------------------------------

# Leg / broker order statuses (same values as orders.models.OrderLeg.Status).
PENDING_SUBMIT = "PENDING_SUBMIT"
OPEN = "OPEN"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"
UNKNOWN = "UNKNOWN"
FINAL_STATUSES = frozenset({FILLED, CANCELLED, REJECTED})


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
    side: str  # BUY / SELL
    order_type: str  # MARKET / LIMIT / STOPLIMIT / STOPMARKET
    product_type: str  # MIS / NRML / CNC
    quantity: int
    unique_identifier: str  # ours, <= 20 characters
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "DAY"


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


@dataclass(frozen=True)
class BrokerOrderRow:
    """One order-book row in our vocabulary."""

    broker_order_id: str
    unique_identifier: str
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    side: str
    order_type: str
    product_type: str
    quantity: int
    filled_quantity: int
    leaves_quantity: int
    status: str  # one of the statuses above
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
    quantity: int
    price: Decimal
    traded_at: datetime


@dataclass(frozen=True)
class BrokerPositionRow:
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    product_type: str
    net_qty: int
    buy_qty: int
    sell_qty: int
    buy_avg_price: Decimal | None = None
    sell_avg_price: Decimal | None = None
    buy_amount: Decimal = Decimal("0")
    sell_amount: Decimal = Decimal("0")
    net_amount: Decimal = Decimal("0")
    realized_mtm: Decimal = Decimal("0")
    unrealized_mtm: Decimal = Decimal("0")
    mtm: Decimal = Decimal("0")


@dataclass(frozen=True)
class BrokerBalance:
    cash_available: Decimal
    margin_utilized: Decimal
    net_margin: Decimal


# ---- the interface ------------------------------------------------------------------


class BrokerGateway(abc.ABC):
    """One implementation per broker family. Every method is a coroutine; use `sync` from
    synchronous code. Reads may retry internally; order POSTs never do."""

    @abc.abstractmethod
    async def login(self, credentials: Credentials) -> BrokerLogin: ...

    @abc.abstractmethod
    async def logout(self, session: SessionContext) -> None: ...

    @abc.abstractmethod
    async def place_order(
        self, session: SessionContext, request: PlaceOrderRequest
    ) -> OrderAck: ...

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
    async def balance(self, session: SessionContext) -> BrokerBalance: ...

    async def aclose(self) -> None:
        """Release pooled connections."""


def sync(coroutine_function):
    """Call a gateway coroutine from synchronous code (views, services, tasks)."""
    return async_to_sync(coroutine_function)
