"""The XTS simulator's answers against the real ones (data/xts_real_answers.json): the same
keys (or the documented superset), the same JSON types (string vs number vs boolean) and the
same formats (times, amounts with thousands separators), driven by a plain HTTP client over
a real socket as an outside XTS client would drive it."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx

from orders.brokers.xts.wire import ORDER_EXTRA_KEYS, TRADE_EXTRA_KEYS, token_claims
from tests.factories import (
    make_fair_price,
    make_instrument,
    real_xts_answers,
    record_price,
    xts_order_body,
)

D = Decimal
REAL = real_xts_answers()

ISO_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?$"
ISO_ZONED = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?\+05:30$"
ISO_SECONDS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"
API_TIME = r"^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}$"
AMOUNT = r"^-?\d{1,3}(,\d{3})*\.\d{2}$"  # "2,853.50", "-1,143.75", "0.00"
PLAIN_AMOUNT = r"^-?\d+\.\d{2}$"
WHOLE = r"^-?\d+$"
NUMBER_TEXT = r"^(-?\d+(\.\d+)?|NaN)$"  # the balance's strings: "20163.6", "NaN"

# Per field, the format both the real rows and the simulator's rows must have.
ORDER_FORMATS = {
    "OrderGeneratedDateTime": ISO_TIME,
    "ExchangeTransactTime": ISO_ZONED,
    "LastUpdateDateTime": ISO_TIME,
    "OrderExpiryDate": r"^1980-01-01T00:00:00$",
    "OrderAverageTradedPrice": rf"({AMOUNT})|^$",
    "OrderGeneratedDateTimeAPI": API_TIME,
    "ExchangeTransactTimeAPI": API_TIME,
    "LastUpdateDateTimeAPI": API_TIME,
    "OrderExpiryDateAPI": r"^01-01-1980 00:00:00$",
    "OrderSideAPI": r"^(BUY|SELL)$",
    "OrderSide": r"^(Buy|Sell)$",
}
TRADE_FORMATS = {
    **ORDER_FORMATS,
    "LastExecutionTransactTime": ISO_SECONDS,
    "LastExecutionTransactTimeAPI": API_TIME,
}
POSITION_FORMATS = {
    **{
        key: AMOUNT
        for key in (
            "BuyAveragePrice",
            "SellAveragePrice",
            "BuyAmount",
            "SellAmount",
            "NetAmount",
            "UnrealizedMTM",
            "RealizedMTM",
            "MTM",
            "BEP",
            "SumOfTradedQuantityAndPriceBuy",
            "SumOfTradedQuantityAndPriceSell",
        )
    },
    **{
        key: WHOLE
        for key in (
            "ExchangeInstrumentId",
            "Marketlot",
            "Multiplier",
            "OpenBuyQuantity",
            "OpenSellQuantity",
            "Quantity",
        )
    },
}


def kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


def assert_same_shape(ours: dict, real: dict, *, extra: frozenset = frozenset(), where=""):
    """Every real key present with the real key's JSON type; extra keys only if documented."""
    missing = set(real) - set(ours)
    unknown = set(ours) - set(real) - extra
    assert not missing, f"{where}: keys missing {sorted(missing)}"
    assert not unknown, f"{where}: undocumented keys {sorted(unknown)}"
    for key, value in real.items():
        if isinstance(value, dict):
            assert isinstance(ours[key], dict), f"{where}.{key}"
            assert_same_shape(ours[key], value, where=f"{where}.{key}")
        else:
            assert kind(ours[key]) == kind(value), f"{where}.{key}: {ours[key]!r} vs {value!r}"


def assert_formats(row: dict, formats: dict[str, str], where: str) -> None:
    for key, pattern in formats.items():
        if key in row:
            assert re.match(pattern, str(row[key])), f"{where}.{key}: {row[key]!r} !~ {pattern}"


# The format rules are the real rows' own: they must hold for the samples first.
def test_the_format_rules_describe_the_real_answers():
    for row in REAL["order_book"]["result"] + REAL["order_history"]["result"]:
        assert_formats(row, ORDER_FORMATS, "real order")
    for row in [*REAL["trade_book"]["result"], REAL["trade_event_2024"]]:
        assert_formats(row, TRADE_FORMATS, "real trade")
    for row in REAL["positions_daywise"]["result"]["positionList"] + REAL["position_list_commas"]:
        assert_formats(row, POSITION_FORMATS, "real position")
    limits = REAL["balance"]["result"]["BalanceList"][0]["limitObject"]
    for group in ("marginAvailable", "marginUtilized", "limitsAssigned"):
        for value in limits[group].values():
            assert re.match(NUMBER_TEXT, value)


