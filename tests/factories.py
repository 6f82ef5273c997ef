"""The suite's one set of factories: small functions that make valid rows and requests with
defaults, and the few helpers that drive the paper broker the way the monitoring loop does.

Rows written straight to the database are for list, display and PnL tests; placement tests go
through the services (`place_bracket`, or the API)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.utils.timezone import now as timezone_now
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, Broker, BrokerAccount, Strategy, TwoFactorDevice, User
from accounts.services import create_auth_session
from accounts.two_factor import SESSION_VERIFIED_KEY, code_at_step, current_step, new_secret
from orders.brokers.base import (
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
    ModifyOrderRequest,
    PlaceOrderRequest,
)
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.brokers.paper.book import book_for_account, order_rows, position_rows
from orders.brokers.sessions import broker_client, connect_account, outbound_bucket_key
from orders.market.services import match_paper_orders, record_fair_prices
from orders.models import (
    BrokerOrder,
    BrokerTrade,
    FairPrice,
    Instrument,
    Order,
    OrderEvent,
    OrderLeg,
)
from orders.openalgo.mapping import PositionChange
from orders.scheduled.models import ScheduledOrder
from orders.services import (
    place_bracket_order,
    place_protective_legs,
    place_single_order,
    store_broker_snapshots,
    sync_account_orders,
)
from orders.services.position_changes import LiveChange, change_position_live
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec
from trading_site.core.api.ratelimit import shared_bucket_key

_seq = itertools.count(1)
D = Decimal

DEFAULT_PASSWORD = "correct-horse-battery-9"

# Text the database cannot take, each with the message that refuses it: a lone surrogate
# (JSON's "\ud800") has no UTF-8 form; NUL is refused as the REST API refuses it. Every
# reader of an outside body (alerts, OpenAlgo) is held to the same two.
UNSTORABLE_TEXT = [
    ("REL\ud800", "must not contain surrogate characters"),
    ("REL\x00IANCE", "must not contain NUL characters"),
]


def make_user(*, username: str | None = None, password: str = DEFAULT_PASSWORD, **extra) -> User:
    n = next(_seq)
    username = username or f"trader{n}"
    extra.setdefault("email", f"{username}@example.com")
    return User.objects.create_user(username=username, password=password, **extra)


def make_account(
    *, user: User | None = None, broker: str = Broker.PAPER, name: str | None = None, **extra
) -> BrokerAccount:
    user = user or make_user()
    extra.setdefault("cash_available", Decimal("1000000.00"))
    extra.setdefault("net_margin", Decimal("1000000.00"))
    return BrokerAccount.objects.create(
        user=user, broker=broker, account_name=name or f"account-{next(_seq)}", **extra
    )


def make_xts_account(
    base_url: str,
    *,
    user: User | None = None,
    app_key: str = "inv-app",
    secret: str = "inv-secret",
    client_id: str | None = None,
    **extra,
) -> BrokerAccount:
    """An IIFL account whose XTS credentials point at `base_url` (the simulator's, in tests:
    the `simulator` fixture knows the users inv-app/inv-secret and dealer-app/dealer-secret).
    Without `client_id` the credentials have no such key."""
    credentials = {"app_key": app_key, "secret_key": secret, "base_url": base_url}
    if client_id is not None:
        credentials["client_id"] = client_id
    return make_account(user=user, broker=Broker.IIFL, credentials=credentials, **extra)


def make_instrument(
    *,
    symbol: str | None = None,
    segment: str = "NSECM",
    instrument_id: int | None = None,
    lot_size: int = 1,
    tick_size: Decimal = Decimal("0.05"),
    freeze_quantity: int | None = 10000,
    band: tuple[Decimal, Decimal] | None = (Decimal("1.00"), Decimal("100000.00")),
    **extra,
) -> Instrument:
    n = next(_seq)
    low, high = band if band else (None, None)
    return Instrument.objects.create(
        exchange_segment=segment,
        exchange_instrument_id=instrument_id or 100000 + n,
        trading_symbol=symbol or f"SYM{n}",
        name=symbol or f"SYM{n}",
        series="EQ",
        lot_size=lot_size,
        tick_size=tick_size,
        freeze_quantity=freeze_quantity,
        price_band_low=low,
        price_band_high=high,
        **extra,
    )


def make_fair_price(instrument: Instrument, price: Decimal | str, spread: str = "0") -> FairPrice:
    price = Decimal(str(price))
    half = Decimal(spread) / 2
    fair, _ = FairPrice.objects.update_or_create(
        instrument=instrument,
        defaults={
            "buy_fair_price": price + half,
            "sell_fair_price": price - half,
            "avg_fair_price": price,
            "last_traded_price": price,
            "source": "test",
        },
    )
    return fair


def make_reliance_at_100(**fields) -> Instrument:
    """RELIANCE as `make_instrument` makes it (lot 1, tick 0.05, freeze 10,000, band 1 to
    100,000) unless `fields` say otherwise, its fair price 100 (no spread)."""
    instrument = make_instrument(symbol="RELIANCE", **fields)
    make_fair_price(instrument, "100.00")
    return instrument


# The brokerage plan of an account that never saved one, as its audit rows show it, and a
# percentage plan as the settings page posts it.
BROKERAGE_PLAN_DEFAULT = {
    "mode": "FLAT",
    "flat_per_order": "20.00",
    "percent": "0.0300",
    "cap_per_order": "20.00",
    "delivery_free": False,
}
PERCENT_PLAN_FORM = {
    "mode": "PERCENT",
    "flat_per_order": "20",
    "percent": "0.05",
    "cap_per_order": "",
}

# A strategy's settings as created with the defaults (an audit row's `after`).
STRATEGY_DEFAULT_SETTINGS = {
    "allow_regeneration": False,
    "max_regenerations": 1,
    "trailing_sl_enabled": False,
    "trailing_sl_trigger": "0.0000",
    "trailing_sl_step": "0.0000",
    "max_slippage_pct": "1.0000",
}


def make_strategy(*, user: User, name: str | None = None, **extra) -> Strategy:
    return Strategy.objects.create(user=user, name=name or f"strategy-{next(_seq)}", **extra)


def enable_two_factor(user: User) -> str:
    """Turn two-factor login on for `user` (as a finished enrolment would); returns the
    TOTP secret, for `totp_code`."""
    secret = new_secret()
    TwoFactorDevice.objects.update_or_create(
        user=user, defaults={"secret": secret, "confirmed_at": timezone_now()}
    )
    return secret


def totp_code(secret: str, *, steps_from_now: int = 0) -> str:
    """The code an authenticator app would show now (or so many 30 s steps away)."""
    return code_at_step(secret, current_step() + steps_from_now)


def staff_client(user: User | None = None, client=None):
    """A Django test client logged in as staff the way the admin requires it: two-factor
    login set up and this session past the code."""
    user = user or make_user(is_staff=True, is_superuser=True)
    client = client or Client()
    if not TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).exists():
        enable_two_factor(user)
    client.force_login(user)
    session = client.session
    session[SESSION_VERIFIED_KEY] = user.pk
    session.save()
    return client


def broker_account_admin_form(
    *, user_id: int, account_name: str, broker: str, **credentials: str
) -> dict:
    """The admin's broker-account form as staff submit it: active, the money fields at zero,
    and each of `credentials` in its credential_<key> field."""
    return {
        "user": user_id,
        "account_name": account_name,
        "broker": broker,
        "is_active": "on",
        "cash_available": "0",
        "margin_utilized": "0",
        "net_margin": "0",
        "total_mtm": "0",
        "unrealized_mtm": "0",
        "realized_mtm": "0",
        **{f"credential_{key}": value for key, value in credentials.items()},
    }


def api_key_client_for(
    user: User, *, scope: str = ApiKey.Scope.READ, **extra
) -> tuple[APIClient, str, ApiKey]:
    """An API client authenticated by a new API key; returns (client, raw key, row)."""
    raw, api_key = create_api_key(user=user, name=extra.pop("name", "tests"), scope=scope, **extra)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client, raw, api_key


def session_token_for(user: User) -> str:
    """A real session token of `user`, as a login hands it to programs and the WebSocket."""
    token, _session = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="tests")
    return token


def make_trader_with_token() -> tuple[User, str]:
    """A trader with a paper account and a session token: (user, token)."""
    user = make_user()
    make_account(user=user)
    return user, session_token_for(user)


def web_client_for(user: User) -> Client:
    """A browser's client, logged in through the login form's password check (the user's
    password is DEFAULT_PASSWORD)."""
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


def api_client_for(user: User) -> APIClient:
    """An API client authenticated the way programs are: a real Bearer session token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_token_for(user)}")
    return client


