"""The XTS Interactive gateway (IIFL, Wisdom Capital, Nirmal Bang): see shared/XTS.md.

- httpx.AsyncClient with pooled connections and explicit timeouts (BROKER_TIMEOUT_SECONDS);
  one client per event loop, since a pool cannot cross loops;
- every answer is the XTS envelope; the token goes in `Authorization` as is (no "Bearer");
  `clientID` is sent only for dealer logins (`isInvestorClient` false);
- only typed errors escape, decided by the envelope's `code` (xts_wire.error_kind), never
  by the wording or the HTTP status alone: SessionExpired (`e-session-*`, `e-token-*`),
  RateLimited (`e-apirl-*` with any HTTP status, or HTTP 429), OrderRejected (any other
  error envelope: the broker's reason), BrokerUnavailable (timeout, connection error, 5xx,
  an answer that is not the envelope, even with HTTP 200, or a row we cannot read);
- reads (and the login) retry with backoff on "unavailable"; order POST/PUT/DELETE never do:
  a timeout there means the outcome is unknown and the caller resolves it from the order book;
- the session lives until the token's own `exp` (XTS tokens are JWTs valid 24 h);
- a dealer login acts for one of its `clientCodes`: the account's `client_id`, or the only
  code the login has; the balance call is for investor logins only (None for dealers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from orders.brokers.base import (
    AccountMisconfigured,
    BrokerBalance,
    BrokerGateway,
    BrokerHoldingRow,
    BrokerLogin,
    BrokerNotReached,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
    BrokerUnavailable,
    Credentials,
    ModifyOrderRequest,
    OrderAck,
    OrderRejected,
    PlaceOrderRequest,
    RateLimited,
    SessionContext,
    SessionExpired,
)
from orders.brokers.host_policy import guarded_transport
from orders.brokers.xts import wire as xts_wire

logger = logging.getLogger(__name__)

# A broker's rate-limit hint past this is read as this (a day of waiting is no hint).
MAX_RETRY_AFTER_SECONDS = 3600.0

# Only for an error envelope without a code (the code decides whenever there is one).
_SESSION_ERROR = re.compile(
    r"(invalid|expired|not\s*found|no\s+active|missing).{0,40}(token|session)"
    r"|(token|session).{0,40}(invalid|expired|not\s*found)",
    re.IGNORECASE,
)

SESSION_PATH = "/interactive/user/session"
ORDERS_PATH = "/interactive/orders"
TRADES_PATH = "/interactive/orders/trades"
POSITIONS_PATH = "/interactive/portfolio/positions"
BALANCE_PATH = "/interactive/user/balance"
HOLDINGS_PATH = "/interactive/portfolio/holdings"
# The dealer variants of the three books (XTS_DEALER_BOOK_ROUTES), each with `clientID`.
DEALER_ORDERS_PATH = "/interactive/orders/dealerorderbook"
DEALER_TRADES_PATH = "/interactive/orders/dealertradebook"
DEALER_POSITIONS_PATH = "/interactive/portfolio/dealerpositions"


def _price(value: Decimal | None) -> float:
    return float(value) if value is not None else 0


class XtsGateway(BrokerGateway):
    """An XTS broker's interactive API. XTS has no bulk order POST and no combined read, so
    the interface's defaults hold: one POST per leg, four independent snapshot reads."""

    def __init__(
        self,
        *,
        base_url: str = "",
        name: str = "XTS",
        timeout: float | None = None,
        read_retries: int | None = None,
        backoff_seconds: float | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.read_retries = read_retries
        self.backoff_seconds = backoff_seconds
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # ---- transport --------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            timeout = self.timeout or float(settings.BROKER_TIMEOUT_SECONDS)
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout),
                # Every request is judged by the broker-host policy (SSRF); no redirects.
                transport=guarded_transport(
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
                ),
                follow_redirects=False,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def _url(self, base_url: str, path: str) -> str:
        root = (base_url or self.base_url).rstrip("/")
        if not root:
            raise BrokerUnavailable(f"no base URL configured for {self.name}")
        return root + path

    async def _send(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: dict | None = None,
        params: dict | None = None,
    ) -> Any:
        """One HTTP exchange, every outcome turned into a result or a typed error."""
        headers = {"Authorization": token} if token else {}
        client = self._http()
        request = client.build_request(method, url, json=body, params=params, headers=headers)
        timeout = self.timeout or float(settings.BROKER_TIMEOUT_SECONDS)
        try:
            # The whole exchange within the timeout: httpx's own timeouts bound each phase
            # and each read, so an answer dripped a byte at a time would never time out
            # (and a login would outlive its lock: sessions.login_lock_seconds).
            async with asyncio.timeout(timeout):
                response = await client.send(request, stream=True)
                try:
                    content = await self._content(response)
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made: the request never left (for an order: not sent).
            raise BrokerNotReached(f"{self.name} unreachable: {exc}") from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise BrokerUnavailable(f"{self.name} timed out on {method} {url}") from exc
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"{self.name} unreachable: {exc}") from exc
        try:
            envelope = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            envelope = None
        excerpt = content[:500].decode("utf-8", "replace")
        if isinstance(envelope, dict) and xts_wire.error_kind(envelope) == xts_wire.RATE_LIMITED:
            # e-apirl-*: brokers send it with HTTP 400 or even 200 rather than 429.
            raise RateLimited(
                f"{self.name} rate limit: {xts_wire.error_text(envelope) or 'slow down'}",
                retry_after=self._retry_after(response),
                response=envelope,
            )
        if response.status_code == 429:
            raise RateLimited(f"{self.name} rate limit", retry_after=self._retry_after(response))
        if response.status_code >= 500:
            raise BrokerUnavailable(
                f"{self.name} answered HTTP {response.status_code}",
                response={"status": response.status_code, "body": excerpt},
            )
        if envelope is None:
            raise BrokerUnavailable(
                f"{self.name} answered something that is not JSON (HTTP {response.status_code})",
                response={"status": response.status_code, "body": excerpt},
            )
        if not isinstance(envelope, dict):
            raise BrokerUnavailable(f"{self.name} answered an unexpected JSON shape")
        kind = xts_wire.error_kind(envelope)
        if kind is None and response.status_code >= 400:
            kind = xts_wire.REFUSED
        if kind is not None:
            description = xts_wire.error_text(envelope) or f"HTTP {response.status_code}"
            # A token-bound call only: a refused login is a rejection, not an expiry.
            session_bound = token is not None
            no_code = not str(envelope.get("code") or "").strip()
            if session_bound and (
                kind == xts_wire.SESSION_EXPIRED or (no_code and _SESSION_ERROR.search(description))
            ):
                raise SessionExpired(description, response=envelope)
            raise OrderRejected(description, response=envelope)
        if not xts_wire.has_envelope(envelope):
            # Not an empty book: an answer we cannot trust (a proxy page, a changed API).
            raise BrokerUnavailable(
                f"{self.name} answered HTTP {response.status_code} without the XTS envelope",
                response={"status": response.status_code, "body": excerpt},
            )
        return envelope.get("result")

    async def _content(self, response: httpx.Response) -> bytes:
        """The answer's body, refused past BROKER_MAX_ANSWER_BYTES (the outcome of an order
        call is then unknown, as for a timeout)."""
        limit = int(settings.BROKER_MAX_ANSWER_BYTES)
        declared = xts_wire.parse_int(response.headers.get("Content-Length"))
        chunks: list[bytes] = []
        size = 0
        if declared is None or declared <= limit:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
        if size > limit or (declared is not None and declared > limit):
            raise BrokerUnavailable(
                f"{self.name} answered more than {limit} bytes (HTTP {response.status_code})"
            )
        return b"".join(chunks)

    @staticmethod
    def _retry_after(response: httpx.Response) -> float:
        """The broker's Retry-After in seconds: 1 when absent, unreadable or negative; at
        most MAX_RETRY_AFTER_SECONDS ("1e400" is a Decimal but an infinite float)."""
        hint = xts_wire.parse_decimal(response.headers.get("Retry-After"))
        if not hint or hint < 0:
            return 1.0
        return min(float(hint), MAX_RETRY_AFTER_SECONDS)

    async def _read(self, method: str, url: str, **kwargs) -> Any:
        """Reads are safe to repeat: retry on unavailable / rate limited with backoff."""
        retries = self.read_retries
        if retries is None:
            retries = int(settings.BROKER_READ_RETRIES)
        backoff = self.backoff_seconds
        if backoff is None:
            backoff = float(settings.BROKER_RETRY_BACKOFF_SECONDS)
        for attempt in range(retries + 1):
            try:
                return await self._send(method, url, **kwargs)
            except (BrokerUnavailable, RateLimited) as exc:
                if attempt >= retries:
                    raise
                wait = backoff * (2**attempt)
                if isinstance(exc, RateLimited):
                    wait = max(wait, min(exc.retry_after, 5.0))
                logger.info("retrying XTS read after %s: %s", wait, exc.message)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _client_params(session: SessionContext) -> dict[str, str]:
        """clientID goes only with a dealer's login; an investor acts for itself."""
        if session.is_investor_client or not session.client_id:
            return {}
        return {"clientID": session.client_id}

    # ---- session ----------------------------------------------------------------------

    async def login(self, credentials: Credentials) -> BrokerLogin:
        result = await self._read(
            "POST",
            self._url(credentials.base_url, SESSION_PATH),
            body={
                "appKey": credentials.app_key,
                "secretKey": credentials.secret_key,
                "source": settings.XTS_SOURCE,
            },
        )
        if not isinstance(result, dict) or not result.get("token"):
            raise OrderRejected(f"{self.name} login answered without a token")
        token = str(result["token"])
        investor = _flag(result.get("isInvestorClient"), default=True)
        user_id = str(result.get("userID") or "")
        codes = tuple(str(c) for c in (result.get("clientCodes") or []) if str(c).strip())
        client_id = "" if investor else _dealer_client_id(credentials.client_id, codes, user_id)
        return BrokerLogin(
            access_token=token,
            expires_at=session_expiry(token),
            broker_user_id=user_id,
            is_investor_client=investor,
            client_id=client_id,
            client_codes=codes,
        )

    async def logout(self, session: SessionContext) -> None:
        try:
            await self._send(
                "DELETE",
                self._url(session.base_url, SESSION_PATH),
                token=session.access_token,
                params=self._client_params(session) or None,
            )
        except (SessionExpired, OrderRejected):
            return None

    # ---- orders (never retried) -------------------------------------------------------

    def _ack(self, result: Any, fallback_uid: str, fallback_id: str = "") -> OrderAck:
        result = result if isinstance(result, dict) else {}
        app_order_id = result.get("AppOrderID") or fallback_id
        if not app_order_id:
            # The broker said success: the order may be live there. Its outcome is unknown
            # (the order book settles it by our identifier), never "rejected", which would
            # let the trader place it again.
            raise BrokerUnavailable(f"{self.name} accepted without an AppOrderID", response=result)
        return OrderAck(
            broker_order_id=str(app_order_id),
            unique_identifier=str(result.get("OrderUniqueIdentifier") or fallback_uid),
            raw=result,
        )

    async def place_order(self, session: SessionContext, request: PlaceOrderRequest) -> OrderAck:
        body = {
            "exchangeSegment": request.exchange_segment,
            "exchangeInstrumentID": int(request.exchange_instrument_id),
            "productType": request.product_type,
            "orderType": request.order_type,
            "orderSide": xts_wire.side_to_xts(request.side),
            "timeInForce": request.time_in_force or "DAY",
            "disclosedQuantity": 0,
            "orderQuantity": int(request.quantity),
            "limitPrice": _price(request.limit_price),
            "stopPrice": _price(request.stop_price),
            "orderUniqueIdentifier": request.unique_identifier,
            "apiOrderSource": settings.XTS_API_ORDER_SOURCE,
            **self._client_params(session),
        }
        result = await self._send(
            "POST", self._url(session.base_url, ORDERS_PATH), token=session.access_token, body=body
        )
        return self._ack(result, request.unique_identifier)

    async def modify_order(self, session: SessionContext, request: ModifyOrderRequest) -> OrderAck:
        body = {
            "appOrderID": int(request.broker_order_id),
            "modifiedProductType": request.product_type,
            "modifiedOrderType": request.order_type,
            "modifiedOrderQuantity": int(request.quantity),
            "modifiedDisclosedQuantity": 0,
            "modifiedLimitPrice": _price(request.limit_price),
            "modifiedStopPrice": _price(request.stop_price),
            "modifiedTimeInForce": request.time_in_force or "DAY",
            "orderUniqueIdentifier": request.unique_identifier,
            **self._client_params(session),
        }
        result = await self._send(
            "PUT", self._url(session.base_url, ORDERS_PATH), token=session.access_token, body=body
        )
        return self._ack(result, request.unique_identifier, request.broker_order_id)

    async def cancel_order(
        self, session: SessionContext, broker_order_id: str, unique_identifier: str
    ) -> OrderAck:
        params = {
            "appOrderID": str(broker_order_id),
            "orderUniqueIdentifier": unique_identifier,
            **self._client_params(session),
        }
        result = await self._send(
            "DELETE",
            self._url(session.base_url, ORDERS_PATH),
            token=session.access_token,
            params=params,
        )
        return self._ack(result, unique_identifier, broker_order_id)

    # ---- reads (retried) --------------------------------------------------------------

    async def _read_session(self, session: SessionContext, path: str, params=None) -> Any:
        return await self._read(
            "GET",
            self._url(session.base_url, path),
            token=session.access_token,
            params={**(params or {}), **self._client_params(session)} or None,
        )

    @staticmethod
    def _book_path(session: SessionContext, common: str, dealer: str) -> str:
        """A dealer's books come from the dealer routes when XTS_DEALER_BOOK_ROUTES is on;
        otherwise from the common routes with `clientID` (XTS.md)."""
        if not session.is_investor_client and settings.XTS_DEALER_BOOK_ROUTES:
            return dealer
        return common

    @staticmethod
    def _rows(result: Any, read: str, convert, session: SessionContext) -> list:
        """The answer's rows; for a dealer login, only those of the session's client code:
        a book asked for one client that answers with the dealer's other clients too must
        not put their orders, fills or positions in this account (as the stream skips them)."""
        if result is None:
            return []
        if not isinstance(result, list):
            raise BrokerUnavailable(f"XTS {read} answered a {type(result).__name__}, not rows")
        dealer = not session.is_investor_client and bool(session.client_id)
        try:
            return [
                convert(row)
                for row in result
                if isinstance(row, dict)
                and (not dealer or xts_wire.is_for_client(row, session.client_id))
            ]
        except xts_wire.WireFormatError as exc:
            raise BrokerUnavailable(f"XTS {read}: {exc}") from exc

    async def order_book(self, session: SessionContext) -> list[BrokerOrderRow]:
        path = self._book_path(session, ORDERS_PATH, DEALER_ORDERS_PATH)
        result = await self._read_session(session, path)
        return self._rows(result, "order book", xts_wire.order_row_from_xts, session)

    async def order_history(self, session: SessionContext, broker_order_id: str) -> list:
        """One order's states, oldest first (GET /interactive/orders?appOrderID=)."""
        result = await self._read_session(session, ORDERS_PATH, {"appOrderID": broker_order_id})
        return self._rows(result, "order history", xts_wire.order_row_from_xts, session)

    async def trade_book(self, session: SessionContext) -> list[BrokerTradeRow]:
        path = self._book_path(session, TRADES_PATH, DEALER_TRADES_PATH)
        result = await self._read_session(session, path)
        return self._rows(result, "trade book", xts_wire.trade_row_from_xts, session)

    async def positions(self, session: SessionContext) -> list[BrokerPositionRow]:
        path = self._book_path(session, POSITIONS_PATH, DEALER_POSITIONS_PATH)
        result = await self._read_session(session, path, {"dayOrNet": settings.XTS_POSITIONS_MODE})
        rows = result.get("positionList") if isinstance(result, dict) else result
        return self._rows(rows, "positions", xts_wire.position_row_from_xts, session)

    async def holdings(self, session: SessionContext) -> list[BrokerHoldingRow]:
        """Delivery holdings (`clientID` for a dealer, as for the other reads)."""
        result = await self._read_session(session, HOLDINGS_PATH)
        try:
            return xts_wire.holding_rows_from_xts(result)
        except xts_wire.WireFormatError as exc:
            raise BrokerUnavailable(f"XTS holdings: {exc}") from exc

    async def balance(self, session: SessionContext) -> BrokerBalance | None:
        if not session.is_investor_client:
            return None  # XTS serves the balance to investor logins only
        result = await self._read_session(session, BALANCE_PATH)
        if not isinstance(result, (dict, list)):
            raise BrokerUnavailable(f"{self.name} balance answered {type(result).__name__}")
        return xts_wire.balance_from_xts(result)


