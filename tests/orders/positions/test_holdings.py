"""GET /api/holdings: delivery holdings from the broker (the paper exchange: CNC bought on
earlier days; XTS: portfolio/holdings over the wire), valued at the LTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from orders.brokers.paper.models import PaperTrade
from orders.brokers.xts.wire import holding_rows_from_xts
from tests.factories import (
    api_client_for,
    buy_at_market,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
    make_xts_account,
    record_price,
)
from trading_site.core.market_hours import trading_day_start

D = Decimal


def age_trades(account, days: int = 1) -> None:
    for trade in PaperTrade.objects.filter(book__account_id=account.pk):
        trade.traded_at -= timedelta(days=days)
        trade.save(update_fields=["traded_at"])


@pytest.mark.django_db
def test_cnc_bought_on_an_earlier_day_is_a_holding_and_todays_trades_are_not(
    client, account, instrument
):
    buy_at_market(account, instrument, 5, product="CNC")
    buy_at_market(account, instrument, 9, product="MIS")  # intraday: never a holding
    age_trades(account)
    buy_at_market(account, instrument, 3, product="CNC")  # today: a position, not yet held
    make_fair_price(instrument, "110.00")
    body = client.get("/api/holdings").json()
    [one] = body["accounts"]
    assert one["supported"] is True and one["error"] == ""
    [holding] = one["holdings"]
    assert (holding["trading_symbol"], holding["quantity"]) == ("TATAPOS", 5)
    assert D(holding["average_price"]) == D("100")
    assert D(holding["value"]) == D("550.00")
    assert D(holding["pnl"]) == D("50.00")
    assert D(body["totals"]["paper"]) == D("550.00")
    assert body["totals"]["live"] is None


@pytest.mark.django_db
def test_the_day_starts_at_midnight_in_kolkata_whatever_the_clock(client, account, instrument):
    """Midnight IST is 18:30 UTC the evening before: a CNC buy a minute after it is the
    day's (a position), one a minute before it is a holding. The trades are placed on the
    day's edges, so the test holds at any hour (before 05:30 IST the day's trades counted
    as holdings)."""
    start = trading_day_start()
    buy_at_market(account, instrument, 5, product="CNC")
    PaperTrade.objects.filter(book__account_id=account.pk).update(
        traded_at=start - timedelta(minutes=1)
    )
    buy_at_market(account, instrument, 3, product="CNC")
    PaperTrade.objects.filter(book__account_id=account.pk, quantity=3).update(
        traded_at=start + timedelta(minutes=1)
    )
    [one] = client.get("/api/holdings").json()["accounts"]
    [holding] = one["holdings"]
    assert (holding["trading_symbol"], holding["quantity"]) == ("TATAPOS", 5)


@pytest.mark.django_db
def test_holdings_of_another_users_account_are_a_404_and_a_bad_filter_a_400(client):
    theirs = make_account(user=make_user())
    assert client.get(f"/api/holdings?account_id={theirs.pk}").status_code == 404
    assert client.get("/api/holdings?account_id=-1").status_code == 400


def test_xts_holdings_come_over_the_wire_from_the_simulator(simulator, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True  # a live account: not after market hours
    instrument = make_instrument(symbol="INFY", instrument_id=1594, band=(D("1300"), D("1800")))
    record_price(instrument, "1500")
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    client = api_client_for(user)
    buy_at_market(account, instrument, 4, product="CNC")
    PaperTrade.objects.update(traded_at=PaperTrade.objects.first().traded_at - timedelta(days=2))
    record_price(instrument, "1600")
    body = client.get(f"/api/holdings?account_id={account.pk}").json()
    [holding] = body["accounts"][0]["holdings"]
    assert (holding["trading_symbol"], holding["quantity"]) == ("INFY", 4)
    assert holding["isin"] == "SIM1594"
    assert D(holding["average_price"]) == D("1500")
    assert D(holding["pnl"]) == D("400.00")
    assert body["totals"]["paper"] is None
    assert D(body["totals"]["live"]) == D("6400.00")


def test_the_xts_holdings_answer_is_read_by_isin_with_the_nse_id_first():
    answer = {
        "RMSHoldings": {
            "ClientId": "A1",
            "Holdings": {
                "INE002A01018": {
                    "ISIN": "INE002A01018",
                    "HoldingQuantity": "10",
                    "BuyAvgPrice": 2450.5,
                    "ExchangeNSEInstrumentId": 2885,
                    "ExchangeBSEInstrumentId": 500325,
                    "CollateralQuantity": 2,
                },
                "INE000B00000": {
                    "HoldingQuantity": 3,
                    "BuyAvgPrice": "12.5",
                    "ExchangeNSEInstrumentId": 0,
                    "ExchangeBSEInstrumentId": 532001,
                },
            },
        }
    }
    nse, bse = holding_rows_from_xts(answer)
    assert (nse.exchange_segment, nse.exchange_instrument_id, nse.quantity) == ("NSECM", 2885, 10)
    assert (nse.average_price, nse.pledged_quantity, nse.isin) == (D("2450.5"), 2, "INE002A01018")
    assert (bse.exchange_segment, bse.exchange_instrument_id, bse.isin) == (
        "BSECM",
        532001,
        "INE000B00000",
    )
    assert holding_rows_from_xts({"RMSHoldings": {"Holdings": {}}}) == []