# ---- orders, legs and broker rows written directly ---------------------------------------

# The entry leg's status for an order status that legs do not share.
_LEG_STATUS_OF_ORDER = {
    Order.Status.PENDING: OrderLeg.Status.PENDING_SUBMIT,
    Order.Status.COMPLETED: OrderLeg.Status.FILLED,
}


def order_instrument_fields(instrument: Instrument) -> dict:
    """The columns an order copies from its instrument."""
    return dict(
        instrument=instrument,
        symbol=instrument.trading_symbol,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
    )


def book_row_instrument_fields(instrument: Instrument) -> dict:
    """The columns a row of the broker's books (a fill, an order) names its instrument by."""
    return dict(
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        trading_symbol=instrument.trading_symbol,
    )


def make_order(
    *,
    account: BrokerAccount,
    instrument: Instrument | None = None,
    user: User | None = None,
    status: str = Order.Status.OPEN,
    entry_leg: bool = True,
    entry_broker_order_id: str | None = None,
    audit_event: bool = False,
    **fields,
) -> Order:
    """An order row (BUY 10 LIMIT 99.00 by default) with its entry leg, whose status follows
    the order's and which carries a broker order id (`entry_broker_order_id`, or a fresh one),
    unless `entry_leg=False`; with an 'order_placed' audit event when `audit_event=True`."""
    instrument = instrument or make_instrument()
    fields.setdefault("side", "BUY")
    fields.setdefault("quantity", 10)
    fields.setdefault("order_type", "LIMIT")
    fields.setdefault("limit_price", D("99.00"))
    order = Order.objects.create(
        user=user or account.user,
        account=account,
        **order_instrument_fields(instrument),
        status=status,
        **fields,
    )
    if entry_leg:
        make_leg(
            order=order,
            broker_order_id=entry_broker_order_id or str(next(_seq)),
            status=_LEG_STATUS_OF_ORDER.get(status, status),
        )
    if audit_event:
        OrderEvent.objects.create(
            order=order,
            account=account,
            user=order.user,
            actor="test",
            kind="order_placed",
            message="placed by the test",
        )
    return order


