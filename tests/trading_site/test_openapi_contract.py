"""The OpenAPI schema against the real answers (issue 10, item 10): /api/fair-prices and
/api/monitoring/runs were documented as bare arrays but answer an envelope, errors were not
documented at all, and `limit` had no documented bound. Every GET here is validated against
the schema the server itself publishes, and so are its error answers."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, BrokerAccount
from monitoring.models import MonitoringRun
from orders.models import Order
from pnl.models import PnlDaily
from tests.factories import (
    api_client_for,
    api_key_client_for,
    batch_item,
    make_account,
    make_fair_price,
    make_instrument,
    make_one_of_everything,
    make_order,
    make_reliance_at_100,
    make_user,
    make_xts_account,
    openalgo_order_body,
)
from tests.openapi_contract import Contract, published_contract

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings):
    """A trader with something in every list."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user = make_user(is_staff=True)
    instrument = make_instrument()
    make_fair_price(instrument, "101.50", spread="0.10")
    ids = make_one_of_everything(user=user, instrument=instrument)
    MonitoringRun.objects.create(
        user=user,
        cycle_key="2026-11-30T10:00",
        status=MonitoringRun.Status.OK,
        finished_at=timezone.now(),
        duration_ms=12,
        steps=[{"step": 1, "name": "fetch_broker_data", "outcome": "ok", "duration_ms": 3}],
        errors=[],
    )
    PnlDaily.objects.create(
        account_id=ids["account_id"],
        trading_date=timezone.localdate(),
        realized=Decimal("12.50"),
        unrealized=Decimal("-2.00"),
        fills=2,
    )
    return user, {**ids, "key_id": api_key_client_for(user)[2].pk}


def _get_paths(contract: Contract) -> list[str]:
    return sorted(path for path, ops in contract.document["paths"].items() if "get" in ops)


def _concrete(path: str, ids: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


_SKIP = {"/api/schema/", "/api/docs/"}


@pytest.fixture
def contract() -> Contract:
    return published_contract()


def test_every_get_answers_what_the_schema_says(contract, world):
    user, ids = world
    client = api_client_for(user)
    checked = []
    for path in _get_paths(contract):
        if path in _SKIP:
            continue
        operation = contract.document["paths"][path]["get"]
        query = {
            p["name"]: ids[p["name"]]
            for p in operation.get("parameters", [])
            if p["in"] == "query" and (p.get("required") or p["name"] == "account_id")
        }
        response = client.get(_concrete(path, ids), query)
        assert response.status_code == 200, (path, response.content[:300])
        contract.validate(path, "get", response)
        checked.append(path)
    assert "/api/fair-prices" in checked and "/api/monitoring/runs" in checked
    assert len(checked) >= 14


@pytest.mark.parametrize("path", ["/api/fair-prices", "/api/monitoring/runs"])
def test_the_two_lists_once_documented_as_arrays_are_envelopes(contract, world, path):
    user, _ = world
    response = api_client_for(user).get(path)
    body = response.json()
    assert isinstance(body, dict) and {"total", "limit", "offset"} <= set(body)
    contract.validate(path, "get", response)
    schema = contract.response_schema(path, "get", 200)
    assert "$ref" in schema or schema.get("type") == "object"


def test_error_answers_are_documented_and_match(contract, world, settings):
    user, ids = world
    client = api_client_for(user)
    anonymous = APIClient()
    for path in _get_paths(contract):
        if path in _SKIP:
            continue
        contract.validate(path, "get", anonymous.get(_concrete(path, ids)))  # 401
    missing = client.get("/api/orders/999999999")
    assert missing.status_code == 404
    contract.validate("/api/orders/{order_id}", "get", missing)
    bad_limit = client.get("/api/monitoring/runs?limit=0")
    assert bad_limit.status_code == 400
    contract.validate("/api/monitoring/runs", "get", bad_limit)
    bad_body = client.post("/api/orders", {"order_side": "SIDEWAYS"}, format="json")
    assert bad_body.status_code == 400
    contract.validate("/api/orders", "post", bad_body)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "1/0.01"}
    client.get("/api/monitoring/runs")
    limited = client.get("/api/monitoring/runs")
    assert limited.status_code == 429
    contract.validate("/api/monitoring/runs", "get", limited)


def test_every_operation_documents_its_error_answers(contract):
    for path, operations in contract.document["paths"].items():
        if not path.startswith("/api/") or path in _SKIP:
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            documented = set(operation["responses"])
            assert {"400", "429", "500"} <= documented, (method, path, documented)
            if path != "/api/login":
                assert {"401", "403"} <= documented, (method, path, documented)
            if "{" in path:
                assert "404" in documented, (method, path)
            for status in documented:
                if status.startswith(("4", "5")) and not (path == "/api/login" and status == "401"):
                    contract.response_schema(path, method, int(status))


@pytest.mark.parametrize("path", ["/api/orders", "/api/monitoring/runs", "/api/fair-prices"])
def test_limit_is_bounded_and_the_bound_is_documented(contract, world, path):
    user, _ = world
    client = api_client_for(user)
    limit = next(
        p for p in contract.document["paths"][path]["get"]["parameters"] if p["name"] == "limit"
    )
    top = limit["schema"]["maximum"]
    assert limit["schema"]["minimum"] == 1 and top == 500
    assert client.get(f"{path}?limit={top}").status_code == 200
    for bad in (0, top + 1, 10**9, -1, "many"):
        response = client.get(f"{path}?limit={bad}")
        assert response.status_code == 400, (path, bad)
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert client.get(f"{path}?offset={2**64}").status_code == 400


