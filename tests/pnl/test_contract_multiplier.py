"""A contract whose one unit is worth price x multiplier (an MCX future of the instrument master
with Multiplier 10), end to end: orders placed through the REST API at the paper exchange, the
monitoring cycle's sync and FIFO, its pnl_update, and the figures every API shows of it (PnL,
positions, the account's balance, the trade book, the intraday MTM curve): rupees, 10 a point.
Real parts: MariaDB, Redis (lock, channel layer), the paper broker."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal
from itertools import count

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import BrokerAccount, User
from monitoring.models import MonitoringRun
from monitoring.services import run_user_cycle
from orders.brokers.sessions import connect_account
from orders.models import BrokerPosition, Instrument, Order
from pnl.models import MtmSample
from pnl.services import trading_day_bounds
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
    make_xts_account,
    record_price,
    set_price_and_match,
)

pytestmark = pytest.mark.django_db

D = Decimal
_cycles = count(1)


def cycle(user) -> None:
    run = run_user_cycle(user_id=user.pk, cycle_key=f"mult-{next(_cycles)}", trigger="test")
    assert run is not None and run.status == MonitoringRun.Status.OK, run and run.steps


def place_market(client, account, instrument, side: str, quantity: int) -> int:
    answer = client.post(
        "/api/orders",
        {
            "account_id": account.pk,
            "exchange_instrument_id": instrument.exchange_instrument_id,
            "order_side": side,
            "order_type": "MARKET",
            "order_quantity": quantity,
            "product_type": "NRML",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    return answer.json()["order"]["id"]


@dataclass
class CrudeDesk:
    """A trader's paper account, its API client and CRUDEOILM (MCXFO, Multiplier 10) at 100;
    once traded, the ids of the BUY of 2 and the SELL of 1."""

    user: User
    account: BrokerAccount
    crude: Instrument
    client: APIClient
    buy_id: int = 0
    sell_id: int = 0

    def trade(self) -> None:
        """Buy 2 at 100, then sell 1 at 101, each followed by a cycle."""
        self.buy_id = place_market(self.client, self.account, self.crude, "BUY", 2)
        cycle(self.user)
        set_price_and_match(self.crude, "101", spread="0")
        self.sell_id = place_market(self.client, self.account, self.crude, "SELL", 1)
        cycle(self.user)

    def trade_and_mark_at_103(self) -> None:
        self.trade()
        make_fair_price(self.crude, "103")
        cycle(self.user)


def crude_desk(account: BrokerAccount) -> CrudeDesk:
    crude = make_instrument(symbol="CRUDEOILM", segment="MCXFO", multiplier=10)
    make_fair_price(crude, "100")
    return CrudeDesk(account.user, account, crude, api_client_for(account.user))


@pytest.fixture
def desk() -> CrudeDesk:
    """At the paper exchange."""
    return crude_desk(make_account(user=make_user()))


@pytest.fixture
def xts_desk(simulator, settings) -> CrudeDesk:
    """At an XTS broker (the simulator, over HTTP), whose amounts are in rupees too."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    account = make_xts_account(simulator.base_url, user=make_user())
    connect_account(account)
    return crude_desk(account)


def test_a_multiplier_10_contract_realizes_and_marks_ten_rupees_a_point(desk, listen):
    """Buy 2 at 100, sell 1 at 101, the price then at 103: realized (101 - 100) x 1 x 10 =
    10.00, the open unit marked (103 - 100) x 1 x 10 = 30.00, turnover (2 x 100 + 101) x 10."""
    user, account, crude, client = desk.user, desk.account, desk.crude, desk.client
    listener = listen(user.pk)

    desk.trade()
    buy_id, sell_id = desk.buy_id, desk.sell_id
    [*_, after_sell] = listener.of_type("pnl_update")
    assert (after_sell["realized"], after_sell["unrealized"]) == ("10.00", "10.00")

    make_fair_price(crude, "103")  # fills unchanged: the stored open lot is marked again
    cycle(user)
    [*_, marked] = listener.of_type("pnl_update")
    assert (marked["realized"], marked["unrealized"], marked["total"]) == (
        "10.00",
        "30.00",
        "40.00",
    )

    summary = client.get("/api/pnl/summary", {"account_id": account.pk}).json()
    assert (summary["realized"], summary["unrealized"], summary["total"]) == (
        "10.00",
        "30.00",
        "40.00",
    )
    [row] = summary["instruments"]
    assert (row["realized"], row["unrealized"], row["open_quantity"]) == ("10.00", "30.00", 1)
    today = summary["today"]
    assert (today["realized"], today["unrealized"], today["total"]) == ("10.00", "30.00", "40.00")
    assert (today["turnover"], today["fills"]) == ("3010.00", 2)

    lots = client.get("/api/broker-order-book-pnl", {"account_id": account.pk}).json()
    by_status = {lot["lot_status"]: lot for lot in lots["pnl_data"]}
    assert by_status["MATCHED"]["BO_PNL"] == "10.0000"
    assert (by_status["OPEN"]["BO_PNL"], by_status["OPEN"]["mark_price"]) == (
        "30.0000",
        "103.0000",
    )

    trading_date, _start, _end = trading_day_bounds(Order.objects.get(pk=buy_id).created_at)
    history = client.get(
        "/api/pnl/history", {"account_id": account.pk, "since": trading_date.isoformat()}
    ).json()
    assert [(d["realized"], d["total"], d["turnover"]) for d in history["history"]] == [
        ("10.00", "40.00", "3010.00")
    ]
    orders = {o.pk: o for o in Order.objects.filter(pk__in=[buy_id, sell_id])}
    assert (orders[buy_id].pnl, orders[buy_id].open_position) == (D("40.00"), 1)
    assert (orders[sell_id].pnl, orders[sell_id].open_position) == (D("0.00"), 0)
    account.refresh_from_db()
    assert (account.realized_mtm, account.unrealized_mtm, account.total_mtm) == (
        D("10.00"),
        D("30.00"),
        D("40.00"),
    )