def make_one_of_everything(*, user: User, instrument: Instrument) -> dict[str, int]:
    """An account of `user`, an order of it on `instrument`, a strategy and a nightly schedule:
    their ids by the names the API's routes give them (`pk` is the account's), so that a test
    can reach every object route."""
    account = make_account(user=user)
    order = make_order(account=account, instrument=instrument)
    strategy = make_strategy(user=user)
    schedule = ScheduledOrder.objects.create(
        user=user,
        account=account,
        name="nightly",
        kind="SINGLE",
        template={"symbol": instrument.trading_symbol, "order_side": "BUY", "order_type": "MARKET"},
        time_of_day="10:00",
        weekdays=[0],
    )
    return {
        "account_id": account.pk,
        "pk": account.pk,
        "order_id": order.pk,
        "strategy_id": strategy.pk,
        "schedule_id": schedule.pk,
    }


def make_leg(
    *,
    order: Order,
    broker_order_id: str | None,
    role: str = OrderLeg.Role.ENTRY,
    side: str | None = None,
    quantity: int | None = None,
    status: str = OrderLeg.Status.FILLED,
) -> OrderLeg:
    return OrderLeg.objects.create(
        order=order,
        account=order.account,
        role=role,
        order_type=order.order_type,
        side=side or order.side,
        quantity=quantity or order.quantity,
        limit_price=order.limit_price,
        unique_identifier=f"T{next(_seq)}",
        broker_order_id=broker_order_id,
        status=status,
    )


def make_trade(
    *, account, instrument, broker_order_id: str, side: str, quantity: int, price: str, at: datetime
) -> BrokerTrade:
    """A fill in the broker's trade book (what PnL is computed from)."""
    return BrokerTrade.objects.create(
        account=account,
        execution_id=f"X{next(_seq)}",
        broker_order_id=broker_order_id,
        **book_row_instrument_fields(instrument),
        side=side,
        quantity=quantity,
        price=Decimal(price),
        traded_at=at,
    )


# A fill or an order-book row in short: (broker order id, side, quantity, price, time).
FillSpec = tuple[str, str, int, str | None, datetime]


def make_trades(*, account, instrument, fills: Iterable[FillSpec]) -> list[BrokerTrade]:
    """Several fills of one instrument in the broker's trade book, in the order given."""
    return [
        make_trade(
            account=account,
            instrument=instrument,
            broker_order_id=broker_order_id,
            side=side,
            quantity=quantity,
            price=price,
            at=at,
        )
        for broker_order_id, side, quantity, price, at in fills
    ]


def make_broker_orders(*, account, instrument, rows: Iterable[FillSpec]) -> list[BrokerOrder]:
    """Rows of one instrument in the broker's order book, in the order given: each FILLED at
    its price, or OPEN where the price is None."""
    return [
        BrokerOrder.objects.create(
            account=account,
            broker_order_id=broker_order_id,
            **book_row_instrument_fields(instrument),
            side=side,
            order_quantity=quantity,
            cumulative_quantity=quantity if average_price else 0,
            average_traded_price=Decimal(average_price) if average_price else None,
            status="FILLED" if average_price else "OPEN",
            exchange_transact_time=at,
        )
        for broker_order_id, side, quantity, average_price, at in rows
    ]


def legs_of(order: Order, role: str | None = None) -> list[OrderLeg]:
    legs = OrderLeg.objects.filter(order=order).order_by("id")
    return list(legs.filter(role=role) if role else legs)


# ---- placement requests ------------------------------------------------------------------


def single_request(account, **overrides) -> SingleOrderRequest:
    """BUY 10 RELIANCE LIMIT 99."""
    fields = {
        "account_id": account.pk,
        "order_side": "BUY",
        "order_type": "LIMIT",
        "order_quantity": 10,
        "symbol": "RELIANCE",
        "limit_price": D("99.00"),
    }
    fields.update(overrides)
    return SingleOrderRequest(**fields)