# Found by fuzzing the running server with schemathesis (every operation, random and hostile
# input): answers the server gives, on purpose, that the schema did not document.


def test_deactivating_an_account_answers_the_documented_200_with_the_account(contract, world):
    user, ids = world
    response = api_client_for(user).delete(f"/api/accounts/{ids['account_id']}")
    assert response.status_code == 200
    assert response.json()["account"]["is_active"] is False
    contract.validate("/api/accounts/{account_id}", "delete", response)


def _account_named_operations(contract: Contract) -> list[tuple[str, str]]:
    """(path, method) of the operations without an id in the path that name an account in
    their query (`account_id`) or body (`account_id`, `bound_account_id`)."""
    named = []
    for path, operations in contract.document["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post") or "{" in path or not path.startswith("/api/"):
                continue
            if method == "get":
                names = {p["name"] for p in operation.get("parameters", [])}
            else:
                content = operation.get("requestBody", {}).get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                component = contract.document["components"]["schemas"].get(
                    ref.rsplit("/", 1)[-1], {}
                )
                names = set(component.get("properties", {}))
            if names & {"account_id", "bound_account_id"}:
                named.append((path, method))
    return named


def test_another_users_account_named_in_a_query_or_body_is_a_documented_404(contract, world):
    user, ids = world
    client = api_client_for(user)
    theirs = make_account(user=make_user()).pk
    named = _account_named_operations(contract)
    assert ("/api/orders", "get") in named and ("/api/positions/exit", "post") in named
    for path, method in named:
        if method == "get":
            response = client.get(path, {"account_id": theirs})
        else:
            body = {
                "/api/positions/exit": {
                    "account_id": theirs,
                    "exchange_segment": "NSECM",
                    "exchange_instrument_id": 1,
                    "product_type": "MIS",
                },
                "/api/positions/exit-all": {"account_id": theirs, "confirm": "EXIT ALL"},
                "/api/api-keys": {"name": "bot", "bound_account_id": theirs},
                "/api/algo-place-batch-orders": {"account_id": theirs, "orders": [batch_item(1)]},
                "/api/scheduled-orders": {
                    "account_id": theirs,
                    "name": "nightly",
                    "kind": "SINGLE",
                    "template": {"symbol": "RELIANCE", "order_side": "BUY"},
                    "time_of_day": "10:00",
                    "weekdays": [0],
                },
            }.get(path)
            if body is None:
                continue  # placement: its 404 was documented already
            response = client.post(path, body, format="json")
        assert response.status_code == 404, (method, path, response.content[:200])
        contract.validate(path, method, response)


def test_connecting_a_deactivated_account_is_a_documented_409(contract, world):
    user, ids = world
    client = api_client_for(user)
    client.delete(f"/api/accounts/{ids['account_id']}")
    response = client.post(f"/api/accounts/{ids['account_id']}/connect")
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"
    contract.validate("/api/accounts/{id}/connect", "post", response)


def test_exiting_a_position_there_is_not_is_a_documented_409(contract, world):
    user, ids = world
    response = api_client_for(user).post(
        "/api/positions/exit",
        {
            "account_id": ids["account_id"],
            "exchange_segment": "NSECM",
            "exchange_instrument_id": 1,
            "product_type": "CNC",
        },
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"
    contract.validate("/api/positions/exit", "post", response)


def test_changing_or_cancelling_a_final_order_is_a_documented_409(contract, world):
    user, ids = world
    client = api_client_for(user)
    account = BrokerAccount.objects.get(pk=ids["account_id"])
    order = make_order(account=account, status=Order.Status.CANCELLED)
    changed = client.patch(f"/api/orders/{order.pk}", {"limit_price": "98.00"}, format="json")
    cancelled = client.post(f"/api/orders/{order.pk}/cancel")
    for method, path, response in (
        ("patch", "/api/orders/{order_id}", changed),
        ("post", "/api/orders/{order_id}/cancel", cancelled),
    ):
        assert response.status_code == 409, (method, response.content[:200])
        assert response.json()["code"] == "CONFLICT"
        contract.validate(path, method, response)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED and order.limit_price == Decimal("99.00")


@pytest.fixture
def unreachable_broker(settings):
    """A trader's IIFL account whose broker refuses every connection (nothing listens)."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.BROKER_ALLOW_PRIVATE_HOSTS = True
    user = make_user()
    make_reliance_at_100()
    return user, make_xts_account("http://127.0.0.1:9", user=user)


def test_an_openalgo_order_not_sent_is_a_documented_503(contract, unreachable_broker):
    user, account = unreachable_broker
    key, _ = create_api_key(user=user, name="bot", scope=ApiKey.Scope.TRADE, bound_account=account)
    response = APIClient().post("/api/v1/placeorder", openalgo_order_body(key), format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "NOT_SENT" and response.json()["retryable"] is True
    contract.validate("/api/v1/placeorder", "post", response)


def test_connecting_to_a_broker_that_does_not_answer_is_a_documented_503(
    contract, unreachable_broker
):
    user, account = unreachable_broker
    response = api_client_for(user).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code == 503
    assert response.json()["code"] == "BROKER_UNAVAILABLE"
    contract.validate("/api/accounts/{id}/connect", "post", response)


def test_closing_positions_when_there_are_none_answers_as_documented(contract):
    user = make_user()
    account = make_account(user=user)
    key, _ = create_api_key(user=user, name="bot", scope=ApiKey.Scope.TRADE, bound_account=account)
    response = APIClient().post(
        "/api/v1/closeposition", {"apikey": key, "strategy": "eod"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["message"] == "No open positions to close"
    contract.validate("/api/v1/closeposition", "post", response)
