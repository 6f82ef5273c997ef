"""No user reads, changes or acts on another user's rows (IDOR), on any route.

Trader A has one of everything (a paper account with a filled order, a position and a working
bracket, a strategy with its alert webhook, a scheduled order, an API key); trader B, with
rows of their own, aims every route at A's: each path parameter naming a row, with every
method the view allows, and each body or query field that names one (an account, an order, a
strategy). Every answer must be a refusal (404: "another user's object is always a 404", in
the API's or OpenAlgo's error envelope, and the same answer as for an id nobody has; a web
form refused with its error where the form offers B's accounts only), never a 500, nothing of
A's shown, and A's rows, audit trail and paper book exactly as before.

`test_every_route_is_in_a_table` walks the root URLconf: a route added later must be put in
one of the tables below (or in NO_ROWS, with the reason it names no row), so it cannot slip
in without its ownership being tested.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from django.db.models import Q
from django.test import Client
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import (
    ApiKey,
    BrokerAccount,
    BrokerSession,
    EntryRegeneratePermission,
    Strategy,
    User,
)
from monitoring.models import MonitoringRun
from orders.alerts.models import AlertWebhook, ReceivedAlert
from orders.alerts.services import save_webhook
from orders.brokers.paper.models import PaperOrder, PaperTrade
from orders.models import (
    BrokerOrder,
    BrokerPosition,
    BrokerTrade,
    Order,
    OrderEvent,
    OrderLeg,
)
from orders.scheduled.models import ScheduledOrder, ScheduledOrderRun
from orders.services import place_single_order
from pnl.models import BrokeragePlanSetting, PnlLot
from tests.factories import (
    PERCENT_PLAN_FORM,
    api_client_for,
    api_key_client_for,
    batch_item,
    bracket_order_body,
    buy_and_sync,
    exit_body,
    make_account,
    make_reliance_at_100,
    make_schedule,
    make_strategy,
    make_user,
    openalgo_order_body,
    place_bracket,
    schedule_template,
    single_order_body,
    single_request,
    single_ticket_form,
    web_client_for,
)
from tests.routes import all_routes

METHODS = ("get", "post", "put", "patch", "delete")
OK = tuple(range(200, 500))  # any answer but a 500, so long as it shows nothing of A's


# ---- the tables ----------------------------------------------------------------------------

# Routes whose path names one of A's rows: the route (as the URLconf spells it, without the
# API's optional trailing slash) -> the kind of A's row that fills each parameter.
API_ROW_ROUTES: dict[str, str] = {
    "api/accounts/<int:account_id>": "account",
    "api/accounts/<int:pk>/connect": "account",
    "api/accounts/<int:account_id>/kill-switch": "account",
    "api/accounts/<int:account_id>/enable-trading": "account",
    "api/strategies/<int:strategy_id>": "strategy",
    "api/api-keys/<int:key_id>": "api_key",
    "api/orders/<int:order_id>": "bracket",
    "api/orders/<int:order_id>/cancel": "bracket",
    "api/scheduled-orders/<int:schedule_id>": "schedule",
}
WEB_ROW_ROUTES: dict[str, str] = {
    "orders/<int:pk>/": "bracket",
    "orders/<int:pk>/row/": "bracket",
    "orders/<int:pk>/cancel/": "bracket",
    "orders/<int:pk>/modify/": "bracket",
    "pnl/brokerage/<int:pk>/": "account",
    "settings/api-keys/<int:pk>/revoke/": "api_key",
    "settings/accounts/<int:pk>/": "account",
    "settings/accounts/<int:pk>/connect/": "account",
    "settings/accounts/<int:pk>/deactivate/": "account",
    "settings/accounts/<int:pk>/kill-switch/": "account",
    "settings/accounts/<int:pk>/enable-trading/": "account",
    "settings/strategies/<int:pk>/": "strategy",
    "settings/strategies/<int:pk>/webhook/": "strategy",
    "settings/strategies/<int:pk>/webhook/rotate/": "strategy",
    "settings/strategies/<int:pk>/delete/": "strategy",
    "settings/scheduled/<int:pk>/": "schedule",
    "settings/scheduled/<int:pk>/delete/": "schedule",
}
# The alert webhooks take no login: the webhook's secret is the credential. Anyone holding
# A's public id but not the secret must get a 404 and place nothing.
WEBHOOK_ROUTES: list[str] = [
    "^hooks/alerts/(?P<public_id>[A-Za-z0-9_-]{1,64})/?$",
    "^hooks/alerts/(?P<public_id>[A-Za-z0-9_-]{1,64})/(?P<secret>[A-Za-z0-9_-]{1,128})/?$",
    "^strategy/webhook/(?P<public_id>[A-Za-z0-9_-]{1,64})/?$",
    "^strategy/webhook/(?P<public_id>[A-Za-z0-9_-]{1,64})/(?P<secret>[A-Za-z0-9_-]{1,128})/?$",
]
# Routes with a parameter that names no row of anyone's.
UNOWNED_PARAMETERS: dict[str, str] = {
    "orders/batch/results/<str:key>/": "a key into the caller's own session: another "
    "session's key finds nothing there (a redirect to the batch form)",
    "api/^.*$": "the API's catch-all 404 in the error envelope",
}


@dataclass(frozen=True)
class BodyCase:
    """A request by B whose body or query names A's row (`{account}`, `{order}`...)."""

    client: str  # "api" (B's session token), "web" (B's login), "openalgo" (B's bound key)
    method: str
    path: str
    body: dict = field(default_factory=dict)
    expected: tuple[int, ...] = (404,)

    @property
    def route(self) -> str:
        """The route as the URLconf spells it (None for a path naming B's own row)."""
        path = self.path.split("?")[0].removeprefix("/")
        return None if "{" in path else path


