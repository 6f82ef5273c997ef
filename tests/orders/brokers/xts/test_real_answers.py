"""Every answer of a real XTS server (data/xts_real_answers.json, a verbatim copy of
shared/xts-samples/real-answers.json) read through the XTS gateway over a real socket, and
the envelope rules (XTS.md) on answers shaped like them.

The answers are replayed byte for byte by a small ASGI app: the point is what the gateway
makes of a real broker's bytes, which the simulator (written by us) cannot show."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from orders.brokers.base import (
    BrokerBalance,
    BrokerNotReached,
    BrokerUnavailable,
    Credentials,
    OrderRejected,
    PlaceOrderRequest,
    RateLimited,
    SessionContext,
    SessionExpired,
)
from orders.brokers.xts.gateway import XtsGateway
from orders.brokers.xts.simulator import answer_lifespan, read_body, serve_in_thread
from orders.brokers.xts.wire import (
    EXCHANGE_TZ,
    order_row_from_xts,
    parse_decimal,
    parse_int,
    parse_time,
    position_row_from_xts,
    trade_row_from_xts,
)
from orders.domain.vocabulary import LegStatus
from tests.factories import order_request, real_xts_answers

D = Decimal
REAL = real_xts_answers()
# The real answers' one order (75 NIFTY 24DEC2020 CE 13650 sold at market): its AppOrderID
# and OrderUniqueIdentifier, which its placement, book row, history and fill all carry.
REAL_ORDER_ID = "10026325"
REAL_UID = "123777"
IST = EXCHANGE_TZ


class Replay:
    """An HTTP server that answers each route with a stored body, verbatim."""

    def __init__(self):
        self.answers: dict[str, tuple[int, bytes, str]] = {}
        self.drips: dict[str, float] = {}  # route -> seconds between the body's bytes
        self.headers: dict[str, list[tuple[bytes, bytes]]] = {}  # route -> more headers
        self.requests: list[tuple[str, dict, dict, bytes]] = []

    def answer(
        self,
        route: str,
        body,
        *,
        status: int = 200,
        content_type="application/json",
        drip=0.0,
        headers: dict[str, str] | None = None,
    ):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[route] = (status, data, content_type)
        self.drips[route] = drip
        self.headers[route] = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await read_body(receive)
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        route = f"{scope['method']} {scope['path']}" + (
            "?appOrderID" if "appOrderID" in query else ""
        )
        self.requests.append((route, query, headers, body))
        status, data, content_type = self.answers.get(
            route, (404, b'{"type":"error","code":"e-app-0404","description":"no route"}', "")
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", (content_type or "application/json").encode()),
                    *self.headers.get(route, []),
                ],
            }
        )
        drip = self.drips.get(route, 0.0)
        while drip and len(data) > 1:  # a slow proxy: a byte at a time
            await send({"type": "http.response.body", "body": data[:1], "more_body": True})
            data = data[1:]
            await asyncio.sleep(drip)
        await send({"type": "http.response.body", "body": data})


@pytest.fixture
def replay(settings):
    settings.BROKER_READ_RETRIES = 0
    app = Replay()
    running = serve_in_thread(app)
    app.base_url = running.base_url
    yield app
    running.stop()


def _gateway(replay) -> XtsGateway:
    return XtsGateway(base_url=replay.base_url, name="IIFL", read_retries=0, backoff_seconds=0)


def _session(replay, *, investor=True, client_id="") -> SessionContext:
    return SessionContext(
        account_id=1,
        access_token="token-1",
        client_id=client_id,
        is_investor_client=investor,
        base_url=replay.base_url,
    )


def _jwt(lifetime: int, issued: int | None = None) -> str:
    """A token shaped like XTS's (the samples dropped the real one): exp - iat = lifetime."""
    issued = issued or int(time.time())

    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"userID": "IIFL24", "iat": issued, "exp": issued + lifetime}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def _envelope(result, code="s-orders-0001", description="ok"):
    return {"type": "success", "code": code, "description": description, "result": result}


def _ist(*args) -> datetime:
    return datetime(*args, tzinfo=IST)


# ---- every real answer, through the gateway --------------------------------------------------