# ---- an outside client ------------------------------------------------------------------------


class Client:
    """A plain XTS client: form-encoded login, then the token as is in Authorization."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.token = ""

    def login(self, app_key="inv-app", secret="inv-secret") -> dict:
        answer = self.http.post(
            "/interactive/user/session",
            data={"appKey": app_key, "secretKey": secret, "source": "WEBAPI"},
        )
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["result"]["token"]
        return answer.json()

    def call(self, method: str, path: str, *, status: int = 200, **kwargs) -> dict:
        answer = self.http.request(method, path, headers={"Authorization": self.token}, **kwargs)
        assert answer.status_code == status, answer.text
        assert "json" in answer.headers["content-type"]
        body = answer.json()
        if status == 200:
            assert set(body) == {"type", "code", "description", "result"}
            assert body["type"] == "success" and re.match(r"^s-[a-z]+-\d{4}$", body["code"])
        return body

    def place(self, instrument, uid, *, quantity=10, limit="1540", order_type="LIMIT", stop=0):
        return self.call(
            "POST",
            "/interactive/orders",
            json=xts_order_body(
                uid,
                exchangeSegment=instrument.exchange_segment,
                exchangeInstrumentID=instrument.exchange_instrument_id,
                orderType=order_type,
                orderQuantity=quantity,
                limitPrice=float(limit),
                stopPrice=stop,
            ),
        )["result"]


def test_login_result_has_the_real_keys_and_a_24_hour_jwt(simulator):
    client = Client(simulator.base_url)
    answer = client.login()
    result = answer["result"]
    assert set(result) == set(REAL["login_result_keys"])
    assert (result["userID"], result["isInvestorClient"], result["clientCodes"]) == (
        "INV001",
        True,
        ["INV001"],
    )
    claims = token_claims(result["token"])
    assert claims["exp"] - claims["iat"] == 86_400
    assert {"key": "NSEFO", "value": 2} in result["exchangeSegmentArray"]
    assert isinstance(result["enums"], dict) and result["enums"]


def test_a_json_login_works_too(simulator):
    answer = httpx.post(
        f"{simulator.base_url}/interactive/user/session",
        json={"appKey": "inv-app", "secretKey": "inv-secret", "source": "WebAPI"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["result"]["token"]


def test_a_new_login_kills_the_old_token_with_the_real_dead_token_answer(simulator):
    first, second = Client(simulator.base_url), Client(simulator.base_url)
    first.login()
    second.login()
    dead = first.call("GET", "/interactive/orders", status=400)
    assert dead == {"type": "error", "code": "e-session-0007", "description": "Invalid Token"}
    assert second.call("GET", "/interactive/orders")["result"] == []


def test_order_book_history_and_trades_have_the_real_shapes(simulator, instrument, settings):
    client = Client(simulator.base_url)
    client.login()
    placed = client.place(instrument, "S1", quantity=10, limit="1540")
    assert_same_shape(placed, REAL["place"]["result"], where="place")
    app_order_id = placed["AppOrderID"]
    client.call(
        "PUT",
        "/interactive/orders",
        json={
            "appOrderID": app_order_id,
            "modifiedProductType": "MIS",
            "modifiedOrderType": "LIMIT",
            "modifiedOrderQuantity": 12,
            "modifiedDisclosedQuantity": 0,
            "modifiedLimitPrice": 1541,
            "modifiedStopPrice": 0,
            "modifiedTimeInForce": "DAY",
            "orderUniqueIdentifier": "S1",
        },
    )
    settings.PAPER_FILL_CAP = 5
    record_price(instrument, "1539")  # one tick: 5 of 12
    record_price(instrument, "1539")  # another: 10 of 12
    client.call("DELETE", "/interactive/orders", params={"appOrderID": app_order_id})
    settings.PAPER_FILL_CAP = 0
    client.place(instrument, "S2", quantity=2, limit="1550")  # fills at once (at 1539)

    book = client.call("GET", "/interactive/orders")
    assert book["description"] == REAL["order_book"]["description"]
    real_row = REAL["order_book"]["result"][0]
    for row in book["result"]:
        assert_same_shape(row, real_row, extra=ORDER_EXTRA_KEYS, where="order row")
        assert_formats(row, ORDER_FORMATS, "order row")
    cancelled, filled = book["result"]
    assert (cancelled["OrderStatus"], cancelled["CumulativeQuantity"]) == ("Cancelled", 10)
    assert (cancelled["OrderQuantity"], cancelled["LeavesQuantity"]) == (12, 0)
    assert cancelled["OrderAverageTradedPrice"] == "1,539.00"
    assert (filled["OrderStatus"], filled["OrderAverageTradedPrice"]) == ("Filled", "1,539.00")

    history = client.call("GET", "/interactive/orders", params={"appOrderID": app_order_id})
    statuses = [row["OrderStatus"] for row in history["result"]]
    assert statuses == [
        "PendingNew",
        "New",
        "Replaced",
        "PartiallyFilled",
        "PartiallyFilled",
        "Cancelled",
    ]
    for row in history["result"]:
        assert_same_shape(row, real_row, extra=ORDER_EXTRA_KEYS, where="history row")
        assert_formats(row, ORDER_FORMATS, "history row")
    steps = history["result"]
    assert [r["OrderQuantity"] for r in steps] == [10, 10, 12, 12, 12, 12]
    assert [r["CumulativeQuantity"] for r in steps] == [0, 0, 0, 5, 10, 10]
    assert [r["OrderPrice"] for r in steps] == [1540, 1540, 1541, 1541, 1541, 1541]
    assert steps[0]["ExchangeOrderID"] == "" and steps[1]["ExchangeOrderID"]
    # oldest first
    assert [r["SequenceNumber"] for r in steps] == sorted(r["SequenceNumber"] for r in steps)

    trades = client.call("GET", "/interactive/orders/trades")["result"]
    assert len(trades) == 3
    for row in trades:
        assert_same_shape(row, REAL["trade_book"]["result"][0], extra=TRADE_EXTRA_KEYS, where="t")
        # the 2024 event's keys are all there too
        assert set(REAL["trade_event_2024"]) <= set(row)
        assert_formats(row, TRADE_FORMATS, "trade row")
    # each trade row is the order row as of that fill: quantity and status included
    assert [
        (t["LastTradedQuantity"], t["CumulativeQuantity"], t["OrderStatus"]) for t in trades
    ] == [
        (5, 5, "PartiallyFilled"),
        (5, 10, "PartiallyFilled"),
        (2, 2, "Filled"),
    ]
    assert trades[0]["LastTradedPrice"] == 1539 and trades[0]["OrderQuantity"] == 12


def test_positions_and_balance_have_the_real_shapes_with_separators(simulator, instrument):
    client = Client(simulator.base_url)
    client.login()
    client.place(instrument, "P1", quantity=10, limit="1550")  # fills at 1545.05
    positions = client.call(
        "GET", "/interactive/portfolio/positions", params={"dayOrNet": "DayWise"}
    )
    assert positions["code"] == REAL["positions_daywise"]["code"]
    (row,) = positions["result"]["positionList"]
    real_row = REAL["positions_daywise"]["result"]["positionList"][0]
    assert_same_shape(row, real_row, where="position")
    assert_formats(row, POSITION_FORMATS, "position")
    assert (row["Quantity"], row["BuyAmount"], row["BuyAveragePrice"]) == (
        "10",
        "15,450.50",
        "1,545.05",
    )
    assert (row["AccountID"], row["Marketlot"]) == ("INV001", "1")

    balance = client.call("GET", "/interactive/user/balance")
    assert_same_shape(balance, REAL["balance"], where="balance envelope")
    [entry] = balance["result"]["BalanceList"]
    assert_same_shape(entry, REAL["balance"]["result"]["BalanceList"][0], where="balance")
    limits = entry["limitObject"]
    # 10 valued at the last traded price 1,545 x the 0.2 margin rate
    assert limits["RMSSubLimits"]["marginUtilized"] == "3090"
    assert limits["RMSSubLimits"]["cashAvailable"] == "999999.5"  # MTM -0.50 included
    for group in ("marginAvailable", "marginUtilized", "limitsAssigned"):
        assert all(re.match(NUMBER_TEXT, value) for value in limits[group].values())


def crude_at_100():
    """CRUDEOILM of the MCX, one unit worth 10 x its price, at 100 (no spread)."""
    crude = make_instrument(symbol="CRUDEOILM", segment="MCXFO", multiplier=10)
    make_fair_price(crude, "100.00")
    return crude


def place_crude(client, crude, uid, *, side="BUY", quantity, limit):
    client.call(
        "POST",
        "/interactive/orders",
        json=xts_order_body(
            uid,
            exchangeSegment="MCXFO",
            exchangeInstrumentID=crude.exchange_instrument_id,
            orderSide=side,
            orderQuantity=quantity,
            limitPrice=limit,
        ),
    )


def test_an_x10_contracts_position_row_gives_its_multiplier_and_amounts_in_rupees(simulator):
    """Bought 2 at 100, sold 1 at 101, the price at 103: as a real XTS server reports an MCX
    contract, the averages and the break-even are prices and the amounts and MTM rupees."""
    crude = crude_at_100()
    client = Client(simulator.base_url)
    client.login()
    place_crude(client, crude, "M1", quantity=2, limit=100)
    record_price(crude, "101")
    place_crude(client, crude, "M2", side="SELL", quantity=1, limit=101)
    record_price(crude, "103")
    (row,) = client.call("GET", "/interactive/portfolio/positions")["result"]["positionList"]
    assert_formats(row, POSITION_FORMATS, "position")
    assert (row["Multiplier"], row["Marketlot"], row["Quantity"]) == ("10", "1", "1")
    assert (row["BuyAveragePrice"], row["SellAveragePrice"]) == ("100.00", "101.00")
    assert (row["BuyAmount"], row["SellAmount"], row["NetAmount"]) == (
        "2,000.00",
        "1,010.00",
        "-990.00",
    )
    assert (row["RealizedMTM"], row["UnrealizedMTM"], row["MTM"]) == ("10.00", "30.00", "40.00")
    assert row["BEP"] == "99.00"  # 990 paid for 1 unit of 10
    assert (row["SumOfTradedQuantityAndPriceBuy"], row["SumOfTradedQuantityAndPriceSell"]) == (
        "200.00",
        "101.00",
    )


def test_a_converted_part_of_an_x10_position_moves_its_amount_in_rupees(simulator):
    crude = crude_at_100()
    client = Client(simulator.base_url)
    client.login()
    place_crude(client, crude, "M1", quantity=2, limit=100)
    client.call(
        "PUT",
        "/interactive/portfolio/positions/convert",
        json={
            "exchangeSegment": "MCXFO",
            "exchangeInstrumentID": crude.exchange_instrument_id,
            "targetQty": 1,
            "isDayWise": True,
            "oldProductType": "MIS",
            "newProductType": "NRML",
        },
    )
    rows = client.call("GET", "/interactive/portfolio/positions")["result"]["positionList"]
    assert {(r["ProductType"], r["Quantity"], r["BuyAmount"], r["BEP"]) for r in rows} == {
        ("MIS", "1", "1,000.00", "100.00"),
        ("NRML", "1", "1,000.00", "100.00"),
    }


def test_the_separator_switch_writes_plain_amounts(simulator, instrument):
    simulator.set_faults(thousands_separators=False)
    client = Client(simulator.base_url)
    client.login()
    client.place(instrument, "P2", quantity=10, limit="1550")
    (row,) = client.call("GET", "/interactive/portfolio/positions")["result"]["positionList"]
    assert row["BuyAmount"] == "15450.50" and re.match(PLAIN_AMOUNT, row["BuyAveragePrice"])
    (order,) = client.call("GET", "/interactive/orders")["result"]
    assert order["OrderAverageTradedPrice"] == "1545.05"


def test_a_stop_order_not_yet_triggered_is_trigger_pending(simulator, instrument):
    client = Client(simulator.base_url)
    client.login()
    client.place(instrument, "T1", order_type="STOPLIMIT", limit="1561", stop="1560")
    (row,) = client.call("GET", "/interactive/orders")["result"]
    assert (row["OrderStatus"], row["OrderType"], row["OrderStopPrice"]) == (
        "Trigger Pending",
        "StopLimit",
        1560,
    )


def test_a_margin_failure_is_accepted_then_rejected_with_a_reason(simulator, instrument):
    client = Client(simulator.base_url)
    client.login()
    # 5,000 x 1,540 = 77 lakh of exposure, 15.4 lakh margin > 10 lakh of cash
    placed = client.place(instrument, "BIG", quantity=5000, limit="1540")
    (row,) = client.call("GET", "/interactive/orders")["result"]
    assert (row["AppOrderID"], row["OrderStatus"]) == (placed["AppOrderID"], "Rejected")
    assert "margin" in row["CancelRejectReason"].lower()
    history = client.call("GET", "/interactive/orders", params={"appOrderID": row["AppOrderID"]})
    assert [r["OrderStatus"] for r in history["result"]] == ["PendingNew", "Rejected"]


def test_malformed_requests_are_refused_at_once_as_bad_request(simulator, instrument):
    client = Client(simulator.base_url)
    client.login()
    body = client.call(
        "POST",
        "/interactive/orders",
        status=400,
        json={"exchangeSegment": "NSECM", "exchangeInstrumentID": "x", "orderSide": "BUY"},
    )
    assert body["description"] == "Bad Request" and body["result"]["errors"]
    assert client.call("GET", "/interactive/orders")["result"] == []


def test_the_rate_limit_knob_answers_e_apirl_and_does_nothing(simulator, instrument):
    simulator.set_faults(rate_limit_per_second=2)
    client = Client(simulator.base_url)
    client.login()
    client.place(instrument, "R1")
    client.place(instrument, "R2")
    refused = client.call(
        "POST",
        "/interactive/orders",
        status=400,
        json={
            "exchangeSegment": "NSECM",
            "exchangeInstrumentID": 1594,
            "orderUniqueIdentifier": "R3",
        },
    )
    assert refused["code"] == "e-apirl-0004"
    assert simulator.stats()["rate_limited"] == 1
    simulator.set_faults(rate_limit_per_second=0)
    book = client.call("GET", "/interactive/orders")["result"]
    assert [row["OrderUniqueIdentifier"] for row in book] == ["R1", "R2"]


def test_holdings_conversion_and_square_off(simulator, instrument):
    client = Client(simulator.base_url)
    client.login()
    holdings = client.call("GET", "/interactive/portfolio/holdings")["result"]
    assert holdings["RMSHoldings"]["Holdings"] == {}
    client.place(instrument, "C1", quantity=10, limit="1550")
    converted = client.call(
        "PUT",
        "/interactive/portfolio/positions/convert",
        json={
            "exchangeSegment": "NSECM",
            "exchangeInstrumentID": 1594,
            "targetQty": 4,
            "isDayWise": True,
            "oldProductType": "MIS",
            "newProductType": "NRML",
        },
    )
    assert converted["result"]["targetQty"] == 4
    rows = client.call("GET", "/interactive/portfolio/positions")["result"]["positionList"]
    assert {(r["ProductType"], r["Quantity"]) for r in rows} == {("MIS", "6"), ("NRML", "4")}
    client.call(
        "PUT",
        "/interactive/portfolio/squareoff",
        json={
            "exchangeSegment": "NSECM",
            "exchangeInstrumentID": 1594,
            "productType": "NRML",
            "squareoffMode": "DayWise",
            "positionSquareOffQuantityType": "ExactQty",
            "squareOffQtyValue": 4,
            "blockOrderSending": True,
            "cancelOrders": True,
        },
    )
    rows = client.call("GET", "/interactive/portfolio/positions")["result"]["positionList"]
    assert {(r["ProductType"], r["Quantity"]) for r in rows} == {("MIS", "6"), ("NRML", "0")}
    too_much = client.call(
        "PUT",
        "/interactive/portfolio/positions/convert",
        status=400,
        json={
            "exchangeSegment": "NSECM",
            "exchangeInstrumentID": 1594,
            "targetQty": 7,
            "isDayWise": True,
            "oldProductType": "MIS",
            "newProductType": "NRML",
        },
    )
    assert too_much["description"] == "Bad Request"


def test_dealer_routes_need_a_dealer_and_a_client_code(simulator, instrument):
    dealer = Client(simulator.base_url)
    dealer.login("dealer-app", "dealer-secret")
    missing = dealer.call("GET", "/interactive/orders/dealerorderbook", status=400)
    assert "clientID" in missing["description"]
    dealer.call(
        "POST",
        "/interactive/orders",
        json=xts_order_body("DL1", orderQuantity=1, clientID="CLIENT7"),
    )
    for path in ("/interactive/orders/dealerorderbook", "/interactive/orders"):
        (row,) = dealer.call("GET", path, params={"clientID": "CLIENT7"})["result"]
        assert (row["ClientID"], row["LoginID"]) == ("CLIENT7", "DLR001")
    assert dealer.call("GET", "/interactive/orders", params={"clientID": "CLIENT8"})["result"] == []
    for path in ("/interactive/orders/dealertradebook", "/interactive/portfolio/dealerpositions"):
        dealer.call("GET", path, params={"clientID": "CLIENT7", "dayOrNet": "NetWise"})
    refused = dealer.call(
        "GET", "/interactive/user/balance", params={"clientID": "CLIENT7"}, status=400
    )
    assert refused["type"] == "error"
    investor = Client(simulator.base_url)
    investor.login()
    investor.call("GET", "/interactive/orders/dealerorderbook", status=400)