def _cases() -> list[BodyCase]:
    lists = [
        "orders",
        "orders/export",
        "positions",
        "holdings",
        "trades",
        "trades/export",
        "broker-order-book-pnl",
        "pnl/summary",
        "pnl/history",
        "pnl/intraday",
    ]
    cases = [BodyCase("api", "get", f"/api/{name}?account_id={{account}}") for name in lists]
    cases += [
        BodyCase("api", "post", "/api/orders", {"single_order_body": "account"}),
        BodyCase("api", "post", "/api/algo-orders", {"bracket_order_body": "account"}),
        BodyCase(
            "api",
            "post",
            "/api/algo-place-batch-orders",
            {"account_id": "{account}", "orders": [batch_item(1)]},
        ),
        BodyCase("api", "post", "/api/positions/exit", {"exit_body": "account"}),
        BodyCase(
            "api",
            "post",
            "/api/positions/exit-all",
            {"account_id": "{account}", "confirm": "EXIT ALL"},
        ),
        BodyCase(
            "api",
            "post",
            "/api/scheduled-orders",
            {"schedule_body": "account"},
        ),
        # B's own schedule moved onto A's account
        BodyCase("api", "patch", "/api/scheduled-orders/{b_schedule}", {"account_id": "{account}"}),
        BodyCase(
            "api",
            "post",
            "/api/api-keys",
            {"name": "on A", "scope": "trade", "bound_account_id": "{account}"},
        ),
        # the web's forms: the account chosen is not one of B's
        BodyCase("web", "post", "/orders/new/", {"single_ticket_form": "account"}, (400, 404)),
        BodyCase("web", "post", "/positions/exit/", {"exit_body": "account"}),
        BodyCase(
            "web", "post", "/positions/exit-all/", {"account_id": "{account}", "confirm": "on"}
        ),
        BodyCase(
            "web",
            "post",
            "/settings/strategies/{b_strategy}/webhook/",
            {"account": "{account}", "default_product": "MIS", "enabled": "on"},
            (302,),  # back to B's strategy page with the form's error
        ),
        BodyCase(
            "web",
            "post",
            "/settings/api-keys/",
            {"name": "on A", "scope": "trade", "bound_account": "{account}"},
            (200, 400),  # the form again, with its error
        ),
        BodyCase("web", "get", "/positions/?account={account}"),
        BodyCase("web", "get", "/pnl/?account={account}"),
        # the filter forms offer the caller's accounts only: another is a form error, a 400
        # that lists no order or fill and exports nothing
        BodyCase("web", "get", "/orders/?account={account}", expected=(400,)),
        BodyCase("web", "get", "/orders/export.csv?account={account}", expected=(400,)),
        BodyCase("web", "get", "/trades/?account={account}", expected=(400,)),
        BodyCase("web", "get", "/trades/export.csv?account={account}", expected=(400,)),
        BodyCase(
            "web",
            "post",
            "/orders/batch/",
            {"account_id": "{account}", "rows": "RELIANCE,BUY,1,99,95,105"},
            (200, 400),
        ),
        BodyCase("web", "post", "/settings/scheduled/new/", {"schedule_form": "account"}, (400,)),
        BodyCase(
            "web",
            "post",
            "/settings/scheduled/{b_schedule}/",
            {"schedule_form": "account"},
            (400,),
        ),
        # OpenAlgo: B's key is bound to B's account; A's order ids are not on it
        BodyCase("openalgo", "post", "/api/v1/orderstatus", {"orderid": "{bracket}"}),
        BodyCase(
            "openalgo",
            "post",
            "/api/v1/modifyorder",
            {"orderid": "{bracket}", "quantity": "10", "price": "98", "product": "MIS"},
        ),
        BodyCase("openalgo", "post", "/api/v1/cancelorder", {"orderid": "{bracket}"}),
        # an item's own account_id is not the batch's: the batch's account (B's) is used
        BodyCase(
            "api",
            "post",
            "/api/algo-place-batch-orders",
            {"account_id": "{b_account}", "orders": [batch_item(2, account_id="{account}")]},
            (201,),
        ),
    ]
    return cases