def test_the_real_login_keys_give_an_investor_session_trusted_24_hours(replay):
    result = {
        "enums": {},
        "clientCodes": ["IIFL24"],
        "exchangeSegmentArray": [],
        "token": _jwt(86_400, issued=int(time.time()) - 600),  # issued 10 min ago
        "userID": "IIFL24",
        "isInvestorClient": True,
    }
    assert set(result) == set(REAL["login_result_keys"])
    replay.answer("POST /interactive/user/session", _envelope(result, "s-user-0001"))
    login = async_to_sync(_gateway(replay).login)(Credentials(app_key="k", secret_key="s"))
    # Trusted for the token's own lifetime (exp - iat), counted from now: 24 h, not 8.
    lifetime = login.expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24)
    assert (login.broker_user_id, login.is_investor_client, login.client_codes) == (
        "IIFL24",
        True,
        ("IIFL24",),
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": 1_700_000_000, "exp": 1_700_086_400_000},  # exp in milliseconds
        {"exp": 10**15},  # no iat, an exp past the year 9999
    ],
)
def test_a_token_whose_expiry_overflows_a_datetime_is_trusted_for_the_default_ttl(
    replay, settings, claims
):
    """The expiry came from `exp - iat` (or `exp`) unchecked: OverflowError or ValueError, an
    untyped crash of every login of the account (the trader's Connect answered 500)."""
    part = _jwt(86_400).split(".")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    result = {"token": f"{part[0]}.{body}.{part[2]}", "userID": "IIFL24", "isInvestorClient": True}
    replay.answer("POST /interactive/user/session", _envelope(result, "s-user-0001"))
    login = async_to_sync(_gateway(replay).login)(Credentials(app_key="k", secret_key="s"))
    lifetime = login.expires_at - timezone.now()
    ttl = timedelta(seconds=settings.XTS_SESSION_TTL_SECONDS)
    assert ttl - timedelta(minutes=1) < lifetime <= ttl


def test_the_real_place_answer_is_an_ack(replay):
    replay.answer("POST /interactive/orders", REAL["place"])
    request = order_request(("NSEFO", 39972), REAL_UID, side="SELL", quantity=75)
    ack = async_to_sync(_gateway(replay).place_order)(_session(replay), request)
    assert (ack.broker_order_id, ack.unique_identifier) == (REAL_ORDER_ID, REAL_UID)
    [(_route, _query, headers, body)] = replay.requests
    assert headers["authorization"] == "token-1"  # as is, no "Bearer"
    sent = json.loads(body)
    assert "clientID" not in sent  # an investor login acts for itself
    assert (sent["orderSide"], sent["orderQuantity"], sent["exchangeInstrumentID"]) == (
        "SELL",
        75,
        39972,
    )


@pytest.mark.parametrize("result", [None, {}, {"OrderUniqueIdentifier": "ACK2", "AppOrderID": ""}])
def test_a_success_without_an_order_id_is_an_unknown_outcome_not_a_rejection(replay, result):
    """The broker said success, so the order may be working there: a rejection would let
    the trader place it again (two orders); unknown leaves the leg pending for the book."""
    replay.answer("POST /interactive/orders", _envelope(result, description="Request sent"))
    request = order_request(("NSEFO", 39972), "ACK2", quantity=75)
    with pytest.raises(BrokerUnavailable, match="without an AppOrderID") as raised:
        async_to_sync(_gateway(replay).place_order)(_session(replay), request)
    assert not isinstance(raised.value, BrokerNotReached)


def test_the_real_order_book_row_reads_every_field(replay):
    replay.answer("GET /interactive/orders", REAL["order_book"])
    (row,) = async_to_sync(_gateway(replay).order_book)(_session(replay))
    assert (row.broker_order_id, row.unique_identifier, row.exchange_order_id) == (
        REAL_ORDER_ID,
        REAL_UID,
        "X_30698343",
    )
    assert (row.exchange_segment, row.exchange_instrument_id, row.client_id) == (
        "NSEFO",
        39972,
        "IIFL24",
    )
    assert (row.side, row.order_type, row.product_type, row.time_in_force) == (
        "SELL",
        "MARKET",
        "MIS",
        "DAY",
    )
    assert (row.quantity, row.filled_quantity, row.leaves_quantity) == (75, 75, 0)
    assert (row.status, row.raw_status, row.reject_reason) == (LegStatus.FILLED, "Filled", "")
    assert row.average_price == D("31.80")
    assert (row.limit_price, row.stop_price) == (D("0"), D("0"))
    assert row.generated_at == _ist(2020, 12, 21, 14, 49, 16, 28726)
    assert row.transact_time == _ist(2020, 12, 21, 14, 49, 16)
    assert row.updated_at == _ist(2020, 12, 21, 14, 49, 16, 350748)