def single_order_body(account, **overrides) -> dict:
    """The JSON body of POST /api/orders for `single_request`'s order: BUY 10 RELIANCE
    LIMIT 99."""
    return {
        "account_id": account.pk,
        "symbol": "RELIANCE",
        "order_side": "BUY",
        "order_quantity": 10,
        "order_type": "LIMIT",
        "limit_price": "99.00",
        **overrides,
    }


def bracket_order_body(account, **overrides) -> dict:
    """The JSON body of POST /api/algo-orders: 10 lots of RELIANCE at 99, stop-loss 95,
    target 105."""
    return {
        "account_id": account.pk,
        "trading_symbol": "RELIANCE",
        "no_of_lots": 10,
        "entry_price": "99.00",
        "sl_price": "95.00",
        "tp_price": "105.00",
        **overrides,
    }


def batch_item(n: int, **overrides) -> dict:
    """Item `n` of POST /api/algo-place-batch-orders: BUY 2 lots of RELIANCE at 99, stop-loss
    95, half out at 105 and half at 110; external_id ext-<n>."""
    return {
        "external_id": f"ext-{n}",
        "trading_symbol": "RELIANCE",
        "no_of_lots": 2,
        "entry_price": "99.00",
        "order_side": "BUY",
        "sl_price": "95.00",
        "targets": [{"price": "105.00", "percent": "50"}, {"price": "110.00", "percent": "50"}],
        **overrides,
    }


def openalgo_order_body(key: str, **overrides) -> dict:
    """The JSON body of OpenAlgo's POST /api/v1/placeorder with API key `key`, in its strings:
    strategy "s" buys 1 RELIANCE on NSE, LIMIT at 99."""
    return {
        "apikey": key,
        "strategy": "s",
        "symbol": "RELIANCE",
        "exchange": "NSE",
        "action": "BUY",
        "quantity": "1",
        "pricetype": "LIMIT",
        "price": "99",
        **overrides,
    }


def flatten_smart_order_body(key: str) -> dict:
    """The JSON body of OpenAlgo's POST /api/v1/placesmartorder with API key `key`: strategy
    "Trend" takes its MIS RELIANCE position to 0 with a MARKET SELL (quantity 10)."""
    return {
        "apikey": key,
        "strategy": "Trend",
        "symbol": "RELIANCE",
        "exchange": "NSE",
        "action": "SELL",
        "product": "MIS",
        "pricetype": "MARKET",
        "quantity": "10",
        "position_size": "0",
    }


def single_ticket_form(account, **overrides) -> dict:
    """The order ticket's fields (POST /orders/new/) for a single order: BUY 1 RELIANCE
    LIMIT 99, MIS."""
    form = single_order_body(account, kind="single", product_type="MIS", order_quantity=1)
    return {**form, **overrides}


def bracket_request(account, **overrides) -> BracketOrderRequest:
    """BUY 100 RELIANCE at 99, SL stop 95.50 / limit 95, targets 105 (50) and 110 (50)."""
    fields = {
        "account_id": account.pk,
        "no_of_lots": 100,
        "entry_price": D("99.00"),
        "sl_price": D("95.00"),
        "sl_stop_price": D("95.50"),
        "trading_symbol": "RELIANCE",
        "targets": [TargetSpec(price=D("105"), lots=50), TargetSpec(price=D("110"), lots=50)],
    }
    fields.update(overrides)
    return BracketOrderRequest(**fields)


def order_request(
    instrument: Instrument | tuple[str, int],
    uid: str,
    *,
    side: str = "BUY",
    order_type: str = "MARKET",
    quantity: int = 5,
    limit: Decimal | None = None,
    stop: Decimal | None = None,
    product: str = "MIS",
) -> PlaceOrderRequest:
    """One order as a broker gateway takes it (`place_order`): MIS BUY 5 at market unless told.
    `instrument`: an Instrument, or (segment, exchange instrument id) for one the desk does not
    list."""
    if isinstance(instrument, tuple):
        segment, instrument_id = instrument
    else:
        segment, instrument_id = instrument.exchange_segment, instrument.exchange_instrument_id
    return PlaceOrderRequest(
        exchange_segment=segment,
        exchange_instrument_id=instrument_id,
        side=side,
        order_type=order_type,
        product_type=product,
        quantity=quantity,
        unique_identifier=uid,
        limit_price=limit,
        stop_price=stop,
    )


def limit_modify_request(
    broker_order_id: str, uid: str, *, quantity: int, limit: Decimal
) -> ModifyOrderRequest:
    """A MIS LIMIT order's new quantity and limit, as a broker gateway takes it."""
    return ModifyOrderRequest(
        broker_order_id=broker_order_id,
        unique_identifier=uid,
        order_type="LIMIT",
        product_type="MIS",
        quantity=quantity,
        limit_price=limit,
    )