BODY_CASES = _cases()

_UNAUTHENTICATED = "takes no login and names no row"
_OWN_ROWS = "reads or acts on the caller's own rows only; names none in its path or body"
_MARKET = "market data (instruments, fair prices, holidays), the same for every trader"
_OPENALGO_OWN = "OpenAlgo: acts on the key's bound account only; the body names no row"
# Routes without a row in the path, beyond those of BODY_CASES: why none of their fields
# names another user's row.
NO_ROWS: dict[str, str] = {
    "api/schema/": "the OpenAPI schema, the same for everyone",
    "api/docs/": "the API's docs page",
    "api/login": _UNAUTHENTICATED,
    "api/logout": "ends the caller's own token",
    "api/accounts": "lists the caller's accounts; POST makes one for the caller",
    "api/strategies": "lists the caller's strategies; POST makes one for the caller",
    "api/entry-regenerate-permission": "the caller's own permission row",
    "api/instruments": _MARKET,
    "api/fair-prices": _MARKET + "; writing them is staff only",
    "api/monitoring/runs": "the monitoring cycles of the caller's accounts, no filter",
    "api/v1/placeorder": _OPENALGO_OWN + " (a strategy name is the caller's: see below)",
    "api/v1/placesmartorder": _OPENALGO_OWN,
    "api/v1/basketorder": _OPENALGO_OWN,
    "api/v1/splitorder": _OPENALGO_OWN,
    "api/v1/cancelallorder": _OPENALGO_OWN,
    "api/v1/closeposition": _OPENALGO_OWN,
    "api/v1/openposition": _OPENALGO_OWN,
    "api/v1/orderbook": _OPENALGO_OWN,
    "api/v1/tradebook": _OPENALGO_OWN,
    "api/v1/positionbook": _OPENALGO_OWN,
    "api/v1/holdings": _OPENALGO_OWN,
    "api/v1/funds": _OPENALGO_OWN,
    "api/v1/quotes": _MARKET,
    "api/v1/search": _MARKET,
    "api/v1/symbol": _MARKET,
    "api/v1/market/timings": _MARKET,
    "api/v1/market/holidays": _MARKET,
    "api/v1/analyzer": "the key's own analyzer mode",
    "api/v1/analyzer/toggle": "the key's own analyzer mode",
    "healthz": _UNAUTHENTICATED,
    "readyz": _UNAUTHENTICATED,
    "metrics": "process figures for METRICS_TOKEN or staff, no trader's rows",
    "favicon.ico": _UNAUTHENTICATED,
    "": "the dashboard of the caller's accounts",
    "login/": _UNAUTHENTICATED,
    "login/code/": "the second login step of the session's own user",
    "logout/": "ends the caller's own session",
    "dashboard/numbers/": _OWN_ROWS,
    "instruments/search/": _MARKET,
    "instruments/facts/": _MARKET,
    "monitoring/": _OWN_ROWS,
    "settings/": _OWN_ROWS,
    "settings/password/": "the caller's own password",
    "settings/two-factor/": "the caller's own two-factor login",
    "settings/two-factor/start/": "the caller's own two-factor login",
    "settings/two-factor/confirm/": "the caller's own two-factor login",
    "settings/two-factor/recovery-codes/": "the caller's own two-factor login",
    "settings/two-factor/disable/": "the caller's own two-factor login",
    "settings/accounts/new/": "makes an account for the caller",
    "settings/strategies/new/": "makes a strategy for the caller",
    "settings/regenerate-permission/": "the caller's own permission row",
    "kill-switch/": "a GET page choosing among the caller's accounts (the switch itself is "
    "settings/accounts/<pk>/kill-switch/)",
}
# The admin is staff only, behind Django's model permissions and two-factor login
# (tests/trading_site/test_admin_site.py); the WebSocket has tests/monitoring/test_ws_security.py.
EXCLUDED_PREFIXES = ("admin/",)


