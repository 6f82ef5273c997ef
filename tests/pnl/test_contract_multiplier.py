"""PnL of a contract whose one unit is worth price x multiplier (an MCX future of the instrument
master with Multiplier 10), end to end: orders placed through the REST API at the paper
exchange, the monitoring cycle's sync and FIFO, its pnl_update, and the PnL API's figures.
Real parts: MariaDB, Redis (lock, channel layer), the paper broker."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import pytest

from monitoring.models import MonitoringRun
from monitoring.services import run_user_cycle
from orders.models import Order
from pnl.services import trading_day_bounds
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
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


def test_a_multiplier_10_contract_realizes_and_marks_ten_rupees_a_point(listen):
    """Buy 2 at 100, sell 1 at 101, the price then at 103: realized (101 - 100) x 1 x 10 =
    10.00, the open unit marked (103 - 100) x 1 x 10 = 30.00, turnover (2 x 100 + 101) x 10."""
    user = make_user()
    account = make_account(user=user)
    crude = make_instrument(symbol="CRUDEOILM", segment="MCXFO", multiplier=10)
    make_fair_price(crude, "100")
    client = api_client_for(user)
    listener = listen(user.pk)

    buy_id = place_market(client, account, crude, "BUY", 2)
    cycle(user)
    set_price_and_match(crude, "101", spread="0")
    sell_id = place_market(client, account, crude, "SELL", 1)
    cycle(user)
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