def test_the_real_order_history_reads_one_row_per_state_oldest_first(replay):
    replay.answer("GET /interactive/orders?appOrderID", REAL["order_history"])
    rows = async_to_sync(_gateway(replay).order_history)(_session(replay), REAL_ORDER_ID)
    assert [(r.raw_status, r.status) for r in rows] == [
        ("PendingNew", LegStatus.OPEN),
        ("New", LegStatus.OPEN),
        ("Filled", LegStatus.FILLED),
    ]
    assert [r.average_price for r in rows] == [None, None, D("31.80")]
    assert [r.exchange_order_id for r in rows] == ["", "X_30698343", "X_30698343"]
    assert [(r.filled_quantity, r.leaves_quantity) for r in rows] == [(0, 75), (0, 75), (75, 0)]
    # "2020-12-21T14:49:16.0287269+05:30": a seven-digit fraction with a zone
    assert rows[0].transact_time == _ist(2020, 12, 21, 14, 49, 16, 28726)
    assert replay.requests[-1][1] == {"appOrderID": REAL_ORDER_ID}


def test_the_real_trade_book_row_is_one_fill(replay):
    replay.answer("GET /interactive/orders/trades", REAL["trade_book"])
    (trade,) = async_to_sync(_gateway(replay).trade_book)(_session(replay))
    assert (trade.execution_id, trade.broker_order_id, trade.unique_identifier) == (
        "30901451",
        REAL_ORDER_ID,
        REAL_UID,
    )
    assert (trade.side, trade.product_type, trade.quantity, trade.price) == (
        "SELL",
        "MIS",
        75,
        D("31.8"),
    )
    assert trade.traded_at == _ist(2020, 12, 21, 14, 49, 16)


def test_the_real_day_wise_positions_read_strings_with_separators(replay, settings):
    settings.XTS_POSITIONS_MODE = "DayWise"
    replay.answer("GET /interactive/portfolio/positions", REAL["positions_daywise"])
    (row,) = async_to_sync(_gateway(replay).positions)(_session(replay))
    assert replay.requests[-1][1] == {"dayOrNet": "DayWise"}
    assert (row.exchange_segment, row.exchange_instrument_id, row.product_type) == (
        "NSEFO",
        39972,
        "MIS",
    )
    assert row.trading_symbol == "NIFTY 24DEC2020 CE 13650"
    assert (row.net_qty, row.buy_qty, row.sell_qty) == (0, 75, 75)
    assert (row.buy_avg_price, row.sell_avg_price) == (D("23.90"), D("31.80"))
    # "1,792.50" and "2,385.00": read, not 0 and not None
    assert (row.buy_amount, row.sell_amount, row.net_amount) == (
        D("1792.50"),
        D("2385.00"),
        D("592.50"),
    )
    assert (row.realized_mtm, row.unrealized_mtm, row.mtm) == (
        D("592.50"),
        D("0.00"),
        D("592.50"),
    )


def test_the_real_position_rows_with_thousands_separators(replay):
    replay.answer(
        "GET /interactive/portfolio/positions",
        _envelope({"positionList": REAL["position_list_commas"]}, "s-portfolio-0001"),
    )
    short, long = async_to_sync(_gateway(replay).positions)(_session(replay))
    assert (short.exchange_instrument_id, short.net_qty, short.sell_qty) == (41376, -75, 75)
    assert short.buy_avg_price is None and short.sell_avg_price == D("82.70")
    assert (short.sell_amount, short.net_amount, short.unrealized_mtm, short.mtm) == (
        D("6202.50"),
        D("6202.50"),
        D("1485.00"),
        D("1485.00"),
    )
    # The row says Quantity 75 with equal open buy and sell quantities: Quantity is the
    # broker's net and is taken as sent, not re-derived.
    assert (long.exchange_instrument_id, long.net_qty, long.buy_qty, long.sell_qty) == (
        41377,
        75,
        75,
        75,
    )
    assert (long.buy_amount, long.sell_amount, long.net_amount) == (
        D("5426.25"),
        D("4282.50"),
        D("-1143.75"),
    )
    assert (long.realized_mtm, long.mtm) == (D("-1143.75"), D("-1143.75"))


