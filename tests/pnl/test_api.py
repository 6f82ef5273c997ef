"""PnL endpoints: field names, fresh computation when stale, validation, cross-user 404."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from pnl.models import PnlDaily, PnlInstrumentState
from pnl.services import compute_account_pnl, trading_day_bounds
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_trades,
)

pytestmark = pytest.mark.django_db

LOTS_URL = "/api/broker-order-book-pnl"
SUMMARY_URL = "/api/pnl/summary"
HISTORY_URL = "/api/pnl/history"


@pytest.fixture
def book():
    """An account that bought 10 @ 100, sold 4 @ 110, both earlier today (Asia/Kolkata) at
    whatever hour the test runs; fair prices buy 106 / sell 104."""
    instrument = make_instrument(symbol="INFY")
    make_fair_price(instrument, "105", spread="2")
    account = make_account()
    now = timezone.now()
    _today, start, _end = trading_day_bounds(now)
    make_trades(
        account=account,
        instrument=instrument,
        fills=[
            ("E1", "BUY", 10, "100", start + (now - start) / 3),
            ("T1", "SELL", 4, "110", start + (now - start) * 2 / 3),
        ],
    )
    return account, instrument


def test_lots_endpoint_returns_matched_and_open_lots_with_the_design_field_names(book):
    account, instrument = book
    client = api_client_for(account.user)

    response = client.get(LOTS_URL, {"account_id": account.pk})

    assert response.status_code == 200
    rows = {row["lot_status"]: row for row in response.json()["pnl_data"]}
    matched, open_lot = rows["MATCHED"], rows["OPEN"]
    assert matched["ExchangeInstrumentID"] == instrument.exchange_instrument_id
    assert matched["TradingSymbol"] == "INFY"
    assert (matched["Entry_Order_id"], matched["Sell_Order_id"]) == ("E1", "T1")
    assert (matched["BO_Entry_Quantity"], matched["BO_SL_Quantity"]) == (4, 4)
    assert (matched["BO_entry_price"], matched["BO_SL_price"]) == ("100.0000", "110.0000")
    assert matched["BO_PNL"] == "40.0000"
    assert matched["SL_ExchangeTransactTime"] is not None
    assert matched["side"] == "BUY"
    assert (open_lot["BO_Entry_Quantity"], open_lot["Sell_Order_id"]) == (6, None)
    assert open_lot["BO_PNL"] == "24.0000"  # 6 x (104 - 100), the sell fair price
    assert (open_lot["buy_fair_price"], open_lot["sell_fair_price"]) == ("106.0000", "104.0000")
    assert open_lot["avg_fair_price"] == "105.0000"
    assert response.json()["computed_at"] is not None
    assert "X-RateLimit-Limit" in response


def test_lots_are_computed_fresh_when_the_stored_result_predates_the_last_sync(book):
    account, instrument = book
    compute_account_pnl(account=account)
    make_trades(
        account=account, instrument=instrument, fills=[("T2", "SELL", 6, "90", timezone.now())]
    )
    account.last_synced_at = timezone.now() + timedelta(seconds=1)
    account.save(update_fields=["last_synced_at"])

    response = api_client_for(account.user).get(LOTS_URL, {"account_id": account.pk})

    statuses = [row["lot_status"] for row in response.json()["pnl_data"]]
    assert statuses == ["MATCHED", "MATCHED"]


def test_lots_are_served_from_storage_when_newer_than_the_last_sync(book):
    account, instrument = book
    account.last_synced_at = timezone.now() - timedelta(hours=1)
    account.save(update_fields=["last_synced_at"])
    compute_account_pnl(account=account)
    make_trades(
        account=account, instrument=instrument, fills=[("T2", "SELL", 6, "90", timezone.now())]
    )

    response = api_client_for(account.user).get(LOTS_URL, {"account_id": account.pk})

    assert sorted(row["lot_status"] for row in response.json()["pnl_data"]) == [
        "MATCHED",
        "OPEN",
    ]


def test_summary_gives_totals_per_instrument_and_today(book):
    account, instrument = book
    response = api_client_for(account.user).get(SUMMARY_URL, {"account_id": account.pk})

    assert response.status_code == 200
    body = response.json()
    assert (body["realized"], body["unrealized"], body["total"]) == ("40.00", "24.00", "64.00")
    [row] = body["instruments"]
    assert row["exchange_instrument_id"] == instrument.exchange_instrument_id
    assert (row["open_quantity"], row["fills"], row["total"]) == (6, 2, "64.00")
    assert row["sell_fair_price"] == "104.0000"
    assert body["today"]["fills"] == 2
    assert body["today"]["turnover"] == "1440.00"


def test_history_lists_daily_rows_since_a_date(book):
    account, _instrument = book
    today, _start, _end = trading_day_bounds(timezone.now())
    for days_ago in (3, 2):
        PnlDaily.objects.create(
            account=account,
            trading_date=today - timedelta(days=days_ago),
            realized=Decimal("1.50"),
            unrealized=Decimal("0.25"),
        )

    since = (today - timedelta(days=2)).isoformat()
    response = api_client_for(account.user).get(
        HISTORY_URL, {"account_id": account.pk, "since": since}
    )

    assert response.status_code == 200
    body = response.json()
    assert [row["trading_date"] for row in body["history"]] == [since, today.isoformat()]
    assert body["history"][0]["total"] == "1.75"
    assert body["total"] == 2


@pytest.mark.parametrize("url", [LOTS_URL, SUMMARY_URL, HISTORY_URL])
@pytest.mark.parametrize(
    "params", [{}, {"account_id": "abc"}, {"account_id": "0"}, {"account_id": "9" * 30}]
)
def test_a_missing_or_garbage_account_id_is_a_400_envelope(url, params):
    account = make_account()

    response = api_client_for(account.user).get(url, params)

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "account_id" in response.json()["details"]


def test_a_garbage_since_date_is_a_400(book):
    account, _instrument = book
    response = api_client_for(account.user).get(
        HISTORY_URL, {"account_id": account.pk, "since": "yesterday"}
    )
    assert response.status_code == 400
    assert "since" in response.json()["details"]


@pytest.mark.parametrize("url", [LOTS_URL, SUMMARY_URL, HISTORY_URL])
def test_another_users_account_is_a_404_and_is_not_computed(url, book):
    account, _instrument = book
    stranger = make_account()

    response = api_client_for(stranger.user).get(url, {"account_id": account.pk})

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert not PnlInstrumentState.objects.filter(account=account).exists()


@pytest.mark.parametrize("url", [LOTS_URL, SUMMARY_URL, HISTORY_URL])
def test_anonymous_callers_are_refused(url, book):
    from rest_framework.test import APIClient

    account, _instrument = book
    response = APIClient().get(url, {"account_id": account.pk})
    assert response.status_code == 401


def test_history_today_row_matches_the_trading_date():
    assert isinstance(trading_day_bounds(timezone.now())[0], date)