def broker_order_row(
    *,
    broker_order_id: str,
    status: str,
    filled: int = 0,
    uid: str = "",
    raw_status: str | None = None,
    quantity: int = 10,
    side: str = "BUY",
    symbol: str = "X",
    instrument_id: int = 1,
    limit: Decimal | None = D("99"),
) -> BrokerOrderRow:
    """A row of a broker's order book as a gateway returns it: NSECM LIMIT MIS 10 at 99 unless
    told, `filled` of it filled at the limit (raw status: the status in title case)."""
    return BrokerOrderRow(
        broker_order_id=broker_order_id,
        unique_identifier=uid,
        exchange_segment="NSECM",
        exchange_instrument_id=instrument_id,
        trading_symbol=symbol,
        side=side,
        order_type="LIMIT",
        product_type="MIS",
        quantity=quantity,
        filled_quantity=filled,
        leaves_quantity=quantity - filled,
        status=status,
        raw_status=raw_status or status.title(),
        limit_price=limit,
        average_price=limit if filled else None,
    )


def broker_trade_row(
    *,
    execution_id: str,
    broker_order_id: str,
    traded_at: datetime,
    instrument: Instrument | None = None,
    **changes,
) -> BrokerTradeRow:
    """A fill of a broker's trade book as a gateway returns it: a MIS buy of 5 at 99 of
    NSECM instrument 1 ("X") unless told; `instrument` gives its segment, id and symbol."""
    row = BrokerTradeRow(
        execution_id=execution_id,
        broker_order_id=broker_order_id,
        unique_identifier="",
        exchange_segment="NSECM",
        exchange_instrument_id=1,
        trading_symbol="X",
        side="BUY",
        product_type="MIS",
        quantity=5,
        price=D("99"),
        traded_at=traded_at,
    )
    if instrument is not None:
        row = replace(row, **book_row_instrument_fields(instrument))
    return replace(row, **changes)


def paper_order_row(account, leg) -> BrokerOrderRow:
    """The paper exchange's order-book row of `leg`, as its order event carries it."""
    book = book_for_account(account.pk)
    return next(row for row in order_rows(book) if row.unique_identifier == leg.unique_identifier)


def paper_position_row(account, instrument) -> BrokerPositionRow:
    """The paper exchange's one position row of `instrument`, as its position event carries it."""
    (row,) = [
        row
        for row in position_rows(book_for_account(account.pk))
        if row.exchange_instrument_id == instrument.exchange_instrument_id
    ]
    return row


def broker_event(account, *, order=None, trade=None, position=None, source="paper") -> BrokerEvent:
    """What a broker's stream hands the desk's handler for one row: an order-book row, a trade
    or a position (exactly one of them)."""
    rows = {
        BrokerEventKind.ORDER: order,
        BrokerEventKind.TRADE: trade,
        BrokerEventKind.POSITION: position,
    }
    (kind,) = [kind for kind, row in rows.items() if row is not None]
    return BrokerEvent(
        account_id=account.pk,
        kind=kind,
        source=source,
        received_at=datetime.now(UTC),
        order=order,
        trade=trade,
        position=position,
    )


def make_infy_as_the_simulator_lists_it() -> Instrument:
    """INFY with the XTS simulator's instrument id (1594), banded 1300 to 1800, at 1545."""
    instrument = make_instrument(symbol="INFY", instrument_id=1594, band=(D("1300"), D("1800")))
    make_fair_price(instrument, "1545.00", spread="0.10")
    return instrument


def xts_order_body(uid: str, **overrides) -> dict:
    """The body of an XTS POST /interactive/orders as a client sends it: BUY 10 of NSECM 1594
    (the simulator's INFY) MIS LIMIT 1540, DAY, unless `overrides` say otherwise."""
    return {
        "exchangeSegment": "NSECM",
        "exchangeInstrumentID": 1594,
        "productType": "MIS",
        "orderType": "LIMIT",
        "orderSide": "BUY",
        "timeInForce": "DAY",
        "disclosedQuantity": 0,
        "orderQuantity": 10,
        "limitPrice": 1540,
        "stopPrice": 0,
        "orderUniqueIdentifier": uid,
        **overrides,
    }


def real_xts_answers() -> dict:
    """A real XTS server's answers by name (tests/orders/brokers/xts/data/
    xts_real_answers.json, a verbatim copy of shared/xts-samples/real-answers.json), read
    afresh at each call."""
    path = Path(__file__).parent / "orders" / "brokers" / "xts" / "data" / "xts_real_answers.json"
    return json.loads(path.read_text())


# ---- the paper broker, driven as the monitoring loop drives it -----------------------------


