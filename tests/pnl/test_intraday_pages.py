"""The PnL page's intraday curve, charges and net PnL; GET /api/pnl/intraday; the brokerage
plan page."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Broker
from pnl.models import BrokeragePlanSetting, MtmSample, PnlDaily
from tests.concurrency import posted_from_tabs_at_once
from tests.factories import (
    DEFAULT_PASSWORD,
    api_client_for,
    make_account,
    make_instrument,
    make_trades,
    make_user,
)
from trading_site.core.market_hours import MARKET_TZ

D = Decimal
DAY = datetime(2026, 11, 27, tzinfo=MARKET_TZ).date()
pytestmark = pytest.mark.django_db


def at(minute: int) -> datetime:
    return datetime(2026, 11, 27, 10, minute, tzinfo=MARKET_TZ)


@pytest.fixture
def day_of_trading():
    user = make_user()
    paper = make_account(user=user, name="Paper")
    live = make_account(user=user, name="Live", broker=Broker.IIFL)
    for account, values in ((paper, ["0", "100", "40", "120"]), (live, ["0", "-50"])):
        for minute, value in enumerate(values):
            MtmSample.objects.create(
                account=account, trading_date=DAY, minute=at(minute), mtm=D(value)
            )
    PnlDaily.objects.create(account=paper, trading_date=DAY, realized=D("90"), unrealized=D("30"))
    inst = make_instrument(symbol="CHG")
    # 100 x 1,000 bought and 100 x 1,010 sold intraday: 30.22 + 52.51 at Rs 20 an order.
    make_trades(
        account=paper,
        instrument=inst,
        fills=[
            ("P1", "BUY", 100, "1000", at(1)),
            ("P2", "SELL", 100, "1010", at(3)),
        ],
    )
    return user, paper, live


def test_the_intraday_api_answers_curve_drawdown_gross_charges_and_net_per_kind_of_money(
    day_of_trading,
):
    user, paper, live = day_of_trading
    body = api_client_for(user).get("/api/pnl/intraday?date=2026-11-27").json()
    report = body["paper"]
    assert [D(p["mtm"]) for p in report["points"]] == [D(0), D(100), D(40), D(120)]
    assert D(report["max_drawdown"]["amount"]) == D("60")
    assert report["max_drawdown"]["peak_at"].startswith("2026-11-27T10:01")
    assert D(report["gross"]) == D("120")
    assert D(report["charges"]["total"]) == D("82.73")
    assert D(report["charges"]["stt"]) == D("25.25")
    assert D(report["net"]) == D("37.27")
    assert D(body["live"]["max_drawdown"]["amount"]) == D("50")
    assert body["live"]["account_ids"] == [live.pk]


def test_one_accounts_intraday_and_a_strangers_404_and_bad_dates(day_of_trading):
    user, paper, live = day_of_trading
    client = api_client_for(user)
    one = client.get(f"/api/pnl/intraday?account_id={live.pk}&date=2026-11-27").json()
    assert one["paper"] is None and one["live"]["account_ids"] == [live.pk]
    stranger = api_client_for(make_user())
    assert stranger.get(f"/api/pnl/intraday?account_id={paper.pk}").status_code == 404
    assert client.get("/api/pnl/intraday?date=2026-02-30").status_code == 400
    assert client.get("/api/pnl/intraday?account_id=x").status_code == 400


def test_a_brokerage_plan_changes_the_estimate(day_of_trading):
    user, paper, _live = day_of_trading
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    saved = web.post(
        f"/pnl/brokerage/{paper.pk}/",
        {"mode": "PERCENT", "flat_per_order": "20", "percent": "0.01", "cap_per_order": ""},
    )
    assert saved.status_code == 302
    assert BrokeragePlanSetting.objects.get(account=paper).cap_per_order is None
    body = api_client_for(user).get(f"/api/pnl/intraday?account_id={paper.pk}&date=2026-11-27")
    # 0.01 % of 1,00,000 = 10 and of 1,01,000 = 10.10, no cap.
    assert D(body.json()["paper"]["charges"]["brokerage"]) == D("20.10")
    bad = web.post(
        f"/pnl/brokerage/{paper.pk}/", {"mode": "PERCENT", "flat_per_order": "-1", "percent": "50"}
    )
    assert bad.status_code == 400
    stranger = Client()
    other = make_user()
    assert stranger.login(username=other.username, password=DEFAULT_PASSWORD)
    assert stranger.get(f"/pnl/brokerage/{paper.pk}/").status_code == 404


def test_the_pnl_page_shows_the_curve_drawdown_and_net_beside_gross(day_of_trading):
    user, paper, _live = day_of_trading
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    text = web.get(f"/pnl/?account={paper.pk}&day=2026-11-27").content.decode()
    assert 'class="mtm-line"' in text and 'class="drawdown"' in text
    assert "₹60.00" in text  # the drawdown
    assert "₹82.73" in text and "₹37.27" in text
    everything = web.get("/pnl/?account=all&day=2026-11-27").content.decode()
    assert "Paper accounts" in everything and "Live accounts" in everything
    assert web.get("/pnl/?account=all&day=someday").status_code == 404


def test_the_day_picker_lists_only_days_with_points(day_of_trading):
    user, paper, _live = day_of_trading
    MtmSample.objects.create(
        account=paper,
        trading_date=DAY - timedelta(days=1),
        minute=at(0) - timedelta(days=1),
        mtm=D("1"),
    )
    web = Client()
    assert web.login(username=user.username, password=DEFAULT_PASSWORD)
    text = web.get(f"/pnl/?account={paper.pk}&day=2026-11-27").content.decode()
    assert "day=2026-11-26" in text


@pytest.mark.django_db(transaction=True)
def test_a_first_brokerage_plan_saved_from_two_tabs_at_once_is_saved_once():
    """The account's first plan posted twice at the same moment: both found no row, both
    inserted it, the second lost on the unique account and answered 500."""
    user = make_user()
    account = make_account(user=user)
    plan = {"mode": "FLAT", "flat_per_order": "15", "percent": "0.03", "cap_per_order": "20"}
    answers = posted_from_tabs_at_once(user, f"/pnl/brokerage/{account.pk}/", plan)
    assert answers == [302] * 4
    assert BrokeragePlanSetting.objects.get(account=account).flat_per_order == D("15")