# ---- the routes ----------------------------------------------------------------------------


def _all_routes() -> dict[str, Callable]:
    """Every route of the root URLconf but the admin's, the API's optional trailing slash
    folded into its route."""
    routes: dict[str, Callable] = {}
    for route, callback in all_routes():
        if route.startswith(EXCLUDED_PREFIXES):
            continue
        if route.startswith("api/") and route.endswith("/") and route[:-1] in routes:
            continue
        routes[route] = callback
    return routes


def _has_parameter(route: str) -> bool:
    return "<" in route or "(?P" in route


def _allowed_methods(callback: Callable) -> tuple[str, ...]:
    """The methods a DRF view implements; every method for a function view (it must refuse
    the others itself, with a 404 or a 405)."""
    view = getattr(callback, "cls", None)
    if view is None:
        return METHODS
    return tuple(m for m in METHODS if hasattr(view, m))


def test_every_route_is_in_a_table():
    routes = set(_all_routes())
    with_rows = {route for route in routes if _has_parameter(route)}
    tested = set(API_ROW_ROUTES) | set(WEB_ROW_ROUTES) | set(WEBHOOK_ROUTES)
    assert with_rows - tested - set(UNOWNED_PARAMETERS) == set(), "a row in the path, no case"
    body_routes = {case.route for case in BODY_CASES} - {None}
    known = tested | set(UNOWNED_PARAMETERS) | set(NO_ROWS) | body_routes
    assert routes - known == set(), "routes in no table: say whose rows they touch"
    assert known - routes == set(), "the tables name routes that are gone"
    assert set(NO_ROWS).isdisjoint(body_routes), "a route with body cases is not row-free"


# ---- A's world and B --------------------------------------------------------------------------


# The names of A's rows: no answer to B may carry one.
A_NAMES = ("account-of-A", "strategy-of-A", "schedule-of-A", "key-of-A", "cycle-of-A")


@dataclass
class World:
    a: User
    b: User
    ids: dict[str, object]
    api: APIClient  # B's API client (session token)
    web: Client  # B's browser, logged in
    openalgo_key: str  # B's trade key bound to B's account


@pytest.fixture
def world(db, settings) -> World:
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    instrument = make_reliance_at_100()
    a = make_user()
    account = make_account(user=a, name="account-of-A")
    strategy = make_strategy(user=a, name="strategy-of-A")
    buy_and_sync(account, instrument, 5)  # a filled order and a position
    place_single_order(user=a, request=single_request(account, client_order_id="idem-of-A"))
    bracket = place_bracket(
        user=a,
        account=account,
        instrument=instrument,
        entry="99",
        sl="95",
        tp="105",
        strategy=strategy,
    )
    webhook = save_webhook(strategy=strategy, account=account, actor="test")
    schedule = make_schedule(user=a, account=account, instrument=instrument, name="schedule-of-A")
    _raw, api_key = create_api_key(
        user=a, name="key-of-A", scope=ApiKey.Scope.TRADE, bound_account=account
    )
    MonitoringRun.objects.create(user=a, cycle_key="cycle-of-A", errors=["account-of-A"])
    b = make_user()
    b_account = make_account(user=b)
    b_strategy = make_strategy(user=b, name="B's strategy")
    b_schedule = make_schedule(user=b, account=b_account, instrument=instrument)
    _client, b_key, _row = api_key_client_for(b, scope=ApiKey.Scope.TRADE, bound_account=b_account)
    ids = {
        "account": account.pk,
        "account_name": account.account_name,
        "bracket": bracket.pk,
        "strategy": strategy.pk,
        "schedule": schedule.pk,
        "api_key": api_key.pk,
        "webhook": webhook.public_id,
        "instrument": instrument,
        "b_strategy": b_strategy.pk,
        "b_schedule": b_schedule.pk,
        "b_account": b_account.pk,
    }
    return World(a, b, ids, api_client_for(b), web_client_for(b), b_key)