def test_the_real_balance_reads_the_rms_sub_limits(replay):
    replay.answer("GET /interactive/user/balance", REAL["balance"])
    balance = async_to_sync(_gateway(replay).balance)(_session(replay))
    assert balance == BrokerBalance(
        cash_available=D("1000000000"),
        margin_utilized=D("20163.6"),
        net_margin=D("999979836.4"),
    )


def test_a_dealer_login_reads_no_balance(replay):
    replay.answer("GET /interactive/user/balance", REAL["balance"])
    session = _session(replay, investor=False, client_id="PR03")
    assert async_to_sync(_gateway(replay).balance)(session) is None
    assert replay.requests == []


def test_the_real_trade_event_reads_as_an_order_row_and_a_fill():
    event = REAL["trade_event_2024"]
    row = order_row_from_xts(event)
    assert row.average_price == D("2853.50")  # "2,853.50"
    assert (row.status, row.filled_quantity, row.quantity, row.side) == (
        LegStatus.FILLED,
        3,
        3,
        "SELL",
    )
    assert (row.client_id, row.trading_symbol, row.exchange_instrument_id) == (
        "PR03",
        "BALKRISIND",
        335,
    )
    assert row.generated_at == _ist(2024, 12, 27, 11, 22, 47, 566038)
    assert row.updated_at == _ist(2024, 12, 27, 11, 22, 47, 597283)
    trade = trade_row_from_xts(event)
    assert (trade.execution_id, trade.quantity, trade.price) == ("2177829", 3, D("2853.5"))
    assert trade.traded_at == _ist(2024, 12, 27, 11, 22, 47)
    # the ...API twins read the same instants
    assert parse_time(event["LastUpdateDateTimeAPI"]) == _ist(2024, 12, 27, 11, 22, 47)
    # the expiry placeholder is "not yet"
    assert parse_time(event["OrderExpiryDateAPI"]) is None
    assert parse_time(REAL["order_book"]["result"][0]["OrderExpiryDate"]) is None


# ---- numbers: never an unreadable number read as 0 ------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2,853.50", D("2853.50")),
        ("1,500", D("1500")),
        ("-1,143.75", D("-1143.75")),
        ("1,00,000.00", D("100000.00")),
        (2853.5, D("2853.5")),
        (75, D("75")),
        ("NaN", None),
        ("", None),
        (None, None),
        ("1,5", None),
        ("12,34.5,6", None),
        ("abc", None),
    ],
)
def test_numbers_as_brokers_send_them(raw, expected):
    assert parse_decimal(raw) == expected


def test_a_quantity_is_whole_or_absent():
    assert (parse_int("1,500"), parse_int("-75"), parse_int(75)) == (1500, -75, 75)
    assert (parse_int("75.5"), parse_int("NaN"), parse_int(""), parse_int(None)) == (
        None,
        None,
        None,
        None,
    )


def test_an_unreadable_position_quantity_stays_absent_never_zero():
    row = dict(REAL["position_list_commas"][0], Quantity="NaN", SellAmount="n/a")
    position = position_row_from_xts(row)
    assert position.net_qty is None and position.sell_amount is None
    assert position.net_amount == D("6202.50")


def test_trigger_pending_is_a_working_order():
    stop = dict(
        REAL["order_history"]["result"][1],
        OrderType="StopLimit",
        OrderStatus="Trigger Pending",
    )
    row = order_row_from_xts(stop)
    assert (row.status, row.raw_status, row.order_type) == (
        LegStatus.OPEN,
        "Trigger Pending",
        "STOPLIMIT",
    )


# ---- envelopes: classified by type and code ---------------------------------------------------


def _error(code: str, description: str) -> dict:
    return {"type": "error", "code": code, "description": description, "result": {}}


@pytest.mark.parametrize("status", [400, 200, 429])
def test_a_rate_limit_code_is_a_rate_limit_whatever_the_http_status(replay, status):
    replay.answer(
        "POST /interactive/orders",
        _error("e-apirl-0004", "You have exceeded the rate limit"),
        status=status,
    )
    request = PlaceOrderRequest("NSECM", 2885, "BUY", "MARKET", "MIS", 1, "RL1")
    with pytest.raises(RateLimited):
        async_to_sync(_gateway(replay).place_order)(_session(replay), request)


