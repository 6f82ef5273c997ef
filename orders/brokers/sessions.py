"""Broker sessions: one `BrokerClient` per account hides logins, refreshes and re-logins.

Rules (SPEC 6, issue 3):
- the account's `BrokerSession` (access token encrypted at rest) is reused while it is valid
  and not within BROKER_SESSION_REFRESH_MARGIN_SECONDS of expiry; otherwise we log in again;
- only one login per account runs at a time, across processes, because an XTS login kills
  the previous token of its appKey: two racing logins would kill each other. The lock is a
  lease row in the database (BrokerLoginLease, taken by a conditional UPDATE), behind a
  process-local lock so one process's waiters do not all poll the database. It needs no
  Redis: a lock that moved from Redis to a fallback during an outage could be held twice at
  the switch, and a login is rare enough for the database. A caller that waited for the
  lock uses the session the holder just stored instead of logging in again (also for an
  explicit connect);
- a SessionExpired answer marks the session invalid (only while the refused token is still
  the stored one: another process may have logged in meanwhile), logs in once and repeats
  the call once. That is safe for order calls too: the broker refused the token, so it did
  not act;
- a dealer login's session acts for one client code (BrokerSession.client_id, checked
  against the login's clientCodes by the gateway);
- `snapshot` reads the order book, trades, positions and balance independently: one failed
  read does not cost the others;
- a timeout or 5xx on an order call (BrokerUnavailable) is NEVER repeated: the outcome is
  unknown and the caller leaves the leg pending for the next sync to resolve;
- order calls to live brokers pass a per-account outbound token bucket
  (BROKER_ORDERS_PER_SECOND, shared through Redis); the paper exchange has no such limit.
  While Redis is down each process sends under its own bucket at
  BROKER_ORDERS_PER_SECOND / BROKER_RATE_LIMIT_PROCESSES (logged as degraded), so orders
  still go out and the account's total stays within the limit;
- an order call that fails before its request leaves (our outbound limit: RateLimited; no
  session could be had, or anything else on our side: OrderNotSent) was not sent: the
  caller may say so and the client may place it again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeGuard, TypeVar, cast

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import (
    CREDENTIAL_FIELDS,
    Broker,
    BrokerAccount,
    BrokerLoginLease,
    BrokerSession,
)
from orders.brokers.base import (
    BrokerBalance,
    BrokerError,
    BrokerGateway,
    BrokerHoldingRow,
    BrokerLogin,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerSnapshot,
    BrokerTradeRow,
    BrokerUnavailable,
    Credentials,
    ModifyOrderRequest,
    OrderAck,
    OrderNotSent,
    OrderRejected,
    PlaceOrderRequest,
    RateLimited,
    SessionContext,
    SessionExpired,
)
from orders.brokers.registry import default_base_url, gateway_for
from trading_site.core.api.ratelimit import take_process_token, take_token
from trading_site.core.prepared import PreparedModels
from trading_site.core.redis_breaker import STORE_UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

T = TypeVar("T")
_LOGIN_LOCK_POLL_SECONDS = 0.05
SNAPSHOT_READS = ("order_book", "trades", "positions", "balance")


def credentials_of(account) -> Credentials:
    """The account's decrypted credentials, with the broker's default base URL."""
    stored = account.credentials or {}
    values = {name: str(stored.get(name) or "") for name in CREDENTIAL_FIELDS}
    if not values["base_url"]:
        values["base_url"] = default_base_url(account.broker)
    return Credentials(**values)


def _is_usable(row: BrokerSession | None) -> TypeGuard[BrokerSession]:
    if row is None or row.invalidated_at is not None or not row.access_token:
        return False
    margin = timedelta(seconds=int(settings.BROKER_SESSION_REFRESH_MARGIN_SECONDS))
    return row.expires_at - margin > timezone.now()


def _is_alive(row: BrokerSession | None) -> TypeGuard[BrokerSession]:
    """Valid and not expired, though maybe within the refresh margin."""
    if row is None or row.invalidated_at is not None or not row.access_token:
        return False
    return row.expires_at > timezone.now()


def _identity(row: BrokerSession | None) -> tuple | None:
    """What tells one stored login from the next (a new login rewrites both)."""
    return None if row is None else (row.created_at, row.access_token)


def login_lock_seconds() -> int:
    """How long one login may hold the account's login lock: the gateway's worst case (every
    retry timing out, rate-limit waits of up to 5 s between them) and a margin."""
    timeout = float(settings.BROKER_TIMEOUT_SECONDS)
    retries = int(settings.BROKER_READ_RETRIES)
    return math.ceil((retries + 1) * timeout + retries * 5.0 + 5.0)


def _load_session(account_id: int) -> BrokerSession | None:
    return stored_sessions([account_id]).get(account_id)


def _store_login(account_id: int, login: BrokerLogin) -> BrokerSession:
    row, _ = BrokerSession.objects.update_or_create(
        account_id=account_id,
        defaults={
            "access_token": login.access_token,
            "expires_at": login.expires_at,
            "broker_user_id": login.broker_user_id,
            "is_investor_client": login.is_investor_client,
            "client_id": login.client_id,
            "created_at": timezone.now(),
            "invalidated_at": None,
            "last_error": "",
        },
    )
    return row


def mark_session_invalid(*, account_id: int, reason: str, token: str | None = None) -> bool:
    """The broker refused the token: the next call logs in again. With `token`, only while
    that token is still the stored one: when another process has logged in since, its
    fresh session stays (invalidating it would make the next call log in again and kill
    it). Returns whether a session was marked."""
    now = timezone.now()
    sessions = BrokerSession.objects.filter(account_id=account_id, invalidated_at__isnull=True)
    if token is None:
        return bool(sessions.update(invalidated_at=now, last_error=reason[:1000], updated_at=now))
    with transaction.atomic():
        row = sessions.select_for_update().first()
        if row is None or row.access_token != token:
            return False
        BrokerSession.objects.filter(pk=row.pk).update(
            invalidated_at=now, last_error=reason[:1000], updated_at=now
        )
    return True


_local_login_locks: dict[int, threading.Lock] = {}
_local_login_locks_guard = threading.Lock()


def _local_login_lock(account_id: int) -> threading.Lock:
    """This process's lock of one account's login (threads and event loops alike)."""
    with _local_login_locks_guard:
        return _local_login_locks.setdefault(account_id, threading.Lock())


def _take_login_lease(account_id: int, owner: str, hold_seconds: int) -> bool:
    """Take the account's login lease if it is free or its holder's time ran out: one
    conditional UPDATE, atomic across every process sharing the database."""
    BrokerLoginLease.objects.get_or_create(account_id=account_id)
    now = timezone.now()
    free = Q(owner="") | Q(expires_at__isnull=True) | Q(expires_at__lte=now)
    taken = (
        BrokerLoginLease.objects.filter(account_id=account_id)
        .filter(free)
        .update(owner=owner, expires_at=now + timedelta(seconds=hold_seconds))
    )
    return taken == 1


def _release_login_lease(account_id: int, owner: str) -> None:
    # Only our own lease (one that outlived its hold may belong to someone else now).
    BrokerLoginLease.objects.filter(account_id=account_id, owner=owner).update(
        owner="", expires_at=None
    )


_degraded_logged_at: dict[int, float] = {}
_DEGRADED_LOG_EVERY_SECONDS = 10.0


def outbound_bucket_key(account_id: int) -> str:
    """The rate limiter's key of an account's outbound order bucket (BROKER_ORDERS_PER_SECOND,
    shared by every process that sends the account's orders)."""
    return f"broker-out:{account_id}"


def _log_degraded_limit(account_id: int, rate: float) -> None:
    """Say so, once every few seconds per account, while orders go out under the
    per-process fallback limit."""
    now = time.monotonic()
    if now - _degraded_logged_at.get(account_id, -math.inf) < _DEGRADED_LOG_EVERY_SECONDS:
        return
    _degraded_logged_at[account_id] = now
    logger.warning(
        "degraded: the shared outbound order limit is unavailable (Redis); sending under "
        "this process's fallback limit of %.2f orders/s",
        rate,
        extra={"account_id": account_id, "degraded": "broker_outbound_limit"},
    )


def _record_login_error(account_id: int, reason: str) -> None:
    BrokerSession.objects.filter(account_id=account_id).update(
        last_error=reason[:1000], updated_at=timezone.now()
    )


# `BrokerClient(stored_session=...)` left out: the client reads the stored session itself.
_NOT_READ = object()


class BrokerClient:
    """One account's view of its broker: the gateway's calls without the session argument.

    `stored_session`, when given, is the account's `BrokerSession` row (or None: it has
    none) just read by the caller, typically with other accounts' in one query: the first
    call uses it instead of reading it again. Every later call, a login and a retry after
    a refused token read the row afresh, as without it."""

    def __init__(
        self,
        account,
        gateway: BrokerGateway | None = None,
        *,
        stored_session: BrokerSession | None | object = _NOT_READ,
    ):
        self.account = account
        self.account_id: int = account.pk
        self.gateway = gateway or gateway_for(account)
        self.credentials = credentials_of(account)
        self.is_paper = account.broker == Broker.PAPER
        self._stored_session = stored_session

    def hand_session(self, row: BrokerSession | None) -> None:
        """The account's stored session (None: it has none), just read by the caller: the
        next call uses it instead of reading it (as `stored_session` at construction)."""
        self._stored_session = row

    def _handed_row(self) -> BrokerSession | None | object:
        """The row handed over at construction, once; `_NOT_READ` after (or without) it."""
        row, self._stored_session = self._stored_session, _NOT_READ
        return row

    async def _stored_row(self) -> BrokerSession | None:
        """The stored session: the row handed over at construction, once, else a read."""
        row = self._handed_row()
        if row is _NOT_READ:
            return await sync_to_async(_load_session)(self.account_id)
        return cast(BrokerSession | None, row)

    # ---- sessions -------------------------------------------------------------------

    def _context(self, row: BrokerSession) -> SessionContext:
        if row.is_investor_client:
            client_id = self.credentials.client_id or row.broker_user_id
        else:
            client_id = row.client_id  # the client code checked at login
        return SessionContext(
            account_id=self.account_id,
            access_token=row.access_token,
            client_id=client_id,
            is_investor_client=row.is_investor_client,
            base_url=self.credentials.base_url,
        )

    def _acts_as_configured(self, row: BrokerSession | None) -> bool:
        """A dealer session is for the client code the account names (a session from before
        the account's client_id changed, or without a code, needs a new login)."""
        if row is None or row.is_investor_client:
            return True
        configured = self.credentials.client_id.strip()
        return bool(row.client_id) and (not configured or configured == row.client_id)

    def _usable(self, row: BrokerSession | None) -> TypeGuard[BrokerSession]:
        return _is_usable(row) and self._acts_as_configured(row)

    def _replaced_since(
        self, row: BrokerSession | None, seen: tuple | None
    ) -> TypeGuard[BrokerSession]:
        """Another caller logged in while we waited for the lock: its session is the live one
        (logging in again would kill its token)."""
        return _identity(row) != seen and _is_alive(row) and self._acts_as_configured(row)

    async def _acquire_login_lock(self) -> tuple[threading.Lock, str]:
        """This process's lock of the account, then the account's lease in the database.
        Polled, never blocking a thread: the callers are event loops."""
        local = _local_login_lock(self.account_id)
        owner = secrets.token_hex(8)
        hold = login_lock_seconds()
        # The holder's lease expires on its own after `hold` (a crashed process); waiting
        # longer than that means something is wrong: fail rather than log in twice.
        deadline = time.monotonic() + hold + 2

        def waited_too_long() -> BrokerUnavailable:
            return BrokerUnavailable(
                f"another login of broker account {self.account_id} is still running"
            )

        while not local.acquire(blocking=False):
            if time.monotonic() > deadline:
                raise waited_too_long()
            await asyncio.sleep(_LOGIN_LOCK_POLL_SECONDS)
        try:
            while not await sync_to_async(_take_login_lease)(self.account_id, owner, hold):
                if time.monotonic() > deadline:
                    raise waited_too_long()
                await asyncio.sleep(_LOGIN_LOCK_POLL_SECONDS)
        except BaseException:
            local.release()
            raise
        return local, owner

    async def _release_login_lock(self, local: threading.Lock, owner: str) -> None:
        try:
            await sync_to_async(_release_login_lease)(self.account_id, owner)
        finally:
            local.release()

    async def session(self) -> SessionContext:
        """A usable session: the stored one, or a fresh login (one login at a time)."""
        row = await self._stored_row()
        if self._usable(row):
            return self._context(row)
        return await self._login_once(seen=_identity(row), force=False)

    async def _login_once(self, *, seen: tuple | None, force: bool) -> SessionContext:
        """Log in under the account's lock, unless the stored session will do: usable (and
        no login was asked for), or stored by another login since we looked (`seen`)."""
        local, owner = await self._acquire_login_lock()
        try:
            row = await sync_to_async(_load_session)(self.account_id)
            if self._replaced_since(row, seen) or (not force and self._usable(row)):
                return self._context(row)
            return self._context(await self._login())
        finally:
            await self._release_login_lock(local, owner)

    async def _login(self) -> BrokerSession:
        try:
            login = await self.gateway.login(self.credentials)
        except Exception as exc:
            await sync_to_async(_record_login_error)(self.account_id, str(exc))
            raise
        logger.info(
            "broker login", extra={"account_id": self.account_id, "broker": self.account.broker}
        )
        return await sync_to_async(_store_login)(self.account_id, login)

    async def connect(self) -> SessionContext:
        """Log in now, whatever the stored session says (POST /api/accounts/{id}/connect, the
        ahead-of-expiry refresh, step 1 for an invalidated session). When another login of
        the account completes while this one waits for the lock, its session is used: two
        connects at once log in once."""
        row = await sync_to_async(_load_session)(self.account_id)
        return await self._login_once(seen=_identity(row), force=True)

    async def logout(self) -> None:
        row = await sync_to_async(_load_session)(self.account_id)
        if _is_usable(row):
            try:
                await self.gateway.logout(self._context(row))
            finally:
                await sync_to_async(mark_session_invalid)(
                    account_id=self.account_id, reason="logged out"
                )

    # ---- the outbound limit -----------------------------------------------------------

    async def _take_outbound_token(self) -> None:
        if self.is_paper:
            return

        rate = int(settings.BROKER_ORDERS_PER_SECOND)
        deadline = time.monotonic() + float(settings.BROKER_RATE_LIMIT_MAX_WAIT_SECONDS)
        while True:
            result = await sync_to_async(self._take_outbound_bucket)(rate)
            if result.allowed:
                return
            wait = max(float(result.retry_after), 0.01)
            if time.monotonic() + wait > deadline:
                raise RateLimited(
                    f"outbound order limit of {rate}/s reached for account {self.account_id}",
                    retry_after=wait,
                )
            await asyncio.sleep(wait)

    def _take_outbound_bucket(self, rate: int):
        """The account's shared bucket; while Redis is down, this process's share of it."""
        key = outbound_bucket_key(self.account_id)
        try:
            return take_token(key, capacity=rate, refill_per_second=float(rate))
        except STORE_UNAVAILABLE_ERRORS:
            share = rate / max(1, int(settings.BROKER_RATE_LIMIT_PROCESSES))
            _log_degraded_limit(self.account_id, share)
            return take_process_token(
                key, capacity=max(1, math.floor(share)), refill_per_second=share
            )

    # ---- calls --------------------------------------------------------------------------

    async def _ready_to_send(self, *, is_order: bool) -> SessionContext:
        """The outbound token (orders) and a session. For an order, whatever fails here
        failed before the request left: OrderNotSent (our own limit stays RateLimited, and a
        login the broker refused stays OrderRejected: a final answer, not a retryable one)."""
        if not is_order:
            return await self.session()
        try:
            await self._take_outbound_token()
            return await self.session()
        except (RateLimited, OrderNotSent, OrderRejected):
            raise
        except Exception as exc:
            if not isinstance(exc, BrokerError):
                logger.error(
                    "order call failed before sending",
                    exc_info=exc,
                    extra={"account_id": self.account_id},
                )
            reason = exc.message if isinstance(exc, BrokerError) else type(exc).__name__
            raise OrderNotSent(f"no broker session: {reason}") from exc

    async def _call(self, call: Callable[[SessionContext], Awaitable[T]], *, is_order: bool) -> T:
        # A refused token means the broker did not act: one fresh login (or the session
        # another process has logged in since), one more try.
        for last_try in (False, True):
            context = await self._ready_to_send(is_order=is_order)
            try:
                return await call(context)
            except SessionExpired as exc:
                await sync_to_async(mark_session_invalid)(
                    account_id=self.account_id, reason=exc.message, token=context.access_token
                )
                if last_try:
                    raise
                logger.info(
                    "broker session expired; logging in again",
                    extra={"account_id": self.account_id},
                )
        raise AssertionError("unreachable: the last try returns or raises")

    async def place_order(self, request: PlaceOrderRequest) -> OrderAck:
        return await self._call(lambda s: self.gateway.place_order(s, request), is_order=True)

    @property
    def can_place_in_bulk(self) -> bool:
        """The gateway places many orders in one call (the paper exchange does)."""
        return self.gateway.can_place_in_bulk

    async def place_orders(self, requests: list[PlaceOrderRequest]) -> list[OrderAck | BrokerError]:
        """Many orders in one broker call (only when `can_place_in_bulk`): per request the
        ack or the broker's refusal. An error of the whole call is raised as for one order."""
        return await self._call(lambda s: self.gateway.place_orders(s, requests), is_order=True)

    @property
    def shares_database(self) -> bool:
        """The broker lives in our database (the paper exchange): see `place_orders_here`."""
        return self.gateway.shares_database

    def session_here(self) -> SessionContext | None:
        """The stored session (the handed one, else read in this thread) if it is usable;
        None when a login is needed (then the caller goes the ordinary way, which logs in)."""
        row = self._handed_row()
        if row is _NOT_READ:
            row = _load_session(self.account_id)
        row = cast(BrokerSession | None, row)
        return self._context(row) if self._usable(row) else None

    def snapshot_here(self) -> BrokerSnapshot | None:
        """`snapshot` of a broker in our database (`shares_database`), in this thread with no
        event loop, when the stored session is usable; None otherwise (a broker elsewhere,
        or a login needed, or a token refused: the caller goes the ordinary way, `snapshot`,
        which logs in and retries)."""
        if not (self.shares_database and self.gateway.reads_snapshot_at_once):
            return None
        context = self.session_here()
        if context is None:
            return None
        try:
            order_book, trades, positions, balance = self.gateway.snapshot_here(context)
        except SessionExpired:
            return None
        except BrokerError as exc:
            return BrokerSnapshot(errors=dict.fromkeys(SNAPSHOT_READS, exc))
        return BrokerSnapshot(order_book, trades, positions, balance)

    def place_orders_here(
        self, context: SessionContext, requests: list[PlaceOrderRequest]
    ) -> list[OrderAck | BrokerError]:
        """`place_orders` of a broker in our database, in the caller's thread and
        transaction (only when `shares_database`; a session from `session_here`)."""
        return self.gateway.place_orders_here(context, requests)

    async def modify_order(self, request: ModifyOrderRequest) -> OrderAck:
        return await self._call(lambda s: self.gateway.modify_order(s, request), is_order=True)

    async def cancel_order(self, broker_order_id: str, unique_identifier: str) -> OrderAck:
        return await self._call(
            lambda s: self.gateway.cancel_order(s, broker_order_id, unique_identifier),
            is_order=True,
        )

    async def order_book(self) -> list[BrokerOrderRow]:
        return await self._call(self.gateway.order_book, is_order=False)

    async def trade_book(self) -> list[BrokerTradeRow]:
        return await self._call(self.gateway.trade_book, is_order=False)

    async def positions(self) -> list[BrokerPositionRow]:
        return await self._call(self.gateway.positions, is_order=False)

    async def balance(self) -> BrokerBalance | None:
        """None when the login has no balance to read (an XTS dealer login)."""
        return await self._call(self.gateway.balance, is_order=False)

    async def holdings(self) -> list[BrokerHoldingRow] | None:
        """None when the broker has no holdings to tell."""
        return await self._call(self.gateway.holdings, is_order=False)

    async def snapshot(self) -> BrokerSnapshot:
        """Order book, trade book, positions and balance, each read on its own: what could
        be read, and the error of each read that failed. A gateway that reads all four in
        one call (the paper exchange: one load of its book instead of four) does, and then
        they stand or fall together."""
        if self.gateway.reads_snapshot_at_once:
            try:
                order_book, trades, positions, balance = await self._call(
                    self.gateway.snapshot, is_order=False
                )
            except BrokerError as exc:
                return BrokerSnapshot(errors=dict.fromkeys(SNAPSHOT_READS, exc))
            return BrokerSnapshot(order_book, trades, positions, balance)
        results = await asyncio.gather(
            self.order_book(),
            self.trade_book(),
            self.positions(),
            self.balance(),
            return_exceptions=True,
        )
        values: dict = {}
        errors: dict[str, BrokerError] = {}
        for name, result in zip(SNAPSHOT_READS, results, strict=True):
            if isinstance(result, BrokerError):
                errors[name] = result
            elif isinstance(result, Exception):
                logger.error("broker read %s failed", name, exc_info=result)
                errors[name] = BrokerUnavailable(f"{type(result).__name__}: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                values[name] = result
        return BrokerSnapshot(**values, errors=errors)


def broker_client(account) -> BrokerClient:
    """The per-account facade every caller uses (sync code: async_to_sync(client.method))."""
    return BrokerClient(account)


def placing_client(account) -> BrokerClient:
    """`broker_client` for sending new orders: a broker in our database (the paper exchange)
    takes the stored session the account was read with a moment ago, when it was
    (accounts.selectors.active_account_with_session: a placement's validation), instead of
    reading it again. A broker elsewhere reads it afresh at the call, as ever: its token
    must be the stored one of that moment (a login elsewhere replaces it)."""
    client = broker_client(account)
    cached = BrokerAccount.broker_session.related
    if client.shares_database and cached.is_cached(account):
        client.hand_session(cast(BrokerSession | None, cached.get_cached_value(account)))
    return client


def stored_sessions(account_ids: list[int]) -> dict[int, BrokerSession]:
    """The stored sessions of these accounts in one query, by account id (an account with
    none is absent)."""
    return {row.account_id: row for row in _SESSIONS_OF_ACCOUNTS(account_ids=account_ids)}


# Read by every cycle and every broker call: compiled once (`PreparedModels`).
_SESSIONS_OF_ACCOUNTS = PreparedModels(
    BrokerSession,
    lambda *, account_ids: BrokerSession.objects.filter(account_id__in=account_ids),
)


def connect_account(account) -> BrokerSession:
    """Log the account in now and return its stored session (raises the gateway's errors)."""
    async_to_sync(broker_client(account).connect)()
    return BrokerSession.objects.get(account_id=account.pk)


__all__ = [
    "BrokerClient",
    "broker_client",
    "connect_account",
    "credentials_of",
    "mark_session_invalid",
]
