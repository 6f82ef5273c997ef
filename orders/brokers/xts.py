"""The XTS Interactive gateway (IIFL, Wisdom Capital, Nirmal Bang): see shared/XTS.md.

- httpx.AsyncClient with pooled connections and explicit timeouts (BROKER_TIMEOUT_SECONDS);
  one client per event loop, since a pool cannot cross loops;
- every answer is the XTS envelope; the token goes in `Authorization` as is (no "Bearer");
  `clientID` is sent only for dealer logins (`isInvestorClient` false);
- only typed errors escape: SessionExpired (a dead token: 4xx with a token/session message,
  or any 404 on a session-bound call), OrderRejected (the broker's reason), BrokerUnavailable
  (timeout, connection error, 5xx, an unreadable answer), RateLimited (HTTP 429);
- reads (and the login) retry with backoff on "unavailable"; order POST/PUT/DELETE never do:
  a timeout there means the outcome is unknown and the caller resolves it from the order book.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from orders.brokers import xts_wire
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
    RateLimited,
    SessionContext,
    SessionExpired,
)
from orders.brokers.host_policy import guarded_transport

logger = logging.getLogger(__name__)

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


def _price(value: Decimal | None) -> float:
    return float(value) if value is not None else 0


class XtsGateway(BrokerGateway):
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
        try:
            response = await self._http().request(
                method, url, json=body, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise BrokerUnavailable(f"{self.name} timed out on {method} {url}") from exc
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"{self.name} unreachable: {exc}") from exc
        if response.status_code == 429:
            retry_after = xts_wire.parse_decimal(response.headers.get("Retry-After")) or 1
            raise RateLimited(f"{self.name} rate limit", retry_after=float(retry_after))
        if response.status_code >= 500:
            raise BrokerUnavailable(
                f"{self.name} answered HTTP {response.status_code}",
                response={"status": response.status_code, "body": response.text[:500]},
            )
        try:
            envelope = response.json()
        except ValueError as exc:
            raise BrokerUnavailable(f"{self.name} answered something that is not JSON") from exc
        if not isinstance(envelope, dict):
            raise BrokerUnavailable(f"{self.name} answered an unexpected JSON shape")
        if envelope.get("type") == "error" or response.status_code >= 400:
            description = str(envelope.get("description") or envelope.get("message") or "")
            description = description or f"HTTP {response.status_code}"
            session_bound = token is not None
            if session_bound and (
                response.status_code == 404 or _SESSION_ERROR.search(description)
            ):
                raise SessionExpired(description, response=envelope)
            raise OrderRejected(description, response=envelope)
        return envelope.get("result")

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
        investor = result.get("isInvestorClient")
        return BrokerLogin(
            access_token=str(result["token"]),
            expires_at=timezone.now() + timedelta(seconds=int(settings.XTS_SESSION_TTL_SECONDS)),
            broker_user_id=str(result.get("userID") or ""),
            is_investor_client=bool(investor) if investor is not None else True,
        )

    async def logout(self, session: SessionContext) -> None:
        try:
            await self._send(
                "DELETE", self._url(session.base_url, SESSION_PATH), token=session.access_token
            )
        except (SessionExpired, OrderRejected):
            return None

    # ---- orders (never retried) -------------------------------------------------------

    def _ack(self, result: Any, fallback_uid: str, fallback_id: str = "") -> OrderAck:
        result = result if isinstance(result, dict) else {}
        app_order_id = result.get("AppOrderID") or fallback_id
        if not app_order_id:
            raise OrderRejected(f"{self.name} accepted without an AppOrderID", response=result)
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

    async def order_book(self, session: SessionContext) -> list[BrokerOrderRow]:
        result = await self._read_session(session, ORDERS_PATH)
        return [xts_wire.order_row_from_xts(r) for r in (result or []) if isinstance(r, dict)]

    async def trade_book(self, session: SessionContext) -> list[BrokerTradeRow]:
        result = await self._read_session(session, TRADES_PATH)
        return [xts_wire.trade_row_from_xts(r) for r in (result or []) if isinstance(r, dict)]

    async def positions(self, session: SessionContext) -> list[BrokerPositionRow]:
        result = await self._read_session(
            session, POSITIONS_PATH, {"dayOrNet": settings.XTS_POSITIONS_MODE}
        )
        rows = result.get("positionList") if isinstance(result, dict) else result
        return [xts_wire.position_row_from_xts(r) for r in (rows or []) if isinstance(r, dict)]

    async def balance(self, session: SessionContext) -> BrokerBalance:
        return xts_wire.balance_from_xts(await self._read_session(session, BALANCE_PATH))