def _snapshot(a: User) -> dict[str, list]:
    """Everything of A's a request by B could change, to the column: A's rows, and anyone's
    rows that point at A's account or strategy (B's schedule moved onto A's account)."""
    of_a, on_a = Q(user=a), Q(account__user=a)

    def rows(queryset, *fields: str) -> list:
        return list(queryset.order_by("pk").values(*fields))

    return {
        "accounts": rows(BrokerAccount.objects.filter(of_a | Q(paper_twin_of__user=a))),
        "users choosing A's account": rows(User.objects.filter(last_used_account__user=a)),
        "broker sessions": rows(BrokerSession.objects.filter(on_a)),
        "orders": rows(Order.objects.filter(of_a | on_a | Q(strategy__user=a))),
        "legs": rows(OrderLeg.objects.filter(Q(order__user=a) | on_a)),
        "audit": rows(OrderEvent.objects.filter(of_a | on_a), "pk"),
        "broker books": [
            rows(model.objects.filter(on_a))
            for model in (BrokerOrder, BrokerTrade, BrokerPosition, PnlLot)
        ],
        "strategies": rows(Strategy.objects.filter(of_a)),
        "schedules": rows(ScheduledOrder.objects.filter(of_a | on_a)),
        "schedule runs": rows(ScheduledOrderRun.objects.filter(schedule__user=a), "pk"),
        "webhooks": rows(AlertWebhook.objects.filter(of_a | on_a | Q(strategy__user=a))),
        "placed by alerts": rows(
            ReceivedAlert.objects.filter(webhook__user=a, order__isnull=False), "pk"
        ),
        "api keys": rows(ApiKey.objects.filter(of_a | Q(bound_account__user=a))),
        "brokerage plans": rows(BrokeragePlanSetting.objects.filter(on_a)),
        "regenerate permission": rows(EntryRegeneratePermission.objects.filter(of_a)),
        "paper orders": rows(PaperOrder.objects.filter(book__account__user=a)),
        "paper trades": rows(PaperTrade.objects.filter(book__account__user=a), "pk"),
    }


def _fill(value, ids: dict):
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), value)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _path(route: str, pk) -> str:
    return "/" + re.sub(r"<\w+:\w+>", str(pk), route)


# A body that would pass each row route's own validation, so that only ownership refuses it.
def _row_route_body() -> dict:
    return {
        "confirm": "KILL",
        "account_name": "taken over",
        "name": "taken over",
        "limit_price": "98",
        "price": "98",
        "enabled": False,
        "allow_regeneration": True,
    }


def _web_form(ids: dict) -> dict:
    return {
        **PERCENT_PLAN_FORM,
        "confirm": ids["account_name"],
        "account_name": "taken over",
        "name": "taken over",
        "limit_price": "98",
        "account": ids["account"],
        "default_product": "MIS",
    }


def _content(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


@dataclass(frozen=True)
class Sent:
    """One request: JSON through an API client, or a browser's form."""

    client: Client
    method: str
    path: str
    body: dict | None = None
    json: bool = True

    def send(self):
        if self.method == "get":
            return self.client.get(self.path)
        if self.json:
            return getattr(self.client, self.method)(self.path, self.body, format="json")
        if self.method == "post":
            return self.client.post(self.path, self.body or {})
        return getattr(self.client, self.method)(self.path)

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path} {self.body or ''}"