def place_bracket(
    *,
    user,
    account,
    instrument,
    entry,
    stop=None,
    sl,
    sl_stop=None,
    tp,
    lots=10,
    side="BUY",
    strategy=None,
) -> Order:
    """A bracket through the real placement service (write-ahead, paper broker)."""

    def d(value):
        return None if value is None else Decimal(str(value))

    request = BracketOrderRequest(
        account_id=account.pk,
        no_of_lots=lots,
        entry_price=d(entry),
        entry_stop_price=d(stop),
        sl_price=d(sl),
        sl_stop_price=d(sl_stop),
        order_side=side,
        exchange_token=instrument.exchange_instrument_id,
        exchange_segment=instrument.exchange_segment,
        targets=[TargetSpec(price=d(tp), percent=Decimal("100"))],
        strategy_name=strategy.name if strategy else "",
    )
    return place_bracket_order(user=user, request=request).order


def set_price_and_match(instrument, price, spread="0.10") -> FairPrice:
    """A new fair price, and the paper exchange's matching tick for it."""
    fair = make_fair_price(instrument, price, spread=spread)
    match_paper_orders(instrument_ids=[instrument.pk])
    return fair


def record_price(instrument, price) -> None:
    """A fair price of `price` on both sides, written the way the feed writes it (through the
    market service): after the commit the paper exchange matches and live MTM hears of it."""
    price = Decimal(str(price))
    record_fair_prices(
        rows=[{"instrument_id": instrument.pk, "buy_fair_price": price, "sell_fair_price": price}],
        source="test",
    )


def make_priced_instrument(*, symbol: str | None = None, price: str = "1000") -> Instrument:
    """An instrument banded 100 to 5000 whose fair price (1000 unless told) the paper
    exchange has matched."""
    instrument = make_instrument(symbol=symbol, band=(Decimal("100"), Decimal("5000")))
    set_price_and_match(instrument, price)
    return instrument


def make_desk(*, symbol: str | None = None, price: str = "1000"):
    """A trader, their paper account and a priced instrument (`make_priced_instrument`):
    (user, account, instrument)."""
    user = make_user()
    account = make_account(user=user)
    return user, account, make_priced_instrument(symbol=symbol, price=price)


def schedule_template(instrument: Instrument, **overrides) -> dict:
    """A scheduled order's template (the API's fields): BUY 5 of `instrument` LIMIT 790."""
    return {
        "exchange_segment": instrument.exchange_segment,
        "exchange_instrument_id": instrument.exchange_instrument_id,
        "order_side": "BUY",
        "order_type": "LIMIT",
        "order_quantity": 5,
        "limit_price": "790",
        **overrides,
    }


def make_schedule(
    *, user: User, account: BrokerAccount, instrument: Instrument, **overrides
) -> ScheduledOrder:
    """ "morning buy": `schedule_template` at 09:30 IST, Monday to Friday."""
    fields = {
        "name": "morning buy",
        "kind": Order.Kind.SINGLE,
        "template": schedule_template(instrument),
        "time_of_day": time(9, 30),
        "weekdays": [0, 1, 2, 3, 4],
        **overrides,
    }
    return ScheduledOrder.objects.create(user=user, account=account, **fields)


def place_protected_bracket(*, user, account, instrument, **overrides) -> Order:
    """`bracket_request` placed at the paper broker, its entry filled (the price dips to 98.90,
    synced), the price back at 100, and its stop-loss and targets sent."""
    order = place_bracket_order(user=user, request=bracket_request(account, **overrides)).order
    make_fair_price(instrument, "98.90")
    sync_from_broker(account)  # the entry filled
    make_fair_price(instrument, "100.00")
    place_protective_legs(account=account)
    return order


def place_bracket_near_1000(*, account, instrument, user=None, **overrides) -> Order:
    """BUY 10 at 995, stop-loss 979 (trigger 980), target 1010: at a price of 1000 nothing
    fills; at 994 the entry does, then at 1010 the target or at 979.5 the stop-loss."""
    fields = {"entry": "995", "sl": "979", "sl_stop": "980", "tp": "1010", "lots": 10}
    return place_bracket(
        user=user or account.user, account=account, instrument=instrument, **fields | overrides
    )


def place_bracket_the_broker_rejects(settings, *, account, instrument, strategy=None) -> Order:
    """`place_bracket_near_1000` with every paper order rejected while it is placed: the
    broker accepts it, then its book says Rejected (seen at the next sync)."""
    settings.PAPER_REJECT_RATE = "1"
    order = place_bracket_near_1000(account=account, instrument=instrument, strategy=strategy)
    settings.PAPER_REJECT_RATE = "0"
    return order