@pytest.mark.parametrize(
    "broker",
    # The simulator reads the desk's instruments on its own connection: committed rows.
    ["desk", pytest.param("xts_desk", marks=pytest.mark.django_db(transaction=True))],
)
def test_positions_value_the_contract_in_rupees_at_every_tick(broker, request):
    """The paper exchange reports its amounts in rupees, as an XTS broker does: the position's
    MTM is (1,010 sold - 2,000 bought) + 1 open x 103 x 10 = 40.00 (the paper exchange's
    showed 931.00: amounts of one unit mixed with the open unit at 10 x its price), and a
    tick moves it 10 rupees a point without a sync."""
    desk = request.getfixturevalue(broker)
    desk.trade_and_mark_at_103()
    body = desk.client.get("/api/positions", {"account_id": desk.account.pk}).json()
    [account] = body["accounts"]
    [row] = account["positions"]
    assert (row["net_qty"], row["buy_qty"], row["sell_qty"]) == (1, 2, 1)
    assert (row["average_price"], row["ltp"], row["mtm"]) == ("100.0000", "103.0000", "40.00")
    assert (account["mtm"], body["totals"][account["money"]]) == ("40.00", "40.00")
    # As the broker reported them at the last sync: rupees.
    stored = BrokerPosition.objects.filter(account=desk.account).values(
        "buy_amount", "sell_amount", "net_amount", "realized_mtm", "unrealized_mtm"
    )
    assert list(stored) == [
        {
            "buy_amount": D("2000.00"),
            "sell_amount": D("1010.00"),
            "net_amount": D("-990.00"),
            "realized_mtm": D("10.00"),
            "unrealized_mtm": D("30.00"),
        }
    ]

    record_price(desk.crude, "104.50")
    [row] = desk.client.get("/api/positions").json()["accounts"][0]["positions"]
    assert (row["ltp"], row["mtm"]) == ("104.5000", "55.00")


def test_the_accounts_balance_holds_the_contracts_margin_in_rupees(desk, settings):
    """Equity: 10 lakh of cash + 40.00 of MTM; margin: the open unit 1 x 103 x 10 x the
    margin rate (0.2)."""
    assert Decimal(str(settings.PAPER_MARGIN_RATE)) == D("0.2")
    desk.trade_and_mark_at_103()
    [account] = desk.client.get("/api/accounts").json()["accounts"]
    assert (account["cash_available"], account["margin_utilized"]) == ("1000040.00", "206.00")
    assert account["net_margin"] == "999834.00"


def test_the_trade_book_values_each_fill_at_price_x_quantity_x_multiplier(desk):
    desk.trade()
    trades = desk.client.get("/api/trades", {"account_id": desk.account.pk}).json()["trades"]
    assert [(t["side"], t["quantity"], t["price"], t["value"]) for t in trades] == [
        ("SELL", 1, "101.0000", "1010.0000"),
        ("BUY", 2, "100.0000", "2000.0000"),
    ]
    export = desk.client.get("/api/trades/export", {"account_id": desk.account.pk})
    header, *rows = csv.reader(io.StringIO(b"".join(export.streaming_content).decode()))
    assert [row[header.index("value")] for row in rows] == ["1010.00", "2000.00"]
    web = Client()
    web.force_login(desk.user)
    page = web.get("/trades/", {"account": desk.account.pk}).content.decode()
    assert "\u20b91,010.00" in page and "\u20b92,000.00" in page


def test_the_intraday_curve_samples_the_contracts_mtm_in_rupees(desk):
    desk.trade_and_mark_at_103()
    report = desk.client.get("/api/pnl/intraday", {"account_id": desk.account.pk}).json()
    [*_, last] = report["paper"]["points"]
    assert last["mtm"] == "40.00"
    assert MtmSample.objects.filter(account=desk.account).latest("minute").mtm == D("40.00")