def _problems_of(world: World, request: Sent, expected, *, envelope: str = "") -> list[str]:
    """Send one request; the ways its answer or A's rows show a leak."""
    before = _snapshot(world.a)
    response = request.send()
    problems = []
    label = request.label
    if response.status_code not in expected:
        problems.append(f"{label}: {response.status_code} {_content(response)[:200]!r}")
    elif envelope == "api" and response.status_code == 404:
        payload = response.json()
        if payload.get("code") != "NOT_FOUND" or "error" not in payload:
            problems.append(f"{label}: 404 outside the error envelope: {payload}")
    elif envelope == "openalgo" and response.json().get("status") != "error":
        problems.append(f"{label}: outside OpenAlgo's error envelope: {response.json()}")
    shown = [name for name in A_NAMES if name.encode() in _content(response)]
    if shown:
        problems.append(f"{label}: shows A's {shown}")
    after = _snapshot(world.a)
    changed = [name for name in before if before[name] != after[name]]
    if changed:
        problems.append(f"{label}: changed A's {', '.join(changed)}")
    return problems


def test_no_route_with_a_row_in_its_path_reaches_another_users_row(world):
    routes = _all_routes()
    problems: list[str] = []
    for route, kind in API_ROW_ROUTES.items():
        path = _path(route, world.ids[kind])
        for method in _allowed_methods(routes[route]):
            sent = Sent(world.api, method, path, _row_route_body())
            problems += _problems_of(world, sent, (404,), envelope="api")
    for route, kind in WEB_ROW_ROUTES.items():
        path = _path(route, world.ids[kind])
        for method in _allowed_methods(routes[route]):
            sent = Sent(world.web, method, path, _web_form(world.ids), json=False)
            problems += _problems_of(world, sent, (404, 405))
    assert problems == []


def _body_of(case: BodyCase, ids: dict) -> dict:
    """The case's body, its rows those of `ids` (a builder's account is `ids["account"]`)."""
    account, instrument = SimpleNamespace(pk=ids["account"]), ids["instrument"]
    builders = {
        "single_order_body": lambda: single_order_body(account),
        "bracket_order_body": lambda: bracket_order_body(account),
        "exit_body": lambda: exit_body(account, instrument),
        "single_ticket_form": lambda: single_ticket_form(account),
        "schedule_form": lambda: {
            **single_ticket_form(account),
            "name": "on A",
            "time_of_day": "09:30",
            "weekdays": ["0", "1"],
        },
        "schedule_body": lambda: {
            "account_id": account.pk,
            "name": "on A",
            "kind": "SINGLE",
            "template": schedule_template(instrument),
            "time_of_day": "09:30",
            "weekdays": [0, 1, 2, 3, 4],
        },
    }
    for name, builder in builders.items():
        if name in case.body:
            return builder()
    return _fill(case.body, ids)


def _sent(world: World, case: BodyCase, ids: dict) -> Sent:
    path, body = _fill(case.path, ids), _body_of(case, ids)
    if case.client == "api":
        return Sent(world.api, case.method, path, body)
    if case.client == "web":
        return Sent(world.web, case.method, path, body, json=False)
    return Sent(APIClient(), "post", path, openalgo_order_body(world.openalgo_key, **body))


def test_no_body_or_query_field_reaches_another_users_row(world):
    problems: list[str] = []
    for case in BODY_CASES:
        envelope = "" if case.client == "web" else case.client
        problems += _problems_of(
            world, _sent(world, case, world.ids), case.expected, envelope=envelope
        )
    assert problems == []


def test_another_users_strategy_name_and_idempotency_key_mean_nothing_to_the_caller(world):
    """Names are looked up among the caller's own rows: A's strategy name is as unknown to
    B's order as a name nobody uses, A's Idempotency-Key replays none of A's orders, and
    OpenAlgo's strategy (made on first use) is a strategy of B's."""
    before = _snapshot(world.a)
    b_account = BrokerAccount.objects.get(pk=world.ids["b_account"])

    def refusal(strategy_name: str) -> str:
        body = single_order_body(b_account, strategy_name=strategy_name)
        response = world.api.post("/api/orders", body, format="json")
        assert response.status_code == 400, response.content
        return response.content.decode().replace(strategy_name, "<name>")

    assert refusal("strategy-of-A") == refusal("no-such-name")
    replay = world.api.post(
        "/api/orders",
        single_order_body(b_account),
        format="json",
        HTTP_IDEMPOTENCY_KEY="idem-of-A",
    )
    assert replay.status_code == 201, replay.content
    assert Order.objects.get(pk=replay.json()["order"]["id"]).user == world.b
    body = openalgo_order_body(world.openalgo_key, strategy="strategy-of-A")
    response = APIClient().post("/api/v1/placeorder", body, format="json")
    assert response.status_code == 200, response.content
    order = Order.objects.get(pk=int(response.json()["orderid"]))
    assert order.user == world.b and order.strategy.user == world.b
    assert _snapshot(world.a) == before