def xts_resting_bracket(simulator, settings, *, fill_cap: int = 0):
    """On the XTS simulator: a trader's bracket BUY 10 RELIANCE (entry 99, SL 95, TP 110),
    its entry resting at the broker with the price at 100 (`fill_cap`: at most so many shares
    fill per matching tick, 0 for all). Returns (user, account, instrument, bracket)."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"
    settings.PAPER_FILL_CAP = fill_cap
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    stock = make_instrument(symbol="RELIANCE", tick_size=Decimal("0.05"))
    set_price_and_match(stock, "100.00")
    connect_account(account)
    bracket = place_bracket(
        user=user, account=account, instrument=stock, entry="99", sl="95", tp="110", lots=10
    )
    return user, account, stock, bracket


def xts_protected_bracket(simulator, settings):
    """On the XTS simulator: a trader's bracket BUY 10 RELIANCE (entry 99, SL 95, TP 110)
    whose entry filled, protected by a working stop-loss and target. Returns (user, account,
    instrument, bracket)."""
    user, account, stock, bracket = xts_resting_bracket(simulator, settings)
    set_price_and_match(stock, "98.50")
    sync_from_broker(account)
    place_protective_legs(account=account)
    roles = {leg.role: leg.status for leg in bracket.legs.all()}
    assert roles == {"ENTRY": "FILLED", "STOP_LOSS": "OPEN", "TAKE_PROFIT": "OPEN"}, roles
    return user, account, stock, bracket


def xts_bracket_protected_4_of_10(simulator, settings):
    """On the XTS simulator: `xts_resting_bracket` whose entry filled 4 of 10 (4 fill per
    matching tick), protected by a stop-loss and a target of 4; the price back at 100, above
    the entry, so nothing fills until it dips again. Returns (user, account, instrument,
    bracket)."""
    user, account, stock, bracket = xts_resting_bracket(simulator, settings, fill_cap=4)
    make_fair_price(stock, "98.50")
    sync_from_broker(account)  # one matching tick: 4 filled
    place_protective_legs(account=account)
    assert working_protection(bracket) == [("STOP_LOSS", 4), ("TAKE_PROFIT", 4)]
    make_fair_price(stock, "100.00")
    return user, account, stock, bracket


PROTECTIVE_ROLES = ("STOP_LOSS", "TAKE_PROFIT")


def order_event_kinds(order: Order) -> list[str]:
    """The kinds of the order's audit events, oldest first."""
    return list(
        OrderEvent.objects.filter(order=order).order_by("id").values_list("kind", flat=True)
    )


def events_of_kind(kind: str) -> list[OrderEvent]:
    """Every audit event of `kind`, whatever it is of (an order, an account, a user), oldest
    first."""
    return list(OrderEvent.objects.filter(kind=kind).order_by("id"))