def _flag(value: Any, *, default: bool) -> bool:
    """A JSON boolean that some brokers send as a string."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def session_expiry(token: str) -> datetime:
    """When to stop trusting a session: the JWT's own lifetime (`exp - iat`, 24 h at XTS)
    counted from now, so a broker clock that is off does not shift it; its `exp` alone when
    it has no `iat`; XTS_SESSION_TTL_SECONDS for a token that is not a JWT, or whose times
    lie past what a datetime holds."""
    now = timezone.now()
    claims = xts_wire.token_claims(token) or {}
    exp = xts_wire.parse_int(claims.get("exp"))
    iat = xts_wire.parse_int(claims.get("iat"))
    try:
        if exp is not None and iat is not None and exp >= iat:
            return now + timedelta(seconds=exp - iat)
        if exp is not None:
            return datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        # Past what a datetime holds (e.g. an `exp` in milliseconds): as for no JWT.
        pass
    return now + timedelta(seconds=int(settings.XTS_SESSION_TTL_SECONDS))


# What of a login answer an error message may repeat to the trader: code-shaped values only,
# so a server at the base URL cannot put its own text (an error page, an address) in front of
# the trader through the codes it lists (orders.brokers.messages).
_SHOWABLE_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_MAX_CODES_SHOWN = 20


def _showable(value: str) -> str:
    return value if _SHOWABLE_CODE.fullmatch(value) else "(unreadable)"


def _dealer_client_id(configured: str, codes: tuple[str, ...], user_id: str) -> str:
    """The client code a dealer login acts for: the account's `client_id` (one of the
    login's codes), or the login's only code. Raises AccountMisconfigured with what to set."""
    configured = (configured or "").strip()
    readable = [code for code in codes if _SHOWABLE_CODE.fullmatch(code)]
    shown = readable[:_MAX_CODES_SHOWN]
    listed = ", ".join(shown)
    if len(codes) > len(shown):
        more = f"{len(codes) - len(shown)} more" if shown else f"{len(codes)} unreadable"
        listed = f"{listed} and {more}" if shown else more
    user_id = _showable(user_id)
    if configured:
        if codes and configured not in codes:
            raise AccountMisconfigured(
                f"client_id {_showable(configured)!r} is not one of the client codes of "
                f"dealer login {user_id} ({listed}): set the account's client_id to one of them"
            )
        return configured
    if len(codes) == 1:
        return codes[0]
    if not codes:
        raise AccountMisconfigured(
            f"dealer login {user_id} lists no client codes: set the account's client_id "
            "to the client code it trades for"
        )
    raise AccountMisconfigured(
        f"dealer login {user_id} acts for several clients ({listed}): set the account's "
        "client_id to the one this account trades for"
    )
