"""An XTS-compatible broker: the paper exchange served over HTTP in the XTS wire format.

A plain ASGI app (no framework) run by `manage.py run_xts_simulator --port 8701` (uvicorn), by
tests in a background thread (`serve_in_thread`), or mounted anywhere ASGI runs. Its answers
have the keys, types and formats of shared/xts-samples/real-answers.json (checked by
tests/brokers/test_xts_simulator_shapes.py), so real XTS clients can use it unchanged: the
login takes a form-encoded body (the official Python SDK) or JSON; tokens are HS256 JWTs
(`exp - iat` = token_ttl_seconds, 24 h by default) and a new login kills the previous token
of its appKey; a dead token is HTTP 400 `e-session-0007` "Invalid Token".

Logins: the simulator accepts only the logins it is configured with (settings
XTS_SIMULATOR_USERS or `--user appKey:secretKey:userID:investor|dealer[:clientCode,...]`);
each login trades in its own paper book (`xts:<appKey>`, and for a dealer one book per client
code), so an "IIFL" account whose credentials name a simulator login and whose base URL points
at the simulator places, fills and reports orders like a real broker. Prices come from the
product's FairPrice table, as for the PAPER broker. As at real brokers, a placement that
breaks a margin, price band, freeze quantity, lot or tick rule is accepted and then shows
`Rejected` with a `CancelRejectReason` in the order book; only a malformed request or an
unknown instrument is refused at once. Order history (`GET /interactive/orders?appOrderID=`)
lists every state the order passed through, oldest first (PaperOrderState plus the fills).

Routes: session (login/logout), profile, balance (investor logins only), orders (place,
modify, cancel, cancel all, book, history), trades, positions (DayWise/NetWise), holdings,
position conversion, square off, and for dealer logins the dealer order book, trade book and
positions (`clientID` on every call of a dealer), plus the instrument master.

Knobs, settable at start-up and at runtime (`POST /_sim/faults`): latency_ms, error_rate /
error_next (HTTP 500), timeout_rate / timeout_next (the request is processed, then the answer
is held for timeout_seconds, longer than the client waits), reject_rate / reject_next (order
calls answered with an error envelope at once), bare_rate / bare_next (HTTP 200 with the
bare result, no envelope), unreadable_fields (these row fields sent as "NaN"), routes
(limit the faults to e.g. ["POST /interactive/orders"]; empty: every broker route),
token_ttl_seconds, thousands_separators (amounts as "2,853.50"; on by default),
rate_limit_per_second (past N requests in a second a login gets `e-apirl-0004` with HTTP
rate_limit_status, 400 by default, and nothing is done), and `POST /_sim/expire-sessions` (every token dies at once).
`GET /_sim/stats` counts requests per route, logins, rate-limited requests and order POSTs
per orderUniqueIdentifier, so a test can prove a timed-out POST was sent once.
`POST /_sim/reset` clears counters and restores the start-up knobs. The /_sim endpoints are
a test harness: bind the simulator to localhost.

The interactive event stream (orders.brokers.xts.simulator_stream) is served at
`/interactive/socket.io` as at real brokers: every state of the login's orders and every
fill pushed as `order` / `trade` rows, `logout` to the old stream on a new login, a dead
token refused. `POST /_sim/drop-streams` cuts every stream; the `stream_refuse` knob refuses
every handshake; `stream_refusal` answers a live token's stream with a `44` of its own; `/_sim/stats` "streams" counts open streams per appKey and the most ever
open at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from orders.brokers.base import (
    BrokerOrderRow,
    BrokerPositionRow,
    ModifyOrderRequest,
    OrderRejected,
    PlaceOrderRequest,
)
from orders.brokers.paper.book import (
    book_named,
    compute_balance,
    holding_rows,
    order_row,
    position_rows,
    trade_row,
)
from orders.brokers.paper.exchange import (
    cancel_order,
    match_open_orders,
    modify_order,
    submit_orders,
)
from orders.brokers.paper.models import (
    PaperBook,
    PaperOrder,
    PaperOrderState,
    PaperPositionConversion,
    PaperTrade,
)
from orders.brokers.xts import socketio_v2 as sio
from orders.brokers.xts import wire as xts_wire
from orders.brokers.xts.simulator_stream import SimulatorStreams
from orders.domain.vocabulary import (
    FINAL_LEG_STATUSES,
    STOP_ORDER_TYPES,
    ExchangeSegment,
    LegStatus,
    OrderType,
    ProductType,
    Side,
)
from orders.market.instruments import format_master_line
from orders.market.models import Instrument
from trading_site.core.market_hours import trading_day_start

logger = logging.getLogger(__name__)

AsgiReceive = Callable[[], Awaitable[dict[str, Any]]]
AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]

LOGIN_ROUTE = "POST /interactive/user/session"
# Order calls after which the stream looks for changes at once.
_ORDER_ROUTES = {
    "POST /interactive/orders",
    "PUT /interactive/orders",
    "DELETE /interactive/orders",
    "POST /interactive/orders/cancelall",
    "PUT /interactive/portfolio/squareoff",
}
# How far back the stream watcher looks for changed orders (a state row written just after
# its order's change, a transaction committed late).
_STREAM_LOOKBACK = timedelta(seconds=10)
_FAULT_EXEMPT = {LOGIN_ROUTE}
# XTS's numeric codes of our exchange segments.
_SEGMENT_CODES = {
    ExchangeSegment.NSECM: 1,
    ExchangeSegment.NSEFO: 2,
    ExchangeSegment.NSECD: 3,
    ExchangeSegment.BSECM: 11,
    ExchangeSegment.BSEFO: 12,
    ExchangeSegment.MCXFO: 51,
}
_SIDES = tuple(Side)
_ORDER_TYPES = tuple(OrderType)
_PRODUCTS = tuple(ProductType)
_TIME_IN_FORCE = ("DAY", "IOC")
# The login answer's enums: the simulator's own choice of content (the real key is there).
_ENUMS = {
    "socketPower": {"connectionState": ["Connect", "Disconnect", "Reconnect"]},
    "exchangeSegment": list(_SEGMENT_CODES),
    "productType": list(_PRODUCTS),
    "orderType": ["Market", "Limit", "StopLimit", "StopMarket"],
    "orderSide": ["Buy", "Sell"],
    "timeInForce": list(_TIME_IN_FORCE),
    "dayOrNet": ["DayWise", "NetWise"],
    "positionSquareOffQuantityType": ["ExactQty", "Percentage"],
    "orderStatus": [
        "PendingNew",
        "New",
        "Trigger Pending",
        "PartiallyFilled",
        "Filled",
        "PendingReplace",
        "Replaced",
        "PendingCancel",
        "Cancelled",
        "Rejected",
    ],
}


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
    bare_rate: float = 0.0
    bare_next: int = 0
    unreadable_fields: list[str] = field(default_factory=list)
    session_error_status: int = 400
    token_ttl_seconds: float = 24 * 3600
    thousands_separators: bool = True
    rate_limit_per_second: int = 0
    rate_limit_status: int = 400
    routes: list[str] = field(default_factory=list)
    stream_refuse: bool = False  # refuse every stream handshake (a broker's socket down)
    # Answer a live token's stream with `44<this>` (JSON; not JSON: as a string), e.g.
    # `"User already connected"` or an envelope with its code; empty: connect it.
    stream_refusal: str = ""

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
            elif isinstance(current, bool):
                if isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                setattr(self, name, bool(value))
            else:
                setattr(self, name, type(current)(value))

    def applies_to(self, route: str) -> bool:
        if route in _FAULT_EXEMPT:
            return False
        return not self.routes or route in self.routes


@dataclass
class _Token:
    user: SimUser
    expires_at: float  # epoch seconds: the JWT's exp


class _Answer(Exception):
    """Raised inside a handler to answer at once with an XTS envelope."""

    def __init__(
        self, status: int, description: str, code: str = "e-simulator-0001", result: Any = None
    ):
        super().__init__(description)
        self.status = status
        # As real XTS errors: {"type", "code", "description"}, and "result" when it says more.
        self.body = {"type": "error", "code": code, "description": description}
        if result is not None:
            self.body["result"] = result


def _bad_request(name: str, message: str) -> _Answer:
    """A malformed request, as XTS reports it: "Bad Request" and the field errors."""
    return _Answer(
        400,
        "Bad Request",
        "e-app-0005",
        {"errors": [{"field": name, "messages": [message]}]},
    )


def _ok(result: Any, description: str = "ok", code: str = "s-simulator-0001") -> dict[str, Any]:
    return {"type": "success", "code": code, "description": description, "result": result}


def _garble(value: Any, names: set[str]) -> None:
    """The unreadable_fields fault: these fields of every row become "NaN" (a broker
    sending numbers nobody can read)."""
    if isinstance(value, dict):
        for key in value:
            if key in names:
                value[key] = "NaN"
            else:
                _garble(value[key], names)
    elif isinstance(value, list):
        for inner in value:
            _garble(inner, names)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_jwt(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT (the simulator signs its session tokens as XTS does)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _parse_body(raw_body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON object, or a form-encoded body (the official SDK logs in with a form)."""
    if not raw_body.strip():
        return {}
    text = raw_body.decode("utf-8", errors="replace")
    if "x-www-form-urlencoded" in content_type:
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
    try:
        body = json.loads(text)
    except ValueError:
        form = parse_qs(text, keep_blank_values=True)
        if form and "json" not in content_type:
            return {k: v[-1] for k, v in form.items()}
        raise _Answer(400, "Malformed JSON body", "e-app-0005") from None
    if not isinstance(body, dict):
        raise _Answer(400, "The body must be a JSON object", "e-app-0005")
    return body