def account_event_kinds(account) -> list[str]:
    """The kinds of the account's own audit events (no order's), oldest first."""
    return list(
        OrderEvent.objects.filter(account=account, order__isnull=True)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def working_protection(order: Order) -> list[tuple[str, int]]:
    """The order's working stop-loss and target legs: (role, quantity), sorted."""
    return sorted(
        (leg.role, leg.quantity)
        for leg in legs_of(order)
        if leg.role in PROTECTIVE_ROLES and leg.status == "OPEN"
    )


def working_protection_at_the_broker(account, order: Order) -> list[tuple[str, int]]:
    """`working_protection`, counting only the legs the broker's own order book shows
    working."""
    book = async_to_sync(broker_client(account).order_book)()
    at_broker = {row.unique_identifier for row in book if row.status == "OPEN"}
    return sorted(
        (leg.role, leg.quantity)
        for leg in legs_of(order)
        if leg.role in PROTECTIVE_ROLES and leg.unique_identifier in at_broker
    )


def assert_working_protection(account, order: Order, protection: list[tuple[str, int]]) -> None:
    """`protection` (role, quantity), sorted, is what works of the order's stop-loss and
    targets, here and in the broker's own order book alike."""
    here = working_protection(order)
    assert here == protection, here
    at_the_broker = working_protection_at_the_broker(account, order)
    assert at_the_broker == protection, at_the_broker


def net_at_the_broker(account, instrument) -> int:
    """The account's net position in `instrument` as the broker's own positions tell it."""
    rows = async_to_sync(broker_client(account).positions)()
    return sum(
        row.net_qty or 0
        for row in rows
        if int(row.exchange_instrument_id) == instrument.exchange_instrument_id
    )


def sell_by_position_change(user, account, instrument, quantity: int | None = None) -> LiveChange:
    """A position change (OpenAlgo's placesmartorder) selling `quantity` of the account's MIS
    position in `instrument`, or all of it as it stands (None)."""
    return change_position_live(
        account=account,
        instrument=instrument,
        product_type="MIS",
        decide=lambda current: PositionChange(
            side="SELL", quantity=current if quantity is None else quantity
        ),
        user=user,
        actor=f"user:{user.pk}",
        source=Order.Source.OPENALGO,
    )


def trade_at_the_broker(account, instrument, side: str, quantity: int) -> None:
    """A MARKET MIS order placed in the broker's own terminal, behind the desk's back (no
    order or leg of ours): the broker's position moves, the desk's brackets do not."""
    async_to_sync(broker_client(account).place_order)(
        PlaceOrderRequest(
            exchange_segment=instrument.exchange_segment,
            exchange_instrument_id=instrument.exchange_instrument_id,
            side=side,
            order_type="MARKET",
            product_type="MIS",
            quantity=quantity,
            unique_identifier=f"terminal{next(_seq)}",
        )
    )


# What works on a bracket of 10 protected whole (`xts_protected_bracket`'s): one stop-loss
# and one target, of 10 each.
ALL_10_PROTECTED = [("STOP_LOSS", 10), ("TAKE_PROFIT", 10)]
# What protects the 5 that the refused slice of `split_in_two_and_refuse_one` leaves open.
HALF_OF_10_PROTECTED = [("STOP_LOSS", 5), ("TAKE_PROFIT", 5)]


def split_in_two_and_refuse_one(simulator, instrument) -> None:
    """An exit of 10 in `instrument` goes out as two slices of 5 (its freeze quantity), and
    the simulator refuses the next order it is sent: one slice rejected, the other on its
    way."""
    Instrument.objects.filter(pk=instrument.pk).update(freeze_quantity=5)
    simulator.set_faults(reject_next=1, routes=["POST /interactive/orders"])


def assert_protected_again_once(account, bracket, protection: list[tuple[str, int]]) -> None:
    """Step 4 has protected `bracket` again after its whole exit was refused: `protection`
    working here and at the broker, the bracket no longer exit-requested (audited as
    exit_refused), and the next cycle places nothing more."""
    assert_working_protection(account, bracket, protection)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert "exit_refused" in order_event_kinds(bracket)
    sync_from_broker(account)
    place_protective_legs(account=account)
    assert working_protection(bracket) == protection


def a_minute_passes(account) -> None:
    """What the desk recorded of the account's legs so far happened a minute earlier: time
    passing (e.g. between an exit path and the next monitoring cycle) without a sleep."""
    OrderLeg.objects.filter(account=account).update(
        created_at=F("created_at") - timedelta(minutes=1),
        updated_at=F("updated_at") - timedelta(minutes=1),
    )


def sync_from_broker(account) -> list[int]:
    """Steps 1 and 3 of a cycle: one order-book read (exactly one paper-exchange tick, so
    partial fills advance one step per call), stored and synced onto our legs and orders."""
    book = async_to_sync(broker_client(account).order_book)()
    store_broker_snapshots(account=account, order_book=book, trades=[], positions=[], balance=None)
    return sync_account_orders(account=account, order_book=book, positions=[])


def sync_positions(account) -> None:
    """Steps 1 and 3 of a cycle for one account: books and positions read and stored."""
    client = broker_client(account)
    book = async_to_sync(client.order_book)()
    trades = async_to_sync(client.trade_book)()
    positions = async_to_sync(client.positions)()
    store_broker_snapshots(
        account=account, order_book=book, trades=trades, positions=positions, balance=None
    )
    sync_account_orders(account=account, order_book=book, positions=positions)


def buy_at_market(account, instrument, quantity: int, *, product: str = "MIS") -> Order:
    request = single_request(
        account,
        order_type="MARKET",
        limit_price=None,
        order_quantity=quantity,
        symbol=instrument.trading_symbol,
        product_type=product,
    )
    return place_single_order(user=account.user, request=request).order


def buy_and_sync(account, instrument, quantity: int) -> None:
    """`buy_at_market`, then the account's books synced as a cycle syncs them: a position the
    desk holds."""
    buy_at_market(account, instrument, quantity)
    sync_positions(account)


def exit_body(account, instrument, product="MIS") -> dict:
    """The JSON body of POST /api/positions/exit for the account's position in `instrument`."""
    return {
        "account_id": account.pk,
        "exchange_segment": instrument.exchange_segment,
        "exchange_instrument_id": instrument.exchange_instrument_id,
        "product_type": product,
    }


def hold_outbound_limit(account_id: int, *, seconds: int = 60) -> None:
    """The account's outbound order bucket emptied for `seconds`, in Redis itself: its next
    order is over BROKER_ORDERS_PER_SECOND however slowly the machine runs (an order placed
    first to take the one token would leave the bucket full again on a machine that takes
    a second to place it)."""
    redis = get_redis_connection("default")
    key = shared_bucket_key(outbound_bucket_key(account_id))
    whole, micros = redis.time()
    owed = seconds * int(settings.BROKER_ORDERS_PER_SECOND)
    redis.hset(key, mapping={"tokens": str(-owed), "ts": f"{whole}.{micros:06d}"})
    redis.expire(key, seconds + 5)


def release_outbound_limit(account_id: int) -> None:
    """The account's outbound order bucket full again, as after a wait."""
    get_redis_connection("default").delete(shared_bucket_key(outbound_bucket_key(account_id)))
