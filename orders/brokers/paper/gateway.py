"""The PAPER broker behind the one gateway interface: every call is a short database
transaction against the paper exchange (orders.brokers.paper.exchange), and every read runs a
matching tick first."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
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
from orders.brokers.paper.book import (
    account_book_and_orders,
    book_for_account,
    compute_balance,
    holding_rows,
    order_row,
    order_rows,
    position_rows,
    trade_rows,
)
from orders.brokers.paper.exchange import (
    book_snapshot,
    cancel_order,
    match_open_orders,
    modify_order,
    submit_order,
    submit_orders,
)
from orders.brokers.paper.models import PaperBook, PaperOrder
from trading_site.core.lock_conflicts import is_lock_conflict
from trading_site.core.market_hours import trading_day_start

logger = logging.getLogger(__name__)


def _unavailable(exc: DatabaseError) -> BrokerUnavailable:
    logger.warning("paper exchange database error: %s", exc)
    return BrokerUnavailable(f"paper exchange unavailable: {exc}")


def _guard_database(function):
    """Only broker errors leave a gateway: a database failure is 'unavailable'."""

    async def wrapper(*args, **kwargs):
        try:
            return await function(*args, **kwargs)
        except base.BrokerError:
            raise
        except DatabaseError as exc:
            raise _unavailable(exc) from exc

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


# account id -> its paper book's id, for placement: the book is locked (and so read) by
# pk inside the placement transaction anyway, so a stale entry only costs a fallback.
_book_ids: dict[int, int] = {}


def _remember_book(account_id: int, book_id: int) -> None:
    """Every read of a book keeps its id (bounded: a forgotten one costs one query)."""
    if len(_book_ids) > 100_000:
        _book_ids.clear()
    _book_ids[account_id] = book_id


def _book_for_session(session: SessionContext) -> PaperBook:
    book = book_for_account(session.account_id)
    _remember_book(session.account_id, book.pk)
    return book


def _book_to_lock(account_id: int) -> PaperBook:
    """The account's book as a reference for `submit_orders` (which locks and reads it by
    pk): from this process's memory after the first placement, without a query."""
    book_id = _book_ids.get(account_id)
    if book_id is None:
        book_id = book_for_account(account_id).pk
        _remember_book(account_id, book_id)
    return PaperBook(pk=book_id, account_id=account_id)


def _submit_for_account(
    account_id: int, requests: list[PlaceOrderRequest], rows: dict[int, BrokerOrderRow]
):
    """In the caller's transaction, with no savepoint: the caller rolls it back whole when
    this raises (the book's lock is its first statement: a remembered book that is gone has
    written nothing yet when it is looked for again). `rows`: see `submit_orders`."""
    try:
        return submit_orders(
            book=_book_to_lock(account_id),
            requests=requests,
            in_callers_transaction=True,
            rows=rows,
        )
    except PaperBook.DoesNotExist:
        # The remembered book is gone (the account was deleted and its id reused).
        _book_ids.pop(account_id, None)
        return submit_orders(
            book=_book_to_lock(account_id),
            requests=requests,
            in_callers_transaction=True,
            rows=rows,
        )


def _ack(order: PaperOrder, row: BrokerOrderRow | None = None) -> OrderAck:
    """The answer to a placement or change of `order`; `row`: its row as it is now, when the
    exchange built it already (a batch's events carry the same rows)."""
    return OrderAck(
        broker_order_id=str(order.app_order_id),
        unique_identifier=order.unique_identifier,
        raw={"AppOrderID": order.app_order_id, "status": order.status},
        row=row or order_row(order),
    )


class PaperGateway(BrokerGateway):
    """The PAPER broker behind the one interface; every call is a short DB transaction."""

    # A batch is one transaction, a snapshot one load of the book instead of four; the
    # book is in our database, so placement joins the caller's transaction.
    can_place_in_bulk = True
    reads_snapshot_at_once = True
    shares_database = True

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
        return _ack(await self._on_book(session, submit_order, request=request))

    @_guard_database
    async def place_orders(
        self, session: SessionContext, requests: list[PlaceOrderRequest]
    ) -> list[OrderAck | OrderRejected]:
        """Many orders in one transaction (a batch): the ack, or the rejection, per request."""
        answers = await self._on_book(session, submit_orders, requests=requests)
        return [answer if isinstance(answer, OrderRejected) else _ack(answer) for answer in answers]

    def place_orders_here(
        self, session: SessionContext, requests: list[PlaceOrderRequest]
    ) -> list[OrderAck | base.BrokerError]:
        """`place_orders` without the event loop: the caller's thread and transaction (with no
        savepoint of the exchange's own: whatever this raises, the caller rolls its
        transaction back whole, the exchange's rows with it). A database failure is
        'unavailable', but for a lost lock conflict: the caller's transaction's, raised as it
        is."""
        rows: dict[int, BrokerOrderRow] = {}
        try:
            answers = _submit_for_account(session.account_id, requests, rows)
        except DatabaseError as exc:
            if is_lock_conflict(exc):
                raise  # the caller's transaction lost it, not the exchange: run again there
            raise _unavailable(exc) from exc
        return [
            answer if isinstance(answer, OrderRejected) else _ack(answer, rows.get(answer.pk))
            for answer in answers
        ]

    @_guard_database
    async def modify_order(self, session: SessionContext, request: ModifyOrderRequest) -> OrderAck:
        return _ack(await self._on_book(session, modify_order, request=request))

    @_guard_database
    async def cancel_order(
        self, session: SessionContext, broker_order_id: str, unique_identifier: str
    ) -> OrderAck:
        return _ack(await self._on_book(session, cancel_order, broker_order_id=broker_order_id))

    async def _on_book(self, session: SessionContext, action, **arguments):
        """A change to the session's book, in a worker thread (the ORM is synchronous)."""

        def act():
            return action(book=_book_for_session(session), **arguments)

        return await sync_to_async(act)()

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
    async def holdings(self, session: SessionContext) -> list[base.BrokerHoldingRow]:
        """CNC positions carried over from earlier trading days."""
        start = trading_day_start(timezone.now())
        return await self._read(session, lambda book: holding_rows(book, before=start))

    async def snapshot(
        self, session: SessionContext
    ) -> tuple[list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance]:
        """order_book, trade_book, positions and balance of one moment, in one read."""
        return await sync_to_async(self.snapshot_here)(session)

    def snapshot_here(
        self, session: SessionContext
    ) -> tuple[list[BrokerOrderRow], list[BrokerTradeRow], list[BrokerPositionRow], BrokerBalance]:
        """`snapshot` in the caller's thread (the book and its orders in one read). A
        database failure is 'unavailable'."""
        try:
            book, orders = account_book_and_orders(session.account_id)
            _remember_book(session.account_id, book.pk)
            return book_snapshot(book, orders)
        except DatabaseError as exc:
            raise _unavailable(exc) from exc