@pytest.mark.parametrize(
    ("hint", "seconds"),
    [("1e400", 3600.0), ("86400", 3600.0), ("2.5", 2.5), ("-3", 1.0), ("soon", 1.0), (None, 1.0)],
)
def test_a_rate_limits_retry_after_is_a_bounded_number_of_seconds(replay, hint, seconds):
    """ "1e400" made retry_after infinite: the API's not-sent answer (math.ceil) was a 500."""
    replay.answer(
        "POST /interactive/orders",
        _error("e-apirl-0004", "You have exceeded the rate limit"),
        status=429,
        headers={"Retry-After": hint} if hint is not None else None,
    )
    request = PlaceOrderRequest("NSECM", 2885, "BUY", "MARKET", "MIS", 1, "RL2")
    with pytest.raises(RateLimited) as limited:
        async_to_sync(_gateway(replay).place_order)(_session(replay), request)
    assert limited.value.retry_after == seconds


@pytest.mark.parametrize(
    ("status", "code", "description"),
    [
        (400, "e-session-0007", "Invalid Token"),
        (200, "e-session-0007", "Invalid Token"),
        (400, "e-token-0002", "Please Provide token to Authenticate"),
        (401, "e-session-0031", "Session has been logged out from another device"),
    ],
)
def test_a_session_code_is_an_expired_session_whatever_the_wording(
    replay, status, code, description
):
    replay.answer("GET /interactive/orders", _error(code, description), status=status)
    with pytest.raises(SessionExpired):
        async_to_sync(_gateway(replay).order_book)(_session(replay))


def test_an_error_worded_like_a_token_error_but_coded_otherwise_is_a_refusal(replay):
    replay.answer("GET /interactive/orders", _error("e-orders-0005", "token invalid"), status=400)
    with pytest.raises(OrderRejected, match="token invalid"):
        async_to_sync(_gateway(replay).order_book)(_session(replay))


def test_a_refused_login_is_a_rejection_not_an_expired_session(replay):
    replay.answer(
        "POST /interactive/user/session",
        _error("e-session-0002", "Invalid appKey or secretKey"),
        status=400,
    )
    with pytest.raises(OrderRejected) as raised:
        async_to_sync(_gateway(replay).login)(Credentials(app_key="k", secret_key="bad"))
    assert not isinstance(raised.value, SessionExpired)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ([], "application/json"),  # a bare empty list: not an empty book
        ({"orders": []}, "application/json"),
        (b"<html>Service Temporarily Unavailable</html>", "text/html"),
    ],
)
def test_a_200_without_the_envelope_is_an_error_not_an_empty_book(replay, body, content_type):
    replay.answer("GET /interactive/orders", body, content_type=content_type)
    with pytest.raises(BrokerUnavailable):
        async_to_sync(_gateway(replay).order_book)(_session(replay))


def test_a_row_with_an_unreadable_instrument_fails_the_read_rather_than_vanishing(replay):
    row = dict(REAL["order_book"]["result"][0], ExchangeInstrumentID="abc")
    replay.answer("GET /interactive/orders", _envelope([row]))
    with pytest.raises(BrokerUnavailable, match="ExchangeInstrumentID"):
        async_to_sync(_gateway(replay).order_book)(_session(replay))


def test_a_bad_request_carries_the_field_errors(replay):
    replay.answer(
        "POST /interactive/orders",
        {
            "type": "error",
            "code": "e-app-0005",
            "description": "Bad Request",
            "result": {"errors": [{"field": "orderQuantity", "messages": ["must be > 0"]}]},
        },
        status=400,
    )
    request = PlaceOrderRequest("NSECM", 2885, "BUY", "MARKET", "MIS", 1, "B1")
    with pytest.raises(OrderRejected, match="orderQuantity"):
        async_to_sync(_gateway(replay).place_order)(_session(replay), request)


