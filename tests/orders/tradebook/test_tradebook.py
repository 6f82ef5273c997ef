"""The trade book (GET /api/trades, the /trades/ page) and the CSV exports of trades and
orders: filters by account, day and instrument; plain numbers and ISO times in CSV; another
user's account a 404; a bad filter a 400."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Order
from tests.factories import (
    DEFAULT_PASSWORD,
    api_client_for,
    make_account,
    make_instrument,
    make_leg,
    make_order,
    make_trades,
    make_user,
)
from trading_site.core.market_hours import MARKET_TZ

D = Decimal
pytestmark = pytest.mark.django_db


def ist(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MARKET_TZ)


@pytest.fixture
def book():
    user = make_user(username="ravi")
    first = make_account(user=user, name="First")
    second = make_account(user=user, name='=HYPERLINK("http://x")')
    infy = make_instrument(symbol="INFYTB")
    tcs = make_instrument(symbol="TCSTB")
    trades = [
        *make_trades(
            account=first,
            instrument=infy,
            fills=[("B1", "BUY", 1500, "1234.5", ist(27, 9, 30))],
        ),
        *make_trades(
            account=first, instrument=tcs, fills=[("B2", "SELL", 2, "3150.25", ist(27, 11))]
        ),
        *make_trades(
            account=first, instrument=infy, fills=[("B3", "SELL", 1500, "1240", ist(28, 14))]
        ),
        *make_trades(
            account=second, instrument=infy, fills=[("C1", "BUY", 5, "1200", ist(28, 10))]
        ),
    ]
    return user, first, second, infy, tcs, trades, None


def test_trades_are_listed_newest_first_and_filtered_by_account_day_and_instrument(book):
    user, first, second, infy, tcs, trades, _ = book
    client = api_client_for(user)
    everything = client.get("/api/trades").json()
    assert everything["total"] == 4
    assert [t["broker_order_id"] for t in everything["trades"]] == ["B3", "C1", "B2", "B1"]
    one_account = client.get(f"/api/trades?account_id={first.pk}").json()
    assert {t["account_id"] for t in one_account["trades"]} == {first.pk}
    one_day = client.get(f"/api/trades?account_id={first.pk}&date=2026-11-27").json()
    assert [t["broker_order_id"] for t in one_day["trades"]] == ["B2", "B1"]
    by_symbol = client.get("/api/trades?symbol=tcstb").json()
    assert [t["trading_symbol"] for t in by_symbol["trades"]] == ["TCSTB"]
    by_id = client.get(
        f"/api/trades?exchange_segment=NSECM&exchange_instrument_id={infy.exchange_instrument_id}"
    ).json()
    assert by_id["total"] == 3
    ranged = client.get("/api/trades?since=2026-11-28&until=2026-11-28").json()
    assert ranged["total"] == 2


def test_a_fill_names_the_order_and_leg_it_belongs_to(book):
    user, first, _second, infy, _tcs, _trades, _ = book
    order = make_order(account=first, instrument=infy, entry_leg=False)
    make_leg(order=order, role="ENTRY", broker_order_id="B1")
    row = next(
        t
        for t in api_client_for(user).get("/api/trades").json()["trades"]
        if t["broker_order_id"] == "B1"
    )
    assert (row["order_id"], row["leg_role"]) == (order.pk, "ENTRY")
    assert D(row["value"]) == D("1851750.0000")


@pytest.mark.parametrize(
    "query",
    [
        "date=2026-13-01",
        "since=2026-11-29&until=2026-11-27",
        "date=2026-11-27&since=2026-11-01",
        "account_id=abc",
        "exchange_segment=MOON",
        "limit=0",
    ],
)
def test_a_bad_filter_is_a_400(book, query):
    user = book[0]
    answer = api_client_for(user).get(f"/api/trades?{query}")
    assert answer.status_code == 400
    assert answer.json()["code"] == "VALIDATION_ERROR"


def test_another_users_trades_are_neither_listed_nor_reachable(book):
    _user, first, *_ = book
    stranger = api_client_for(make_user())
    assert stranger.get("/api/trades").json()["total"] == 0
    assert stranger.get(f"/api/trades?account_id={first.pk}").status_code == 404
    assert stranger.get(f"/api/trades/export?account_id={first.pk}").status_code == 404


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_trades_csv_is_streamed_with_plain_numbers_iso_times_and_no_formulas(book):
    user, first, second, *_ = book
    response = api_client_for(user).get("/api/trades/export?since=2026-11-27")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header[:3] == ["traded_at", "account", "trading_symbol"]
    first_buy = next(r for r in rows if r[11] == "B1")
    assert first_buy[0] == "2026-11-27T09:30:00+05:30"
    assert first_buy[8] == "1234.5000"  # the price, no grouping, no rupee sign
    assert first_buy[9] == "1851750.00"  # 1,500 x 1,234.5: 18,51,750 on screen
    theirs = next(r for r in rows if r[11] == "C1")
    assert theirs[1] == '\'=HYPERLINK("http://x")'  # a spreadsheet shows it, never runs it


def test_the_orders_csv_has_the_lists_filters(book):
    user, first, second, infy, *_ = book
    make_order(account=first, instrument=infy, status=Order.Status.OPEN, pnl=D("-1234.56"))
    make_order(account=second, instrument=infy, status=Order.Status.FILLED)
    response = api_client_for(user).get(f"/api/orders/export?account_id={first.pk}&status=OPEN")
    header, *rows = read_csv(response)
    assert header[0] == "order_id" and len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["status"] == "OPEN" and row["pnl"] == "-1234.56"  # a number, not quoted
    assert row["created_at"].endswith("+05:30")
    assert api_client_for(user).get("/api/orders/export?status=NOPE").status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/orders/export?since=0001-01-01",
        "/api/orders/export?until=0001-01-01T01:00:00",
        "/api/trades/export?since=0001-01-01",
        "/api/trades/export?date=0001-01-01",
    ],
)
def test_an_export_whose_query_fails_is_a_400_not_a_200_cut_after_its_header(book, path):
    # A day before year 1 in UTC cannot be queried. The export's query used to run only once
    # the 200 and the header line were on their way: the download broke off (or, to a client
    # that reads to the end of the connection, looked like an empty book).
    answer = api_client_for(book[0]).get(path)
    assert answer.status_code == 400
    assert not answer.streaming
    assert answer.json()["code"] == "VALIDATION_ERROR"


def test_the_trade_book_page_and_its_download_use_the_same_filters(book):
    user, first, *_ = book
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    page = web.get(f"/trades/?account={first.pk}&date=2026-11-27")
    assert page.status_code == 200
    text = page.content.decode()
    assert "TCSTB" in text and "2 fills" in text
    assert f"/trades/export.csv?account={first.pk}&amp;date=2026-11-27" in text
    _header, *rows = read_csv(web.get(f"/trades/export.csv?account={first.pk}&date=2026-11-27"))
    assert sorted(r[11] for r in rows) == ["B1", "B2"]
    _header, *orders = read_csv(web.get("/orders/export.csv"))
    assert orders == []


def test_the_trade_book_page_refuses_another_users_account(book):
    _user, first, *_ = book
    stranger = make_user()
    web = Client()
    assert web.login(username=stranger.username, password=DEFAULT_PASSWORD)
    page = web.get(f"/trades/?account={first.pk}")
    assert page.status_code == 400
    assert "No fills match." in page.content.decode()
    assert "INFYTB" not in page.content.decode()
    refused = web.get(f"/trades/export.csv?account={first.pk}")
    assert refused.status_code == 400
    assert not refused.streaming
    assert "account" in refused.content.decode()


def _refused(answer) -> str:
    """A download refused for its filters: a 400 in plain text naming them, no CSV."""
    assert answer.status_code == 400, answer.status_code
    assert not answer.streaming
    assert answer["Content-Type"].startswith("text/plain")
    assert "Content-Disposition" not in answer
    return answer.content.decode()


def test_a_download_with_a_bad_filter_is_refused_never_the_whole_list(book):
    # A trader exporting one account's orders for the accountant, with a filter the form
    # refuses (another account, an unknown status, a day that is no date), got every order
    # of every account in the file, or an empty file that reads as "nothing happened".
    user, first, second, infy, *_ = book
    make_order(account=first, instrument=infy, status=Order.Status.OPEN)
    make_order(account=second, instrument=infy, status=Order.Status.FILLED)
    theirs = make_account(user=make_user(), name="Theirs")
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)

    assert "account" in _refused(web.get(f"/orders/export.csv?account={theirs.pk}"))
    assert "status" in _refused(web.get("/orders/export.csv?status=NOT_A_STATUS"))
    assert "since" in _refused(web.get("/orders/export.csv?since=yesterday"))
    assert "date" in _refused(web.get("/trades/export.csv?date=2026-13-40"))

    _header, *mine = read_csv(web.get(f"/orders/export.csv?account={first.pk}"))
    assert len(mine) == 1


def test_the_order_list_page_with_a_bad_filter_shows_no_order(book):
    user, first, _second, infy, *_ = book
    make_order(account=first, instrument=infy, status=Order.Status.OPEN)
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    assert "INFYTB" in web.get("/orders/").content.decode()

    page = web.get("/orders/?status=NOT_A_STATUS")

    assert page.status_code == 400
    assert "INFYTB" not in page.content.decode()
    rows = web.get("/orders/?status=NOT_A_STATUS&fragment=rows")
    assert rows.status_code == 400
    assert "INFYTB" not in rows.content.decode()


def test_the_trade_book_page_without_filters_lists_every_fill(book):
    user, *_ = book
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    text = web.get("/trades/").content.decode()
    assert "TCSTB" in text and "4 fills" in text