def test_another_users_webhook_without_its_secret_is_a_404_and_places_nothing(world, settings):
    # wrong secrets are throttled per address, known webhook or not: room for every try here
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "webhook_bad_secret": "100/1"}
    public_id = world.ids["webhook"]
    alert = {"symbol": "RELIANCE", "action": "BUY", "quantity": 1, "position_size": 1}
    problems: list[str] = []
    for prefix in ("hooks/alerts", "strategy/webhook"):
        for path, extra in (
            (f"/{prefix}/{public_id}", {}),
            (f"/{prefix}/{public_id}", {"secret": "not-the-secret"}),
            (f"/{prefix}/{public_id}/not-the-secret", {}),
        ):
            sent = Sent(APIClient(), "post", path, {**alert, **extra})
            problems += _problems_of(world, sent, (404,))
            unknown = Sent(APIClient(), "post", path.replace(public_id, "no-such-hook"), sent.body)
            if sent.send().content != unknown.send().content:
                problems.append(f"{sent.label}: answers unlike an unknown webhook")
    assert problems == []


# Reads by B that could list A's rows: every route with no row in its path (but those that
# end B's session or need none), and OpenAlgo's reads with B's key.
NOT_READ = {"api/logout", "logout/", "api/login", "login/", "login/code/", "favicon.ico"}
OPENALGO_READS = ("orderbook", "tradebook", "positionbook", "holdings", "funds", "openposition")


def test_no_list_or_page_shows_another_users_rows(world):
    problems: list[str] = []
    routes = _all_routes()
    for route, callback in routes.items():
        if _has_parameter(route) or route in NOT_READ or route.startswith("api/v1/"):
            continue
        if "get" not in _allowed_methods(callback):
            continue
        client = world.api if route.startswith("api/") else world.web
        problems += _problems_of(world, Sent(client, "get", f"/{route}"), OK)
    for call in OPENALGO_READS:
        body = openalgo_order_body(world.openalgo_key)
        problems += _problems_of(world, Sent(APIClient(), "post", f"/api/v1/{call}", body), OK)
    assert problems == []


MISSING = 987654321  # no row has this id


def test_another_users_row_answers_as_a_missing_one(world):
    """A 404 that differed for a row that exists would let B enumerate A's ids."""
    routes = _all_routes()
    differences: list[str] = []

    def answer(sent: Sent, pk) -> tuple[int, str]:
        response = sent.send()
        return response.status_code, response.content.decode().replace(str(pk), "<id>")

    for route, kind in API_ROW_ROUTES.items():
        for method in _allowed_methods(routes[route]):
            pk = world.ids[kind]
            of_a = Sent(world.api, method, _path(route, pk), _row_route_body())
            missing = Sent(world.api, method, _path(route, MISSING), _row_route_body())
            if answer(of_a, pk) != answer(missing, MISSING):
                differences.append(f"{of_a.label}: {answer(of_a, pk)} {answer(missing, MISSING)}")
    for route, kind in WEB_ROW_ROUTES.items():
        for method in _allowed_methods(routes[route]):
            form = _web_form(world.ids)
            pk = world.ids[kind]
            of_a = Sent(world.web, method, _path(route, pk), form, json=False)
            missing = Sent(world.web, method, _path(route, MISSING), form, json=False)
            if answer(of_a, pk) != answer(missing, MISSING):
                differences.append(f"web {of_a.label}: {answer(of_a, pk)[0]}")
    for case in BODY_CASES:
        if case.client == "web" or case.expected != (404,):
            continue  # the web's refusals are pages; B's own rows answer as B's
        key = "bracket" if "{bracket}" in str(case.body) else "account"
        of_a = answer(_sent(world, case, world.ids), world.ids[key])
        missing = answer(_sent(world, case, {**world.ids, key: MISSING}), MISSING)
        if of_a != missing:
            differences.append(f"{case}: {of_a} {missing}")
    assert differences == []
