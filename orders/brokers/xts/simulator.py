"""An XTS-compatible broker: the paper exchange served over HTTP in the XTS wire format.

A plain ASGI app (no framework) run by `manage.py run_xts_simulator --port 8701` (uvicorn), by
tests in a background thread (`serve_in_thread`), or mounted anywhere ASGI runs.

Logins: the simulator accepts only the logins it is configured with (settings
XTS_SIMULATOR_USERS or `--user appKey:secretKey:userID:investor|dealer[:clientCode,...]`);
each login trades in its own paper book (`xts:<appKey>`, and for a dealer one book per client
code), so an "IIFL" account whose credentials name a simulator login and whose base URL points
at the simulator places, fills and reports orders like a real broker. Prices come from the
product's FairPrice table, as for the PAPER broker.

Tokens expire after a configurable time, and a new login replaces the user's previous token
(as XTS does). Fault knobs, settable at start-up and at runtime (`POST /_sim/faults`):
latency_ms, error_rate / error_next (HTTP 500), timeout_rate / timeout_next (the request is
processed, then the answer is held for timeout_seconds, longer than the client waits),
reject_rate / reject_next (order calls answered with an error envelope), routes (limit the
faults to e.g. ["POST /interactive/orders"]; empty: every broker route), and
`POST /_sim/expire-sessions` (every token dies at once). `GET /_sim/stats` counts requests per
route and order POSTs per orderUniqueIdentifier, so a test can prove a timed-out POST was sent
once. `POST /_sim/reset` clears counters and faults. The /_sim endpoints are a test harness:
bind the simulator to localhost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from orders.brokers.base import ModifyOrderRequest, OrderRejected, PlaceOrderRequest
from orders.brokers.paper.book import (
    book_named,
    compute_balance,
    order_rows,
    position_rows,
    trade_rows,
)
from orders.brokers.paper.exchange import (
    cancel_order,
    match_open_orders,
    modify_order,
    submit_order,
)
from orders.brokers.paper.models import PaperOrder
from orders.brokers.xts import wire as xts_wire
from orders.market.instruments import format_master_line
from orders.market.models import Instrument

logger = logging.getLogger(__name__)

_FAULT_EXEMPT = {"POST /interactive/user/session"}


@dataclass(frozen=True)
class SimUser:
    app_key: str
    secret_key: str
    user_id: str
    is_investor_client: bool = True
    client_codes: tuple[str, ...] = ()


def parse_users(spec: str) -> dict[str, SimUser]:
    """'appKey:secretKey:userID:investor|dealer[:code1;code2]' entries, comma-separated."""
    users = {}
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        bits = entry.split(":")
        if len(bits) < 3:
            raise ValueError(f"bad simulator user {entry!r}: need appKey:secretKey:userID")
        kind = bits[3].lower() if len(bits) > 3 else "investor"
        if kind not in ("investor", "dealer"):
            raise ValueError(f"bad simulator user {entry!r}: kind must be investor or dealer")
        codes = tuple(c for c in (bits[4].split(";") if len(bits) > 4 else []) if c)
        users[bits[0]] = SimUser(
            app_key=bits[0],
            secret_key=bits[1],
            user_id=bits[2],
            is_investor_client=kind == "investor",
            client_codes=codes or (bits[2],),
        )
    return users


@dataclass
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    error_next: int = 0
    timeout_rate: float = 0.0
    timeout_next: int = 0
    timeout_seconds: float = 30.0
    reject_rate: float = 0.0
    reject_next: int = 0
    session_error_status: int = 401
    token_ttl_seconds: float = 8 * 3600
    routes: list[str] = field(default_factory=list)

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}")
            current = getattr(self, name)
            if isinstance(current, list):
                if not isinstance(value, list):
                    raise ValueError(f"{name} must be a list")
                setattr(self, name, [str(v) for v in value])
            else:
                setattr(self, name, type(current)(value))

    def applies_to(self, route: str) -> bool:
        if route in _FAULT_EXEMPT:
            return False
        return not self.routes or route in self.routes


@dataclass
class _Token:
    user: SimUser
    expires_at: float


class _Answer(Exception):
    """Raised inside a handler to answer at once with an XTS envelope."""

    def __init__(self, status: int, description: str, code: str = "e-simulator-0001"):
        super().__init__(description)
        self.status = status
        self.body = {"type": "error", "code": code, "description": description, "result": {}}


def _ok(result: Any, description: str = "ok") -> dict[str, Any]:
    return {
        "type": "success",
        "code": "s-simulator-0001",
        "description": description,
        "result": result,
    }


class XtsSimulator:
    """The ASGI app. One instance holds its tokens, faults and counters in memory."""

    def __init__(
        self,
        *,
        users: dict[str, SimUser] | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
    ):
        self.users = users if users is not None else parse_users(settings.XTS_SIMULATOR_USERS)
        self.faults = faults or Faults(
            token_ttl_seconds=float(settings.XTS_SIMULATOR_TOKEN_TTL_SECONDS)
        )
        self._random = random.Random(settings.PAPER_SEED if seed is None else seed)
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.reset_stats()

    # ---- counters -----------------------------------------------------------------------

    def reset_stats(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests: Counter[str] = Counter()
            self.order_posts_by_uid: Counter[str] = Counter()
            self.client_ids: deque = deque(maxlen=500)
            self.logins = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total": sum(self.requests.values()),
            "order_posts_by_uid": dict(self.order_posts_by_uid),
            "client_ids": list(self.client_ids),
            "logins": self.logins,
            "live_tokens": sum(1 for t in self._tokens.values() if t.expires_at > time.monotonic()),
            "faults": asdict(self.faults),
        }

    def expire_sessions(self) -> None:
        with self._lock:
            self._tokens.clear()

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload = await self._handle(scope, body)
        data = json.dumps(payload, default=str).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _handle(self, scope, raw_body: bytes) -> tuple[int, Any]:
        method = scope["method"].upper()
        path = scope["path"].rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            return 400, _Answer(400, "Malformed JSON body").body
        if not isinstance(body, dict):
            return 400, _Answer(400, "The body must be a JSON object").body
        if path.startswith("/_sim/"):
            return self._admin(method, path, body)
        route = f"{method} {path}"
        with self._lock:
            self.requests[route] += 1
            if route == "POST /interactive/orders":
                self.order_posts_by_uid[str(body.get("orderUniqueIdentifier", ""))] += 1
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        hold_answer = False
        if self.faults.applies_to(route):
            if self._take("error_next", "error_rate"):
                return 500, {
                    "type": "error",
                    "code": "e-simulator-0500",
                    "description": "Internal error (simulated)",
                }
            hold_answer = self._take("timeout_next", "timeout_rate")
        try:
            status, payload = 200, await self._route(method, path, route, query, headers, body)
        except _Answer as answer:
            status, payload = answer.status, answer.body
        if hold_answer:
            # The request took effect; only the answer is late (a broker on a bad day).
            await asyncio.sleep(self.faults.timeout_seconds)
        return status, payload

    def _take(self, counter: str, rate: str) -> bool:
        with self._lock:
            if getattr(self.faults, counter) > 0:
                setattr(self.faults, counter, getattr(self.faults, counter) - 1)
                return True
            chance = getattr(self.faults, rate)
            return chance > 0 and self._random.random() < chance

    def _admin(self, method: str, path: str, body: dict) -> tuple[int, Any]:
        if path == "/_sim/stats" and method == "GET":
            return 200, self.stats()
        if path == "/_sim/faults" and method == "GET":
            return 200, asdict(self.faults)
        if path == "/_sim/faults" and method == "POST":
            try:
                with self._lock:
                    self.faults.update(body)
            except (TypeError, ValueError) as exc:
                return 400, {"error": str(exc)}
            return 200, asdict(self.faults)
        if path == "/_sim/reset" and method == "POST":
            self.reset_stats()
            with self._lock:
                ttl = self.faults.token_ttl_seconds
                self.faults = Faults(token_ttl_seconds=ttl)
            return 200, self.stats()
        if path == "/_sim/expire-sessions" and method == "POST":
            self.expire_sessions()
            return 200, {"expired": True}
        return 404, {"error": f"no admin endpoint {method} {path}"}

    # ---- broker routes ----------------------------------------------------------------

    def _user_for(self, headers: dict[str, str]) -> SimUser:
        token = headers.get("authorization", "").strip()
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None and entry.expires_at <= time.monotonic():
                del self._tokens[token]
                entry = None
        if entry is None:
            raise _Answer(self.faults.session_error_status, "Invalid Token", "e-session-0007")
        return entry.user

    def _client_id(self, user: SimUser, query: dict, body: dict, route: str) -> str:
        sent = body.get("clientID", query.get("clientID"))
        with self._lock:
            self.client_ids.append([route, sent])
        if user.is_investor_client:
            return user.client_codes[0]
        if not sent:
            raise _Answer(400, "clientID is mandatory for a dealer login", "e-orders-0012")
        if sent not in user.client_codes:
            raise _Answer(400, f"Invalid clientID {sent}", "e-orders-0013")
        return str(sent)

    async def _route(self, method, path, route, query, headers, body) -> dict[str, Any]:
        if route == "POST /interactive/user/session":
            return self._login(body)
        if path.startswith("/apimarketdata/") or path.startswith("/marketdata/"):
            if path.endswith("/instruments/master") and method == "POST":
                return _ok(await _db(_master_text, body.get("exchangeSegmentList") or []))
            raise _Answer(404, f"Unknown route {route}")
        user = self._user_for(headers)
        if route == "DELETE /interactive/user/session":
            with self._lock:
                self._tokens.pop(headers.get("authorization", "").strip(), None)
            return _ok({}, "logged out")
        if route == "GET /interactive/user/profile":
            return _ok(
                {
                    "ClientId": user.user_id,
                    "ClientName": user.user_id,
                    "ClientExchangeDetailsList": {},
                }
            )
        client_id = self._client_id(user, query, body, route)
        book_name = f"xts:{user.app_key}" + ("" if user.is_investor_client else f":{client_id}")
        if route in ("POST /interactive/orders", "PUT /interactive/orders"):
            if self._take("reject_next", "reject_rate"):
                raise _Answer(400, "RMS: order rejected (simulated)", "e-orders-0005")
        if route == "POST /interactive/orders":
            return _ok(await _db(_place, book_name, client_id, body))
        if route == "PUT /interactive/orders":
            return _ok(await _db(_modify, book_name, client_id, body))
        if route == "DELETE /interactive/orders":
            return _ok(await _db(_cancel, book_name, client_id, query))
        if route == "GET /interactive/orders":
            return _ok(await _db(_order_book, book_name, query.get("appOrderID")))
        if route == "GET /interactive/orders/trades":
            return _ok(await _db(_trade_book, book_name, client_id))
        if route == "GET /interactive/portfolio/positions":
            return _ok({"positionList": await _db(_positions, book_name)})
        if route == "GET /interactive/user/balance":
            return _ok(await _db(_balance, book_name, client_id))
        if route == "POST /interactive/orders/cancelall":
            return _ok(await _db(_cancel_all, book_name, body))
        raise _Answer(404, f"Unknown route {route}")

    def _login(self, body: dict) -> dict[str, Any]:
        user = self.users.get(str(body.get("appKey") or ""))
        if user is None or not secrets.compare_digest(
            str(body.get("secretKey") or ""), user.secret_key
        ):
            raise _Answer(400, "Invalid appKey or secretKey", "e-session-0002")
        token = secrets.token_hex(24)
        with self._lock:
            # A new login replaces the user's previous token, as at XTS.
            for old in [
                t for t, entry in self._tokens.items() if entry.user.app_key == user.app_key
            ]:
                del self._tokens[old]
            self._tokens[token] = _Token(user, time.monotonic() + self.faults.token_ttl_seconds)
            self.logins += 1
        return _ok(
            {
                "token": token,
                "userID": user.user_id,
                "isInvestorClient": user.is_investor_client,
                "clientCodes": list(user.client_codes),
            },
            "Session created",
        )


# ---- the paper book behind the wire (sync; run in a worker thread) ----------------------


async def _db(function, *args):
    def run():
        try:
            return function(*args)
        except OrderRejected as exc:
            raise _Answer(400, exc.message, "e-orders-0005") from exc
        finally:
            close_old_connections()

    return await sync_to_async(run)()


def _book(name: str):

    return book_named(name)


def _decimal(body: dict, name: str) -> Decimal | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _Answer(400, f"{name} must be a number") from None
    return number if number > 0 else None


def _required(body: dict, name: str) -> Any:
    value = body.get(name)
    if value in (None, ""):
        raise _Answer(400, f"{name} is mandatory")
    return value


def _integer(body: dict, name: str) -> int:
    try:
        return int(_required(body, name))
    except (TypeError, ValueError):
        raise _Answer(400, f"{name} must be an integer") from None


def _ack(order) -> dict[str, Any]:
    return {
        "AppOrderID": order.app_order_id,
        "OrderUniqueIdentifier": order.unique_identifier,
        "ClientID": order.client_id,
    }


def _place(book_name: str, client_id: str, body: dict) -> dict[str, Any]:

    request = PlaceOrderRequest(
        exchange_segment=str(_required(body, "exchangeSegment")),
        exchange_instrument_id=_integer(body, "exchangeInstrumentID"),
        side=xts_wire.side_from_xts(_required(body, "orderSide")),
        order_type=xts_wire.order_type_from_xts(_required(body, "orderType")),
        product_type=str(_required(body, "productType")),
        quantity=_integer(body, "orderQuantity"),
        unique_identifier=str(body.get("orderUniqueIdentifier") or "")[:20],
        limit_price=_decimal(body, "limitPrice"),
        stop_price=_decimal(body, "stopPrice"),
        time_in_force=str(body.get("timeInForce") or "DAY"),
    )
    return _ack(submit_order(book=_book(book_name), request=request, client_id=client_id))


def _modify(book_name: str, client_id: str, body: dict) -> dict[str, Any]:

    request = ModifyOrderRequest(
        broker_order_id=str(_integer(body, "appOrderID")),
        unique_identifier=str(body.get("orderUniqueIdentifier") or ""),
        order_type=xts_wire.order_type_from_xts(_required(body, "modifiedOrderType")),
        product_type=str(body.get("modifiedProductType") or ""),
        quantity=_integer(body, "modifiedOrderQuantity"),
        limit_price=_decimal(body, "modifiedLimitPrice"),
        stop_price=_decimal(body, "modifiedStopPrice"),
        time_in_force=str(body.get("modifiedTimeInForce") or "DAY"),
    )
    return _ack(modify_order(book=_book(book_name), request=request))


def _cancel(book_name: str, client_id: str, query: dict) -> dict[str, Any]:

    order = cancel_order(book=_book(book_name), broker_order_id=str(_integer(query, "appOrderID")))
    return _ack(order)


def _cancel_all(book_name: str, body: dict) -> dict[str, Any]:

    book = _book(book_name)
    open_orders = PaperOrder.objects.filter(
        book=book,
        status__in=PaperOrder.OPEN_STATUSES,
        exchange_segment=_required(body, "exchangeSegment"),
        exchange_instrument_id=_integer(body, "exchangeInstrumentID"),
    ).values_list("app_order_id", flat=True)
    cancelled = [cancel_order(book=book, broker_order_id=str(i)).app_order_id for i in open_orders]
    return {"cancelledAppOrderIDs": cancelled}


def _order_book(book_name: str, app_order_id: str | None) -> list[dict[str, Any]]:

    book = _book(book_name)
    match_open_orders(book=book)
    rows = [xts_wire.order_row_to_xts(row) for row in order_rows(book)]
    if app_order_id:
        rows = [row for row in rows if str(row["AppOrderID"]) == str(app_order_id)]
    return rows


def _trade_book(book_name: str, client_id: str) -> list[dict[str, Any]]:

    book = _book(book_name)
    match_open_orders(book=book)
    return [xts_wire.trade_row_to_xts(row, client_id) for row in trade_rows(book)]


def _positions(book_name: str) -> list[dict[str, Any]]:

    book = _book(book_name)
    match_open_orders(book=book)
    rows = position_rows(book)
    lots = dict(
        Instrument.objects.filter(
            exchange_instrument_id__in=[r.exchange_instrument_id for r in rows]
        ).values_list("exchange_instrument_id", "lot_size")
    )
    return [xts_wire.position_row_to_xts(r, lots.get(r.exchange_instrument_id, 1)) for r in rows]


def _balance(book_name: str, client_id: str) -> dict[str, Any]:

    book = _book(book_name)
    match_open_orders(book=book)
    return xts_wire.balance_to_xts(compute_balance(book), client_id)


def _master_text(segments: list[str]) -> str:

    instruments = Instrument.objects.all().order_by("exchange_segment", "exchange_instrument_id")
    if segments:
        instruments = instruments.filter(exchange_segment__in=[str(s) for s in segments])
    return "\n".join(format_master_line(instrument) for instrument in instruments)


# ---- serving ----------------------------------------------------------------------------


@dataclass
class RunningSimulator:
    app: XtsSimulator
    server: Any
    thread: threading.Thread
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(
    app: XtsSimulator, *, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Run the simulator with uvicorn in a daemon thread (tests, benchmarks); port 0 = any."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="xts-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the XTS simulator did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningSimulator(app=app, server=server, thread=thread, port=bound)