def test_a_dealer_session_sends_its_client_code_on_the_books_and_may_use_dealer_routes(
    replay, settings
):
    session = _session(replay, investor=False, client_id="IIFL24")  # the real rows' client code
    replay.answer("GET /interactive/orders", REAL["order_book"])
    async_to_sync(_gateway(replay).order_book)(session)
    settings.XTS_DEALER_BOOK_ROUTES = True
    replay.answer("GET /interactive/orders/dealerorderbook", REAL["order_book"])
    replay.answer("GET /interactive/orders/dealertradebook", REAL["trade_book"])
    replay.answer("GET /interactive/portfolio/dealerpositions", REAL["positions_daywise"])
    gateway = _gateway(replay)
    assert len(async_to_sync(gateway.order_book)(session)) == 1
    assert len(async_to_sync(gateway.trade_book)(session)) == 1
    assert len(async_to_sync(gateway.positions)(session)) == 1
    routes = [(route, query.get("clientID")) for route, query, _h, _b in replay.requests]
    assert routes == [
        ("GET /interactive/orders", "IIFL24"),
        ("GET /interactive/orders/dealerorderbook", "IIFL24"),
        ("GET /interactive/orders/dealertradebook", "IIFL24"),
        ("GET /interactive/portfolio/dealerpositions", "IIFL24"),
    ]


# ---- answers that never end, or are too big or too deep to read ---------------------------------


def test_an_answer_dripped_a_byte_at_a_time_times_out_as_a_whole(replay):
    """httpx's timeout bounds each read, not the exchange: a place answer dripped one byte
    every 50 ms (about 6 s for the real one) held the trader's request long past the 0.5 s
    timeout and then counted as an answer. The whole exchange gets the timeout: the order's
    outcome is unknown (found later in the book), not "never sent"."""
    replay.answer("POST /interactive/orders", REAL["place"], drip=0.05)
    gateway = XtsGateway(base_url=replay.base_url, name="IIFL", timeout=0.5, read_retries=0)
    request = order_request(("NSEFO", 39972), "DRIP1", quantity=75)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="timed out") as raised:
        async_to_sync(gateway.place_order)(_session(replay), request)
    assert time.monotonic() - started < 2.5
    assert not isinstance(raised.value, BrokerNotReached)


def test_an_answer_bigger_than_the_limit_is_refused_unread(replay, settings):
    settings.BROKER_MAX_ANSWER_BYTES = 100_000
    rows = [REAL["order_book"]["result"][0]] * 200  # about 300 KB
    replay.answer("GET /interactive/orders", _envelope(rows))
    with pytest.raises(BrokerUnavailable, match="more than 100000 bytes"):
        async_to_sync(_gateway(replay).order_book)(_session(replay))
    settings.BROKER_MAX_ANSWER_BYTES = 1_000_000
    assert len(async_to_sync(_gateway(replay).order_book)(_session(replay))) == 200


def test_an_answer_nested_past_the_parsers_depth_is_unavailable_not_a_crash(replay):
    """json.loads raises RecursionError (no ValueError) on 100,000 opening brackets."""
    replay.answer("GET /interactive/orders", b"[" * 100_000)
    with pytest.raises(BrokerUnavailable, match="not JSON"):
        async_to_sync(_gateway(replay).order_book)(_session(replay))


def test_a_dealer_book_keeps_only_the_accounts_client_code_whatever_the_broker_sends(replay):
    """A dealer login trades for several client codes; the books are asked for one
    (`clientID`), but a broker that answers with more (all the dealer's clients) put another
    client's orders, fills and positions in this account: shown to its trader, and its
    positions exited by the kill switch under this client's code. The stream already skips
    rows of another client code; the books now do the same."""

    def two_clients(row, key="ClientID"):
        return [{**row, key: "PR03"}, {**row, key: "PR04", "AppOrderID": 10026999}]

    real_position = REAL["positions_daywise"]["result"]["positionList"][0]
    replay.answer(
        "GET /interactive/orders", _envelope(two_clients(REAL["order_book"]["result"][0]))
    )
    replay.answer(
        "GET /interactive/orders/trades", _envelope(two_clients(REAL["trade_book"]["result"][0]))
    )
    replay.answer(
        "GET /interactive/portfolio/positions",
        _envelope({"positionList": two_clients(real_position, key="AccountID")}),
    )
    gateway, session = _gateway(replay), _session(replay, investor=False, client_id="PR03")
    orders = async_to_sync(gateway.order_book)(session)
    trades = async_to_sync(gateway.trade_book)(session)
    positions = async_to_sync(gateway.positions)(session)
    assert [(row.client_id, row.broker_order_id) for row in orders] == [("PR03", REAL_ORDER_ID)]
    assert [trade.broker_order_id for trade in trades] == [REAL_ORDER_ID]
    assert len(positions) == 1