class XtsSimulator:
    """The ASGI app. One instance holds its tokens, faults and counters in memory."""

    def __init__(
        self,
        *,
        users: dict[str, SimUser] | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
        stream_ping_interval: float = 25.0,
        stream_ping_timeout: float = 60.0,
        stream_poll_seconds: float | None = None,
    ):
        self.users = users if users is not None else parse_users(settings.XTS_SIMULATOR_USERS)
        self.faults = faults or Faults(
            token_ttl_seconds=float(settings.XTS_SIMULATOR_TOKEN_TTL_SECONDS),
            thousands_separators=bool(settings.XTS_SIMULATOR_THOUSANDS_SEPARATORS),
            rate_limit_per_second=int(settings.XTS_SIMULATOR_RATE_LIMIT_PER_SECOND),
        )
        self._initial_faults = replace(self.faults, routes=list(self.faults.routes))
        self._random = random.Random(settings.PAPER_SEED if seed is None else seed)
        self._signing_key = secrets.token_bytes(32)
        self._tokens: dict[str, _Token] = {}
        self._recent: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()
        self._pushed: dict[tuple, float] = {}  # order steps the stream has sent
        self.streams = SimulatorStreams(
            token_owner=self._token_owner,
            books_of=self._stream_books,
            collect=self._stream_changes,
            run_sync=_db,
            refuse=lambda: self.faults.stream_refuse,
            refusal=lambda: self.faults.stream_refusal,
            ping_interval=stream_ping_interval,
            ping_timeout=stream_ping_timeout,
            poll_seconds=(
                float(settings.XTS_SIMULATOR_STREAM_POLL_SECONDS)
                if stream_poll_seconds is None
                else stream_poll_seconds
            ),
        )
        self.reset_stats()

    # ---- counters -----------------------------------------------------------------------

    def reset_stats(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests: Counter[str] = Counter()
            self.order_posts_by_uid: Counter[str] = Counter()
            self.client_ids: deque = deque(maxlen=500)
            self.logins = 0
            self.rate_limited = 0
        if hasattr(self, "streams"):
            self.streams.reset_stats()

    def stats(self) -> dict[str, Any]:
        now = time.time()
        return {
            "requests": dict(self.requests),
            "total": sum(self.requests.values()),
            "order_posts_by_uid": dict(self.order_posts_by_uid),
            "client_ids": list(self.client_ids),
            "logins": self.logins,
            "rate_limited": self.rate_limited,
            "live_tokens": sum(1 for t in self._tokens.values() if t.expires_at > now),
            "faults": asdict(self.faults),
            "streams": self.streams.stats(),
        }

    def expire_sessions(self) -> None:
        with self._lock:
            self._tokens.clear()

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            if scope["path"].rstrip("/") == sio.SOCKETIO_PATH:
                await self.streams.serve(scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        status, payload = await self._handle(scope, body)
        data = json.dumps(payload, default=str).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _handle(self, scope, raw_body: bytes) -> tuple[int, Any]:
        method = scope["method"].upper()
        path = scope["path"].rstrip("/") or "/"
        query = {
            k: v[-1]
            for k, v in parse_qs(
                scope.get("query_string", b"").decode(), keep_blank_values=True
            ).items()
        }
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        try:
            body = _parse_body(raw_body, headers.get("content-type", ""))
        except _Answer as answer:
            return answer.status, answer.body
        if path == "/_sim/drop-streams" and method == "POST":
            return 200, {"dropped": await self.streams.drop_all()}
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
        bare = self.faults.applies_to(route) and self._take("bare_next", "bare_rate")
        try:
            status, payload = 200, await self._route(method, path, route, query, headers, body)
        except _Answer as answer:
            status, payload = answer.status, answer.body
        if status == 200 and self.faults.unreadable_fields and self.faults.applies_to(route):
            _garble(payload, set(self.faults.unreadable_fields))
        if bare and status == 200:
            payload = payload["result"]  # HTTP 200 without the envelope (a proxy, a bug)
        if route in _ORDER_ROUTES:
            self.streams.nudge()
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
                self.faults = replace(
                    self._initial_faults, routes=list(self._initial_faults.routes)
                )
                self._recent.clear()
            return 200, self.stats()
        if path == "/_sim/expire-sessions" and method == "POST":
            self.expire_sessions()
            return 200, {"expired": True}
        return 404, {"error": f"no admin endpoint {method} {path}"}

    # ---- broker routes ----------------------------------------------------------------

    def _user_for(self, headers: dict[str, str]) -> SimUser:
        token = headers.get("authorization", "").strip()
        if not token:
            raise _Answer(
                self.faults.session_error_status,
                "Please Provide token to Authenticate",
                "e-token-0002",
            )
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None and entry.expires_at <= time.time():
                del self._tokens[token]
                entry = None
        if entry is None:
            raise _Answer(self.faults.session_error_status, "Invalid Token", "e-session-0007")
        return entry.user

    def _check_rate(self, user: SimUser) -> None:
        """Past rate_limit_per_second requests in the last second: e-apirl-0004, not done."""
        limit = self.faults.rate_limit_per_second
        if limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            recent = self._recent[user.app_key]
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= limit:
                self.rate_limited += 1
                over = True
            else:
                recent.append(now)
                over = False
        if over:
            raise _Answer(
                self.faults.rate_limit_status,
                "Rate limit exceeded: too many requests, try after some time",
                "e-apirl-0004",
            )

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
        if route == LOGIN_ROUTE:
            return self._login(body)
        if path.startswith("/apimarketdata/") or path.startswith("/marketdata/"):
            if path.endswith("/instruments/master") and method == "POST":
                return _ok(await _db(_master_text, body.get("exchangeSegmentList") or []))
            raise _Answer(404, f"Unknown route {route}")
        user = self._user_for(headers)
        self._check_rate(user)
        if route == "DELETE /interactive/user/session":
            token = headers.get("authorization", "").strip()
            with self._lock:
                self._tokens.pop(token, None)
            self.streams.ended([token], "Logged out")
            return _ok({}, "User logged out successfully", "s-user-0004")
        if route == "GET /interactive/user/profile":
            return _ok(
                {
                    "ClientId": user.user_id,
                    "ClientName": user.user_id,
                    "ClientExchangeDetailsList": {},
                },
                "Success profile",
                "s-user-0003",
            )
        if route == "GET /interactive/user/balance" and not user.is_investor_client:
            raise _Answer(400, "Balance is available for investor logins only", "e-user-0005")
        if path in _DEALER_ROUTES and user.is_investor_client:
            raise _Answer(400, "This API is available to dealer logins only", "e-orders-0014")
        client_id = self._client_id(user, query, body, route)
        book = _Book(
            name=f"xts:{user.app_key}" + ("" if user.is_investor_client else f":{client_id}"),
            client_id=client_id,
            login_id=user.user_id,
            separators=self.faults.thousands_separators,
        )
        if route in ("POST /interactive/orders", "PUT /interactive/orders"):
            if self._take("reject_next", "reject_rate"):
                raise _Answer(400, "RMS: order rejected (simulated)", "e-orders-0005")
        handler = _ROUTES.get(route)
        if handler is None:
            raise _Answer(404, f"Unknown route {route}", "e-app-0404")
        function, description, code = handler
        return _ok(await _db(function, book, query, body), description, code)

    def _login(self, body: dict) -> dict[str, Any]:
        for name in ("appKey", "secretKey"):
            if not str(body.get(name) or "").strip():
                raise _bad_request(name, f"{name} is mandatory")
        user = self.users.get(str(body.get("appKey")))
        if user is None or not secrets.compare_digest(
            str(body.get("secretKey") or ""), user.secret_key
        ):
            raise _Answer(400, "Invalid appKey or secretKey", "e-user-0001")
        issued = int(time.time())
        expires = issued + int(self.faults.token_ttl_seconds)
        token = encode_jwt(
            {
                "userID": user.user_id,
                "publicKey": user.app_key,
                "uniqueKey": secrets.token_hex(8),
                "source": str(body.get("source") or "WEBAPI"),
                "iat": issued,
                "exp": expires,
            },
            self._signing_key,
        )
        with self._lock:
            # A new login kills the appKey's previous token, as at XTS.
            killed = [t for t, entry in self._tokens.items() if entry.user.app_key == user.app_key]
            for old in killed:
                del self._tokens[old]
            self._tokens[token] = _Token(user, float(expires))
            self.logins += 1
        # ... and the streams of those tokens hear `logout` (one session per appKey).
        self.streams.ended(killed, "Another session logged in with this appKey")
        return _ok(
            {
                "enums": _ENUMS,
                "clientCodes": list(user.client_codes),
                "exchangeSegmentArray": [
                    {"key": key, "value": value} for key, value in _SEGMENT_CODES.items()
                ],
                "token": token,
                "userID": user.user_id,
                "isInvestorClient": user.is_investor_client,
            },
            "Valid Session",
            "s-user-0001",
        )

    # ---- the interactive stream (orders.brokers.xts.simulator_stream) --------------------

    def _token_owner(self, token: str) -> SimUser | None:
        """The login a live token belongs to (None: unknown or expired)."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry.expires_at <= time.time():
                return None
            return entry.user

    @staticmethod
    def _stream_books(user: SimUser) -> tuple[str, ...]:
        """The paper books a login's stream reports: its own, or a dealer's per client code."""
        if user.is_investor_client:
            return (f"xts:{user.app_key}",)
        return tuple(f"xts:{user.app_key}:{code}" for code in user.client_codes)

    def _stream_changes(self, watched: dict[str, datetime]) -> list[tuple[str, str, dict]]:
        """The order steps of the watched books not streamed yet, oldest first: per step an
        `order` row, and for a fill also its `trade` row. Runs in a worker thread, one call
        at a time (the watcher awaits it)."""
        books = {b.pk: b.name for b in PaperBook.objects.filter(name__in=list(watched))}
        now = time.monotonic()
        # A step is remembered 3 lookbacks and considered only within 2: it is never sent
        # twice, and a late change of an old order does not resend its old steps.
        forget_after = 3 * _STREAM_LOOKBACK.total_seconds()
        for key in [k for k, at in self._pushed.items() if now - at > forget_after]:
            del self._pushed[key]
        horizon = timezone.now() - 2 * _STREAM_LOOKBACK
        if not books:
            return []
        orders = list(
            PaperOrder.objects.filter(
                book_id__in=list(books), updated_at__gte=timezone.now() - _STREAM_LOOKBACK
            ).order_by("id")
        )
        if not orders:
            return []
        states, trades = _states_and_trades(orders)
        steps = []
        for order in orders:
            if not states[order.pk]:
                continue  # placed this instant: its states are being written
            name = books[order.book_id]
            user = self.users.get(name.split(":")[1])
            if user is None:
                continue
            book = _Book(
                name=name,
                client_id=order.client_id,
                login_id=user.user_id,
                separators=self.faults.thousands_separators,
            )
            history = _history(order, states[order.pk], trades[order.pk])
            for index, step in enumerate(history, start=1):
                at = step.row.updated_at
                if at is None or at < watched[name] or at < horizon:
                    continue  # before the stream connected, or long since sent
                row = step.row
                key = (
                    order.pk,
                    step.status,
                    row.filled_quantity,
                    row.quantity,
                    row.order_type,
                    str(row.limit_price),
                    str(row.stop_price),
                    step.trade.pk if step.trade is not None else None,
                )
                if key in self._pushed:
                    continue
                self._pushed[key] = now
                steps.append(
                    ((at, order.pk, index), name, "order", _wire_row(book, row, step.status))
                )
                if step.trade is not None:
                    steps.append(
                        (
                            (at, order.pk, index),
                            name,
                            "trade",
                            _trade_wire_row(book, order, step, index),
                        )
                    )
        steps.sort(key=lambda item: item[0])
        return [(name, event, row) for _key, name, event, row in steps]


# ---- the paper book behind the wire (sync; run in a worker thread) ----------------------


@dataclass(frozen=True)
class _Book:
    """One login's paper book (per client code for a dealer) and how to write its rows."""

    name: str
    client_id: str
    login_id: str
    separators: bool

    def paper(self):

        return book_named(self.name)


async def _db(function, *args):
    def run():
        try:
            return function(*args)
        except OrderRejected as exc:
            raise _Answer(400, exc.message, "e-orders-0005") from exc
        finally:
            close_old_connections()

    return await sync_to_async(run)()


def _decimal(body: dict, name: str) -> Decimal | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _bad_request(name, f"{name} must be a number") from None
    if not number.is_finite():
        raise _bad_request(name, f"{name} must be a number")
    return number if number > 0 else None


def _required(body: dict, name: str) -> Any:
    value = body.get(name)
    if value in (None, ""):
        raise _bad_request(name, f"{name} is mandatory")
    return value


def _integer(body: dict, name: str) -> int:
    try:
        return int(str(_required(body, name)).strip())
    except (TypeError, ValueError):
        raise _bad_request(name, f"{name} must be an integer") from None


def _choice(body: dict, name: str, allowed: tuple[str, ...], *, default: str = "") -> str:
    value = str(body.get(name) or default).strip()
    for option in allowed:
        if value.lower() == option.lower():
            return option
    raise _bad_request(name, f"{name} must be one of {', '.join(allowed)}")


def _flag(body: dict, name: str) -> bool:
    value = body.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _ack(order) -> dict[str, Any]:
    return {
        "AppOrderID": order.app_order_id,
        "OrderUniqueIdentifier": order.unique_identifier,
        "ClientID": order.client_id,
    }


def _exchange_order_id(order) -> str:
    return f"1{order.app_order_id:015d}"


def _record_state(order, status: str, at, reason: str = "") -> None:
    PaperOrderState.objects.create(order=order, **asdict(_Snapshot.of(order, status, at, reason)))


def _states_and_trades(orders: list) -> tuple[dict[int, list], dict[int, list]]:
    """The orders' recorded states and fills, each oldest first, by order id."""
    states: dict[int, list] = defaultdict(list)
    for state in PaperOrderState.objects.filter(order__in=orders).order_by("at", "id"):
        states[state.order_id].append(state)
    trades: dict[int, list] = defaultdict(list)
    for trade in PaperTrade.objects.filter(order__in=orders).order_by("traded_at", "id"):
        trades[trade.order_id].append(trade)
    return states, trades


def _is_stop(order_type: str) -> bool:
    return order_type in STOP_ORDER_TYPES


def _place_request(book: _Book, request: PlaceOrderRequest) -> dict[str, Any]:
    """Place as a real broker does: an unknown instrument is refused at once; every other
    rule (margin, price band, freeze quantity, lot, tick) is accepted and then Rejected."""

    if not Instrument.objects.filter(
        exchange_segment=request.exchange_segment,
        exchange_instrument_id=request.exchange_instrument_id,
    ).exists():
        raise _Answer(
            400,
            f"Instrument {request.exchange_segment}:{request.exchange_instrument_id} not found",
            "e-orders-0006",
        )
    accepted_at = timezone.now()
    [answer] = submit_orders(book=book.paper(), requests=[request], client_id=book.client_id)
    if isinstance(answer, OrderRejected):
        order = PaperOrder.objects.get(app_order_id=answer.response["AppOrderID"])
        _record_state(order, "PendingNew", accepted_at)
        _record_state(order, "Rejected", accepted_at, order.reject_reason)
        return _ack(order)
    order = answer
    _record_state(order, "PendingNew", accepted_at)
    _record_state(order, "Trigger Pending" if _is_stop(order.order_type) else "New", accepted_at)
    return _ack(order)


def _place(book: _Book, query: dict, body: dict) -> dict[str, Any]:
    request = PlaceOrderRequest(
        exchange_segment=str(_required(body, "exchangeSegment")),
        exchange_instrument_id=_integer(body, "exchangeInstrumentID"),
        side=_choice(body, "orderSide", _SIDES),
        order_type=_choice(body, "orderType", _ORDER_TYPES),
        product_type=_choice(body, "productType", _PRODUCTS),
        quantity=_integer(body, "orderQuantity"),
        unique_identifier=str(body.get("orderUniqueIdentifier") or "")[:20],
        limit_price=_decimal(body, "limitPrice"),
        stop_price=_decimal(body, "stopPrice"),
        time_in_force=_choice(body, "timeInForce", _TIME_IN_FORCE, default="DAY"),
    )
    if request.quantity <= 0:
        raise _bad_request("orderQuantity", "orderQuantity must be positive")
    return _place_request(book, request)


def _modify(book: _Book, query: dict, body: dict) -> dict[str, Any]:

    request = ModifyOrderRequest(
        broker_order_id=str(_integer(body, "appOrderID")),
        unique_identifier=str(body.get("orderUniqueIdentifier") or ""),
        order_type=_choice(body, "modifiedOrderType", _ORDER_TYPES),
        product_type=str(body.get("modifiedProductType") or ""),
        quantity=_integer(body, "modifiedOrderQuantity"),
        limit_price=_decimal(body, "modifiedLimitPrice"),
        stop_price=_decimal(body, "modifiedStopPrice"),
        time_in_force=_choice(body, "modifiedTimeInForce", _TIME_IN_FORCE, default="DAY"),
    )
    modified_at = timezone.now()
    order = modify_order(book=book.paper(), request=request)
    _record_state(order, "Replaced", modified_at)
    return _ack(order)


def _cancel(book: _Book, query: dict, body: dict) -> dict[str, Any]:

    order = cancel_order(book=book.paper(), broker_order_id=str(_integer(query, "appOrderID")))
    _record_state(order, "Cancelled", timezone.now())
    return _ack(order)


def _cancel_open_orders(book: _Book, segment: str, instrument_id: int) -> list[int | None]:

    paper = book.paper()
    open_orders = PaperOrder.objects.filter(
        book=paper,
        status__in=PaperOrder.OPEN_STATUSES,
        exchange_segment=segment,
        exchange_instrument_id=instrument_id,
    ).values_list("app_order_id", flat=True)
    cancelled = []
    for app_order_id in list(open_orders):
        order = cancel_order(book=paper, broker_order_id=str(app_order_id))
        _record_state(order, "Cancelled", timezone.now())
        cancelled.append(order.app_order_id)
    return cancelled


def _cancel_all(book: _Book, query: dict, body: dict) -> dict[str, Any]:
    cancelled = _cancel_open_orders(
        book, str(_required(body, "exchangeSegment")), _integer(body, "exchangeInstrumentID")
    )
    return {"cancelledAppOrderIDs": cancelled}


# ---- order states: the book, the history and the trades ---------------------------------


@dataclass(frozen=True)
class _Step:
    """One state of an order's history: its XTS status, the row at that moment, and the
    fill that made it (for a fill)."""

    status: str
    row: BrokerOrderRow
    trade: Any = None


# What an order asks for: its states record these as they were at each moment, and each
# row of its history shows the ones of that moment.
_TERMS = ("order_type", "product_type", "quantity", "limit_price", "stop_price")


def _terms(source) -> dict[str, Any]:
    return {name: getattr(source, name) for name in _TERMS}


def _row_of(order, **changes) -> BrokerOrderRow:
    return replace(order_row(order, exchange_order_id=_exchange_order_id(order)), **changes)


_FINAL = ("Filled", "Cancelled", "Rejected")


def _history(order, states: list, trades: list) -> list[_Step]:
    """Every state the order passed through, oldest first: the states the simulator wrote
    (placement, modifications, cancellation) merged with the fills, which carry the running
    filled quantity and average price."""
    if not states:  # an order from before the history was kept: its placement, then fills
        opened = "Rejected" if order.status == LegStatus.REJECTED else "New"
        states = [
            _Snapshot.of(order, "PendingNew", order.created_at),
            _Snapshot.of(order, opened, order.created_at, order.reject_reason),
        ]
    events = sorted(
        [((s.at, 0, i), s) for i, s in enumerate(states)]
        + [((t.traded_at, 1, t.pk), t) for t in trades],
        key=lambda event: event[0],
    )
    steps: list[_Step] = []
    terms = states[0]
    filled, amount = 0, Decimal("0")
    for (at, kind, _), item in events:
        trade = None
        if kind == 0:
            terms, status = item, item.status
        else:
            trade = item
            filled += item.quantity
            amount += item.price * item.quantity
            status = "Filled" if filled >= terms.quantity else "PartiallyFilled"
        # Not at the exchange (yet): no exchange order id before New, nor for an RMS reject.
        at_exchange = filled > 0 or status not in ("PendingNew", "Rejected")
        steps.append(
            _Step(
                status=status,
                trade=trade,
                row=_row_of(
                    order,
                    **_terms(terms),
                    filled_quantity=filled,
                    leaves_quantity=0 if status in _FINAL else max(terms.quantity - filled, 0),
                    average_price=(amount / filled) if filled else None,
                    reject_reason=getattr(item, "reject_reason", "") if kind == 0 else "",
                    exchange_order_id=_exchange_order_id(order) if at_exchange else "",
                    transact_time=at,
                    updated_at=at,
                ),
            )
        )
    return steps


@dataclass(frozen=True)
class _Snapshot:
    """A PaperOrderState-like record for an order that has none."""

    status: str
    order_type: str
    product_type: str
    quantity: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    reject_reason: str
    at: datetime

    @classmethod
    def of(cls, order, status: str, at, reason: str = "") -> _Snapshot:
        return cls(status=status, **_terms(order), reject_reason=reason, at=at)


def _book_status(order, history: list[_Step]) -> str:
    """The order-book status of an order now, in XTS words."""
    if order.status in FINAL_LEG_STATUSES:
        return xts_wire.status_to_xts(order.status)
    if _is_stop(order.order_type) and not order.triggered and not order.filled_quantity:
        return "Trigger Pending"
    if history and history[-1].status == "Replaced":
        return "Replaced"
    return "PartiallyFilled" if order.filled_quantity else "New"


def _orders_of(book: _Book, app_order_id: int | None = None) -> list[tuple[Any, list[_Step]]]:
    """The book's orders (matched against the current prices first) with their histories."""

    paper = book.paper()
    match_open_orders(book=paper)
    query = PaperOrder.objects.filter(book=paper).order_by("id")
    if app_order_id is not None:
        query = query.filter(app_order_id=app_order_id)
    orders = list(query)
    states, trades = _states_and_trades(orders)
    return [(o, _history(o, states[o.pk], trades[o.pk])) for o in orders]


def _wire_row(book: _Book, row: BrokerOrderRow, status: str) -> dict[str, Any]:
    return xts_wire.order_row_to_xts(
        row, xts_status=status, login_id=book.login_id, separators=book.separators
    )


def _order_book(book: _Book, query: dict, body: dict) -> list[dict[str, Any]]:
    """The order book, or one order's history with `appOrderID`."""
    if query.get("appOrderID") not in (None, ""):
        app_order_id = _integer(query, "appOrderID")
        found = _orders_of(book, app_order_id)
        if not found:
            raise _Answer(400, f"Order {app_order_id} not found", "e-orders-0007")
        [(_order, history)] = found
        return [_wire_row(book, step.row, step.status) for step in history]
    rows = []
    for order, history in _orders_of(book):
        status = _book_status(order, history)
        exchange_order_id = "" if order.status == LegStatus.REJECTED else _exchange_order_id(order)
        rows.append(_wire_row(book, _row_of(order, exchange_order_id=exchange_order_id), status))
    return rows


def _trade_wire_row(book: _Book, order, step: _Step, execution_report_index: int) -> dict[str, Any]:
    """The trade-book row of one fill: the order row as of that fill plus the execution."""
    return xts_wire.trade_row_to_xts(
        _wire_row(book, step.row, step.status),
        trade_row(step.trade, order),
        execution_report_index=execution_report_index,
    )


def _trade_book(book: _Book, query: dict, body: dict) -> list[dict[str, Any]]:
    """One row per fill: the order row as of that fill plus the execution fields."""
    fills = []
    for order, history in _orders_of(book):
        for index, step in enumerate(history, start=1):
            if step.trade is None:
                continue
            fills.append(
                ((step.trade.traded_at, step.trade.pk), _trade_wire_row(book, order, step, index))
            )
    return [row for _key, row in sorted(fills, key=lambda fill: fill[0])]


def _scaled(value: Decimal | None, share: Decimal) -> Decimal:
    return ((value or Decimal("0")) * share).quantize(Decimal("0.01"))


def _move(
    row: BrokerPositionRow, quantity: int, multiplier: int
) -> tuple[BrokerPositionRow, BrokerPositionRow]:
    """Split `quantity` (signed like the net) off a position row: (what stays, what moves).
    The moved part carries its open quantity at the row's average price (in rupees: x the
    contract's `multiplier`, as the row's amounts are) and its share of the unrealized MTM;
    realized MTM stays where it was made."""
    zero = Decimal("0")
    assert row.net_qty is not None  # the paper book's rows carry their numbers
    share = Decimal(quantity) / Decimal(row.net_qty)
    long = quantity > 0
    price = (row.buy_avg_price if long else row.sell_avg_price) or zero
    moved_amount = (price * abs(quantity) * multiplier).quantize(Decimal("0.01"))
    moved_buy_qty, moved_sell_qty = (abs(quantity), 0) if long else (0, abs(quantity))
    moved_buy_amount, moved_sell_amount = (moved_amount, zero) if long else (zero, moved_amount)
    moved_net_amount = -moved_amount if long else moved_amount
    unrealized = _scaled(row.unrealized_mtm, share)
    moved = BrokerPositionRow(
        exchange_segment=row.exchange_segment,
        exchange_instrument_id=row.exchange_instrument_id,
        trading_symbol=row.trading_symbol,
        product_type=row.product_type,
        net_qty=quantity,
        buy_qty=moved_buy_qty,
        sell_qty=moved_sell_qty,
        buy_avg_price=price if long else None,
        sell_avg_price=None if long else price,
        buy_amount=moved_buy_amount,
        sell_amount=moved_sell_amount,
        net_amount=moved_net_amount,
        realized_mtm=zero,
        unrealized_mtm=unrealized,
        mtm=unrealized,
    )
    stays = replace(
        row,
        net_qty=row.net_qty - quantity,
        buy_qty=(row.buy_qty or 0) - moved_buy_qty,
        sell_qty=(row.sell_qty or 0) - moved_sell_qty,
        buy_amount=(row.buy_amount or zero) - moved_buy_amount,
        sell_amount=(row.sell_amount or zero) - moved_sell_amount,
        net_amount=(row.net_amount or zero) - moved_net_amount,
        unrealized_mtm=(row.unrealized_mtm or zero) - unrealized,
        mtm=(row.mtm or zero) - unrealized,
    )
    return stays, moved


def _add(into: BrokerPositionRow | None, part: BrokerPositionRow, product: str):
    part = replace(part, product_type=product)
    if into is None:
        return part
    zero = Decimal("0")
    buy_qty = (into.buy_qty or 0) + (part.buy_qty or 0)
    sell_qty = (into.sell_qty or 0) + (part.sell_qty or 0)
    buy_amount = (into.buy_amount or zero) + (part.buy_amount or zero)
    sell_amount = (into.sell_amount or zero) + (part.sell_amount or zero)
    return replace(
        into,
        net_qty=(into.net_qty or 0) + (part.net_qty or 0),
        buy_qty=buy_qty,
        sell_qty=sell_qty,
        buy_amount=buy_amount,
        sell_amount=sell_amount,
        buy_avg_price=(buy_amount / buy_qty).quantize(Decimal("0.0001")) if buy_qty else None,
        sell_avg_price=(sell_amount / sell_qty).quantize(Decimal("0.0001")) if sell_qty else None,
        net_amount=(into.net_amount or zero) + (part.net_amount or zero),
        realized_mtm=(into.realized_mtm or zero) + (part.realized_mtm or zero),
        unrealized_mtm=(into.unrealized_mtm or zero) + (part.unrealized_mtm or zero),
        mtm=(into.mtm or zero) + (part.mtm or zero),
    )


def _position_rows(book: _Book) -> list[BrokerPositionRow]:
    """The book's positions from its fills, with its position conversions applied."""

    paper = book.paper()
    match_open_orders(book=paper)
    rows = {
        (r.exchange_segment, r.exchange_instrument_id, r.product_type): r
        for r in position_rows(paper)
    }
    conversions = list(PaperPositionConversion.objects.filter(book=paper).order_by("id"))
    contracts = _contracts(list(rows.values())) if conversions else {}
    for conversion in conversions:
        source_key = (
            conversion.exchange_segment,
            conversion.exchange_instrument_id,
            conversion.from_product,
        )
        source = rows.get(source_key)
        if (
            source is None
            or not source.net_qty
            or (source.net_qty > 0) != (conversion.quantity > 0)
        ):
            continue  # closed (or turned) since: nothing left to carry over
        quantity = conversion.quantity
        if abs(quantity) > abs(source.net_qty):
            quantity = source.net_qty
        contract = contracts.get(source.exchange_instrument_id, _UNLISTED)
        stays, moved = _move(source, quantity, contract.multiplier)
        rows[source_key] = stays
        target_key = (*source_key[:2], conversion.to_product)
        rows[target_key] = _add(rows.get(target_key), moved, conversion.to_product)
    return [rows[key] for key in sorted(rows)]


class _Contract(NamedTuple):
    lot_size: int
    multiplier: int


# An instrument the master lacks: lots of one, a unit worth its price.
_UNLISTED = _Contract(lot_size=1, multiplier=1)


def _contracts(rows: list[BrokerPositionRow]) -> dict[int, _Contract]:
    """Exchange instrument id -> the lot size and contract multiplier of the rows' instruments."""
    return {
        instrument_id: _Contract(lot_size, multiplier)
        for instrument_id, lot_size, multiplier in Instrument.objects.filter(
            exchange_instrument_id__in=[r.exchange_instrument_id for r in rows]
        ).values_list("exchange_instrument_id", "lot_size", "multiplier")
    }


def _positions(book: _Book, query: dict, body: dict) -> dict[str, Any]:
    _choice(query, "dayOrNet", ("DayWise", "NetWise"), default="NetWise")
    rows = _position_rows(book)
    contracts = _contracts(rows)
    now = timezone.now()
    listed = []
    for row in rows:
        contract = contracts.get(row.exchange_instrument_id, _UNLISTED)
        listed.append(
            xts_wire.position_row_to_xts(
                row,
                account_id=book.client_id,
                lot_size=contract.lot_size,
                multiplier=contract.multiplier,
                separators=book.separators,
                at=now,
            )
        )
    return {"positionList": listed}


def _open_position(book: _Book, body: dict, product_field: str) -> BrokerPositionRow:
    segment = str(_required(body, "exchangeSegment"))
    instrument_id = _integer(body, "exchangeInstrumentID")
    product = _choice(body, product_field, _PRODUCTS)
    for row in _position_rows(book):
        key = (row.exchange_segment, row.exchange_instrument_id, row.product_type)
        if key == (segment, instrument_id, product) and row.net_qty:
            return row
    raise _Answer(
        400, f"No open {product} position in {segment}:{instrument_id}", "e-portfolio-0003"
    )


def _convert(book: _Book, query: dict, body: dict) -> dict[str, Any]:

    target = _integer(body, "targetQty")
    new_product = _choice(body, "newProductType", _PRODUCTS)
    position = _open_position(book, body, "oldProductType")
    assert position.net_qty is not None  # an open position's quantity is known
    if target <= 0 or target > abs(position.net_qty):
        raise _bad_request("targetQty", f"targetQty must be between 1 and {abs(position.net_qty)}")
    if new_product == position.product_type:
        raise _bad_request("newProductType", "newProductType must differ from oldProductType")
    PaperPositionConversion.objects.create(
        book=book.paper(),
        exchange_segment=position.exchange_segment,
        exchange_instrument_id=position.exchange_instrument_id,
        from_product=position.product_type,
        to_product=new_product,
        quantity=target if position.net_qty > 0 else -target,
    )
    return {
        "exchangeSegment": position.exchange_segment,
        "exchangeInstrumentID": position.exchange_instrument_id,
        "oldProductType": position.product_type,
        "newProductType": new_product,
        "targetQty": target,
        "isDayWise": _flag(body, "isDayWise"),
    }


def _square_off(book: _Book, query: dict, body: dict) -> dict[str, Any]:
    """Close (part of) a position with a market order; cancelOrders cancels the instrument's
    open orders first. blockOrderSending is accepted and has no effect here."""
    _choice(body, "squareoffMode", ("DayWise", "NetWise"), default="NetWise")
    kind = _choice(body, "positionSquareOffQuantityType", ("ExactQty", "Percentage"))
    value = _decimal(body, "squareOffQtyValue")
    position = _open_position(book, body, "productType")
    assert position.net_qty is not None  # an open position's quantity is known
    net = abs(position.net_qty)
    if value is None:
        raise _bad_request("squareOffQtyValue", "squareOffQtyValue must be positive")
    quantity = int(value) if kind == "ExactQty" else int(net * value / 100)
    lot = _contracts([position]).get(position.exchange_instrument_id, _UNLISTED).lot_size or 1
    quantity = min(quantity - quantity % lot, net)
    if quantity <= 0:
        raise _bad_request("squareOffQtyValue", "nothing to square off at that value")
    if _flag(body, "cancelOrders"):
        _cancel_open_orders(book, position.exchange_segment, position.exchange_instrument_id)
    request = PlaceOrderRequest(
        exchange_segment=position.exchange_segment,
        exchange_instrument_id=position.exchange_instrument_id,
        side=Side.SELL if position.net_qty > 0 else Side.BUY,
        order_type=OrderType.MARKET,
        product_type=position.product_type,
        quantity=quantity,
        unique_identifier=f"SQOFF{secrets.token_hex(4)}",
    )
    return _place_request(book, request)


def _balance(book: _Book, query: dict, body: dict) -> dict[str, Any]:

    rows = _position_rows(book)
    return xts_wire.balance_to_xts(
        compute_balance(book.paper()),
        account_id=book.client_id,
        realized_mtm=sum((r.realized_mtm or Decimal("0") for r in rows), Decimal("0")),
        unrealized_mtm=sum((r.unrealized_mtm or Decimal("0") for r in rows), Decimal("0")),
    )


def _holdings(book: _Book, query: dict, body: dict) -> dict[str, Any]:
    """CNC positions the book carried over from earlier trading days, keyed as XTS keys them
    (by ISIN; the paper book has none, so a made-up "SIM..." code stands in)."""
    now = timezone.now()
    rows = holding_rows(book.paper(), before=trading_day_start(now))
    return {
        "RMSHoldings": {
            "ClientId": book.client_id,
            "Holdings": {
                f"SIM{row.exchange_instrument_id}": xts_wire.holding_row_to_xts(
                    row, isin=f"SIM{row.exchange_instrument_id}", at=now
                )
                for row in rows
            },
        }
    }


def _master_text(segments: list[str]) -> str:

    instruments = Instrument.objects.all().order_by("exchange_segment", "exchange_instrument_id")
    if segments:
        instruments = instruments.filter(exchange_segment__in=[str(s) for s in segments])
    return "\n".join(format_master_line(instrument) for instrument in instruments)


_DEALER_ROUTES = {
    "/interactive/orders/dealerorderbook",
    "/interactive/orders/dealertradebook",
    "/interactive/portfolio/dealerpositions",
}
# route -> (handler(book, query, body), success description, success code), as real answers.
_ROUTES = {
    "POST /interactive/orders": (_place, "Request sent", "s-orders-0001"),
    "PUT /interactive/orders": (_modify, "Request sent", "s-orders-0001"),
    "DELETE /interactive/orders": (_cancel, "Request sent", "s-orders-0001"),
    "POST /interactive/orders/cancelall": (_cancel_all, "Request sent", "s-orders-0001"),
    "GET /interactive/orders": (_order_book, "Success order book", "s-orders-0001"),
    "GET /interactive/orders/trades": (_trade_book, "Success trade book", "s-orders-0001"),
    "GET /interactive/portfolio/positions": (_positions, "Success position", "s-portfolio-0001"),
    "GET /interactive/portfolio/holdings": (_holdings, "Success holdings", "s-portfolio-0001"),
    "PUT /interactive/portfolio/positions/convert": (
        _convert,
        "Position converted successfully",
        "s-portfolio-0001",
    ),
    "PUT /interactive/portfolio/squareoff": (_square_off, "Request sent", "s-portfolio-0001"),
    "GET /interactive/user/balance": (_balance, "OK", "s-user-0002"),
}
# A dealer's books answer as the investor's do, for the clientID it names.
_ROUTES |= {
    "GET /interactive/orders/dealerorderbook": _ROUTES["GET /interactive/orders"],
    "GET /interactive/orders/dealertradebook": _ROUTES["GET /interactive/orders/trades"],
    "GET /interactive/portfolio/dealerpositions": _ROUTES["GET /interactive/portfolio/positions"],
}


# ---- serving ----------------------------------------------------------------------------


async def answer_lifespan(receive: AsgiReceive, send: AsgiSend) -> None:
    """The ASGI lifespan protocol for an app with nothing to start or stop (uvicorn runs it)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: AsgiReceive) -> bytes:
    """An HTTP request's whole body (ASGI hands it over in parts)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


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
