"""The OpenAlgo API in the OpenAPI schema and the docs page (issue 14, item 6): every call
listed under its tag, with OpenAlgo's own answers documented, and real answers that match."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from orders.openalgo.schema import TAG
from orders.openalgo.urls import _CALLS
from tests.factories import make_account, make_user
from tests.openapi_contract import published_contract

pytestmark = pytest.mark.django_db


@pytest.fixture
def contract():
    return published_contract()


def test_every_openalgo_call_is_in_the_schema_under_its_tag(contract):
    for call, _view in _CALLS:
        operation = contract.document["paths"][f"/api/v1/{call}"]["post"]
        assert operation["tags"] == [TAG], call
        assert {"200", "400", "403", "429", "500"} <= set(operation["responses"]), call
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in body, call
    scheme = contract.document["components"]["securitySchemes"]["openalgoApiKey"]
    assert scheme["name"] == "X-API-KEY" and "apikey" in scheme["description"]


def test_real_answers_match_the_documented_ones(contract):
    user = make_user()
    account = make_account(user=user)
    raw, _ = create_api_key(user=user, name="t", scope="trade", bound_account=account)
    client = APIClient()
    good = client.post("/api/v1/orderbook", {"apikey": raw}, format="json")
    assert good.status_code == 200
    contract.validate("/api/v1/orderbook", "post", good)
    bad = client.post("/api/v1/orderbook", {"apikey": "tdk_nope"}, format="json")
    assert bad.status_code == 403 and bad.json() == {
        "status": "error",
        "message": "Invalid openalgo apikey",
    }
    contract.validate("/api/v1/orderbook", "post", bad)
    unknown = client.post(
        "/api/v1/symbol", {"apikey": raw, "symbol": "X", "exchange": "NSE"}, format="json"
    )
    assert unknown.status_code == 400
    contract.validate("/api/v1/symbol", "post", unknown)
