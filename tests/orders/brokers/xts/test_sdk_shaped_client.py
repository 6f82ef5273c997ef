"""The simulator driven exactly as the official XTS Python SDK (symphonyfintech
xts-pythonclient-api-sdk, Connect.py) drives a broker.

The SDK itself is not installed: it is not a PyPI package and pins old requests /
python-socketio versions. `SdkShapedClient` reproduces its request shape, as XTS.md and the
SDK's source describe it: the login is a form-encoded body (`requests` with `data=dict`) and
no headers; every later call sends `Content-Type: application/json` and the token as is in
`Authorization`; POST/PUT bodies are `json.dumps(params)` strings, GET/DELETE parameters go
in the query; `clientID` only for a dealer. Answers are read the SDK's way: JSON only when
the content type says json, and an expired token recognised only by HTTP 400 with
description "Invalid Token"."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.factories import xts_order_body

D = Decimal


class TokenExpired(Exception):
    pass


class InputError(Exception):
    pass


class SdkShapedClient:
    def __init__(self, root: str, app_key: str, secret_key: str, source: str = "WEBAPI"):
        self.root = root
        self.app_key, self.secret_key, self.source = app_key, secret_key, source
        self.token = None
        self.user_id = None
        self.is_investor_client = None
        self.sent: list[httpx.Request] = []

    def _request(self, route: str, method: str, params=None):
        params = params if params else {}
        headers = {}
        if self.token:
            headers.update({"Content-Type": "application/json", "Authorization": self.token})
        response = httpx.request(
            method,
            self.root + route,
            data=params if method in ("POST", "PUT") and isinstance(params, dict) else None,
            content=params if method in ("POST", "PUT") and isinstance(params, str) else None,
            params=params if method in ("GET", "DELETE") else None,
            headers=headers,
            timeout=10,
        )
        self.sent.append(response.request)
        assert "json" in response.headers["content-type"]
        data = json.loads(response.content.decode("utf8"))
        if data.get("type"):
            if (
                response.status_code == 400
                and data["type"] == "error"
                and data["description"] == "Invalid Token"
            ):
                raise TokenExpired(data["description"])
            if (
                response.status_code == 400
                and data["type"] == "error"
                and data["description"] == "Bad Request"
            ):
                raise InputError(str(data["result"]["errors"]))
        return data

    def _client(self, params: dict, client_id) -> dict:
        if not self.is_investor_client:
            params["clientID"] = client_id
        return params

    def interactive_login(self):
        params = {"appKey": self.app_key, "secretKey": self.secret_key, "source": self.source}
        response = self._request("/interactive/user/session", "POST", params)
        if "token" in response["result"]:
            self.token = response["result"]["token"]
            self.user_id = response["result"]["userID"]
            self.is_investor_client = response["result"]["isInvestorClient"]
        return response

    def place_order(self, client_id=None, **order):
        params = self._client(dict(order), client_id)
        return self._request("/interactive/orders", "POST", json.dumps(params))

    def modify_order(self, client_id=None, **changes):
        params = self._client(dict(changes), client_id)
        return self._request("/interactive/orders", "PUT", json.dumps(params))

    def cancel_order(self, app_order_id, unique_identifier, client_id=None):
        params = {"appOrderID": int(app_order_id), "orderUniqueIdentifier": unique_identifier}
        return self._request("/interactive/orders", "DELETE", self._client(params, client_id))

    def get(self, route: str, client_id=None, **params):
        return self._request(route, "GET", self._client(params, client_id))

    def put(self, route: str, client_id=None, **params):
        return self._request(route, "PUT", json.dumps(self._client(params, client_id)))

    def interactive_logout(self, client_id=None):
        return self._request("/interactive/user/session", "DELETE", self._client({}, client_id))


def test_an_sdk_shaped_investor_session_from_form_login_to_logout(simulator, instrument):
    sdk = SdkShapedClient(simulator.base_url, "inv-app", "inv-secret")
    login = sdk.interactive_login()
    login_request = sdk.sent[0]
    # the shape that matters: a form body, no JSON, no token
    assert login_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert login_request.content == b"appKey=inv-app&secretKey=inv-secret&source=WEBAPI"
    assert "authorization" not in login_request.headers
    assert login["type"] == "success" and sdk.is_investor_client is True

    placed = sdk.place_order(**xts_order_body("SDK1"))
    assert placed["type"] == "success"
    app_order_id = placed["result"]["AppOrderID"]
    assert sdk.sent[-1].headers["authorization"] == sdk.token
    sdk.modify_order(
        appOrderID=app_order_id,
        modifiedProductType="MIS",
        modifiedOrderType="LIMIT",
        modifiedOrderQuantity=20,
        modifiedDisclosedQuantity=0,
        modifiedLimitPrice=1541,
        modifiedStopPrice=0,
        modifiedTimeInForce="DAY",
        orderUniqueIdentifier="SDK1",
    )
    (row,) = sdk.get("/interactive/orders")["result"]
    assert (row["OrderQuantity"], row["OrderStatus"], row["OrderPrice"]) == (20, "Replaced", 1541)
    history = sdk.get("/interactive/orders", appOrderID=app_order_id)["result"]
    assert [r["OrderStatus"] for r in history] == ["PendingNew", "New", "Replaced"]
    sdk.cancel_order(app_order_id, "SDK1")
    sdk.place_order(**xts_order_body("SDK2", limitPrice=1550))  # fills at once
    assert len(sdk.get("/interactive/orders/trades")["result"]) == 1
    for day_or_net in ("DayWise", "NetWise"):
        positions = sdk.get("/interactive/portfolio/positions", dayOrNet=day_or_net)
        assert positions["result"]["positionList"][0]["Quantity"] == "10"
    assert sdk.get("/interactive/user/balance")["result"]["BalanceList"]
    assert sdk.get("/interactive/user/profile")["type"] == "success"
    assert sdk.get("/interactive/portfolio/holdings")["type"] == "success"
    converted = sdk.put(
        "/interactive/portfolio/positions/convert",
        exchangeSegment="NSECM",
        exchangeInstrumentID=1594,
        targetQty=10,
        isDayWise=True,
        oldProductType="MIS",
        newProductType="NRML",
    )
    assert converted["type"] == "success"
    squared = sdk.put(
        "/interactive/portfolio/squareoff",
        exchangeSegment="NSECM",
        exchangeInstrumentID=1594,
        productType="NRML",
        squareoffMode="Netwise",  # the SDK's own constant, spelled so
        positionSquareOffQuantityType="Percentage",
        squareOffQtyValue=100,
        blockOrderSending=True,
        cancelOrders=True,
    )
    assert squared["type"] == "success"
    quantities = {
        (r["ProductType"], r["Quantity"])
        for r in sdk.get("/interactive/portfolio/positions", dayOrNet="NetWise")["result"][
            "positionList"
        ]
    }
    assert quantities == {("MIS", "0"), ("NRML", "0")}
    with pytest.raises(InputError):
        sdk.place_order(**xts_order_body("SDK3", orderQuantity="ten"))
    assert sdk.interactive_logout()["type"] == "success"
    with pytest.raises(TokenExpired):
        sdk.get("/interactive/orders")


def test_the_sdk_recognises_a_token_killed_by_another_login(simulator):
    first = SdkShapedClient(simulator.base_url, "inv-app", "inv-secret")
    second = SdkShapedClient(simulator.base_url, "inv-app", "inv-secret")
    first.interactive_login()
    second.interactive_login()
    with pytest.raises(TokenExpired):
        first.get("/interactive/orders")
    assert second.get("/interactive/orders")["type"] == "success"


def test_an_sdk_shaped_dealer_sends_client_id_everywhere(simulator, instrument):
    sdk = SdkShapedClient(simulator.base_url, "dealer-app", "dealer-secret")
    assert sdk.interactive_login()["result"]["clientCodes"] == ["CLIENT7", "CLIENT8"]
    assert sdk.is_investor_client is False
    placed = sdk.place_order(client_id="CLIENT8", **xts_order_body("DSDK1"))
    assert placed["result"]["ClientID"] == "CLIENT8"
    for route in (
        "/interactive/orders",
        "/interactive/orders/dealerorderbook",
        "/interactive/orders/trades",
        "/interactive/orders/dealertradebook",
    ):
        assert sdk.get(route, client_id="CLIENT8")["type"] == "success"
    for route in ("/interactive/portfolio/positions", "/interactive/portfolio/dealerpositions"):
        assert sdk.get(route, client_id="CLIENT8", dayOrNet="DayWise")["type"] == "success"
    (row,) = sdk.get("/interactive/orders/dealerorderbook", client_id="CLIENT8")["result"]
    assert row["OrderUniqueIdentifier"] == "DSDK1"
    refused = sdk.get("/interactive/orders", client_id="DLR001")  # the dealer's own id
    assert refused["type"] == "error"
    assert sdk.cancel_order(placed["result"]["AppOrderID"], "DSDK1", "CLIENT8")["type"] == (
        "success"
    )
